import * as z from 'zod';
import { SERVICE_URL_RULE, isAllowedServiceUrl, isLoopbackUrl } from '../urlPolicy.js';

const HOSTNAME = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;
const HOST = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?$/;

export const registryHostSchema = z
  .string()
  .min(1)
  .max(253)
  .transform((host) => host.toLowerCase())
  .refine((host) => HOST.test(host), 'must be a registry host such as docker.io, ghcr.io or myreg.azurecr.io');

/** Key Vault secret names: 1–127 letters, digits and dashes. */
export const secretNameSchema = z.string().regex(/^[0-9a-zA-Z-]{1,127}$/, 'must be a Key Vault secret name');

const serviceUrl = z.string().refine(isAllowedServiceUrl, SERVICE_URL_RULE);

const reach = {
  /** Overrides where the registry is reached (tests, sandbox, mirrors). */
  endpoint: serviceUrl.optional(),
  /** Upper bound for one token request to the registry, retries included. */
  timeoutSeconds: z.number().int().min(1).max(60).default(10),
};
/** When and how the stored credential is replaced; see src/credentials/rotation. */
const schedule = {
  /** Rotate once the stored credential is this old. */
  rotateAfterDays: z.number().int().min(1).max(365).default(30),
  /** Also rotate (or, without a provider, warn) when the secret's `exp` is this close. */
  rotateBeforeExpiryDays: z.number().int().min(1).max(90).default(7),
  /** How long the old credential keeps working after the new one is stored; must outlast tokens and caches. */
  graceMinutes: z.number().int().min(1).max(7 * 24 * 60).default(240),
};

/** `/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerRegistry/registries/<name>` */
const acrResourceIdSchema = z
  .string()
  .regex(/^\/subscriptions\/[0-9a-fA-F-]{36}\/resourceGroups\/[-\w._()]{1,90}\/providers\/Microsoft\.ContainerRegistry\/registries\/[a-zA-Z0-9]{5,50}$/, 'must be an ACR resource ID');

export const rotationSchema = z.discriminatedUnion('provider', [
  z.strictObject({
    provider: z.literal('dockerhub'),
    /** Key Vault secret `{"username","password"}` with the account password: Docker Hub access tokens cannot create tokens. */
    adminSecret: secretNameSchema,
    apiEndpoint: serviceUrl.default('https://hub.docker.com'),
    tokenScopes: z.array(z.enum(['repo:admin', 'repo:write', 'repo:read', 'repo:public_read'])).min(1).default(['repo:write']),
    ...schedule,
  }),
  z.strictObject({
    provider: z.literal('acr-token'),
    /** `/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerRegistry/registries/<name>` */
    registryResourceId: acrResourceIdSchema,
    tokenName: z.string().regex(/^[a-zA-Z0-9-]{5,50}$/, 'must be an ACR token name'),
    armEndpoint: serviceUrl.default('https://management.azure.com'),
    ...schedule,
  }),
  z.strictObject({ provider: z.literal('none'), ...schedule }),
]);

export type RotationPolicy = z.infer<typeof rotationSchema>;

/** How the broker creates login credentials (form "login"); see src/credentials/login and docs/credential-forms.md. */
export const loginSchema = z.discriminatedUnion('provider', [
  z.strictObject({
    provider: z.literal('dockerhub-oat'),
    /** The Docker Hub organization owning the repositories; also the username for `docker login`. */
    organization: z.string().regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, 'must be a Docker Hub organization name').max(255),
    /** Key Vault secret `{"username","password"}`: an organization owner and their personal access token, for the Hub API only. */
    apiSecret: secretNameSchema,
    apiEndpoint: serviceUrl.default('https://hub.docker.com'),
  }),
  z.strictObject({
    provider: z.literal('acr-scope-map'),
    registryResourceId: acrResourceIdSchema,
    armEndpoint: serviceUrl.default('https://management.azure.com'),
  }),
]);

export type LoginPolicy = z.infer<typeof loginSchema>;

const common = { credentialSecret: secretNameSchema, rotation: rotationSchema.optional(), login: loginSchema.optional(), ...reach };

const dockerHubSchema = z.strictObject({
  kind: z.literal('dockerhub'),
  host: z.literal('docker.io').default('docker.io'),
  ...common,
});

const tokenAuthSchema = z
  .strictObject({
    kind: z.literal('token-auth'),
    host: registryHostSchema,
    /**
     * Pins the token service instead of discovering it from the registry's `/v2/` challenge: the
     * stored password then never goes anywhere but here, whatever the registry names.
     */
    realm: serviceUrl.optional(),
    service: z.string().min(1).max(253).optional(),
    /**
     * Hosts besides the registry's own that a discovered realm may be on (a registry whose token
     * service lives on a separate auth host). Any other realm is refused and never sees the password.
     */
    realmHosts: z
      .array(z.string().transform((host) => host.toLowerCase()).refine((host) => HOSTNAME.test(host), 'must be a host name, without scheme or port'))
      .max(10)
      .optional(),
    ...common,
  })
  .refine((entry) => (entry.realm === undefined) === (entry.service === undefined), { message: 'set both realm and service, or neither', path: ['realm'] });

