import type { TableClient } from '@azure/data-tables';
import { problems } from '../http/problem.js';
import type { Logger } from '../logger.js';
import { RefreshingCache } from '../refreshingCache.js';
import { guarded, tableReady, tableStatus } from '../tables.js';

/** An operator's deny for one identity. Blocks win over every grant. */
export interface Block {
  objectId: string;
  reason: string;
  blockedAt: string;
  blockedBy: string;
}

const PARTITION = 'block';
const unavailable = () => problems.dependencyDown('block-list', 'The block list (Table Storage) is unavailable.');
/** Same promise as grants: other instances see a block within 30 s (TTL + stale), this one at once. */
const CACHE_TTL_MS = 15_000;
const CACHE_STALE_MS = 15_000;

export class BlockStore {
  private readonly cache: RefreshingCache<'all', Map<string, Block>>;
  private readonly ready: () => Promise<void>;

  constructor(
    private readonly table: TableClient,
    private readonly log: Logger,
  ) {
    this.ready = tableReady(table);
    this.cache = new RefreshingCache({
      ttlMs: CACHE_TTL_MS,
      staleMs: CACHE_STALE_MS,
      load: async () => new Map((await this.list()).map((block) => [block.objectId, block])),
    });
  }

  async find(objectId: string): Promise<Block | undefined> {
    try {
      return (await this.cache.get('all')).get(objectId);
    } catch {
      throw unavailable();
    }
  }

  async list(): Promise<Block[]> {
    return this.guard(async () => {
      const blocks: Block[] = [];
      for await (const entity of this.table.listEntities<Omit<Block, 'objectId'>>({ queryOptions: { filter: `PartitionKey eq '${PARTITION}'` } })) {
        blocks.push({ objectId: entity.rowKey!, reason: entity.reason, blockedAt: entity.blockedAt, blockedBy: entity.blockedBy });
      }
      return blocks;
    });
  }

  async put(block: Block): Promise<void> {
    await this.guard(() => this.table.upsertEntity({ partitionKey: PARTITION, rowKey: block.objectId, reason: block.reason, blockedAt: block.blockedAt, blockedBy: block.blockedBy }, 'Replace'));
    this.cache.invalidate('all');
  }

  async delete(objectId: string): Promise<void> {
    try {
      await this.guard(async () => {
        try {
          await this.table.deleteEntity(PARTITION, objectId);
        } catch (error) {
          if (tableStatus(error) === 404) throw problems.notFound('block-not-found', `${objectId} is not blocked.`);
          throw error;
        }
      });
    } finally {
      this.cache.invalidate('all');
    }
  }

  private guard<T>(action: () => Promise<T>): Promise<T> {
    return guarded(this.ready, action, this.log, 'block list', unavailable);
  }
}
