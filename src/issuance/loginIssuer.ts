import { LRUCache } from 'lru-cache';
import { tokenFingerprint } from '../audit/issuanceRecord.js';
import type { CallerIdentity } from '../auth/callerToken.js';
import { loginProblems } from '../credentials/login/loginProblems.js';
import type { LoginCredentialRow, LoginCredentialStore } from '../credentials/login/loginStore.js';
import type { CreatedLogin, LoginProvider } from '../credentials/login/provider.js';
import type { BlockStore } from '../grants/blocks.js';
import { asBrokerError, InvalidRequest, UpstreamRefused } from '../errors.js';
import { errorSummary, type Logger } from '../logger.js';
import type { RegistryEntry } from '../registries/catalog.js';
import { formatScope, type RepositoryScope } from '../registries/scope.js';
import type { TokenIssuer } from './tokenIssuer.js';

export interface LoginRequest {
  registry: string;
  scopes: RepositoryScope[];
  ttlSeconds?: number | undefined;
}

export interface IssuedLogin {
  entry: RegistryEntry;
  username: string;
  password: string;
  /** What the provider reported. */
  expiresAt: Date;
  credentialId: string;
  scopes: string[];
  grantIds: string[];
  /** Handed out before, to the same identity for the same scope set. */
  reused: boolean;
}

export interface LoginCleanupReport {
  deleted: number;
  failed: number;
}

export interface LoginIssuerOptions {
  issuer: Pick<TokenIssuer, 'registry' | 'authorize'>;
  providers: Map<string, LoginProvider>;
  store: LoginCredentialStore;
  blocks: BlockStore;
  log: Logger;
  /** LOGIN_TTL_SECONDS: the lifetime when the request names none. */
  defaultTtlSeconds: number;
  /** The clock for lifetimes and reuse (tests move it instead of waiting half an hour). */
  now?: () => number;
}

interface Held {
  issuanceId: string;
  login: CreatedLogin;
  createdAt: number;
}

/** Distinct (identity, registry, scope set) keys kept in memory; the password lives only here. */
const MAX_HELD = 5000;
/** Handed out again only while more than this share of its lifetime remains. */
const REUSE_FRACTION = 0.5;
/** Clock slack between broker and provider when comparing reported expiries with what was asked. */
const LIFETIME_SLACK_MS = 60_000;
/** Rounding between the lifetime this request may have and the one a held credential has left. */
const REUSE_SLACK_MS = 5_000;
/** A `creating` row this old belongs to a create that crashed or timed out: cleanup looks for what it left. */
const ABANDONED_AFTER_MS = 10 * 60_000;

/**
 * Login credentials (form "login"): authorized like every form, then created at the registry's
 * provider for exactly the scope set and lifetime, recorded in the login credential table before
 * they are handed out, reused per (identity, registry, scope set) while more than half their life
 * (and more than half the lifetime the new request asks for) remains, and deleted at the provider
 * once expired or when their identity is blocked.
 */
export class LoginIssuer {
  private readonly held = new LRUCache<string, Held>({ max: MAX_HELD });
  private readonly inflight = new Map<string, Promise<Held>>();

  private readonly now: () => number;

