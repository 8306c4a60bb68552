import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { sendJson, startLocalServer, type LocalServer } from './localServer.js';

/**
 * Entra ID stand-in: a tenant's v1/v2 OIDC metadata and JWKS, IMDS for workloads, and the App Service
 * MSI endpoint for the broker's own identity. Tokens look like real managed-identity tokens: v1 `iss`,
 * `aud` as requested, `oid`, `tid`, `appid`, `ver`, no `scp`.
 */
export interface ManagedIdentity {
  name: string;
  objectId: string;
  clientId: string;
  /** App roles assigned to this identity on the broker's app registration. */
  roles?: string[];
}

export interface MintOptions {
  identity: ManagedIdentity;
  audience: string;
  version?: '1.0' | '2.0';
  lifetimeSeconds?: number;
  /** Claims that replace the standard ones (tests craft bad tokens with these). */
  claims?: JWTPayload;
  /** Sign with another key and `kid` (tests: a key the tenant never published). */
  signWith?: { privateKey: CryptoKey; kid: string };
  /** Sign with one of the tenant's own keys, current or withdrawn (key rotation tests). */
  kid?: string;
}

/** How a part of the authority is unreachable: connections reset, or an HTTP error status. */
export type Outage = false | 'reset' | number;

export interface EntraIdStandIn {
  url: string;
  tenantId: string;
  /** The secret App Service gives a Function App in IDENTITY_HEADER. */
  identityHeader: string;
  brokerIdentity: ManagedIdentity;
  /** Requests for JWKS documents: lets tests see the unknown-`kid` cooldown at work. */
  jwksRequests(): number;
  /** The first signing key, as in the JWKS (tests use it for key-confusion attacks). */
  publicJwk: JWK;
  /** Key rotation as Entra does it: a new key is published and signs from now on; the old one stays published. */
  rotateSigningKey(): Promise<string>;
  /** Takes a key out of the JWKS (Entra withdrawing a key after a rotation or a compromise). */
  withdrawKey(kid: string): void;
  /** The `kid`s the JWKS documents list now. */
  publishedKids(): string[];
  /** Makes the OIDC metadata documents or the JWKS unreachable. */
  setDown(part: 'metadata' | 'keys', outage: Outage): void;
  /** Every token this authority minted (IMDS, MSI, tests): secret scans look for each. */
  mintedTokens(): readonly string[];
  register(identity: ManagedIdentity): void;
  /** Misconfigure the MSI endpoint to issue the broker's tokens for this audience (fault tests). */
  setBrokerAudienceOverride(audience: string | undefined): void;
  mint(options: MintOptions): Promise<string>;
  /** Verifies a token this authority issued for `audience` (used by the Key Vault stand-in). */
  verify(token: string, audience: string | string[]): Promise<JWTPayload>;
  v1Issuer: string;
  v2Issuer: string;
  close(): Promise<void>;
}

