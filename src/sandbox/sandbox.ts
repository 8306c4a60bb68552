import { randomBytes, randomUUID } from 'node:crypto';
import { loadConfig, type BrokerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { routes } from '../routes.js';
import { RotationEngine, type RotationEngineOptions } from '../credentials/rotation/rotationEngine.js';
import { createServices, type Services } from '../services.js';
import { startAzurite, type Azurite } from './azurite.js';
import { startBrokerHost, type BrokerHost } from './brokerHost.js';
import { dockerRegistryAvailable, startDockerRegistry, type DockerRegistry } from './dockerRegistry.js';
import { freePort } from './localServer.js';
import { startAcrFront } from './acrFront.js';
import { startArm, type ArmStandIn } from './armRegistryTokens.js';
import { startDockerHubApi, type DockerHubApi } from './dockerHubApi.js';
import { startEntraId, type EntraIdStandIn, type ManagedIdentity } from './entraId.js';
import { startKeyVault, type KeyVaultStandIn } from './keyVault.js';
import { startRegistryTokenServer, type RegistryTokenServer } from './registryTokenServer.js';

/**
 * The whole local world: Entra ID, Key Vault, Azurite, a registry token server with the real
 * docker-registry behind it, and the broker itself on the sandbox host, wired through the broker's
 * real settings. Tests and `npm start` both build on this.
 */
export const AUDIENCE = 'api://registry-broker';
export const REGISTRY_SECRET = 'sandbox-registry';
export const ADMIN_ROLE = 'Broker.Admin';

export interface Sandbox {
  entra: EntraIdStandIn;
  keyVault: KeyVaultStandIn;
  azurite: Azurite;
  tokens: RegistryTokenServer;
  /** The real docker-registry, or (when it is not installed) the token server answering `/v2/` alone. */
  registry: DockerRegistry;
  realRegistry: boolean;
  /** A second docker-registry fronted by ACR-style /oauth2 endpoints, when asked for. */
  acr: DockerRegistry | undefined;
  broker: BrokerHost;
  services: Services;
  config: BrokerConfig;
  env: Record<string, string>;
  /** The password stored in Key Vault for the registry: tests prove it never leaks. */
  registryPassword: string;
  dockerHub: DockerHubApi | undefined;
  arm: ArmStandIn | undefined;
  identity(name: string, roles?: string[]): ManagedIdentity;
  /** Another rotation engine over the same stores (a second instance, a restart after a crash). */
  rotationEngine(overrides?: RotationEngineOverrides): RotationEngine;
  close(): Promise<void>;
}

/** Test seams of a rotation engine: its clock, identity, lease and a hook after each recorded step. */
export type RotationEngineOverrides = Partial<Pick<RotationEngineOptions, 'now' | 'afterStep' | 'instanceId' | 'leaseMs'>>;

export interface SandboxOptions {
  log: Logger;
  brokerPort?: number;
  /** Settings that replace the sandbox's own (e.g. a real tenant or vault). */
  env?: Record<string, string | undefined>;
  registryTimeoutSeconds?: number;
  /** More catalog entries in front of the same registry, each with its own stored credential. */
  extraRegistries?: { host: string; credentialSecret: string; endpoint?: string; realm?: string; service?: string; realmHosts?: string[] }[];
  /** Also run an Azure Container Registry look-alike (catalog kind `acr`). */
  acr?: boolean;
  /** Manage the main registry's credential with a rotation provider and its API stand-in. */
  rotation?: 'dockerhub' | 'acr-token';
  /**
   * Form "login" too: the main registry hands out Docker Hub organization access tokens (Docker Hub
   * API stand-in), the ACR look-alike scope-map tokens (ARM stand-in).
   */
  login?: boolean;
  /** The Docker Hub organization owning the main registry's repositories (default `demo`). */
  loginOrganization?: string;
  /** Lifetime of the registry tokens the token server signs (SANDBOX_REGISTRY_TOKEN_SECONDS; default 300, like Docker Hub). */
  registryTokenSeconds?: number;
  rotationOverrides?: RotationEngineOverrides;
}

export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const started: { close(): Promise<void> }[] = [];
  try {
    const entra = await startEntraId();
    started.push(entra);
    const keyVault = await startKeyVault(entra);
    started.push(keyVault);
    keyVault.allow(entra.brokerIdentity.objectId);
    const azurite = await startAzurite();
    started.push(azurite);
    const tokens = await startRegistryTokenServer({ entra, ...(options.registryTokenSeconds ? { tokenSeconds: options.registryTokenSeconds } : {}) });
    started.push(tokens);
    const realRegistry = dockerRegistryAvailable();
    const registry = realRegistry ? await startDockerRegistry(tokens) : { url: tokens.url, host: new URL(tokens.url).host, close: async () => undefined };
    started.push(registry);
    let acr: DockerRegistry | undefined;
    let acrService: string | undefined;
    if (options.acr && realRegistry) {
      // An ACR login server answers /oauth2/* and /v2/* on one host: a front does that here.
      const port = await freePort();
      const service = `127.0.0.1:${port}`;
      acrService = service;
      tokens.enableAcr(service);
      const behind = await startDockerRegistry(tokens, { service, realm: `http://${service}/oauth2/token` });
      started.push(behind);
      acr = await startAcrFront(port, tokens.url, behind);
      started.push(acr);
    }

    // The stored credential: a plain password, or one a rotation provider made and can revoke.
    let registryUser = 'registry-broker';
    let registryPassword = randomBytes(24).toString('base64url');
    let credentialRef: string | undefined;
    let rotation: Record<string, unknown> | undefined;
    let dockerHub: DockerHubApi | undefined;
    let arm: ArmStandIn | undefined;
    if (options.rotation === 'dockerhub') {
      dockerHub = await startDockerHubApi(tokens, registryUser);
      started.push(dockerHub);
      const initial = dockerHub.createToken('set up by hand');
      registryPassword = initial.token;
      credentialRef = initial.uuid;
      keyVault.setSecret(`${REGISTRY_SECRET}-admin`, JSON.stringify({ username: registryUser, password: dockerHub.adminPassword }), { contentType: 'application/json' });
      rotation = { provider: 'dockerhub', adminSecret: `${REGISTRY_SECRET}-admin`, apiEndpoint: dockerHub.url };
    } else if (options.rotation === 'acr-token') {
      arm = await startArm(entra, tokens, acrService ? { acrService } : {});
      started.push(arm);
      registryUser = arm.tokenName;
      registryPassword = arm.generate('password1');
      credentialRef = 'password1';
      rotation = { provider: 'acr-token', registryResourceId: arm.registryResourceId, tokenName: arm.tokenName, armEndpoint: arm.url };
    } else {
      tokens.addAccount(registryUser, registryPassword);
    }
    let mainLogin: Record<string, unknown> | undefined;
    let acrLogin: Record<string, unknown> | undefined;
    if (options.login) {
      if (!dockerHub) {
        dockerHub = await startDockerHubApi(tokens, registryUser, options.loginOrganization);
        started.push(dockerHub);
      }
      // The Hub API credential is a secret of its own, never the one the registry token is minted with.
      keyVault.setSecret(`${REGISTRY_SECRET}-hub-api`, JSON.stringify({ username: registryUser, password: dockerHub.adminPassword }), { contentType: 'application/json' });
      mainLogin = { provider: 'dockerhub-oat', organization: dockerHub.organization, apiSecret: `${REGISTRY_SECRET}-hub-api`, apiEndpoint: dockerHub.url };
      if (acr) {
        if (!arm) {
          arm = await startArm(entra, tokens, acrService ? { acrService } : {});
          started.push(arm);
        }
        acrLogin = { provider: 'acr-scope-map', registryResourceId: arm.registryResourceId, armEndpoint: arm.url };
      }
    }
    keyVault.setSecret(REGISTRY_SECRET, JSON.stringify({ username: registryUser, password: registryPassword }), {
      contentType: 'application/json',
      tags: credentialRef ? { credentialRef } : {},
    });

    // The broker's own managed identity, the way App Service hands it to a Function App.
    process.env.IDENTITY_ENDPOINT = `${entra.url}/msi/token`;
    process.env.IDENTITY_HEADER = entra.identityHeader;

    const env: Record<string, string> = {
      BROKER_TENANT_ID: entra.tenantId,
      BROKER_AUDIENCES: AUDIENCE,
      AZURE_AUTHORITY_HOST: entra.url,
      KEY_VAULT_URL: keyVault.url,
      TABLES_CONNECTION_STRING: azurite.connectionString,
      REGISTRIES: JSON.stringify([
        {
          kind: 'token-auth',
          host: registry.host,
          endpoint: registry.url,
          credentialSecret: REGISTRY_SECRET,
          timeoutSeconds: options.registryTimeoutSeconds ?? 10,
          ...(rotation ? { rotation } : {}),
          ...(mainLogin ? { login: mainLogin } : {}),
        },
        ...(options.extraRegistries ?? []).map((extra) => {
          keyVault.setSecret(extra.credentialSecret, JSON.stringify({ username: registryUser, password: registryPassword }), {
            contentType: 'application/json',
          });
          return { kind: 'token-auth', endpoint: registry.url, timeoutSeconds: 10, ...extra };
        }),
        ...(acr ? [{ kind: 'acr', host: acr.host, endpoint: acr.url, timeoutSeconds: options.registryTimeoutSeconds ?? 10, ...(acrLogin ? { login: acrLogin } : {}) }] : []),
      ]),
      ADMIN_ROLE,
      ...Object.fromEntries(Object.entries(options.env ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined)),
    };
    const config = loadConfig(env);
    const services = createServices(config, options.log);
    const rotationEngine = (overrides: RotationEngineOverrides = {}) => new RotationEngine({ ...services.rotationParts, ...overrides });
    // The test seams (a clock, crash points) go into engines the sandbox builds, never into Services.
    if (options.rotationOverrides) services.rotation = rotationEngine(options.rotationOverrides);
    const broker = await startBrokerHost(routes, services, options.log, options.brokerPort ?? 0);
    started.push(broker);

    return {
      entra,
      keyVault,
      azurite,
      tokens,
      registry,
      realRegistry,
      acr,
      broker,
      services,
      config,
      env,
      registryPassword,
      dockerHub,
      arm,
      rotationEngine,
      identity: (name, roles) => {
        const identity: ManagedIdentity = { name, objectId: randomUUID(), clientId: randomUUID(), ...(roles ? { roles } : {}) };
        entra.register(identity);
        return identity;
      },
      close: () => closeAll(started),
    };
  } catch (error) {
    await closeAll(started);
    throw error;
  }
}

async function closeAll(started: { close(): Promise<void> }[]): Promise<void> {
  for (const part of started.reverse()) await part.close().catch(() => undefined);
}
