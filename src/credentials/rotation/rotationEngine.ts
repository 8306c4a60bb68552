import { randomUUID } from 'node:crypto';
import { ulid } from 'ulid';
import { errorSummary, type Logger } from '../../logger.js';
import type { RegistryEntry, RotationPolicy } from '../../registries/catalog.js';
import type { UpstreamTokenMinter } from '../../registries/upstreamTokens.js';
import type { CredentialVault, CurrentSecret } from './credentialVault.js';
import type { RotationProvider } from './provider.js';
import { IDLE, LostRace, type RotationState, type RotationStateStore, type RotationStep, type Versioned } from './rotationState.js';

/**
 * One rotation engine for the timer and the admin endpoint. Per credential:
 *   idle → creating (lease taken) → created (new credential made upstream, staged in Key Vault)
 *        → verified (a real upstream token minted with it) → stored (new Key Vault version)
 *        → after the grace period: old credential revoked → idle.
 * Each arrow is an ETag-guarded write to the `rotations` table, so a crash anywhere resumes at the
 * step it reached, and two instances can never both move the same credential. A failure keeps the
 * old credential in place, records why, and is retried with backoff.
 */
export type CompletedStep = 'create' | 'verify' | 'store' | 'revoke';

export interface RotationReport {
  registry: string;
  outcome: 'not-managed' | 'not-due' | 'backing-off' | 'busy' | 'in-grace' | 'rotated' | 'failed';
  step: RotationStep;
  rotationId: string;
  detail: string;
}

export interface CredentialStatus {
  registry: string;
  kind: string;
  provider: string;
  credentialSecret: string | undefined;
  currentVersion: string | undefined;
  ageDays: number | undefined;
  expiresOn: string | undefined;
  lastRotatedAt: string | undefined;
  nextDueAt: string | undefined;
  state: RotationStep;
  lastError: string | undefined;
  warning: string | undefined;
}

export interface RotationEngineOptions {
  entries: RegistryEntry[];
  state: RotationStateStore;
  vault: CredentialVault;
  providerFor: (entry: RegistryEntry, policy: RotationPolicy) => RotationProvider | undefined;
  minter: UpstreamTokenMinter;
  log: Logger;
  /** Called when a new version is stored, so this instance stops using the old one at once. */
  onStored?: (secretName: string) => void;
  /** Test seam: runs after each step is durably recorded; an error thrown here stops the engine as a crash would. */
  afterStep?: (step: CompletedStep, registry: string) => Promise<void>;
  now?: () => number;
  instanceId?: string;
  leaseMs?: number;
}

const DAY_MS = 24 * 3600_000;
const BASE_BACKOFF_MS = 15 * 60_000;
const MAX_BACKOFF_MS = DAY_MS;

/** A crash simulated by `afterStep`: nothing more is recorded, exactly as if the process died. */
class Stopped extends Error {}

export class RotationEngine {
  private readonly now: () => number;
  private readonly instanceId: string;
  private readonly leaseMs: number;

  constructor(private readonly options: RotationEngineOptions) {
    this.now = options.now ?? Date.now;
    this.instanceId = options.instanceId ?? randomUUID();
    this.leaseMs = options.leaseMs ?? 10 * 60_000;
  }

  private managed(): { entry: RegistryEntry; policy: RotationPolicy; secret: string }[] {
    return this.options.entries.flatMap((entry) =>
      entry.rotation && entry.credentialSecret ? [{ entry, policy: entry.rotation, secret: entry.credentialSecret }] : [],
    );
  }

  /** The timer: every managed credential that is due, or has a rotation under way. */
  async runDue(): Promise<RotationReport[]> {
    const reports: RotationReport[] = [];
    for (const { entry } of this.managed()) reports.push(await this.rotate(entry.host, { force: false }));
    return reports;
  }

