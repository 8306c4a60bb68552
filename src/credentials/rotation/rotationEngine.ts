import { randomUUID } from 'node:crypto';
import { errorSummary, type Logger } from '../../logger.js';
import type { RegistryEntry, RotationPolicy } from '../../registries/catalog.js';
import type { UpstreamTokenMinter } from '../../registries/upstreamTokens.js';
import { callBudget } from './callBudget.js';
import type { CredentialVault } from './credentialVault.js';
import { credentialStatuses, type CredentialStatus } from './credentialStatus.js';
import type { RotationProvider } from './provider.js';
import { RotationRun, Stopped, VerificationFailed, type CompletedStep } from './rotationRun.js';
import { isDue, nextAttemptAt } from './rotationSchedule.js';
import { IDLE, LostRace, type RotationState, type RotationStateStore, type RotationStep, type Versioned } from './rotationState.js';

export type { CompletedStep, CredentialStatus };

/** The admin listing of stored credentials answers within this, a hung Key Vault or table included (issue 14). */
const STATUS_BUDGET_MS = 4_000;

/**
 * One rotation engine for the timer and the admin endpoint. Per credential:
 *   idle → creating (lease taken) → created (new credential made upstream, staged in Key Vault)
 *        → verified (a real upstream token minted with it) → stored (new Key Vault version)
 *        → after the grace period: old credential revoked → idle.
 * The engine decides whether a credential needs a run at all; a `RotationRun` takes the steps. Each
 * arrow is an ETag-guarded write to the `rotations` table, so a crash anywhere resumes at the step it
 * reached, and two instances can never both move the same credential. A failure keeps the old
 * credential in place, records why, and is retried with backoff.
 */
export interface RotationReport {
  registry: string;
  outcome: 'not-managed' | 'not-due' | 'backing-off' | 'busy' | 'in-grace' | 'rotated' | 'failed';
  step: RotationStep;
  rotationId: string;
  detail: string;
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
  /** How long a run holds a rotation without writing; every call it makes ends within half of it. */
  leaseMs?: number;
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
    const gate = callBudget(this.leaseMs / 2);
    let read: Versioned | undefined;
    let run: RotationRun | undefined;
    try {
      read = await this.options.state.read(registry, gate.signal);
      const { state } = read;
      if (!provider) return report('not-managed', state, 'this kind of credential cannot be rotated by API; its expiry is monitored');
      if (state.owner && state.leaseUntil > this.now()) return report('busy', state, `held by ${state.owner}`);
      if (!force && state.nextAttemptAt > this.now()) {
        return report('backing-off', state, `next attempt at ${new Date(state.nextAttemptAt).toISOString()}`);
      }
      if (!force && state.step === 'idle' && !state.abandonedRef && !isDue(target.policy, await this.options.vault.current(target.secret, gate.signal), this.now())) {
        return report('not-due', state);
      }
      // Each run holds the row under its own claim, so neither another instance nor a second run in
      // this process (timer and admin call at once) can act on the same rotation.
      run = new RotationRun(
        {
          registry,
          entry: target.entry,
          policy: target.policy,
          secretName: target.secret,
          provider,
          vault: this.options.vault,
          state: this.options.state,
          minter: this.options.minter,
          instanceId: this.instanceId,
          leaseMs: this.leaseMs,
          now: this.now,
          onStored: this.options.onStored,
          afterStep: this.options.afterStep,
        },
        read,
        gate,
      );
      const finished = await run.advance(force);
      if (finished.step === 'stored') {
        return report('in-grace', finished, `old credential revoked after ${new Date(finished.revokeAfter).toISOString()}`);
      }
      return report('rotated', finished);
    } catch (error) {
      if (error instanceof Stopped) throw error.cause;
      const last = run?.versioned ?? read;
      if (error instanceof LostRace) return report('busy', last?.state ?? IDLE, error.message);
      return this.recordFailure(registry, last, error);
    }
  }

  /** Only over the run's own last write or read: another run's rotation is never marked failed. */
  private async recordFailure(registry: string, last: Versioned | undefined, error: unknown): Promise<RotationReport> {
    const detail = error instanceof VerificationFailed ? error.message : errorSummary(error);
    this.options.log.error('credential rotation failed', { registry, error: detail });
    let state = last?.state ?? IDLE;
    if (last && !(error instanceof VerificationFailed)) {
      const attempts = last.state.attempts + 1;
      try {
        // A fresh budget: the failure may be the run's own budget running out.
        ({ state } = await this.options.state.transition(
          registry,
          last,
          { owner: '', leaseUntil: 0, lastError: detail, attempts, nextAttemptAt: nextAttemptAt(attempts, this.now()) },
          { rotationId: last.state.rotationId, instance: this.instanceId, detail: `failed: ${detail}` },
          callBudget(this.leaseMs / 2).signal,
        ));
      } catch (recordError) {
        if (!(recordError instanceof LostRace)) this.options.log.error('could not record the rotation failure', { registry, error: errorSummary(recordError) });
      }
    }
    return { registry, outcome: 'failed', step: state.step, rotationId: state.rotationId, detail };
  }

  async status(): Promise<CredentialStatus[]> {
    return credentialStatuses(this.options.entries, this.options.vault, this.options.state, this.now(), callBudget(STATUS_BUDGET_MS).signal);
  }
}
