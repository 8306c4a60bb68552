import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import * as z from 'zod';
import { BrokerError, errors } from '../errors.js';
import type { OpenIdMetadata, TokenVersion } from './openIdMetadata.js';
import { VerifiedTokenCache } from './verifiedTokenCache.js';

/** Who is calling, as proven by a validated Entra access token. */
export interface CallerIdentity {
  tenantId: string;
  /** The managed identity's principal ID: the key grants and blocks use. */
  objectId: string;
  /** The identity's client ID (`appid` in v1, `azp` in v2), when present. */
  appId: string | undefined;
  roles: string[];
  tokenVersion: TokenVersion;
}

export interface CallerTokenPolicy {
  tenantId: string;
  audiences: string[];
}

/** Managed-identity tokens are 1–3 KB; anything far larger is not one. */
export const MAX_TOKEN_LENGTH = 8192;
const MAX_CLOCK_SKEW_SECONDS = 300;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

const guid = z.guid();
const claimsSchema = z.object({
  tid: guid,
  oid: guid,
  sub: z.string().max(200).optional(),
  appid: z.string().max(100).optional(),
  azp: z.string().max(100).optional(),
  roles: z.array(z.string().max(200)).max(200).optional(),
  scp: z.unknown().optional(),
  idtyp: z.string().optional(),
  nonce: z.unknown().optional(),
  ver: z.string().optional(),
});

/** `reason` groups failures in the per-minute aggregates of failed authentications (never shown to the caller). */
function rejected(detail: string, reason: string): BrokerError {
  return errors.invalidToken(detail, reason);
}

export function bearerToken(authorization: string | null): string {
  if (!authorization) throw rejected('Send an Entra ID access token as "Authorization: Bearer <token>".', 'missing');
  if (authorization.length > MAX_TOKEN_LENGTH + 16) throw rejected('The token is larger than any Entra access token.', 'oversized');
  const space = authorization.indexOf(' ');
  const scheme = space === -1 ? authorization : authorization.slice(0, space);
  const token = space === -1 ? '' : authorization.slice(space + 1).trim();
  if (scheme.toLowerCase() !== 'bearer' || token.length === 0) {
    throw rejected('The Authorization header must use the Bearer scheme.', 'scheme');
  }
  if (!COMPACT_JWS.test(token)) throw rejected('The bearer token is not a signed JWT.', 'malformed');
  return token;
}

/**
 * Refusals that need no signature check: they only ever reject, and they are re-checked on the
 * verified claims. A flood of junk, expired or foreign tokens then costs no RSA work.
 */
function precheck(unverified: JWTPayload, policy: CallerTokenPolicy, nowSeconds: number): void {
  if (typeof unverified.exp !== 'number') throw rejected('The token\'s "exp" claim is missing or invalid.', 'claims');
  if (unverified.exp + MAX_CLOCK_SKEW_SECONDS < nowSeconds) throw rejected('The token has expired.', 'expired');
  const audiences = Array.isArray(unverified.aud) ? unverified.aud : [unverified.aud];
  if (!audiences.some((audience) => typeof audience === 'string' && policy.audiences.includes(audience))) {
    throw rejected('The token was issued for another audience.', 'audience');
  }
  if (typeof unverified.tid !== 'string' || unverified.tid.toLowerCase() !== policy.tenantId) {
    throw rejected('The token belongs to another tenant.', 'tenant');
  }
}

/**
 * Validates a caller's Entra access token. The header and claims are read unverified only to pick
 * the issuer's metadata; nothing from them is trusted until jose has checked the signature with the
 * keys of exactly that issuer, with the algorithm pinned to RS256.
 */
export class CallerTokenValidator {
  /** Repeat callers skip the signature check; ~0.5 KB per caller, so a few MB at most. */
  private readonly verified = new VerifiedTokenCache<CallerIdentity>({ maxEntries: 10_000 });

  constructor(
    private readonly metadata: OpenIdMetadata,
    private readonly policy: CallerTokenPolicy,
  ) {}

