import type { TableClient, TransactionAction } from '@azure/data-tables';
import { azureStatus } from '../../errors.js';
import { ulid } from '../../ids.js';
import { newestFirstKey } from '../../timeKeys.js';
import { tableReady } from '../../tableStore.js';
import { within } from './callBudget.js';

/**
 * The write-ahead log of rotation: per registry one `state` row, changed only with its ETag, and a
 * trail row for every transition, written in the same entity-group transaction. Secret values never
 * go here: only references (token UUIDs, password slots, Key Vault versions).
 */
export type RotationStep = 'idle' | 'creating' | 'created' | 'verified' | 'stored';

export interface RotationState {
  step: RotationStep;
  rotationId: string;
  /** Instance holding the rotation, and until when; a crashed holder's lease runs out. */
  owner: string;
  leaseUntil: number;
  /** Ref of the credential being replaced (from the current secret's tags), and of the new one. */
  oldRef: string;
  newRef: string;
  /** The attempt (within this rotation) that may have made something upstream under its label. */
  attemptId: string;
  pendingVersion: string;
  newVersion: string;
  revokeAfter: number;
  lastRotatedAt: number;
  lastError: string;
  attempts: number;
  nextAttemptAt: number;
  /** A credential made but not kept (failed verification): revoked before the next rotation begins. */
  abandonedRef: string;
  abandonedVersion: string;
}

export const IDLE: RotationState = {
  step: 'idle',
  rotationId: '',
  owner: '',
  leaseUntil: 0,
  oldRef: '',
  newRef: '',
  attemptId: '',
  pendingVersion: '',
  newVersion: '',
  revokeAfter: 0,
  lastRotatedAt: 0,
  lastError: '',
  attempts: 0,
  nextAttemptAt: 0,
  abandonedRef: '',
  abandonedVersion: '',
};

/** Moments are stored as Edm.DateTime: a bare JSON number past 2^31 has no type Table Storage agrees on. */
const MOMENTS = ['leaseUntil', 'revokeAfter', 'lastRotatedAt', 'nextAttemptAt'] as const;

function toEntity(state: RotationState): Record<string, unknown> {
  return { ...state, ...Object.fromEntries(MOMENTS.map((key) => [key, new Date(state[key])])) };
}

function fromEntity(entity: Record<string, unknown>): RotationState {
  const state: Record<string, unknown> = {};
  for (const [key, fallback] of Object.entries(IDLE)) {
    const value = entity[key];
    if (typeof fallback === 'number') state[key] = value instanceof Date ? value.getTime() : value === undefined ? fallback : Number(value);
    else state[key] = value === undefined ? fallback : String(value);
  }
  return state as unknown as RotationState;
}

export interface Versioned {
  state: RotationState;
  etag: string;
}

export interface TrailEntry {
  time: Date;
  registry: string;
  rotationId: string;
  from: RotationStep;
  to: RotationStep;
  instance: string;
  detail: string;
}

/** Another instance changed the state first: this one backs off. */
export class LostRace extends Error {
  constructor() {
    super('another instance changed the rotation state first');
  }
}

const STATE_ROW = 'state';

export class RotationStateStore {
  private readonly ready: () => Promise<void>;

  constructor(private readonly table: TableClient) {
    this.ready = tableReady(table);
  }

  async read(registry: string, abortSignal: AbortSignal): Promise<Versioned> {
    await within(abortSignal, this.ready());
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(registry, STATE_ROW, { abortSignal });
      return { state: fromEntity(entity), etag: entity.etag };
    } catch (error) {
      if (azureStatus(error) !== 404) throw error;
    }
    try {
      const created = await this.table.createEntity({ partitionKey: registry, rowKey: STATE_ROW, ...toEntity(IDLE) }, { abortSignal });
      return { state: { ...IDLE }, etag: created.etag ?? '' };
    } catch (error) {
      if (azureStatus(error) === 409) return this.read(registry, abortSignal);
      throw error;
    }
  }

  /**
   * Moves the state on, guarded by `etag`; the trail row goes in the same transaction. Without a
   * trail entry it only claims or releases the row (lease bookkeeping, not a step).
   */
  async transition(
    registry: string,
    from: Versioned,
    change: Partial<RotationState>,
    trail: Omit<TrailEntry, 'registry' | 'from' | 'to' | 'time'> | undefined,
    abortSignal: AbortSignal,
  ): Promise<Versioned> {
    const next: RotationState = { ...from.state, ...change };
    const time = new Date();
    const actions: TransactionAction[] = [['update', { partitionKey: registry, rowKey: STATE_ROW, ...toEntity(next) }, 'Replace', { etag: from.etag }]];
    if (trail) {
      actions.push(['create', { partitionKey: registry, rowKey: `trail-${newestFirstKey(time, ulid())}`, time, from: from.state.step, to: next.step, ...trail }]);
    }
    try {
      const result = await this.table.submitTransaction(actions, { abortSignal });
      const etag = result.getResponseForEntity(STATE_ROW)?.etag;
      return etag ? { state: next, etag } : this.read(registry, abortSignal);
    } catch (error) {
      if (azureStatus(error) === 412) throw new LostRace();
      throw error;
    }
  }
}