/** Azure Container Registry: no stored secret; the broker's managed identity is exchanged for ACR tokens. */
const acrSchema = z.strictObject({
  kind: z.literal('acr'),
  host: registryHostSchema,
  login: loginSchema.optional(),
  ...reach,
});

/** ACR login servers, public and sovereign clouds: the broker's own Entra token for ACR goes only there. */
const ACR_SUFFIXES = ['.azurecr.io', '.azurecr.cn', '.azurecr.us'];

export const catalogSchema = z
  .array(z.discriminatedUnion('kind', [dockerHubSchema, tokenAuthSchema, acrSchema]))
  .min(1)
  .max(100)
  .superRefine((entries, ctx) => {
    const seen = new Set<string>();
    entries.forEach((entry, index) => {
      const loopback = entry.endpoint !== undefined && isLoopbackUrl(new URL(entry.endpoint));
      const isAcrServer = (host: string) => ACR_SUFFIXES.some((suffix) => host.endsWith(suffix));
      if (entry.kind === 'acr' && !loopback && !isAcrServer(entry.host)) {
        ctx.addIssue({ code: 'custom', path: [index, 'host'], message: `an acr registry must be an ACR login server (${ACR_SUFFIXES.join(', ')})` });
      }
      // The broker's own Entra token for ACR goes to the endpoint: it too must be an ACR login server.
      if (entry.kind === 'acr' && entry.endpoint !== undefined && !loopback && !isAcrServer(new URL(entry.endpoint).hostname)) {
        ctx.addIssue({ code: 'custom', path: [index, 'endpoint'], message: `an acr endpoint must be an ACR login server (${ACR_SUFFIXES.join(', ')}) or loopback` });
      }
      if (seen.has(entry.host)) ctx.addIssue({ code: 'custom', path: [index, 'host'], message: `duplicate host ${entry.host}` });
      seen.add(entry.host);
    });
  });

export type CatalogEntryConfig = z.infer<typeof catalogSchema>[number];

export interface Challenge {
  realm: string;
  service: string;
}

export interface RegistryEntry {
  kind: CatalogEntryConfig['kind'];
  host: string;
  /** Key Vault secret with the registry credential; none for ACR, which uses the broker's identity. */
  credentialSecret: string | undefined;
  /** Base URL of the registry API (`…/v2/` lives below it). */
  baseUrl: string;
  /** Realm and service known without asking the registry (Docker Hub, a pinned realm), else discovered. */
  knownChallenge: Challenge | undefined;
  /** Host names a discovered realm may be on: the registry's own, and the entry's `realmHosts`. */
  realmHosts: string[];
  timeoutMs: number;
  /** The key docker's config.json uses for this registry. */
  dockerConfigKey: string;
  rotation: RotationPolicy | undefined;
  /** How login credentials are made here; without it the registry supports form "token" only. */
  login: LoginPolicy | undefined;
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

function toEntry(config: CatalogEntryConfig): RegistryEntry {
  const timeoutMs = config.timeoutSeconds * 1000;
  if (config.kind === 'dockerhub') {
    return {
      kind: config.kind,
      host: config.host,
      credentialSecret: config.credentialSecret,
      baseUrl: config.endpoint ?? 'https://registry-1.docker.io',
      // Docker Hub's realm is fixed: the password is never sent where a (spoofed) registry points.
      knownChallenge: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io' },
      realmHosts: [],
      timeoutMs,
      dockerConfigKey: 'https://index.docker.io/v1/',
      rotation: config.rotation,
      login: config.login,
    };
  }
  return {
    kind: config.kind,
    host: config.host,
    credentialSecret: config.kind === 'acr' ? undefined : config.credentialSecret,
    baseUrl: config.endpoint ?? `https://${config.host}`,
    knownChallenge: config.kind === 'token-auth' && config.realm && config.service ? { realm: config.realm, service: config.service } : undefined,
    realmHosts: [
      ...new Set([new URL(`https://${config.host}`).hostname, ...(config.endpoint ? [new URL(config.endpoint).hostname] : []), ...((config.kind === 'token-auth' && config.realmHosts) || [])]),
    ],
    timeoutMs,
    dockerConfigKey: config.host,
    rotation: config.kind === 'acr' ? undefined : config.rotation,
    login: config.login,
  };
}

export class RegistryCatalog {
  private readonly byHost: Map<string, RegistryEntry>;

  constructor(configs: CatalogEntryConfig[]) {
    this.byHost = new Map(configs.map((config) => [config.host, toEntry(config)]));
  }

  /** Looks a registry up as a user types it; Docker Hub answers to its usual aliases. */
  find(host: string): RegistryEntry | undefined {
    const normalized = host.toLowerCase();
    const key = DOCKER_HUB_ALIASES.has(normalized) ? 'docker.io' : normalized;
    return this.byHost.get(key);
  }

  entries(): RegistryEntry[] {
    return [...this.byHost.values()];
  }
}
