import type { CallerIdentity } from '../auth/callerToken.js';
import type { UpstreamCredentials } from '../credentials/upstreamCredentials.js';
import { decide } from '../grants/decision.js';
import type { GrantStore } from '../grants/store.js';
import { problems } from '../http/problem.js';
import type { RegistryCatalog, RegistryEntry } from '../registries/catalog.js';
import { formatScope, type RepositoryScope } from '../registries/scope.js';
import type { UpstreamTokenPool } from '../registries/upstreamTokenPool.js';

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

/** Slack for the clocks of broker and registry when comparing a token's lifetime to its cap. */
const LIFETIME_SLACK_MS = 5_000;

/** Decides and mints: caller + request in, an upstream token for exactly the granted scope out. */
export class TokenIssuer {
  constructor(
    private readonly catalog: RegistryCatalog,
    private readonly grants: GrantStore,
    private readonly credentials: UpstreamCredentials,
    private readonly upstreamTokens: UpstreamTokenPool,
    private readonly maxTtlSeconds: number,
  ) {}

  registry(host: string): RegistryEntry {
    const entry = this.catalog.find(host);
    if (!entry) throw problems.notFound('unknown-registry', `Registry "${host}" is not in the broker's catalog.`);
    return entry;
  }

  async issue(caller: CallerIdentity, request: TokenRequest, now: Date): Promise<IssuedToken> {
    const entry = this.registry(request.registry);
    const decision = decide(caller, entry.host, request.scopes, await this.grants.active(), now);
    if (!decision.allowed) {
      throw problems.forbidden('not-granted', `Not granted: ${decision.notGranted.join(' ')}. Nothing was issued.`);
    }
    const credential = await this.credentials.get(entry.credentialSecret);
    const minted = await this.upstreamTokens.get(entry, credential, request.scopes);
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
      credentialVersion: credential.version,
      reused: minted.reused,
    };
  }
}