  constructor(private readonly options: LoginIssuerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The forms a catalog entry supports, as `form-unsupported` names them. */
  forms(entry: Pick<RegistryEntry, 'host'>): string[] {
    return this.options.providers.has(entry.host) ? ['token', 'login'] : ['token'];
  }

  async issue(caller: CallerIdentity, request: LoginRequest, issuanceId: string, now: Date): Promise<IssuedLogin> {
    const entry = this.options.issuer.registry(request.registry);
    const provider = this.options.providers.get(entry.host);
    if (!provider) throw loginProblems.formUnsupported(entry.host, this.forms(entry));
    const { grantIds, capSeconds } = await this.options.issuer.authorize(caller, request, now);
    provider.check(request.scopes);
    const lifetimeMs = Math.min(request.ttlSeconds ?? this.options.defaultTtlSeconds, capSeconds) * 1000;
    const scopes = request.scopes.map(formatScope);
    const answer = (held: Held, reused: boolean): IssuedLogin => ({ entry, ...held.login, scopes, grantIds, reused });

    const key = [caller.tenantId, caller.objectId, entry.host, scopes.join(' ')].join('\n');
    const cached = this.held.get(key);
    if (cached && this.reusable(cached, lifetimeMs) && (await this.stillLive(cached))) return answer(cached, true);
    const pending = this.inflight.get(key);
    if (pending) {
      // Concurrent identical requests share one create; one that fails fails them all, each audited.
      const shared = await pending;
      if (this.reusable(shared, lifetimeMs)) return answer(shared, true);
    }
    const creating = this.create(provider, entry, caller, request.scopes, issuanceId, lifetimeMs).finally(() => {
      if (this.inflight.get(key) === creating) this.inflight.delete(key);
    });
    this.inflight.set(key, creating);
    const held = await creating;
    this.held.set(key, held);
    return answer(held, false);
  }

  /** Deletes, at the provider, what has expired, what belongs to blocked identities, and what crashed creates left. */
  async cleanup(now = this.now()): Promise<LoginCleanupReport> {
    const rows = await this.options.store.open();
    const blocked = new Set((await this.options.blocks.list()).map((block) => block.objectId));
    const report = { deleted: 0, failed: 0 };
    for (const row of rows) {
      const reason =
        row.state === 'live' && row.expiresAt !== undefined && row.expiresAt.getTime() <= now
          ? 'expired'
          : blocked.has(row.objectId)
            ? 'blocked'
            : row.state === 'creating' && row.createdAt.getTime() < now - ABANDONED_AFTER_MS
              ? 'abandoned'
              : undefined;
      if (reason) report[(await this.remove(row, reason)) ? 'deleted' : 'failed'] += 1;
    }
    return report;
  }

  /** Blocking an identity: its live login credentials are deleted at the provider now. */
  async revokeFor(objectId: string): Promise<LoginCleanupReport> {
    const report = { deleted: 0, failed: 0 };
    for (const row of await this.options.store.openFor(objectId)) report[(await this.remove(row, 'blocked')) ? 'deleted' : 'failed'] += 1;
    return report;
  }

  /** Login credentials that may still work at their provider, from every instance. Never a password. */
  live(): Promise<LoginCredentialRow[]> {
    return this.options.store.open();
  }

  private reusable(held: Held, lifetimeMs: number): boolean {
    const now = this.now();
    const expiresAt = held.login.expiresAt.getTime();
    const halfLife = held.createdAt + (expiresAt - held.createdAt) * REUSE_FRACTION;
    const left = expiresAt - now;
    // Never longer than this request may have: a shorter ttlSeconds or a lowered grant gets its own.
    // Nor much shorter: a build that asks for an hour must not get the 10 minutes left of one made
    // for a shorter request, so what is left must also be more than half of what this one asks.
    return now < halfLife && left <= lifetimeMs + REUSE_SLACK_MS && left > lifetimeMs * REUSE_FRACTION;
  }

  /** Another instance may have revoked it (block, cleanup): the table, not this memory, decides. */
  private async stillLive(held: Held): Promise<boolean> {
    const row = await this.options.store.get(held.issuanceId);
    return row?.state === 'live';
  }

  private async create(provider: LoginProvider, entry: RegistryEntry, caller: CallerIdentity, scopes: RepositoryScope[], issuanceId: string, lifetimeMs: number): Promise<Held> {
    const { store, log } = this.options;
    const createdAt = this.now();
    const formatted = scopes.map(formatScope);
    await store.begin({
      issuanceId,
      state: 'creating',
      tenantId: caller.tenantId,
      objectId: caller.objectId,
      registry: entry.host,
      provider: provider.name,
      scopes: formatted,
      createdAt: new Date(createdAt),
    });
    let login: CreatedLogin;
    try {
      login = await provider.create({
        issuanceId,
        scopes,
        expiresAt: new Date(createdAt + lifetimeMs),
        description: `registry-broker for ${caller.tenantId}/${caller.objectId}: ${formatted.join(' ')}`,
      });
    } catch (error) {
      const problem = asBrokerError(error);
      // Refused: nothing exists. A timeout or an outage may have created one: the row stays `creating` for cleanup.
      const nothingMade = problem instanceof InvalidRequest || problem instanceof UpstreamRefused;
      await store.update(issuanceId, { ...(nothingMade ? { state: 'failed' as const } : {}), lastError: problem.code }).catch(() => undefined);
      throw error;
    }
    const ref = { issuanceId, credentialId: login.credentialId };
    if (login.expiresAt.getTime() > createdAt + lifetimeMs + LIFETIME_SLACK_MS) {
      await this.remove({ state: 'live', tenantId: caller.tenantId, objectId: caller.objectId, registry: entry.host, provider: provider.name, scopes: formatted, createdAt: new Date(createdAt), ...ref }, 'too-long');
      throw loginProblems.broken(`${provider.name} made a credential that lives longer than the ${Math.round(lifetimeMs / 1000)} s asked for; it was deleted.`);
    }
    try {
      await store.update(issuanceId, {
        state: 'live',
        credentialId: login.credentialId,
        username: login.username,
        fingerprint: tokenFingerprint(login.password),
        expiresAt: login.expiresAt,
      });
    } catch (error) {
      // Unrecorded, it must not exist: nothing could revoke it.
      await provider.delete(ref).catch((deleteError: unknown) => log.error('unrecorded login credential could not be deleted', { issuanceId, credentialId: login.credentialId, error: errorSummary(deleteError) }));
      throw error;
    }
    log.info('login credential created', { issuanceId, registry: entry.host, provider: provider.name, credentialId: login.credentialId, objectId: caller.objectId, expiresAt: login.expiresAt.toISOString() });
    return { issuanceId, login, createdAt };
  }

  private async remove(row: LoginCredentialRow, reason: string): Promise<boolean> {
    const { store, log } = this.options;
    const provider = this.options.providers.get(row.registry);
    const fields = { issuanceId: row.issuanceId, registry: row.registry, credentialId: row.credentialId, objectId: row.objectId, reason };
    if (!provider) {
      log.warn('login credential left in place: its registry no longer has a login provider', fields);
      return false;
    }
    try {
      await provider.delete({ issuanceId: row.issuanceId, credentialId: row.credentialId });
      await store.update(row.issuanceId, { state: 'deleted', deletedAt: new Date(), deleteReason: reason });
    } catch (error) {
      const problem = asBrokerError(error);
      log.warn('login credential could not be deleted; cleanup retries', { ...fields, error: problem.code === 'internal-error' ? errorSummary(error) : problem.code });
      await store.update(row.issuanceId, { lastError: problem.code }).catch(() => undefined);
      return false;
    }
    for (const [key, held] of this.held.entries()) if (held.issuanceId === row.issuanceId) this.held.delete(key);
    log.info('login credential deleted', fields);
    return true;
  }
}
