import type { TableClient } from '@azure/data-tables';
import { ulid } from '../ids.js';
import type { CallerIdentity } from '../auth/callerToken.js';
import { asProblem, problems } from '../http/problem.js';
import { errorSummary, type Logger } from '../logger.js';
import type { AuditWriter } from './auditWriter.js';
import { ADMIN_AUDIT_SHARDS } from './partitioning.js';
import { encodeCursor, queryTimeRange, type Cursor, type Entity } from './timeRangeQuery.js';

/** What an operator asked to change. `before`/`after` are documents (grants, blocks), never secrets. */
export interface AdminChange {
  requestId: string;
  actor: CallerIdentity;
  action: 'grant.create' | 'grant.update' | 'grant.delete' | 'block.put' | 'block.delete' | 'credential.rotate' | 'explain';
  target: string;
  before?: unknown;
  after?: unknown;
}

export interface AdminAuditView {
  id: string;
  time: string;
  requestId: string;
  action: string;
  target: string;
  outcome: string;
  detail?: string;
  tenantId: string;
  objectId: string;
  appId?: string;
  before?: unknown;
  after?: unknown;
}

const json = (value: unknown) => (value === undefined ? undefined : JSON.stringify(value).slice(0, 30_000));
const parsed = (value: unknown) => {
  if (typeof value !== 'string') return undefined;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
};

/**
 * The `adminaudit` table. Every admin write is recorded *before* it is made (`requested`), so no
 * change can happen without a record: if that write fails the operator gets 503 and nothing changes.
 * A change the store then refuses (stale ETag, conflict) gets a second record, `refused`; an action
 * with a result to report (rotation) gets a `completed` or `failed` record.
 */
export class AdminAuditLog {
  constructor(
    private readonly writer: AuditWriter,
    private readonly table: TableClient,
    private readonly log: Logger,
  ) {}

  async change<T>(change: AdminChange, perform: () => Promise<T>): Promise<T> {
    await this.write(change, 'requested');
    try {
      return await perform();
    } catch (error) {
      const problem = asProblem(error);
      await this.write(change, 'refused', `${problem.status} ${problem.code}`).catch((auditError: unknown) =>
        this.log.error('could not record a refused admin change', { action: change.action, target: change.target, error: errorSummary(auditError) }),
      );
      throw error;
    }
  }

  write(change: AdminChange, outcome: 'requested' | 'refused' | 'completed' | 'failed', detail?: string): Promise<void> {
    const time = new Date();
    const id = ulid();
    const fields = {
      id,
      time,
      requestId: change.requestId,
      action: change.action,
      target: change.target,
      outcome,
      detail,
      tenantId: change.actor.tenantId,
      objectId: change.actor.objectId,
      appId: change.actor.appId,
      before: json(change.before),
      after: json(change.after),
    };
    return this.writer.write(time, id, Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)));
  }

  async search(filter: { from: Date; to: Date; limit: number; cursor?: Cursor }): Promise<{ entries: AdminAuditView[]; nextCursor: string | undefined }> {
    let page;
    try {
      page = await queryTimeRange(this.table, ADMIN_AUDIT_SHARDS, { ...filter, cursor: filter.cursor, conditions: [], maxHours: 24 * 31 });
    } catch {
      throw problems.dependencyDown('audit', 'The admin audit table (Table Storage) is unavailable.');
    }
    return { entries: page.items.map(toView), nextCursor: page.next ? encodeCursor(page.next) : undefined };
  }
}

function toView(entity: Entity): AdminAuditView {
  return {
    id: String(entity.id),
    time: entity.time instanceof Date ? entity.time.toISOString() : String(entity.time),
    requestId: String(entity.requestId),
    action: String(entity.action),
    target: String(entity.target),
    outcome: String(entity.outcome),
    ...(entity.detail ? { detail: String(entity.detail) } : {}),
    tenantId: String(entity.tenantId),
    objectId: String(entity.objectId),
    ...(entity.appId ? { appId: String(entity.appId) } : {}),
    ...(entity.before !== undefined ? { before: parsed(entity.before) } : {}),
    ...(entity.after !== undefined ? { after: parsed(entity.after) } : {}),
  };
}
