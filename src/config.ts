import * as z from 'zod';
import { catalogSchema, type CatalogEntryConfig } from './registries/catalog.js';
import { SERVICE_URL_RULE, isAllowedServiceUrl } from './urlPolicy.js';

/** The one place that reads settings. Every setting is described in local.settings.sample.json. */
const serviceUrl = z.string().refine(isAllowedServiceUrl, SERVICE_URL_RULE).transform((url) => url.replace(/\/+$/, ''));

const commaList = z
  .string()
  .transform((text) => text.split(',').map((item) => item.trim()).filter((item) => item.length > 0))
  .pipe(z.array(z.string().max(400)).min(1, 'must list at least one value').max(10));

const jsonText = z.string().transform((text, ctx) => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be valid JSON' });
    return z.NEVER;
  }
});

const seconds = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const settingsSchema = z
  .object({
    BROKER_TENANT_ID: z.guid('must be the Entra tenant ID (a GUID)').transform((id) => id.toLowerCase()),
    BROKER_AUDIENCES: commaList,
    AZURE_AUTHORITY_HOST: serviceUrl.default('https://login.microsoftonline.com'),
    KEY_VAULT_URL: serviceUrl,
    TABLES_ENDPOINT: serviceUrl.optional(),
    TABLES_CONNECTION_STRING: z.string().min(1).optional(),
    REGISTRIES: jsonText.pipe(catalogSchema),
    ADMIN_ROLE: z.string().min(1).max(120).default('Broker.Admin'),
    MAX_TTL_SECONDS: seconds(60, 86_400, 5400),
    LOGIN_TTL_SECONDS: seconds(60, 86_400, 3600),
    CREDENTIAL_CACHE_SECONDS: seconds(1, 3600, 300),
    CREDENTIAL_STALE_SECONDS: seconds(0, 86_400, 3600),
    CALLER_RATE_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(600),
    ANONYMOUS_RATE_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(120),
    APPLICATIONINSIGHTS_CONNECTION_STRING: z.string().min(1).max(2000).optional(),
  })
  .superRefine((settings, ctx) => {
    // The old credential must keep working until every token minted with it, and every cached copy
    // (fresh, then served stale while Key Vault is unreachable), is gone.
    const outlive = settings.MAX_TTL_SECONDS + settings.CREDENTIAL_CACHE_SECONDS + settings.CREDENTIAL_STALE_SECONDS;
    settings.REGISTRIES.forEach((entry, index) => {
      const rotation = 'rotation' in entry ? entry.rotation : undefined;
      if (rotation && rotation.graceMinutes * 60 <= outlive) {
        ctx.addIssue({
          code: 'custom',
          path: ['REGISTRIES', index, 'rotation', 'graceMinutes'],
          message: `must exceed MAX_TTL_SECONDS + CREDENTIAL_CACHE_SECONDS + CREDENTIAL_STALE_SECONDS (${outlive} s = ${Math.ceil(outlive / 60)} min)`,
        });
      }
    });
    const given = [settings.TABLES_ENDPOINT, settings.TABLES_CONNECTION_STRING].filter((v) => v !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['TABLES_ENDPOINT'],
        message: 'set exactly one of TABLES_ENDPOINT (managed identity) or TABLES_CONNECTION_STRING',
      });
    }
  });

/** Every setting the broker reads (local.settings.sample.json must describe each). */
export const SETTING_NAMES = Object.keys(settingsSchema.shape);
/** Settings without a default; TABLES_ENDPOINT / TABLES_CONNECTION_STRING are one-of, checked apart. */
export const REQUIRED_SETTING_NAMES = Object.entries(settingsSchema.shape)
  .filter(([, schema]) => !schema.safeParse(undefined).success)
  .map(([name]) => name);

export type TablesConnection = { kind: 'endpoint'; url: string } | { kind: 'connectionString'; value: string };

export interface BrokerConfig {
  tenantId: string;
  audiences: string[];
  authorityHost: string;
  keyVaultUrl: string;
  tables: TablesConnection;
  registries: CatalogEntryConfig[];
  adminRole: string;
  maxTtlSeconds: number;
  /** Default lifetime of a login credential (form "login"); MAX_TTL_SECONDS and grants still cap it. */
  loginTtlSeconds: number;
  credentialCacheMs: number;
  credentialStaleMs: number;
  callerRatePerMinute: number;
  /** Failed authentications per client address and minute before they are answered 429 (valid tokens never are). */
  anonymousRatePerMinute: number;
  /** Metrics and traces go to Application Insights when set (src/telemetry). */
  applicationInsightsConnectionString: string | undefined;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid broker settings:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function describe(issue: z.core.$ZodIssue): string {
  const [setting, ...rest] = issue.path.map(String);
  const where = rest.length > 0 ? ` (at ${rest.join('.')})` : '';
  // Environment values are always strings, so a type error at the top level means "missing".
  const message = issue.code === 'invalid_type' && rest.length === 0 ? 'is not set' : issue.message;
  return `${setting ?? 'settings'}${where}: ${message}`;
}

/** Validates the environment; throws ConfigError naming every bad setting. */
export function loadConfig(env: Record<string, string | undefined>): BrokerConfig {
  const defined = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = settingsSchema.safeParse(defined);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map(describe));
  const s = parsed.data;
  return {
    tenantId: s.BROKER_TENANT_ID,
    audiences: s.BROKER_AUDIENCES,
    authorityHost: s.AZURE_AUTHORITY_HOST,
    keyVaultUrl: s.KEY_VAULT_URL,
    tables: s.TABLES_ENDPOINT
      ? { kind: 'endpoint', url: s.TABLES_ENDPOINT }
      : { kind: 'connectionString', value: s.TABLES_CONNECTION_STRING! },
    registries: s.REGISTRIES,
    adminRole: s.ADMIN_ROLE,
    maxTtlSeconds: s.MAX_TTL_SECONDS,
    loginTtlSeconds: s.LOGIN_TTL_SECONDS,
    credentialCacheMs: s.CREDENTIAL_CACHE_SECONDS * 1000,
    credentialStaleMs: s.CREDENTIAL_STALE_SECONDS * 1000,
    callerRatePerMinute: s.CALLER_RATE_PER_MINUTE,
    anonymousRatePerMinute: s.ANONYMOUS_RATE_PER_MINUTE,
    applicationInsightsConnectionString: s.APPLICATIONINSIGHTS_CONNECTION_STRING,
  };
}
