import type { TableClient } from '@azure/data-tables';
import * as z from 'zod';
import { ulid } from '../ids.js';
import type { CallerIdentity } from '../auth/callerToken.js';
import { asBrokerError, azureStatus, errors } from '../errors.js';
import { errorSummary, type Logger } from '../logger.js';
import type { AuditWriter } from './auditWriter.js';
import { encodeRecord, fromEntity } from './entityCodec.js';
import { ADMIN_AUDIT_SHARDS } from './partitioning.js';
import { encodeCursor, queryTimeRange, type Cursor } from './timeRangeQuery.js';

/** What an operator asked to change. `before`/`after` are documents (grants, blocks), never secrets. */
export interface AdminChange {
  requestId: string;
  actor: CallerIdentity;
  action: 'grant.create' | 'grant.update' | 'grant.delete' | 'block.put' | 'block.delete' | 'credential.rotate' | 'explain' | 'access';
  target: string;
  before?: unknown;
  after?: unknown;
}

export const ADMIN_OUTCOMES = ['requested', 'refused', 'completed', 'failed'] as const;

/** One entry of the `adminaudit` table, spelled once (writer, search, admin API, OpenAPI, CLI). */
export const adminAuditEntrySchema = z.object({
  id: z.string(),
  time: z.date(),
  requestId: z.string(),
  action: z.string(),
  target: z.string(),
  outcome: z.enum(ADMIN_OUTCOMES),
  detail: z.string().optional(),
  tenantId: z.string(),
  objectId: z.string(),
  appId: z.string().optional(),
  before: z.unknown().optional().describe('the document before the change (a grant, a block), never a secret'),
  after: z.unknown().optional().describe('the document after the change'),
});

export type AdminAuditEntry = z.infer<typeof adminAuditEntrySchema>;

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
      const problem = asBrokerError(error);
      // The problem's code, and its kind only where the code does not already say it ("conflict", not "conflict conflict").
      const detail = problem.code.includes(problem.kind) ? problem.code : `${problem.kind} ${problem.code}`;
      await this.write(change, 'refused', detail).catch((auditError: unknown) =>
        this.log.error('could not record a refused admin change', { action: change.action, target: change.target, error: errorSummary(auditError) }),
      );
      throw error;
    }
  }

  write(change: AdminChange, outcome: AdminAuditEntry['outcome'], detail?: string): Promise<void> {
    const entry: AdminAuditEntry = {
      id: ulid(),
      time: new Date(),
      requestId: change.requestId,
      action: change.action,
      target: change.target,
      outcome,
      detail,
      tenantId: change.actor.tenantId,
      objectId: change.actor.objectId,
      appId: change.actor.appId,
      before: change.before,
      after: change.after,
    };
    return this.writer.write(entry.time, entry.id, encodeRecord(adminAuditEntrySchema, entry));
  }

  async search(filter: { from: Date; to: Date; limit: number; cursor?: Cursor }): Promise<{ entries: AdminAuditEntry[]; nextCursor: string | undefined }> {
    // A cursor into the issuance index was never returned by this search.
    if (filter.cursor && !('h' in filter.cursor)) return { entries: [], nextCursor: undefined };
    let page;
    try {
      page = await queryTimeRange(this.table, ADMIN_AUDIT_SHARDS, { ...filter, cursor: filter.cursor, conditions: [], maxHours: 24 * 31 });
    } catch (error) {
      // No admin action yet, so no table: an empty audit, not an outage.
      if (azureStatus(error) === 404) return { entries: [], nextCursor: undefined };
      throw errors.dependencyDown('audit', 'The admin audit table (Table Storage) is unavailable.');
    }
    return { entries: page.items.map((entity) => fromEntity(adminAuditEntrySchema, entity)), nextCursor: page.next ? encodeCursor(page.next) : undefined };
  }
}