  /**
   * `allowDelegated`: also accept user (delegated) tokens — only for the admin API, where an operator
   * signs in with `az login`; the token endpoint takes application (managed-identity) tokens only.
   */
  async validate(authorization: string | null, options: { allowDelegated?: boolean } = {}): Promise<CallerIdentity> {
    const token = bearerToken(authorization);
    const variant = options.allowDelegated ? 'delegated' : 'app';
    const remembered = this.verified.get(token, variant);
    if (remembered) return remembered;
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      unverified = decodeJwt(token);
    } catch {
      throw rejected('The bearer token is not a well-formed JWT.', 'malformed');
    }
    if (header.alg !== 'RS256') throw rejected('The token must be signed with RS256.', 'algorithm');
    if (typeof header.kid !== 'string' || header.kid.length === 0) throw rejected('The token header has no key ID (kid).', 'no-kid');
    if (typeof unverified.iss !== 'string') throw rejected('The token has no issuer.', 'issuer');
    precheck(unverified, this.policy, Math.floor(Date.now() / 1000));

    const issuer = await this.metadata.forIssuer(unverified.iss);
    if (!issuer) throw rejected('The token was not issued by the configured tenant.', 'issuer');

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, issuer.keys, {
        algorithms: ['RS256'],
        issuer: issuer.issuer,
        audience: this.policy.audiences,
        clockTolerance: MAX_CLOCK_SKEW_SECONDS,
        requiredClaims: ['exp', 'iat', 'tid', 'oid'],
      }));
    } catch (error) {
      throw verificationProblem(error);
    }

    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) {
      const claim = String(claims.error.issues[0]?.path[0] ?? 'tid');
      throw rejected(`The token's "${claim}" claim is not what Entra ID issues.`, 'claims');
    }
    const { tid, oid, sub, appid, azp, roles, scp, idtyp, nonce, ver } = claims.data;
    // A v1 issuer signs v1 tokens, a v2 issuer v2 ones: a token that says otherwise is not Entra's.
    if (ver !== issuer.version) throw rejected(`The token's "ver" claim does not match its issuer (a v${issuer.version.slice(0, 1)} issuer).`, 'version');
    if (tid.toLowerCase() !== this.policy.tenantId) throw rejected('The token belongs to another tenant.', 'tenant');
    // Access tokens always name the client they were issued to; ID tokens (which can share the
    // broker's client ID as audience) do not, and carry a nonce.
    if ((appid ?? azp) === undefined || nonce !== undefined) throw rejected('Only access tokens are accepted, not ID tokens.', 'id-token');
    if (!options.allowDelegated) {
      if (scp !== undefined) throw rejected('Delegated (user) tokens are not accepted; use a managed identity.', 'delegated');
      if (idtyp !== undefined && idtyp !== 'app') throw rejected('Only application tokens are accepted.', 'delegated');
      // In an app-only token the subject is the service principal itself; a user's token names the user.
      if (sub === undefined || sub.toLowerCase() !== oid.toLowerCase()) throw rejected('Only application tokens are accepted.', 'delegated');
    }
    const identity: CallerIdentity = {
      tenantId: tid.toLowerCase(),
      objectId: oid.toLowerCase(),
      appId: appid ?? azp,
      roles: roles ?? [],
      tokenVersion: issuer.version,
    };
    // Only after every check passed: a failure is never remembered.
    this.verified.set(token, variant, { value: identity, expiresAt: payload.exp!, kid: header.kid, keys: issuer });
    return identity;
  }
}

function verificationProblem(error: unknown): BrokerError {
  if (error instanceof joseErrors.JWTExpired) return rejected('The token has expired.', 'expired');
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return rejected('The token is not valid yet.', 'not-yet-valid');
    if (error.claim === 'aud') return rejected('The token was issued for another audience.', 'audience');
    if (error.claim === 'iss') return rejected('The token was not issued by the configured tenant.', 'issuer');
    return rejected(`The token's "${error.claim}" claim is missing or invalid.`, 'claims');
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey) return rejected('The token was signed with an unknown key.', 'unknown-key');
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return rejected('The token signature is invalid.', 'signature');
  // jose reports a key-set endpoint that answered other than 200 as a bare JOSEError: Entra is down, not the token bad.
  const keySetUnreadable = error instanceof joseErrors.JOSEError && error.constructor === joseErrors.JOSEError;
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid || keySetUnreadable || !(error instanceof joseErrors.JOSEError)) {
    return errors.dependencyDown('identity-provider', 'The Entra ID signing keys could not be read.');
  }
  return rejected('The token could not be verified.', 'unverifiable');
}
