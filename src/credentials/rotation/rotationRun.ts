import { ulid } from '../../ids.js';
import { isDefinitiveAzureAnswer, UpstreamRefused } from '../../errors.js';
import { errorSummary } from '../../logger.js';
import type { RegistryEntry, RotationPolicy } from '../../registries/catalog.js';
import type { UpstreamTokenMinter } from '../../registries/upstreamTokens.js';
import { callBudget, within, type CallBudget } from './callBudget.js';
import type { CredentialVault, StoredCredential } from './credentialVault.js';
import { rotationLabel, type RotationProvider } from './provider.js';
import { LostRace, type RotationState, type RotationStateStore, type Versioned } from './rotationState.js';
import { newCredentialExpiry, nextAttemptAt } from './rotationSchedule.js';

/** `upstream-create`: the new credential exists upstream but is not recorded anywhere yet. */
export type CompletedStep = 'upstream-create' | 'create' | 'verify' | 'store' | 'revoke';

/** The new credential was refused and has been abandoned; the failure is already recorded. */
export class VerificationFailed extends Error {}

/** A crash simulated by `afterStep`: nothing more is recorded, exactly as if the process died. */
export class Stopped extends Error {}

const RELEASE = { owner: '', leaseUntil: 0 };

export interface RunContext {
  registry: string;
  entry: RegistryEntry;
  policy: RotationPolicy;
  secretName: string;
  provider: RotationProvider;
  vault: CredentialVault;
  state: RotationStateStore;
  minter: UpstreamTokenMinter;
  instanceId: string;
  leaseMs: number;
  now: () => number;
  onStored: ((secretName: string) => void) | undefined;
  afterStep: ((step: CompletedStep, registry: string) => Promise<void>) | undefined;
}

/**
 * One call of rotate() on one credential. It holds the state row under its own claim and moves it on
 * one step at a time — create → verify → store → wait → revoke — each step ending in an ETag-guarded
 * write, so a crash anywhere resumes at the step it reached.
 *
 * Fencing: every write renews the lease, and every call until the next one runs on a budget of half
 * the lease. Each step, and each upstream revoke, starts by claiming the row again, so a run that
 * stalled and lost the rotation finds out before it acts; and the ref held by the current Key Vault
 * version is never revoked.
 */
export class RotationRun {
  private readonly token: string;

  /** `last` is the state the run starts from, read under `budget`; its first claim renews both. */
  constructor(
    private readonly ctx: RunContext,
    private last: Versioned,
    private budget: CallBudget,
  ) {
    this.token = `${ctx.instanceId}/${ulid()}`;
  }

  /** The state this run last wrote or read, with its ETag. */
  get versioned(): Versioned {
    return this.last;
  }

  private get state(): RotationState {
    return this.last.state;
  }

  async advance(force: boolean): Promise<RotationState> {
    for (;;) {
      await this.claim();
      switch (this.state.step) {
        case 'idle':
          await this.begin();
          break;
        case 'creating':
          await this.create();
          break;
        case 'created':
          await this.verify();
          break;
        case 'verified':
          await this.store();
          return this.state;
        case 'stored':
          // Wait: the old credential keeps working while tokens and caches minted with it run out.
          if (this.ctx.now() < this.state.revokeAfter) return this.release();
          await this.revokeOld();
          // An operator who asked for a rotation gets a new one, not only the end of the previous one.
          if (!force) return this.state;
          force = false;
          break;
      }
    }
  }

  /** idle → creating: a new rotation, replacing the credential Key Vault holds now. */
  private async begin(): Promise<void> {
    if (this.state.abandonedRef || this.state.abandonedVersion) await this.removeAbandoned({});
    const secret = await this.ctx.vault.current(this.ctx.secretName, this.budget.signal);
    await this.write({ step: 'creating', rotationId: ulid(), attemptId: '', oldRef: secret.ref ?? '', newRef: '', pendingVersion: '', newVersion: '', lastError: '' }, 'begin');
  }

  /** creating → created: a new credential upstream, staged in Key Vault before anything relies on it. */
  private async create(): Promise<void> {
    const { rotationId, attemptId: interrupted, oldRef } = this.state;
    // An interrupted attempt may have made a credential it never recorded; only its label finds it.
    await this.revokeStray(rotationLabel(rotationId, interrupted), []);
    await this.claim({ attemptId: ulid() });
    const request = { label: rotationLabel(rotationId, this.state.attemptId), currentRef: oldRef || undefined, expiresAt: newCredentialExpiry(this.ctx.policy, this.ctx.now()) };
    const created = await this.ctx.provider.create(request, this.budget);
    await this.completed('upstream-create');
    let pendingVersion = '';
    try {
      const { username, password } = created;
      pendingVersion = await this.ctx.vault.stage(this.ctx.secretName, { username, password }, { rotationId, credentialRef: created.ref }, this.budget.signal);
      await this.write({ step: 'created', newRef: created.ref, pendingVersion }, `created ${created.ref}, staged as ${pendingVersion}`);
    } catch (error) {
      // Unrecorded, nobody could ever use it: take it back while this run holds the rotation. A run
      // that lost it leaves it to the holder, who revokes it by this attempt's label.
      if (!(error instanceof LostRace)) await this.revoke(created.ref).catch(() => undefined);
      if (pendingVersion) await this.ctx.vault.discardStaged(this.ctx.secretName, pendingVersion, this.budget.signal).catch(() => undefined);
      throw error;
    }
    await this.completed('create');
  }