  async rotate(registry: string, { force }: { force: boolean }): Promise<RotationReport> {
    const target = this.managed().find((m) => m.entry.host === registry);
    const report = (outcome: RotationReport['outcome'], state: RotationState, detail = ''): RotationReport => ({
      registry,
      outcome,
      step: state.step,
      rotationId: state.rotationId,
      detail,
    });
    if (!target) return report('not-managed', IDLE, 'no rotation policy for this registry');
    const provider = this.options.providerFor(target.entry, target.policy);
    let current = await this.options.state.read(registry);
    if (!provider) return report('not-managed', current.state, 'this kind of credential cannot be rotated by API; its expiry is monitored');

    if (current.state.owner && current.state.owner !== this.instanceId && current.state.leaseUntil > this.now()) {
      return report('busy', current.state, `held by instance ${current.state.owner}`);
    }
    if (!force && current.state.nextAttemptAt > this.now()) {
      return report('backing-off', current.state, `next attempt at ${new Date(current.state.nextAttemptAt).toISOString()}`);
    }
    if (current.state.step === 'idle') {
      const secret = await this.options.vault.current(target.secret);
      if (!force && !this.due(target.policy, secret)) return report('not-due', current.state);
    }

    try {
      current = await this.advance(registry, target.entry, target.policy, target.secret, provider, current);
    } catch (error) {
      if (error instanceof Stopped) throw error.cause;
      if (error instanceof LostRace) return report('busy', current.state, error.message);
      return this.recordFailure(registry, error);
    }
    if (current.state.step === 'stored') {
      return report('in-grace', current.state, `old credential revoked after ${new Date(current.state.revokeAfter).toISOString()}`);
    }
    return report('rotated', current.state);
  }

  private due(policy: RotationPolicy, secret: CurrentSecret): boolean {
    const since = (secret.rotatedAt ?? secret.createdOn)?.getTime() ?? 0;
    if (this.now() - since >= policy.rotateAfterDays * DAY_MS) return true;
    return secret.expiresOn !== undefined && secret.expiresOn.getTime() - this.now() <= policy.rotateBeforeExpiryDays * DAY_MS;
  }

  private async advance(
    registry: string,
    entry: RegistryEntry,
    policy: RotationPolicy,
    secretName: string,
    provider: RotationProvider,
    start: Versioned,
  ): Promise<Versioned> {
    let current = start;
    const move = async (change: Partial<RotationState>, detail: string) => {
      current = await this.options.state.transition(
        registry,
        current,
        { owner: this.instanceId, leaseUntil: this.now() + this.leaseMs, ...change },
        { rotationId: change.rotationId ?? current.state.rotationId, instance: this.instanceId, detail },
      );
    };
    const completed = async (step: CompletedStep) => {
      try {
        await this.options.afterStep?.(step, registry);
      } catch (error) {
        throw new Stopped('stopped', { cause: error });
      }
    };

    for (;;) {
      const state = current.state;
      switch (state.step) {
        case 'idle': {
          const secret = await this.options.vault.current(secretName);
          await move({ step: 'creating', rotationId: ulid(), oldRef: secret.ref ?? '', newRef: '', pendingVersion: '', newVersion: '', lastError: '' }, 'begin');
          break;
        }
        case 'creating': {
          // A crash after the upstream create but before staging left a credential nobody holds.
          await provider.revokeStray(state.rotationId, undefined);
          const created = await provider.create({
            rotationId: state.rotationId,
            currentRef: state.oldRef || undefined,
            expiresAt: new Date(this.now() + 2 * policy.rotateAfterDays * DAY_MS),
          });
          let pendingVersion: string;
          try {
            pendingVersion = await this.options.vault.stage(
              secretName,
              { username: created.username, password: created.password },
              { rotationId: state.rotationId, credentialRef: created.ref },
            );
          } catch (error) {
            // Nobody could ever use what was just created: take it back before reporting the failure.
            await provider.revoke(created.ref).catch(() => undefined);
            throw error;
          }
          // A create whose answer was lost and retried leaves a twin with this rotation's label.
          await provider.revokeStray(state.rotationId, created.ref);
          await move({ step: 'created', newRef: created.ref, pendingVersion }, `created ${created.ref}, staged as ${pendingVersion}`);
          await completed('create');
          break;
        }
        case 'created': {
          const staged = await this.options.vault.staged(secretName, state.pendingVersion);
          try {
            await this.options.minter.mint(entry, { ...staged, version: 'pending' }, []);
          } catch (error) {
            // The new credential does not work: remove it, keep the old one, try again later.
            await provider.revoke(state.newRef);
            await this.options.vault.discardStaged(secretName, state.pendingVersion);
            const detail = `verification failed: ${errorSummary(error)}`;
            const attempts = state.attempts + 1;
            await move(
              { step: 'idle', owner: '', leaseUntil: 0, newRef: '', pendingVersion: '', lastError: detail, attempts, nextAttemptAt: this.nextAttempt(attempts) },
              detail,
            );
            throw new VerificationFailed(detail);
          }
          await move({ step: 'verified' }, `verified ${state.newRef}`);
          await completed('verify');
          break;
        }
        case 'verified': {
          const staged = await this.options.vault.staged(secretName, state.pendingVersion);
          const newVersion = await this.options.vault.store(
            secretName,
            staged,
            { credentialRef: state.newRef, rotationId: state.rotationId, rotatedAt: new Date(this.now()).toISOString() },
            new Date(this.now() + 2 * policy.rotateAfterDays * DAY_MS),
          );
          this.options.onStored?.(secretName);
          // Grace: the old credential keeps working while tokens and caches minted with it run out.
          await move(
            { step: 'stored', newVersion, revokeAfter: this.now() + policy.graceMinutes * 60_000, owner: '', leaseUntil: 0 },
            `stored as version ${newVersion}`,
          );
          await completed('store');
          return current;
        }
        case 'stored': {
          if (this.now() < state.revokeAfter) return current;
          if (state.oldRef && state.oldRef !== state.newRef) await provider.revoke(state.oldRef);
          await this.options.vault.discardStaged(secretName, state.pendingVersion);
          const detail = state.oldRef ? `revoked ${state.oldRef}` : 'no broker-made credential to revoke';
          await move({ step: 'idle', owner: '', leaseUntil: 0, lastRotatedAt: this.now(), attempts: 0, nextAttemptAt: 0, lastError: '' }, detail);
          await completed('revoke');
          return current;
        }
      }
    }
  }

