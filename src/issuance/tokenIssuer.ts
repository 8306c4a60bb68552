import type { CallerIdentity } from '../auth/callerToken.js';
import type { UpstreamCredentials } from '../credentials/upstreamCredentials.js';
import type { BlockStore } from '../grants/blocks.js';
import type { GrantStore } from '../grants/store.js';
import { errors } from '../errors.js';
import type { RegistryCatalog, RegistryEntry } from '../registries/catalog.js';
import { formatScope, type RepositoryScope } from '../registries/scope.js';
import type { AcrTokenClient } from '../registries/acrTokens.js';
import type { PooledToken, UpstreamTokenPool } from '../registries/upstreamTokenPool.js';
import { checkUpstreamScope } from '../registries/upstreamScope.js';
import type { UpstreamToken, UpstreamTokenMinter } from '../registries/upstreamTokens.js';

export interface TokenRequest {
  registry: string;
  scopes: RepositoryScope[];
}

export interface Authorization {
  entry: RegistryEntry;
  grantIds: string[];
  capSeconds: number;
}

export interface IssuedToken {
  entry: RegistryEntry;
  token: string;
  expiresAt: Date;
  scopes: string[];
  grantIds: string[];
  credentialVersion: string;
  /** Handed out before to a caller with the same scope set (see UpstreamTokenPool). */
  reused: boolean;
  upstreamScope: 'verified' | 'opaque';
}

/** Recorded as the credential of ACR tokens, which the broker's own identity obtains. */
const MANAGED_IDENTITY = 'managed-identity';

/** Slack for the clocks of broker and registry when comparing a token's lifetime to its cap. */
const LIFETIME_SLACK_MS = 5_000;

/** Decides and mints: caller + request in, an upstream token for exactly the granted scope out. */
export class TokenIssuer {
  constructor(
    private readonly catalog: RegistryCatalog,
    private readonly grants: GrantStore,
    private readonly blocks: BlockStore,
    private readonly credentials: UpstreamCredentials,
    private readonly pool: UpstreamTokenPool,
    private readonly minter: UpstreamTokenMinter,
    private readonly acr: AcrTokenClient,
    private readonly maxTtlSeconds: number,
  ) {}

  /** The catalog's name for a registry as a caller typed it (aliases, case), for audit records. */
  canonicalHost(host: string): string {
    return this.catalog.find(host)?.host ?? host.toLowerCase();
  }

  registry(host: string): RegistryEntry {
    const entry = this.catalog.find(host);
    if (!entry) throw errors.notFound('unknown-registry', `Registry "${host}" is not in the broker's catalog.`);
    return entry;
  }

  /**
   * Who may have what: blocks first (they win over grants), then the grants, all-or-nothing. Every
   * credential form starts here. `capSeconds` is the longest the credential may live: MAX_TTL_SECONDS,
   * the grants' maxTtlSeconds, and the time left before the grants' notAfter.
   */
  async authorize(caller: CallerIdentity, request: TokenRequest, now: Date): Promise<Authorization> {
    const entry = this.registry(request.registry);
    const block = await this.blocks.find(caller.objectId);
    if (block) {
      // The reason is for operators (admin API, audit); the caller learns only that it is blocked.
      throw errors.forbidden('caller-blocked', `Identity ${caller.objectId} is blocked by an operator since ${block.blockedAt}. Nothing was issued.`);
    }
    const decision = await this.grants.decision(caller, entry.host, request.scopes, now);
    if (!decision.allowed) {
      throw errors.forbidden('not-granted', `Not granted: ${decision.notGranted.join(' ')}. Nothing was issued.`);
    }
    return { entry, grantIds: decision.grantIds, capSeconds: Math.min(this.maxTtlSeconds, decision.maxTtlSeconds ?? Infinity) };
  }

  async issue(caller: CallerIdentity, request: TokenRequest, now: Date): Promise<IssuedToken> {
    const { entry, grantIds, capSeconds } = await this.authorize(caller, request, now);
    const { minted, credentialVersion } = await this.upstreamToken(entry, request.scopes);
    // The broker cannot shorten an upstream token, so it refuses to hand out one that outlives its cap.
    const lifetimeMs = minted.expiresAt.getTime() - now.getTime();
    if (lifetimeMs > capSeconds * 1000 + LIFETIME_SLACK_MS) {
      // The contract's 502 upstream-error, with a detail that says it is the cap, not the registry.
      throw errors.upstreamBroken(
        `${entry.host} issues tokens that live longer than the ${capSeconds} s this grant allows (they live ${Math.round(lifetimeMs / 1000)} s; the cap is the grant's maxTtlSeconds or notAfter, or MAX_TTL_SECONDS), and the broker cannot shorten them. An operator can raise the grant's maxTtlSeconds; where the registry has form "login", a login credential with a shorter ttlSeconds fits.`,
      );
    }
    return {
      entry,
      token: minted.token,
      expiresAt: minted.expiresAt,
      scopes: request.scopes.map(formatScope),
      grantIds,
      credentialVersion,
      reused: minted.reused,
      upstreamScope: minted.upstreamScope ?? 'opaque',
    };
  }

  private async upstreamToken(entry: RegistryEntry, scopes: RepositoryScope[]): Promise<{ minted: PooledToken; credentialVersion: string }> {
    if (entry.credentialSecret === undefined) {
      const minted = await this.pool.get(entry.host, MANAGED_IDENTITY, scopes, () => this.acr.mint(entry, scopes).then((token) => checked(entry, token, scopes)));
      return { minted, credentialVersion: MANAGED_IDENTITY };
    }
    const credential = await this.credentials.get(entry.credentialSecret);
    const minted = await this.pool.get(entry.host, credential.version, scopes, () =>
      this.minter.mint(entry, credential, scopes).then((token) => checked(entry, token, scopes)),
    );
    return { minted, credentialVersion: credential.version };
  }
}

/** A token that grants less than asked is refused here, at mint time, so the pool never holds one. */
function checked(entry: RegistryEntry, token: UpstreamToken, scopes: RepositoryScope[]): UpstreamToken {
  const check = checkUpstreamScope(token.token, scopes);
  if (check.kind === 'narrowed') {
    throw errors.upstreamNarrowed(
      `${entry.host} granted less than the broker asked for; it withheld ${check.withheld.join(' ')}. The stored account lacks these rights at the registry. Nothing was issued.`,
    );
  }
  return { ...token, upstreamScope: check.kind };
}