  /** created → verified: a real upstream token minted with the new credential. */
  private async verify(): Promise<void> {
    const { rotationId, attemptId, newRef } = this.state;
    // A create repeated after a lost answer leaves a twin under this attempt's label.
    await this.revokeStray(rotationLabel(rotationId, attemptId), [newRef]);
    const credential = await this.staged();
    try {
      await within(this.budget.signal, this.ctx.minter.mint(this.ctx.entry, { ...credential, version: 'pending' }, []));
    } catch (error) {
      // Refused: the new credential does not work. Anything else (5xx, timeout) is retried later.
      if (error instanceof UpstreamRefused) await this.abandon(`verification failed: ${error.detail}`);
      throw error;
    }
    await this.write({ step: 'verified' }, `verified ${newRef}`);
    await this.completed('verify');
  }

  /** verified → stored: issuance switches to the new credential; the old one enters its grace period. */
  private async store(): Promise<void> {
    const { rotationId, newRef } = this.state;
    const credential = await this.staged();
    const now = this.ctx.now();
    const tags = { credentialRef: newRef, rotationId, rotatedAt: new Date(now).toISOString() };
    const newVersion = await this.ctx.vault.store(this.ctx.secretName, credential, tags, newCredentialExpiry(this.ctx.policy, now), this.budget.signal);
    this.ctx.onStored?.(this.ctx.secretName);
    await this.write({ ...RELEASE, step: 'stored', newVersion, revokeAfter: this.ctx.now() + this.ctx.policy.graceMinutes * 60_000 }, `stored as version ${newVersion}`);
    await this.completed('store');
  }

  /** stored → idle, once the grace period is over: the credential it replaced is revoked. */
  private async revokeOld(): Promise<void> {
    const { oldRef, newRef, pendingVersion } = this.state;
    let detail = 'no broker-made credential to revoke';
    if (oldRef && oldRef !== newRef) detail = (await this.revoke(oldRef)) ? `revoked ${oldRef}` : `kept ${oldRef}: the current Key Vault version holds it`;
    await this.ctx.vault.discardStaged(this.ctx.secretName, pendingVersion, this.budget.signal);
    await this.write({ ...RELEASE, step: 'idle', lastRotatedAt: this.ctx.now(), attempts: 0, nextAttemptAt: 0, lastError: '' }, detail);
    await this.completed('revoke');
  }

  private async release(): Promise<RotationState> {
    await this.write(RELEASE, undefined);
    return this.state;
  }

  /** A new credential that cannot be kept: recorded first, so a crash never strands it, then removed. */
  private async abandon(detail: string): Promise<never> {
    const { newRef, pendingVersion, attempts } = this.state;
    const failed = { lastError: detail, attempts: attempts + 1, nextAttemptAt: nextAttemptAt(attempts + 1, this.ctx.now()) };
    await this.write({ ...RELEASE, step: 'idle', abandonedRef: newRef, abandonedVersion: pendingVersion, newRef: '', pendingVersion: '', ...failed }, detail);
    await this.removeAbandoned(RELEASE).catch(() => undefined);
    throw new VerificationFailed(detail);
  }

  private async removeAbandoned(keep: Partial<RotationState>): Promise<void> {
    const { abandonedRef, abandonedVersion } = this.state;
    if (abandonedRef) await this.revoke(abandonedRef);
    if (abandonedVersion) await this.ctx.vault.discardStaged(this.ctx.secretName, abandonedVersion, this.budget.signal);
    await this.write({ ...keep, abandonedRef: '', abandonedVersion: '' }, `removed the abandoned credential ${abandonedRef || abandonedVersion}`);
  }

  private async staged(): Promise<StoredCredential> {
    try {
      return await this.ctx.vault.staged(this.ctx.secretName, this.state.pendingVersion, this.budget.signal);
    } catch (error) {
      if (isDefinitiveAzureAnswer(error)) return this.abandon(`the staged credential can no longer be read (${errorSummary(error)})`);
      throw error;
    }
  }

  /** Revokes `ref` upstream, unless the current Key Vault version holds it (then answers false). */
  private async revoke(ref: string): Promise<boolean> {
    if (ref === (await this.claimBeforeRevoking())) return false;
    await this.ctx.provider.revoke(ref, this.budget);
    return true;
  }

  private async revokeStray(label: string, keep: readonly string[]): Promise<void> {
    const current = await this.claimBeforeRevoking();
    await this.ctx.provider.revokeStray(label, current ? [...keep, current] : keep, this.budget);
  }

  /** Claims the row again, then answers the ref issuance relies on now. */
  private async claimBeforeRevoking(): Promise<string | undefined> {
    await this.claim();
    return (await this.ctx.vault.current(this.ctx.secretName, this.budget.signal)).ref;
  }

  /** Renews this run's hold on the row; LostRace if anyone else wrote it since. */
  private async claim(change: Partial<RotationState> = {}): Promise<void> {
    await this.write(change, undefined);
  }

  /** Without a detail the write only claims or releases the row: no trail entry. */
  private async write(change: Partial<RotationState>, detail: string | undefined): Promise<void> {
    // The budget starts before the lease it serves is stamped, so every call under it ends first.
    const budget = callBudget(this.ctx.leaseMs / 2);
    const trail = detail === undefined ? undefined : { rotationId: change.rotationId ?? this.state.rotationId, instance: this.ctx.instanceId, detail };
    const lease = { owner: this.token, leaseUntil: this.ctx.now() + this.ctx.leaseMs };
    this.last = await this.ctx.state.transition(this.ctx.registry, this.last, { ...lease, ...change }, trail, budget.signal);
    this.budget = budget;
  }

  private async completed(step: CompletedStep): Promise<void> {
    try {
      await this.ctx.afterStep?.(step, this.ctx.registry);
    } catch (error) {
      throw new Stopped('stopped', { cause: error });
    }
  }
}