  private nextAttempt(attempts: number): number {
    return this.now() + Math.min(BASE_BACKOFF_MS * 2 ** (attempts - 1), MAX_BACKOFF_MS);
  }

  private async recordFailure(registry: string, error: unknown): Promise<RotationReport> {
    const detail = error instanceof VerificationFailed ? error.message : errorSummary(error);
    this.options.log.error('credential rotation failed', { registry, error: detail });
    const latest = await this.options.state.read(registry);
    const attempts = latest.state.attempts + (error instanceof VerificationFailed ? 0 : 1);
    let state = latest.state;
    if (!(error instanceof VerificationFailed)) {
      try {
        ({ state } = await this.options.state.transition(
          registry,
          latest,
          {
            owner: '',
            leaseUntil: 0,
            lastError: detail,
            attempts,
            nextAttemptAt: this.nextAttempt(attempts),
          },
          { rotationId: latest.state.rotationId, instance: this.instanceId, detail: `failed: ${detail}` },
        ));
      } catch (recordError) {
        this.options.log.error('could not record the rotation failure', { registry, error: errorSummary(recordError) });
      }
    }
    return { registry, outcome: 'failed', step: state.step, rotationId: state.rotationId, detail };
  }

  async status(): Promise<CredentialStatus[]> {
    const statuses: CredentialStatus[] = [];
    for (const entry of this.options.entries) {
      const base = {
        registry: entry.host,
        kind: entry.kind,
        provider: entry.rotation?.provider ?? (entry.kind === 'acr' ? 'managed-identity' : 'none'),
        credentialSecret: entry.credentialSecret,
      };
      if (!entry.credentialSecret) {
        statuses.push({ ...base, currentVersion: undefined, ageDays: undefined, expiresOn: undefined, lastRotatedAt: undefined, nextDueAt: undefined, state: 'idle', lastError: undefined, warning: undefined });
        continue;
      }
      const [secret, { state }] = await Promise.all([this.options.vault.current(entry.credentialSecret), this.options.state.read(entry.host)]);
      const since = (secret.rotatedAt ?? secret.createdOn)?.getTime();
      const policy = entry.rotation;
      const dueByAge = policy && since !== undefined ? since + policy.rotateAfterDays * DAY_MS : undefined;
      const dueByExpiry = policy && secret.expiresOn ? secret.expiresOn.getTime() - policy.rotateBeforeExpiryDays * DAY_MS : undefined;
      const nextDue = [dueByAge, dueByExpiry].filter((t): t is number => t !== undefined);
      const expiringSoon = secret.expiresOn && secret.expiresOn.getTime() - this.now() <= (policy?.rotateBeforeExpiryDays ?? 7) * DAY_MS;
      statuses.push({
        ...base,
        currentVersion: secret.version,
        ageDays: since === undefined ? undefined : Math.floor((this.now() - since) / DAY_MS),
        expiresOn: secret.expiresOn?.toISOString(),
        lastRotatedAt: state.lastRotatedAt ? new Date(state.lastRotatedAt).toISOString() : secret.rotatedAt?.toISOString(),
        nextDueAt: nextDue.length > 0 ? new Date(Math.min(...nextDue)).toISOString() : undefined,
        state: state.step,
        lastError: state.lastError || undefined,
        warning: expiringSoon ? `expires ${secret.expiresOn!.toISOString()}${policy?.provider === 'none' || !policy ? ': replace it by hand' : ''}` : undefined,
      });
    }
    return statuses;
  }
}

class VerificationFailed extends Error {}
