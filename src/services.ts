import { ManagedIdentityCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { AdminAccess } from './auth/adminAccess.js';
import { AuthenticationFailures } from './auth/authenticationFailures.js';
import { FailedAuthentications } from './audit/failedAuthentications.js';
import { IndexMarker } from './audit/indexKeys.js';
import { ISSUANCE_LANES, IssuanceLog } from './audit/issuanceLog.js';
import { AuditWriter } from './audit/auditWriter.js';
import { AdminAuditLog } from './audit/adminAudit.js';
import { IssuanceSearch } from './audit/issuanceSearch.js';
import { ADMIN_AUDIT_SHARDS, ISSUANCE_SHARDS } from './audit/partitioning.js';
import { BlockStore } from './grants/blocks.js';
import { CallerTokenValidator } from './auth/callerToken.js';
import { OpenIdMetadata } from './auth/openIdMetadata.js';
import type { BrokerConfig } from './config.js';
import { AcrTokenProvider } from './credentials/rotation/acrTokenProvider.js';
import { CredentialVault } from './credentials/rotation/credentialVault.js';
import { DockerHubProvider } from './credentials/rotation/dockerHubProvider.js';
import { RotationEngine, type RotationEngineOptions } from './credentials/rotation/rotationEngine.js';
import { RotationStateStore } from './credentials/rotation/rotationState.js';
import { UpstreamCredentials } from './credentials/upstreamCredentials.js';
import { GrantStore } from './grants/store.js';
import { HealthCheck } from './health.js';
import { CallerRateLimit } from './issuance/callerRateLimit.js';
import { TokenExchange } from './issuance/tokenExchange.js';
import { TokenIssuer } from './issuance/tokenIssuer.js';
import { LoginIssuer } from './issuance/loginIssuer.js';
import { LoginCredentialStore } from './credentials/login/loginStore.js';
import { loginProviders } from './credentials/login/providers.js';
import type { Logger } from './logger.js';
import { RegistryCatalog } from './registries/catalog.js';
import { AcrTokenClient } from './registries/acrTokens.js';
import { UpstreamTokenPool } from './registries/upstreamTokenPool.js';
import { UpstreamTokenMinter } from './registries/upstreamTokens.js';
import { createTableClient } from './tables.js';
import { statusOf } from './http/problem.js';
import { isLoopbackUrl } from './urlPolicy.js';

export const TABLES = { grants: 'grants', blocks: 'blocks', issuances: 'issuances', issuanceIndex: 'issuanceindex', adminAudit: 'adminaudit', rotations: 'rotations', loginCredentials: 'logincredentials' } as const;

/** Everything a handler needs, built once per process from validated settings. */
export interface Services {
  config: BrokerConfig;
  log: Logger;
  callerTokens: CallerTokenValidator;
  adminAccess: AdminAccess;
  grants: GrantStore;
  blocks: BlockStore;
  issuer: TokenIssuer;
  tokenExchange: TokenExchange;
  /** Form "login": creates, reuses, cleans up and revokes login credentials. */
  logins: LoginIssuer;
  issuances: IssuanceLog;
  failedAuthentications: FailedAuthentications;
  issuanceSearch: IssuanceSearch;
  adminAudit: AdminAuditLog;
  health: HealthCheck;
  rotation: RotationEngine;
  /** What a rotation engine is built from: the sandbox builds more engines over the same stores. */
  rotationParts: RotationParts;
  /**
   * Starts loading, in the background, what a first token request waits on whoever sends it: Entra's
   * metadata and key sets, the blocks (their table's existence check with them), the stored registry
   * credentials, and the audit tables' existence check. A cold instance's first request then finds
   * them loaded or on their way instead of fetching them one after the other. Not every grant: a cold
   * instance decides from the caller's own grants first (GrantStore.decision), and a full read now
   * would only compete with that. Nothing is decided from them here; a part that fails is loaded
   * again by the request, which answers as it would have.
   */
  warmUp(): void;
}

export type RotationParts = Omit<RotationEngineOptions, 'now' | 'afterStep' | 'instanceId' | 'leaseMs'>;

export function createServices(config: BrokerConfig, log: Logger): Services {
  // The broker's own system-assigned identity: Key Vault, and Table Storage when reached by endpoint.
  const identity = new ManagedIdentityCredential();
  const localVault = isLoopbackUrl(new URL(config.keyVaultUrl));
  const secrets = new SecretClient(config.keyVaultUrl, identity, {
    retryOptions: { maxRetries: 2, retryDelayInMs: 200, maxRetryDelayInMs: 1000 },
    // A loopback stand-in vault cannot have a *.vault.azure.net name, nor (in tests) https.
    disableChallengeResourceVerification: localVault,
    allowInsecureConnection: localVault,
  });
  const grantsTable = createTableClient(config.tables, TABLES.grants, identity);
  const issuancesTable = createTableClient(config.tables, TABLES.issuances, identity);
  const metadata = new OpenIdMetadata(config.authorityHost, config.tenantId);
  const grants = new GrantStore(grantsTable, log);
  const blocks = new BlockStore(createTableClient(config.tables, TABLES.blocks, identity), log);
  const adminAuditTable = createTableClient(config.tables, TABLES.adminAudit, identity);
  const credentials = new UpstreamCredentials(secrets, log, { cacheMs: config.credentialCacheMs, staleMs: config.credentialStaleMs });
  const catalog = new RegistryCatalog(config.registries);
  const minter = new UpstreamTokenMinter(log);
  const issuer = new TokenIssuer(
    catalog,
    grants,
    blocks,
    credentials,
    new UpstreamTokenPool(),
    minter,
    new AcrTokenClient(identity, config.tenantId),
    config.maxTtlSeconds,
  );
  const logins = new LoginIssuer({
    issuer,
    providers: loginProviders(catalog.entries(), secrets, identity),
    store: new LoginCredentialStore(createTableClient(config.tables, TABLES.loginCredentials, identity), log),
    blocks,
    log,
    defaultTtlSeconds: config.loginTtlSeconds,
  });
  const indexTable = createTableClient(config.tables, TABLES.issuanceIndex, identity);
  const indexMarker = new IndexMarker(indexTable);
  const issuances = new IssuanceLog(new AuditWriter(issuancesTable, log, TABLES.issuances, ISSUANCE_SHARDS, ISSUANCE_LANES, indexTable), indexMarker);
  const failedAuthentications = new FailedAuthentications(issuancesTable, log);
  // One allowance per address for every route: failed authentications anywhere spend it.
  const authenticationFailures = new AuthenticationFailures(new CallerRateLimit(config.anonymousRatePerMinute), failedAuthentications, statusOf);
  const adminAudit = new AdminAuditLog(new AuditWriter(adminAuditTable, log, TABLES.adminAudit, ADMIN_AUDIT_SHARDS), adminAuditTable, log);
  const callerTokens = new CallerTokenValidator(metadata, { tenantId: config.tenantId, audiences: config.audiences });
  const rotationState = new RotationStateStore(createTableClient(config.tables, TABLES.rotations, identity));
  const rotationParts: RotationParts = {
    entries: catalog.entries(),
    state: rotationState,
    vault: new CredentialVault(secrets),
    providerFor: (_entry, policy) => {
      if (policy.provider === 'dockerhub') return new DockerHubProvider(policy, secrets);
      if (policy.provider === 'acr-token') return new AcrTokenProvider(policy, identity);
      return undefined;
    },
    minter,
    log,
    onStored: (secretName) => credentials.invalidate(secretName),
  };
  return {
    config,
    log,
    callerTokens,
    adminAccess: new AdminAccess(callerTokens, config.adminRole, authenticationFailures, adminAudit),
    grants,
    blocks,
    issuer,
    tokenExchange: new TokenExchange(
      issuer,
      issuances,
      new CallerRateLimit(config.callerRatePerMinute),
      authenticationFailures,
      log,
      logins,
      statusOf,
    ),
    logins,
    issuances,
    failedAuthentications,
    issuanceSearch: new IssuanceSearch(issuancesTable, indexTable, indexMarker),
    adminAudit,
    health: new HealthCheck(grantsTable, secrets, metadata),
    rotation: new RotationEngine(rotationParts),
    rotationParts,
    warmUp: () => {
      const later = () => undefined;
      void metadata
        .all()
        .then((issuers) => Promise.all(issuers.map((issuer) => issuer.keys.reload())))
        .catch(later);
      // Any object ID: the first lookup loads every block.
      void blocks.find('').catch(later);
      // The stored credentials themselves (the vault's challenge and the broker's token come with them);
      // the read is cached, so the first request costs no extra Key Vault read.
      for (const entry of catalog.entries()) if (entry.credentialSecret) void credentials.get(entry.credentialSecret).catch(later);
      void issuances.prepare().catch(later);
    },
  };
}
