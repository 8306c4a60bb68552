import { randomUUID } from 'node:crypto';
import { RestError, type TableClient, type TableEntity } from '@azure/data-tables';
import { createDefaultHttpClient, createHttpHeaders, createPipelineRequest } from '@azure/core-rest-pipeline';

/**
 * Creates entities of one partition in one entity-group transaction, the body built here in one pass.
 * The SDK's own submitTransaction runs every entity through a full request pipeline of its own
 * (mapper serialization, URL building, a tracing span, header objects) only to cut the result into
 * the body; this builds the same body directly and sends it once through the client's own pipeline
 * (its credential, retries and tracing). Values are strings, numbers, booleans and Dates.
 */
const httpClient = createDefaultHttpClient();
const CRLF = '\r\n';

function entityJson(entity: TableEntity): string {
  const body: Record<string, unknown> = { PartitionKey: entity.partitionKey, RowKey: entity.rowKey };
  for (const name in entity) {
    if (name === 'partitionKey' || name === 'rowKey') continue;
    const value = (entity as Record<string, unknown>)[name];
    if (value instanceof Date) {
      body[name] = value.toISOString();
      body[`${name}@odata.type`] = 'Edm.DateTime';
    } else if (value !== undefined) body[name] = value;
  }
  return JSON.stringify(body);
}

export async function createInTransaction(table: TableClient, entities: TableEntity[], abortSignal: AbortSignal): Promise<void> {
  const batch = `batch_${randomUUID()}`;
  const changeset = `changeset_${randomUUID()}`;
  const [account, sas] = table.url.split('?');
  const base = account!.endsWith('/') ? account! : `${account}/`;
  const target = `${base}${table.tableName}`;
  const head = `--${changeset}${CRLF}Content-Type: application/http${CRLF}Content-Transfer-Encoding: binary${CRLF}${CRLF}POST ${target} HTTP/1.1${CRLF}Content-Type: application/json;odata=nometadata${CRLF}Accept: application/json;odata=minimalmetadata${CRLF}DataServiceVersion: 3.0${CRLF}Prefer: return-no-content${CRLF}${CRLF}`;
  let body = `--${batch}${CRLF}Content-Type: multipart/mixed; boundary=${changeset}${CRLF}${CRLF}`;
  for (const entity of entities) {
    if (entity.partitionKey !== entities[0]!.partitionKey) throw new Error('All entities of a transaction must share one partition key');
    body += `${head}${entityJson(entity)}${CRLF}`;
  }
  body += `--${changeset}--${CRLF}--${batch}--${CRLF}`;
  const request = createPipelineRequest({
    url: `${base}$batch${sas === undefined ? '' : `?${sas}`}`,
    method: 'POST',
    body,
    abortSignal,
    allowInsecureConnection: target.startsWith('http:'),
    headers: createHttpHeaders({
      accept: 'application/json',
      'x-ms-version': '2019-02-02',
      DataServiceVersion: '3.0;',
      MaxDataServiceVersion: '3.0;NetFx',
      'Content-Type': `multipart/mixed; boundary=${batch}`,
    }),
  });
  const response = await table.pipeline.sendRequest(httpClient, request);
  const text = response.bodyAsText ?? '';
  // A refused transaction answers 202 with the one failing sub-response; anything else is a failure too.
  const failed = /HTTP\/1\.1 ([3-9]\d\d)/.exec(text);
  const status = response.status < 200 || response.status >= 300 ? response.status : failed ? Number(failed[1]) : undefined;
  if (status !== undefined) {
    const code = /"code"\s*:\s*"([^"]*)"/.exec(text)?.[1];
    throw new RestError(`Transaction failed (${status})`, { statusCode: status, ...(code === undefined ? {} : { code }), request, response });
  }
}
