import type { TableClient } from '@azure/data-tables';
import { azureStatus, errors } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RefreshingCache } from '../refreshingCache.js';
import { guarded, tableReady } from '../tableStore.js';
import { FULL_READ_MS, deadline, partitionCache, deleteVersioned, partitionVersion, rowsOf, writeVersioned } from './versionedTable.js';

/** An operator's deny for one identity. Blocks win over every grant. */
export interface Block {
  objectId: string;
  reason: string;
  blockedAt: string;
  blockedBy: string;
}

const PARTITION = 'block';
const unavailable = () => errors.dependencyDown('block-list', 'The block list (Table Storage) is unavailable.');
// Same promise as grants (versionedTable.ts): other instances see a block within 30 s, this one at once.

interface Snapshot {
  blocks: Map<string, Block>;
  /** The version row's ETag, read before the rows. */
  version: string;
  readAt: number;
}

export class BlockStore {
  private readonly cache: RefreshingCache<'all', Map<string, Block>>;
  private readonly ready: () => Promise<void>;
  private snapshot: Snapshot | undefined;

  constructor(
    private readonly table: TableClient,
    private readonly log: Logger,
  ) {
    this.ready = tableReady(table);
    this.cache = partitionCache((signal) => this.refresh(signal));
  }

  async find(objectId: string): Promise<Block | undefined> {
    try {
      return (await this.cache.get('all')).get(objectId);
    } catch {
      throw unavailable();
    }
  }

  async list(signal: AbortSignal = deadline()): Promise<Block[]> {
    return this.guard(async () => {
      const blocks: Block[] = [];
      for await (const entity of this.table.listEntities<Omit<Block, 'objectId'>>({ queryOptions: { filter: rowsOf(PARTITION) }, abortSignal: signal })) {
        blocks.push({ objectId: entity.rowKey!, reason: entity.reason, blockedAt: entity.blockedAt, blockedBy: entity.blockedBy });
      }
      return blocks;
    });
  }

  async put(block: Block): Promise<void> {
    try {
      await this.guard(() =>
        writeVersioned(this.table, PARTITION, ['upsert', { partitionKey: PARTITION, rowKey: block.objectId, reason: block.reason, blockedAt: block.blockedAt, blockedBy: block.blockedBy }, 'Replace']),
      );
    } finally {
      this.cache.invalidate('all');
    }
  }

  async delete(objectId: string): Promise<void> {
    try {
      await this.guard(async () => {
        try {
          await deleteVersioned(this.table, PARTITION, objectId, undefined);
        } catch (error) {
          if (azureStatus(error) === 404) throw errors.notFound('block-not-found', `${objectId} is not blocked.`);
          throw error;
        }
      });
    } finally {
      this.cache.invalidate('all');
    }
  }

  /** One point read when nothing changed; every block only when the version row says something did. */
  private async refresh(signal: AbortSignal | undefined): Promise<Map<string, Block>> {
    const last = this.snapshot;
    // As for grants: the first load reads the version too, so the next refresh need not list again.
    const version = await this.guard(() => partitionVersion(this.table, PARTITION, signal));
    if (last && last.version === version && Date.now() - last.readAt < FULL_READ_MS) return last.blocks;
    const readAt = Date.now();
    const blocks = new Map((await this.list(signal)).map((block) => [block.objectId, block]));
    this.snapshot = { blocks, version, readAt };
    return blocks;
  }

  private guard<T>(action: () => Promise<T>): Promise<T> {
    return guarded(this.ready, action, this.log, 'block list', unavailable);
  }
}
