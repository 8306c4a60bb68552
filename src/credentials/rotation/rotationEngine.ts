import { randomUUID } from 'node:crypto';
import { ulid } from 'ulid';
import { Problem } from '../../http/problem.js';
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
/** `upstream-create`: the new credential exists upstream but is not recorded anywhere yet. */
export type CompletedStep = 'upstream-create' | 'create' | 'verify' | 'store' | 'revoke';

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
  currentVersion?: string;
  ageDays?: number;
  expiresOn?: string;
  lastRotatedAt?: string;
  nextDueAt?: string;
  state: RotationStep;
  lastError?: string;
  warning?: string;
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

/** One call of rotate(): its claim token, and the last state it wrote or read (with the ETag). */
interface Run {
  token: string;
  current: Versioned | undefined;
}

/** Key Vault's definitive answers (gone, disabled, forbidden): retrying will not help. */
function isDefinitive(error: unknown): boolean {
  const status = (error as { statusCode?: number }).statusCode;
  return status === 403 || status === 404;
}

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
    // Each run holds the row under its own token, so neither another instance nor a second run in
    // this process (timer and admin call at once) can act on the same rotation.
    const run: Run = { token: `${this.instanceId}/${ulid()}`, current: undefined };
    try {
      run.current = await this.options.state.read(registry);
      const { state } = run.current;
      if (!provider) return report('not-managed', state, 'this kind of credential cannot be rotated by API; its expiry is monitored');
      if (state.owner && state.leaseUntil > this.now()) return report('busy', state, `held by ${state.owner}`);
      if (!force && state.nextAttemptAt > this.now()) {
        return report('backing-off', state, `next attempt at ${new Date(state.nextAttemptAt).toISOString()}`);
      }
      if (!force && state.step === 'idle' && !state.abandonedRef && !this.due(target.policy, await this.options.vault.current(target.secret))) {
        return report('not-due', state);
      }
      const finished = await this.advance(registry, target.entry, target.policy, target.secret, provider, run, force);
      if (finished.step === 'stored') {
        return report('in-grace', finished, `old credential revoked after ${new Date(finished.revokeAfter).toISOString()}`);
      }
      return report('rotated', finished);
    } catch (error) {
      if (error instanceof Stopped) throw error.cause;
      if (error instanceof LostRace) return report('busy', run.current?.state ?? IDLE, error.message);
      return this.recordFailure(registry, run, error);
    }
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
    run: Run,
    force: boolean,
  ): Promise<RotationState> {
    let current = run.current!;
    const write = async (change: Partial<RotationState>, detail: string | undefined) => {
      current = await this.options.state.transition(
        registry,
        current,
        { owner: run.token, leaseUntil: this.now() + this.leaseMs, ...change },
        detail === undefined ? undefined : { rotationId: change.rotationId ?? current.state.rotationId, instance: this.instanceId, detail },
      );
      run.current = current;
    };
    const release = { owner: '', leaseUntil: 0 };
    const completed = async (step: CompletedStep) => {
      try {
        await this.options.afterStep?.(step, registry);
      } catch (error) {
        throw new Stopped('stopped', { cause: error });
      }
    };
    /** A new credential that cannot be kept: record that first, so a crash never strands it, then remove it. */
    const abandon = async (detail: string): Promise<never> => {
      const { newRef, pendingVersion, attempts } = current.state;
      await write(
        { ...release, step: 'idle', abandonedRef: newRef, abandonedVersion: pendingVersion, newRef: '', pendingVersion: '', lastError: detail, attempts: attempts + 1, nextAttemptAt: this.nextAttempt(attempts + 1) },
        detail,
      );
      await this.cleanUpAbandoned(provider, secretName, () => current.state, write, release).catch(() => undefined);
      throw new VerificationFailed(detail);
    };
    const staged = async () => {
      try {
        return await this.options.vault.staged(secretName, current.state.pendingVersion);
      } catch (error) {
        if (isDefinitive(error)) return abandon(`the staged credential can no longer be read (${errorSummary(error)})`);
        throw error;
      }
    };

    // Nothing upstream happens before this run holds the row.
    await write({}, undefined);
    for (;;) {
      const state = current.state;
      switch (state.step) {
        case 'idle': {
          if (state.abandonedRef || state.abandonedVersion) await this.cleanUpAbandoned(provider, secretName, () => current.state, write, {});
          const secret = await this.options.vault.current(secretName);
          await write({ step: 'creating', rotationId: ulid(), oldRef: secret.ref ?? '', newRef: '', pendingVersion: '', newVersion: '', lastError: '' }, 'begin');
          break;
        }
        case 'creating': {
          // A crash after the upstream create but before it was recorded left a credential nobody holds.
          await provider.revokeStray(state.rotationId, undefined);
          const created = await provider.create({
            rotationId: state.rotationId,
            currentRef: state.oldRef || undefined,
            expiresAt: new Date(this.now() + 2 * policy.rotateAfterDays * DAY_MS),
          });
          await completed('upstream-create');
          let pendingVersion = '';
          try {
            pendingVersion = await this.options.vault.stage(
              secretName,
              { username: created.username, password: created.password },
              { rotationId: state.rotationId, credentialRef: created.ref },
            );
            // A create whose answer was lost and retried leaves a twin with this rotation's label.
            await provider.revokeStray(state.rotationId, created.ref);
            await write({ step: 'created', newRef: created.ref, pendingVersion }, `created ${created.ref}, staged as ${pendingVersion}`);
          } catch (error) {
            // Unrecorded, nobody could ever use or revoke it: take it back before giving up.
            await provider.revoke(created.ref).catch(() => undefined);
            if (pendingVersion) await this.options.vault.discardStaged(secretName, pendingVersion).catch(() => undefined);
            throw error;
          }
          await completed('create');
          break;
        }
        case 'created': {
          await provider.revokeStray(state.rotationId, state.newRef);
          const credential = await staged();
          try {
            await this.options.minter.mint(entry, { ...credential, version: 'pending' }, []);
          } catch (error) {
            // Refused: the new credential does not work. Anything else (5xx, timeout) is retried later.
            if (error instanceof Problem && error.code === 'upstream-refused') await abandon(`verification failed: ${error.detail}`);
            throw error;
          }
          await write({ step: 'verified' }, `verified ${state.newRef}`);
          await completed('verify');
          break;
        }
        case 'verified': {
          const credential = await staged();
          const newVersion = await this.options.vault.store(
            secretName,
            credential,
            { credentialRef: state.newRef, rotationId: state.rotationId, rotatedAt: new Date(this.now()).toISOString() },
            new Date(this.now() + 2 * policy.rotateAfterDays * DAY_MS),
          );
          this.options.onStored?.(secretName);
          // Grace: the old credential keeps working while tokens and caches minted with it run out.
          await write({ ...release, step: 'stored', newVersion, revokeAfter: this.now() + policy.graceMinutes * 60_000 }, `stored as version ${newVersion}`);
          await completed('store');
          return current.state;
        }
        case 'stored': {
          if (this.now() < state.revokeAfter) {
            await write(release, undefined);
            return current.state;
          }
          if (state.oldRef && state.oldRef !== state.newRef) await provider.revoke(state.oldRef);
          await this.options.vault.discardStaged(secretName, state.pendingVersion);
          const detail = state.oldRef ? `revoked ${state.oldRef}` : 'no broker-made credential to revoke';
          await write({ ...release, step: 'idle', lastRotatedAt: this.now(), attempts: 0, nextAttemptAt: 0, lastError: '' }, detail);
          await completed('revoke');
          // An operator who asked for a rotation gets a new one, not only the end of the previous one.
          if (!force) return current.state;
          force = false;
          await write({}, undefined);
          break;
        }
      }
    }
  }

  private async cleanUpAbandoned(
    provider: RotationProvider,
    secretName: string,
    state: () => RotationState,
    write: (change: Partial<RotationState>, detail: string | undefined) => Promise<void>,
    keep: Partial<RotationState>,
  ): Promise<void> {
    const { abandonedRef, abandonedVersion } = state();
    if (abandonedRef) await provider.revoke(abandonedRef);
    if (abandonedVersion) await this.options.vault.discardStaged(secretName, abandonedVersion);
    await write({ ...keep, abandonedRef: '', abandonedVersion: '' }, `removed the abandoned credential ${abandonedRef || abandonedVersion}`);
  }

  private nextAttempt(attempts: number): number {
    return this.now() + Math.min(BASE_BACKOFF_MS * 2 ** (attempts - 1), MAX_BACKOFF_MS);
  }

  private async recordFailure(registry: string, run: Run, error: unknown): Promise<RotationReport> {
    const detail = error instanceof VerificationFailed ? error.message : errorSummary(error);
    this.options.log.error('credential rotation failed', { registry, error: detail });
    let state = run.current?.state ?? IDLE;
    // Only over this run's own last write: another run's rotation is never marked failed.
    if (run.current && !(error instanceof VerificationFailed)) {
      const attempts = run.current.state.attempts + 1;
      try {
        ({ state } = await this.options.state.transition(
          registry,
          run.current,
          { owner: '', leaseUntil: 0, lastError: detail, attempts, nextAttemptAt: this.nextAttempt(attempts) },
          { rotationId: run.current.state.rotationId, instance: this.instanceId, detail: `failed: ${detail}` },
        ));
      } catch (recordError) {
        if (!(recordError instanceof LostRace)) this.options.log.error('could not record the rotation failure', { registry, error: errorSummary(recordError) });
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
        statuses.push({ ...base, state: 'idle' });
        continue;
      }
      let secret: CurrentSecret;
      let state: RotationState;
      try {
        [secret, { state }] = await Promise.all([this.options.vault.current(entry.credentialSecret), this.options.state.read(entry.host)]);
      } catch (error) {
        // One unreadable secret must not hide the others' state.
        statuses.push({ ...base, state: 'idle', warning: `cannot read: ${errorSummary(error)}` });
        continue;
      }
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
