import { randomUUID } from 'node:crypto';
import { RestError, type TableClient, type TableEntity } from '@azure/data-tables';
import { createDefaultHttpClient, createHttpHeaders, createPipelineRequest, type Pipeline, type PipelineRequest, type PipelineResponse } from '@azure/core-rest-pipeline';

/**
 * Creates audit entities with the body built here in one pass: a whole entity-group transaction, or
 * one entity. The SDK's own submitTransaction runs every entity through a full request pipeline of its
 * own (mapper serialization, URL building, a tracing span, header objects) only to cut the result into
 * the body, and its createEntity costs the same per entity; these build the same request directly and
 * send it once through the client's own pipeline (its credential, retries and tracing). Values are
 * strings, numbers, booleans and Dates.
 */
const httpClient = createDefaultHttpClient();
const CRLF = '\r\n';

/**
 * An entity's properties as the JSON members of its body (`,"name":value` each), encoded once when
 * the record is made: a batch then only frames them with its keys, and no intermediate object per
 * entity is built, copied and serialized again (issue 14).
 */
export type EncodedProperties = string & { readonly __encoded: unique symbol };

export interface EncodedEntity {
  partitionKey: string;
  rowKey: string;
  properties: EncodedProperties;
}

/** A property's member up to its value; a Date's also says it is an Edm.DateTime, as the SDK sends it. */
export function memberPrefix(name: string, date: boolean): string {
  return date ? `,${JSON.stringify(`${name}@odata.type`)}:"Edm.DateTime",${JSON.stringify(name)}:` : `,${JSON.stringify(name)}:`;
}

export function memberValue(value: unknown): string {
  return value instanceof Date ? `"${value.toISOString()}"` : JSON.stringify(value);
}

/** The properties of `fields`, absent ones left out. */
export function encodeProperties(fields: Record<string, unknown>): EncodedProperties {
  let text = '';
  for (const name in fields) {
    const value = fields[name];
    if (value !== undefined) text += memberPrefix(name, value instanceof Date) + memberValue(value);
  }
  return text as EncodedProperties;
}

export function encodeEntity({ partitionKey, rowKey, ...fields }: TableEntity): EncodedEntity {
  return { partitionKey, rowKey, properties: encodeProperties(fields) };
}

function entityJson(entity: EncodedEntity): string {
  return `{"PartitionKey":${JSON.stringify(entity.partitionKey)},"RowKey":${JSON.stringify(entity.rowKey)}${entity.properties}}`;
}

/** Where the client's table and its service are, and the client's SAS if it has one. */
function locations(table: TableClient): { base: string; target: string; query: string } {
  const [account, sas] = table.url.split('?');
  const base = account!.endsWith('/') ? account! : `${account}/`;
  return { base, target: `${base}${table.tableName}`, query: sas === undefined ? '' : `?${sas}` };
}

function failure(status: number, text: string, request: PipelineRequest, response: PipelineResponse): RestError {
  const code = /"code"\s*:\s*"([^"]*)"/.exec(text)?.[1];
  return new RestError(`Table request failed (${status})`, { statusCode: status, ...(code === undefined ? {} : { code }), request, response });
}

/**
 * The policies of the client's pipeline that do nothing for a finished body sent with a real
 * AbortSignal (no operation spec to serialize or deserialize, no form or multipart body) or that
 * Table Storage never needs (it neither compresses nor redirects these answers). Left out, a POST
 * costs some 25 µs of CPU less (a third of issuances' Table requests at light load are these).
 */
const UNUSED_POLICIES = ['serializationPolicy', 'deserializationPolicy', 'formDataPolicy', 'multipartPolicy', 'decompressResponsePolicy', 'redirectPolicy', 'wrapAbortSignalLikePolicy'];
const leanPipelines = new WeakMap<TableClient, Pipeline>();

/** The client's pipeline (as at its first POST) without UNUSED_POLICIES: its credential, retries, tracing, proxy, logging and request headers are kept. */
function leanPipeline(table: TableClient): Pipeline {
  let pipeline = leanPipelines.get(table);
  if (!pipeline) {
    pipeline = table.pipeline.clone();
    for (const name of UNUSED_POLICIES) pipeline.removePolicy({ name });
    leanPipelines.set(table, pipeline);
  }
  return pipeline;
}

/** A POST through the client's own pipeline, less what it does not need (leanPipeline). */
async function post(table: TableClient, url: string, body: string, headers: Record<string, string>, abortSignal: AbortSignal) {
  const request = createPipelineRequest({
    url,
    method: 'POST',
    body,
    abortSignal,
    allowInsecureConnection: url.startsWith('http:'),
    headers: createHttpHeaders({ 'x-ms-version': '2019-02-02', ...headers }),
  });
  return { request, response: await leanPipeline(table).sendRequest(httpClient, request) };
}

/** One entity (Insert Entity, answered 204): a failure throws a RestError with its status and code, as the SDK's would. */
export async function createOne(table: TableClient, entity: EncodedEntity, abortSignal: AbortSignal): Promise<void> {
  const { target, query } = locations(table);
  const { request, response } = await post(
    table,
    `${target}${query}`,
    entityJson(entity),
    { accept: 'application/json;odata=minimalmetadata', DataServiceVersion: '3.0', 'Content-Type': 'application/json;odata=nometadata', Prefer: 'return-no-content' },
    abortSignal,
  );
  if (response.status < 200 || response.status >= 300) throw failure(response.status, response.bodyAsText ?? '', request, response);
}

export async function createInTransaction(table: TableClient, entities: EncodedEntity[], abortSignal: AbortSignal): Promise<void> {
  const batch = `batch_${randomUUID()}`;
  const changeset = `changeset_${randomUUID()}`;
  const { base, target, query } = locations(table);
  const head = `--${changeset}${CRLF}Content-Type: application/http${CRLF}Content-Transfer-Encoding: binary${CRLF}${CRLF}POST ${target} HTTP/1.1${CRLF}Content-Type: application/json;odata=nometadata${CRLF}Accept: application/json;odata=minimalmetadata${CRLF}DataServiceVersion: 3.0${CRLF}Prefer: return-no-content${CRLF}${CRLF}`;
  let body = `--${batch}${CRLF}Content-Type: multipart/mixed; boundary=${changeset}${CRLF}${CRLF}`;
  for (const entity of entities) {
    if (entity.partitionKey !== entities[0]!.partitionKey) throw new Error('All entities of a transaction must share one partition key');
    body += `${head}${entityJson(entity)}${CRLF}`;
  }
  body += `--${changeset}--${CRLF}--${batch}--${CRLF}`;
  const { request, response } = await post(
    table,
    `${base}$batch${query}`,
    body,
    { accept: 'application/json', DataServiceVersion: '3.0;', MaxDataServiceVersion: '3.0;NetFx', 'Content-Type': `multipart/mixed; boundary=${batch}` },
    abortSignal,
  );
  const text = response.bodyAsText ?? '';
  // A refused transaction answers 202 with the one failing sub-response; anything else is a failure too.
  const failed = /HTTP\/1\.1 ([3-9]\d\d)/.exec(text);
  const status = response.status < 200 || response.status >= 300 ? response.status : failed ? Number(failed[1]) : undefined;
  if (status !== undefined) throw failure(status, text, request, response);
}