export async function startEntraId(options: { tenantId?: string; port?: number } = {}): Promise<EntraIdStandIn> {
  const tenantId = options.tenantId ?? randomUUID();
  interface SigningKey {
    kid: string;
    privateKey: CryptoKey;
    publicJwk: JWK;
    published: boolean;
  }
  const keys: SigningKey[] = [];
  const newKey = async (): Promise<SigningKey> => {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const kid = randomUUID().replaceAll('-', '').slice(0, 27);
    const key = { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, use: 'sig' }, published: true };
    keys.push(key);
    return key;
  };
  const publicJwk = (await newKey()).publicJwk;
  const minted: string[] = [];
  const outages: Record<'metadata' | 'keys', Outage> = { metadata: false, keys: false };
  const identityHeader = randomUUID();
  const identities = new Map<string, ManagedIdentity>();
  const brokerIdentity: ManagedIdentity = { name: 'broker', objectId: randomUUID(), clientId: randomUUID() };
  let jwksRequests = 0;
  let brokerAudienceOverride: string | undefined;
  let server: LocalServer | undefined;
  const v1Issuer = `https://sts.windows.net/${tenantId}/`;
  const v2Issuer = () => `${server!.url}/${tenantId}/v2.0`;

  const mint = async ({ identity, audience, version = '1.0', lifetimeSeconds = 3600, claims = {}, signWith, kid }: MintOptions) => {
    const now = Math.floor(Date.now() / 1000);
    const key = kid === undefined ? keys.at(-1)! : keys.find((candidate) => candidate.kid === kid);
    if (!key) throw new Error(`no key ${kid}`);
    const idClaim = version === '1.0' ? { appid: identity.clientId, appidacr: '2' } : { azp: identity.clientId, azpacr: '2' };
    return new SignJWT({
      aud: audience,
      iss: version === '1.0' ? v1Issuer : v2Issuer(),
      iat: now,
      nbf: now,
      exp: now + lifetimeSeconds,
      aio: randomUUID(),
      idp: v1Issuer,
      oid: identity.objectId,
      rh: '0.sandbox',
      sub: identity.objectId,
      tid: tenantId,
      uti: randomUUID().slice(0, 22),
      ver: version,
      ...idClaim,
      ...(identity.roles?.length ? { roles: identity.roles } : {}),
      ...claims,
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: signWith?.kid ?? key.kid })
      .sign(signWith?.privateKey ?? key.privateKey)
      .then((token) => {
        minted.push(token);
        return token;
      });
  };

  server = await startLocalServer(async (request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    // Real endpoints tolerate a trailing slash, and MSAL's IMDS client sends one.
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    const isKeys = path === '/common/discovery/keys' || path === `/${tenantId}/discovery/v2.0/keys`;
    if (isKeys) jwksRequests += 1;
    const outage = isKeys ? outages.keys : path.endsWith('/.well-known/openid-configuration') ? outages.metadata : false;
    if (outage === 'reset') {
      request.socket.destroy();
      return;
    }
    if (outage !== false) return sendJson(response, outage, { error: 'temporarily_unavailable' });
    if (path === `/${tenantId}/.well-known/openid-configuration`) {
      return sendJson(response, 200, {
        issuer: v1Issuer,
        jwks_uri: `${server!.url}/common/discovery/keys`,
        token_endpoint: `${server!.url}/${tenantId}/oauth2/token`,
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    if (path === `/${tenantId}/v2.0/.well-known/openid-configuration`) {
      return sendJson(response, 200, {
        issuer: v2Issuer(),
        jwks_uri: `${server!.url}/${tenantId}/discovery/v2.0/keys`,
        token_endpoint: `${server!.url}/${tenantId}/oauth2/v2.0/token`,
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    if (isKeys) return sendJson(response, 200, { keys: keys.filter((key) => key.published).map((key) => key.publicJwk) });
    if (path === '/metadata/identity/oauth2/token') {
      // IMDS: callers must send Metadata: true (SSRF protection) and name a resource.
      if (request.headers.metadata !== 'true') return sendJson(response, 400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
      const resource = url.searchParams.get('resource');
      if (!resource) return sendJson(response, 400, { error: 'invalid_request', error_description: 'Required audience parameter not specified' });
      const selector = url.searchParams.get('client_id') ?? url.searchParams.get('object_id') ?? url.searchParams.get('msi_res_id');
      const identity = selector
        ? [...identities.values()].find((i) => i.clientId === selector || i.objectId === selector || `/identities/${i.name}` === selector)
        : identities.size === 1
          ? [...identities.values()][0]
          : undefined;
      if (!identity) return sendJson(response, 400, { error: 'invalid_request', error_description: 'Identity not found' });
      return sendToken(response, await mint({ identity, audience: resource }), resource, identity.clientId);
    }
    if (path === '/msi/token') {
      // App Service / Functions managed identity protocol (IDENTITY_ENDPOINT + IDENTITY_HEADER).
      if (request.headers['x-identity-header'] !== identityHeader) return sendJson(response, 401, { error: 'unauthorized' });
      const resource = url.searchParams.get('resource');
      if (!resource) return sendJson(response, 400, { error: 'invalid_request' });
      return sendToken(response, await mint({ identity: brokerIdentity, audience: brokerAudienceOverride ?? resource }), resource, brokerIdentity.clientId);
    }
    return sendJson(response, 404, { error: 'not_found' });
  }, options.port);

  return {
    url: server.url,
    tenantId,
    identityHeader,
    brokerIdentity,
    jwksRequests: () => jwksRequests,
    publicJwk,
    rotateSigningKey: async () => (await newKey()).kid,
    withdrawKey: (kid) => {
      for (const key of keys) if (key.kid === kid) key.published = false;
    },
    publishedKids: () => keys.filter((key) => key.published).map((key) => key.kid),
    setDown: (part, outage) => {
      outages[part] = outage;
    },
    mintedTokens: () => minted,
    register: (identity) => identities.set(identity.name, identity),
    setBrokerAudienceOverride: (audience) => {
      brokerAudienceOverride = audience;
    },
    mint,
    // Entra's own services know every key it ever signed with, withdrawn or not.
    verify: async (token, audience) =>
      (await jwtVerify(token, createLocalJWKSet({ keys: keys.map((key) => key.publicJwk) }), { audience, algorithms: ['RS256'] })).payload,
    v1Issuer,
    get v2Issuer() {
      return v2Issuer();
    },
    close: () => server!.close(),
  };
}

function sendToken(response: import('node:http').ServerResponse, token: string, resource: string, clientId: string): void {
  const now = Math.floor(Date.now() / 1000);
  sendJson(response, 200, {
    access_token: token,
    client_id: clientId,
    expires_in: '3600',
    expires_on: String(now + 3600),
    ext_expires_in: '3600',
    not_before: String(now),
    resource,
    token_type: 'Bearer',
  });
}
