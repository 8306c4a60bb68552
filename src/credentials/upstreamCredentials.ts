import type { SecretClient } from '@azure/keyvault-secrets';
import { azureStatus, errors, isDefinitiveAzureAnswer } from '../errors.js';
import type { Logger } from '../logger.js';
import { RefreshingCache } from '../refreshingCache.js';
import { telemetry } from '../telemetry/instruments.js';
import { parseCredentialValue } from './secretValue.js';

/** A long-lived registry credential. Lives only in memory; never logged, returned or audited. */
export interface UpstreamCredential {
  username: string;
  password: string;
  /** Key Vault version it came from: safe to log and audit. */
  version: string;
}


export interface UpstreamCredentialsOptions {
  cacheMs: number;
  staleMs: number;
}

class SecretMissing extends Error {}

/**
 * A request waits at most WAIT_MS for Key Vault (its SDK retries included) when no credential is
 * cached, and STALE_WAIT_MS when a stale one (within CREDENTIAL_STALE_SECONDS) can answer; then it
 * takes the stale credential or answers 503, well inside the 5 s in which every request answers.
 * The read itself may go on until READ_DEADLINE_MS, and what it reads is kept.
 */
const WAIT_MS = 2500;
const STALE_WAIT_MS = 500;
const READ_DEADLINE_MS = 10_000;

/**
 * Reads `{"username","password"}` secrets from Key Vault with the broker's own identity. Cached per
 * secret (single-flight) because Key Vault throttles at 4,000 reads per 10 s per vault, and served
 * stale for a bounded window when Key Vault is down so that a short outage does not stop issuance.
 */
export class UpstreamCredentials {
  private readonly cache: RefreshingCache<string, UpstreamCredential>;

  constructor(
    private readonly secrets: SecretClient,
    private readonly log: Logger,
    options: UpstreamCredentialsOptions,
  ) {
    this.cache = new RefreshingCache({
      ttlMs: options.cacheMs,
      staleMs: options.staleMs,
      timeoutMs: READ_DEADLINE_MS,
      waitMs: WAIT_MS,
      staleWaitMs: STALE_WAIT_MS,
      load: (name, signal) => this.read(name, signal),
      // A secret that was deleted, disabled or expired must stop issuance at once, not after the stale window.
      serveStaleOn: (error) => !(error instanceof SecretMissing),
    });
  }

  async get(secretName: string): Promise<UpstreamCredential> {
    try {
      return await this.cache.get(secretName);
    } catch (error) {
      if (error instanceof SecretMissing) {
        throw errors.dependencyDown('credential', `The stored credential for this registry is missing or unreadable; an operator must fix secret "${secretName}".`);
      }
      throw errors.dependencyDown('key-vault', 'Key Vault is unavailable and no cached credential is fresh enough.');
    }
  }

  /** A rotation on this instance stored a new version: use it from the next request on. */
  invalidate(secretName: string): void {
    this.cache.invalidate(secretName);
  }

  private async read(name: string, abortSignal: AbortSignal | undefined): Promise<UpstreamCredential> {
    let secret;
    try {
      secret = await this.secrets.getSecret(name, { abortSignal });
    } catch (error) {
      this.log.warn('key vault read failed', { secret: name, status: azureStatus(error) });
      const missing = isDefinitiveAzureAnswer(error);
      telemetry.keyVaultRead(missing ? 'missing' : 'error');
      if (missing) throw new SecretMissing();
      throw error;
    }
    telemetry.keyVaultRead('ok');
    let value;
    try {
      value = parseCredentialValue(secret.value, name);
    } catch {
      this.log.error('stored credential is not {"username","password"} JSON', { secret: name, version: secret.properties.version });
      throw new SecretMissing();
    }
    return { ...value, version: secret.properties.version ?? '' };
  }
}
