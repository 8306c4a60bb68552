import type { CallerIdentity } from '../auth/callerToken.js';
import type { UpstreamCredentials } from '../credentials/upstreamCredentials.js';
import { decide } from '../grants/decision.js';
import type { BlockStore } from '../grants/blocks.js';
import type { GrantStore } from '../grants/store.js';
import { problems } from '../http/problem.js';
import type { RegistryCatalog, RegistryEntry } from '../registries/catalog.js';
import { formatScope, type RepositoryScope } from '../registries/scope.js';
import type { AcrTokenClient } from '../registries/acrTokens.js';
import type { PooledToken, UpstreamTokenPool } from '../registries/upstreamTokenPool.js';
import type { UpstreamTokenMinter } from '../registries/upstreamTokens.js';

export interface TokenRequest {
  registry: string;
  scopes: RepositoryScope[];
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
    if (!entry) throw problems.notFound('unknown-registry', `Registry "${host}" is not in the broker's catalog.`);
    return entry;
  }

  async issue(caller: CallerIdentity, request: TokenRequest, now: Date): Promise<IssuedToken> {
    const entry = this.registry(request.registry);
    // Blocks win over grants: a blocked identity gets nothing, whatever it was granted.
    const block = await this.blocks.find(caller.objectId);
    if (block) {
      // The reason is for operators (admin API, audit); the caller learns only that it is blocked.
      throw problems.forbidden('caller-blocked', `Identity ${caller.objectId} is blocked by an operator since ${block.blockedAt}. Nothing was issued.`);
    }
    const decision = decide(caller, entry.host, request.scopes, await this.grants.active(), now);
    if (!decision.allowed) {
      throw problems.forbidden('not-granted', `Not granted: ${decision.notGranted.join(' ')}. Nothing was issued.`);
    }
    const { minted, credentialVersion } = await this.upstreamToken(entry, request.scopes);
    // The broker cannot shorten an upstream token, so it refuses to hand out one that outlives its cap.
    const capSeconds = Math.min(this.maxTtlSeconds, decision.maxTtlSeconds ?? Infinity);
    if (minted.expiresAt.getTime() - now.getTime() > capSeconds * 1000 + LIFETIME_SLACK_MS) {
      throw problems.upstreamBroken(`${entry.host} issues tokens that live longer than the ${capSeconds} s this grant allows.`);
    }
    return {
      entry,
      token: minted.token,
      expiresAt: minted.expiresAt,
      scopes: request.scopes.map(formatScope),
      grantIds: decision.grantIds,
      credentialVersion,
      reused: minted.reused,
    };
  }

  private async upstreamToken(entry: RegistryEntry, scopes: RepositoryScope[]): Promise<{ minted: PooledToken; credentialVersion: string }> {
    if (entry.credentialSecret === undefined) {
      const minted = await this.pool.get(entry.host, MANAGED_IDENTITY, scopes, () => this.acr.mint(entry, scopes));
      return { minted, credentialVersion: MANAGED_IDENTITY };
    }
    const credential = await this.credentials.get(entry.credentialSecret);
    const minted = await this.pool.get(entry.host, credential.version, scopes, () => this.minter.mint(entry, credential, scopes));
    return { minted, credentialVersion: credential.version };
  }
}
