import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { ADMIN_USAGE } from '../../src/cli/admin.js';
import { REQUIRED_SETTING_NAMES, SETTING_NAMES, loadConfig } from '../../src/config.js';
import { MAX_BODY_BYTES } from '../../src/http/dispatch.js';
import { catalogSchema, loginSchema, rotationSchema } from '../../src/registries/catalog.js';
import { routes } from '../../src/routes.js';

/**
 * The Bicep compiler does not run here, so these tests read the templates: app settings against
 * src/config.ts, every role assignment against an allow-list with its reason, no secret anywhere,
 * and docs/operations.md against the names the code really has.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFile(join(ROOT, path), 'utf8');

/** The `{ … }` block that starts at the first `{` after `from`, by brace counting. */
function block(text: string, from: number): string {
  const start = text.indexOf('{', from);
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    if (text[i] === '{') depth++;
    if (text[i] === '}' && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error('unbalanced braces');
}

async function bicep() {
  return { main: await read('infra/main.bicep'), broker: await read('infra/app/broker.bicep'), acrLogin: await read('infra/app/acrLogin.bicep') };
}

/** The `[ … ]` list that starts at the first `[` after `from`. */
function list(text: string, from: number): string[] {
  const start = text.indexOf('[', from);
  return [...text.slice(start, text.indexOf(']', start)).matchAll(/'([^']+)'/g)].map((m) => m[1]!);
}

/** Platform settings the Functions host and Application Insights read; each identity-based. */
const PLATFORM_SETTINGS = new Set([
  'AzureWebJobsStorage__accountName',
  'AzureWebJobsStorage__credential',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
  'FUNCTIONS_REQUEST_BODY_SIZE_LIMIT',
  'NODE_OPTIONS',
]);

async function appSettings(): Promise<string[]> {
  const { broker } = await bicep();
  const resource = broker.indexOf("name: 'appsettings'");
  expect(resource).toBeGreaterThan(0);
  const properties = block(broker, broker.indexOf('properties:', resource));
  return [...properties.matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*):/gm)].map((m) => m[1]!);
}

describe('app settings', () => {
  it('set every setting src/config.ts requires, with identity-based Table Storage', async () => {
    const settings = await appSettings();
    for (const name of REQUIRED_SETTING_NAMES) expect(settings, name).toContain(name);
    expect(settings).toContain('TABLES_ENDPOINT');
    expect(settings).not.toContain('TABLES_CONNECTION_STRING');
  });

  it('set nothing src/config.ts does not know, besides the identity-based platform settings', async () => {
    const unknown = (await appSettings()).filter((name) => !SETTING_NAMES.includes(name) && !PLATFORM_SETTINGS.has(name));
    expect(unknown).toEqual([]);
  });

  it('give the Node worker the heap limit the benchmark measures with (infra/app/nodeWorker.json)', async () => {
    const { broker } = await bicep();
    expect(broker).toMatch(/^var nodeWorker = loadJsonContent\('nodeWorker\.json'\)$/m);
    expect(broker).toMatch(/^\s*NODE_OPTIONS: nodeWorker\.NODE_OPTIONS$/m);
    const options = JSON.parse(await read('infra/app/nodeWorker.json')) as { NODE_OPTIONS: string };
    const heapMiB = Number(/^--max-old-space-size=(\d+)$/.exec(options.NODE_OPTIONS)?.[1]);
    // Far above the live heap (~30 MiB with 10,000 grants), far below a Flex Consumption instance's 2 GB.
    expect(heapMiB).toBeGreaterThanOrEqual(192);
    expect(heapMiB).toBeLessThanOrEqual(1024);
    expect(await read('bench/cost.bench.ts')).toContain("infra/app/nodeWorker.json");
  });

  it('cap the body the Functions host buffers (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT) close above the broker\'s own 16 KiB limit', async () => {
    const { broker } = await bicep();
    expect(broker).toMatch(/^\s*FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: string\(hostRequestBodyLimitBytes\)$/m);
    const limit = Number(/^var hostRequestBodyLimitBytes = (\d+)$/m.exec(broker)?.[1]);
    // Above the broker's limit, so a body just over it still gets the broker's problem+json 413; far below the host's 100 MB default.
    expect(limit).toBeGreaterThan(MAX_BODY_BYTES);
    expect(limit).toBeLessThanOrEqual(4 * MAX_BODY_BYTES);
  });

  it('hand REGISTRIES over as the JSON text of the array parameter', async () => {
    const { main, broker } = await bicep();
    expect(main).toMatch(/^param registries array = \[\]$/m);
    expect(broker).toMatch(/^param registries array$/m);
    expect(broker).toMatch(/^\s*REGISTRIES: string\(registries\)$/m);
  });
});

/**
 * Every role the broker's identity may get: the role, exactly where, and why. Scopes are the Bicep
 * symbols of single secrets, tables, containers and registries; never a vault, account, group or subscription.
 */
const ALLOWED_ROLES: Record<string, { id?: string; scopes: string[]; reason: string }> = {
  keyVaultSecretsUser: { id: '4633458b-17de-408a-b874-0445c86b69e6', scopes: ['readSecrets[i]'], reason: 'issuance, rotation and login forms read exactly the secrets the catalog names' },
  keyVaultSecretsOfficer: {
    id: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
    scopes: ['rotatedSecrets[i]', 'pendingSecrets[i]'],
    reason: 'rotation writes new versions of the secrets it rotates and their staging twins, nothing else',
  },
  storageTableDataContributor: { id: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3', scopes: ['mutable[i]'], reason: 'grants, blocks and the rotation log are updated in place, each table alone' },
  appendOnlyTableRole: { scopes: ['appendOnly[i]'], reason: 'the audit tables: read and add, never update or delete' },
  storageBlobDataContributor: { id: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe', scopes: ['deploymentContainer'], reason: 'the Flex Consumption deployment package, its container alone' },
  storageBlobDataOwner: { id: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b', scopes: ['hostContainers[i]'], reason: 'Functions host locks, timer schedule monitor and keys, their two containers alone' },
  monitoringMetricsPublisher: { id: '3913510d-42f4-4e42-8a64-420c390055eb', scopes: ['insights'], reason: 'telemetry with Entra ID; local auth is off' },
  scopeMapsAndTokensRole: { scopes: ['registry'], reason: 'ACR login credentials: scope maps and tokens on a registry with an acr-scope-map entry' },
};

/** Each role assignment in a template: its symbol, role, scope and the body. */
function assignments(template: string) {
  return [...template.matchAll(/^resource (\w+) 'Microsoft\.Authorization\/roleAssignments@[^']+' = /gm)].map((match) => {
    // From the declaration through its closing brace, so that a loop's `for … in …` is part of it.
    const inner = block(template, match.index!);
    const body = template.slice(match.index!, template.indexOf(inner, match.index!) + inner.length);
    const role = /roleDefinitions', roles\.(\w+)\)/.exec(body)?.[1] ?? /roleDefinitions', (\w+)\.name\)/.exec(body)?.[1];
    const scope = /^\s*scope: (.+)$/m.exec(body)?.[1]?.trim();
    const comment = template.slice(0, match.index!).trimEnd().split('\n').at(-1);
    return { name: match[1]!, role, scope, body, comment };
  });
}

/** Both custom roles' permissions, as written. */
function customRole(template: string, symbol: string) {
  const body = block(template, template.indexOf(`resource ${symbol} 'Microsoft.Authorization/roleDefinitions@`));
  return {
    body,
    actions: list(body, body.indexOf('actions:')),
    notActions: list(body, body.indexOf('notActions:')),
    dataActions: list(body, body.indexOf('dataActions:')),
    notDataActions: list(body, body.indexOf('notDataActions:')),
  };
}

describe('role assignments', () => {
  it('each is allow-listed by role and scope, carries a comment saying why, and none is at vault, account, resource-group or subscription scope', async () => {
    const { main, broker, acrLogin } = await bicep();
    expect(main).not.toMatch(/Microsoft\.Authorization\/roleAssignments/);
    const roleIds = Object.fromEntries([...block(broker, broker.indexOf('var roles')).matchAll(/(\w+): '([0-9a-f-]{36})'/g)].map((m) => [m[1]!, m[2]!]));
    const all = [...assignments(broker), ...assignments(acrLogin)];
    expect(all.length).toBeGreaterThanOrEqual(8);
    for (const assignment of all) {
      expect(assignment.comment, `${assignment.name} has a comment saying why`).toMatch(/^\/\/ \S/);
      const allowed = ALLOWED_ROLES[assignment.role ?? ''];
      expect(allowed, `${assignment.name}: role ${assignment.role} is allow-listed`).toBeTruthy();
      if (allowed!.id) expect(roleIds[assignment.role!]).toBe(allowed!.id);
      expect(allowed!.scopes, `${assignment.name}: scope ${assignment.scope}`).toContain(assignment.scope);
      expect(assignment.scope).not.toMatch(/^(vault|storage|resourceGroup\(\)|subscription\(\))$/);
      expect(assignment.body).toMatch(/principalId: (broker\.identity\.principalId|principalId)/);
    }
    for (const role of Object.keys(ALLOWED_ROLES)) expect(all.some((a) => a.role === role), `${role} is assigned`).toBe(true);
  });

  it('the audit tables get a custom role with only the entity read and add data actions (Table Storage authorizes Insert Entity by entities/add/action)', async () => {
    const { broker } = await bicep();
    const role = customRole(broker, 'appendOnlyTableRole');
    expect(role.dataActions.sort()).toEqual([
      'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action',
      'Microsoft.Storage/storageAccounts/tableServices/tables/entities/read',
    ]);
    expect([role.actions, role.notActions, role.notDataActions]).toEqual([[], [], []]);
    expect(role.body).toMatch(/type: 'CustomRole'/);
    expect(list(broker, broker.indexOf('var appendOnlyTables'))).toEqual(['issuances', 'issuanceindex', 'adminaudit']);
    const writer = assignments(broker).find((a) => a.role === 'appendOnlyTableRole')!;
    expect(writer.body).toMatch(/for \(table, i\) in appendOnlyTables/);
    // The audit is never also reachable through a broader role.
    const contributor = assignments(broker).find((a) => a.role === 'storageTableDataContributor')!;
    expect(contributor.body).toMatch(/for \(table, i\) in mutableTables/);
    expect(broker).toMatch(/^var mutableTables = filter\(brokerTables, table => !contains\(appendOnlyTables, table\)\)$/m);
  });

  it('secrets: read on each secret the catalog names, write only on rotated ones and their -pending twins, derived from every secret field of the catalog schema', async () => {
    const { broker } = await bicep();
    // Every catalog field that names a Key Vault secret must be read by the Bicep that grants access to it.
    const schema = JSON.stringify(z.toJSONSchema(catalogSchema, { io: 'input' }));
    const secretFields = [...new Set([...schema.matchAll(/"(\w*[sS]ecret)":\{"type":"string"/g)].map((m) => m[1]!))].sort();
    expect(secretFields).toEqual(['adminSecret', 'apiSecret', 'credentialSecret']);
    expect(broker.slice(broker.indexOf('var readSecretNames'), broker.indexOf('// The Functions host buffers'))).toMatch(/entry\.credentialSecret[\s\S]*entry\.\?rotation\.\?adminSecret[\s\S]*entry\.\?login\.\?apiSecret/);
    // Rotation providers that write Key Vault versions, as the catalog names them.
    const rotating = list(broker, broker.indexOf('var rotatedSecretNames'));
    const providers = rotationSchema.options.map((option) => option.shape.provider.value);
    expect(rotating.sort()).toEqual(providers.filter((provider) => provider !== 'none').sort());
    const officer = assignments(broker).filter((a) => a.role === 'keyVaultSecretsOfficer');
    expect(officer.map((a) => a.scope).sort()).toEqual(['pendingSecrets[i]', 'rotatedSecrets[i]']);
    for (const a of officer) expect(a.body).toMatch(/for \(name, i\) in rotatedSecretNames/);
    expect(assignments(broker).find((a) => a.role === 'keyVaultSecretsUser')!.body).toMatch(/for \(name, i\) in readSecretNames/);
    expect(block(broker, broker.indexOf("resource pendingSecrets 'Microsoft.KeyVault"))).toMatch(/name: '\$\{name\}-pending'/);
    // Infra reads secrets but never writes a value: every secret resource is `existing`.
    for (const m of broker.matchAll(/^resource \w+ 'Microsoft\.KeyVault\/vaults\/secrets@[^']+' (\w+)/gm)) expect(m[1]).toBe('existing');
  });

  it('ACR login credentials: a custom role holding only scope-map and token management, assigned on each registry with an acr-scope-map entry and no other', async () => {
    const { main, acrLogin } = await bicep();
    const role = customRole(acrLogin, 'scopeMapsAndTokensRole');
    expect(role.actions.sort()).toEqual([
      'Microsoft.ContainerRegistry/registries/generateCredentials/action',
      'Microsoft.ContainerRegistry/registries/scopeMaps/delete',
      'Microsoft.ContainerRegistry/registries/scopeMaps/operationStatuses/read',
      'Microsoft.ContainerRegistry/registries/scopeMaps/read',
      'Microsoft.ContainerRegistry/registries/scopeMaps/write',
      'Microsoft.ContainerRegistry/registries/tokens/delete',
      'Microsoft.ContainerRegistry/registries/tokens/operationStatuses/read',
      'Microsoft.ContainerRegistry/registries/tokens/read',
      'Microsoft.ContainerRegistry/registries/tokens/write',
    ]);
    expect([role.dataActions, role.notActions, role.notDataActions]).toEqual([[], [], []]);
    // Why not the built-in "Container Registry Contributor and Data Access Configuration Administrator"
    // (3bc748fc-…): it can also create, update and reconfigure the registry and its admin user.
    expect(acrLogin).toContain('"Container Registry Contributor and Data Access Configuration Administrator"');
    expect(acrLogin).not.toMatch(/3bc748fc-213d-45c1-8d91-9da5725539b9/);
    // Only registries whose entry says acr-scope-map, reached by their own resource ID.
    expect(main).toMatch(/^var acrLoginRegistryIds = map\(filter\(registries, entry => \(entry\.\?login\.\?provider \?\? ''\) == 'acr-scope-map'\), entry => entry\.login\.registryResourceId\)$/m);
    expect(main).toMatch(/for \(registryId, i\) in acrLoginRegistryIds/);
    expect(main).toMatch(/scope: resourceGroup\(split\(registryId, '\/'\)\[2\], split\(registryId, '\/'\)\[4\]\)/);
    expect(loginSchema.options.map((option) => option.shape.provider.value)).toContain('acr-scope-map');
    expect(Object.keys(loginSchema.options.find((option) => option.shape.provider.value === 'acr-scope-map')!.shape)).toContain('registryResourceId');
  });

  it('Key Vault sends its AuditEvent log to the Log Analytics workspace', async () => {
    const { broker } = await bicep();
    const settings = block(broker, broker.indexOf("resource vaultAudit 'Microsoft.Insights/diagnosticSettings@"));
    expect(settings).toMatch(/scope: vault\n/);
    expect(settings).toMatch(/workspaceId: logs\.id/);
    expect(settings).toMatch(/category: 'AuditEvent'\s*\n\s*enabled: true/);
  });
});

async function infraFiles(dir = 'infra'): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(join(ROOT, dir))) {
    const path = join(dir, entry);
    if ((await stat(join(ROOT, path))).isDirectory()) files.push(...(await infraFiles(path)));
    else files.push(path);
  }
  return files;
}

describe('templates hold together (no Bicep compiler runs here: npm has no Bicep package, NuGet is unreachable)', () => {
  it('brackets balance, and every symbol a template references is declared in it', async () => {
    const templates = await bicep();
    for (const [name, text] of Object.entries(templates)) {
      const code = text.replace(/\/\/.*$/gm, '').replace(/'(?:[^'\\]|\\.)*'/g, "''");
      for (const [open, close] of [['{', '}'], ['[', ']'], ['(', ')']] as const) expect(code.split(open).length, `${name} ${open}${close}`).toBe(code.split(close).length);
      const declared = new Set([...code.matchAll(/^(?:param|var|resource|module|output) (\w+)/gm)].map((m) => m[1]!));
      const loopAndLambda = new Set([...code.matchAll(/for \(?(\w+)(?:, (\w+))?\)? in /g), ...code.matchAll(/\b(\w+) =>/g)].flatMap((m) => [m[1]!, m[2]!]).filter(Boolean));
      const referenced = [
        ...[...code.matchAll(/\b([a-z]\w*)(?:\[i\])?\.(?:id|name|properties|identity|outputs)\b/g)].map((m) => m[1]!),
        ...[...code.matchAll(/^\s*(?:scope|parent): (\w+)/gm)].map((m) => m[1]!),
        ...[...code.matchAll(/ in (\w+): /g)].map((m) => m[1]!),
      ].filter((symbol) => !['subscription', 'resourceGroup', 'tenant', 'roles', 'entry'].includes(symbol));
      for (const symbol of referenced) expect(declared.has(symbol) || loopAndLambda.has(symbol), `${name}: ${symbol}`).toBe(true);
    }
  });
});

describe('no secrets', () => {
  it('no key, connection string with a key, SAS or private key appears in infra/ or azure.yaml', async () => {
    for (const path of [...(await infraFiles()), 'azure.yaml']) {
      const text = await read(path);
      expect(text, path).not.toMatch(/AccountKey=|listKeys\(|listAccountSas|SharedAccessSignature|SharedAccessKey|[?&]sig=|BEGIN [A-Z ]*PRIVATE KEY|InstrumentationKey=/);
      expect(text, path).not.toMatch(/(password|secret|clientSecret)\s*[:=]\s*'[^'{]+'/i);
    }
  });

  it('identity-based connections only, and the hardening the issue asks for', async () => {
    const { broker } = await bicep();
    const settings = await appSettings();
    expect(settings).not.toContain('AzureWebJobsStorage');
    expect(broker).toMatch(/allowSharedKeyAccess: false/);
    expect(broker).toMatch(/enableRbacAuthorization: true/);
    expect(broker).toMatch(/enableSoftDelete: true/);
    expect(broker).toMatch(/enablePurgeProtection: true/);
    expect(broker).toMatch(/httpsOnly: true/);
    expect(broker).toMatch(/minTlsVersion: '1\.2'/);
    expect(broker).toMatch(/ftpsState: 'Disabled'/);
    expect(broker).toMatch(/type: 'SystemAssigned'\n/);
    expect(broker).toMatch(/name: 'FC1'\s*\n\s*tier: 'FlexConsumption'/);
    expect(broker).toMatch(/name: 'node'\s*\n\s*version: '22'/);
    expect(broker).toMatch(/DisableLocalAuth: true/);
    expect(broker).toMatch(/WorkspaceResourceId: logs\.id/);
    expect(broker).toMatch(/type: 'SystemAssignedIdentity'/);
  });

  it('host.json never samples away a warning or an error: traces and exceptions are excluded from sampling, like requests', async () => {
    const host = JSON.parse(await read('host.json')) as { logging: { applicationInsights: { samplingSettings: { isEnabled: boolean; excludedTypes: string } } } };
    const sampling = host.logging.applicationInsights.samplingSettings;
    // Application Insights samples by telemetry type, not severity: log lines are the Trace type.
    expect(sampling.excludedTypes.split(';').sort()).toEqual(['Exception', 'Request', 'Trace']);
  });

  it('every table the broker uses exists, each created as an audit (append-only) or a mutable table', async () => {
    const { broker } = await bicep();
    const { TABLES } = await import('../../src/services.js');
    const declared = list(broker, broker.indexOf('var brokerTables'));
    expect(declared.sort()).toEqual(Object.values(TABLES).sort());
    expect(broker).toMatch(/for table in appendOnlyTables: \{/);
    expect(broker).toMatch(/for table in mutableTables: \{/);
  });

  it('the host containers and the deployment container exist, and no role reaches any other blob', async () => {
    const { broker } = await bicep();
    expect(list(broker, broker.indexOf('var hostContainerNames'))).toEqual(['azure-webjobs-hosts', 'azure-webjobs-secrets']);
    expect(broker).toMatch(/for name in hostContainerNames: \{/);
    expect(broker).toMatch(/name: deploymentContainerName\n/);
  });
});

/**
 * What azd does with infra/main.parameters.json (azure-dev cli/azd/pkg/infra/provisioning/bicep/
 * bicep_provider.go, loadParameters, azd ≥ 1.23.4): per parameter, an array or object parameter whose
 * value is a string gets only that string substituted, then parsed as JSON; any other parameter is
 * re-marshalled to JSON text, substituted, and parsed back. A parameter that comes out empty because its
 * variable is unset is left out, so the Bicep default applies. Substitution is drone/envsubst's:
 * `${NAME}` is the value or empty; `${NAME=word}` is the value, or `word` (up to the first `}`) when empty.
 */
type ParameterFile = { parameters: Record<string, { value: unknown }> };
const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:=([^}]*))?\}/g;

function envsubst(text: string, env: Record<string, string>): { text: string; unset: boolean } {
  let unset = false;
  const out = text.replace(REFERENCE, (_, name: string, fallback: string | undefined) => {
    if (!(name in env)) unset = true;
    const value = env[name] ?? '';
    return value === '' && fallback !== undefined ? fallback : value;
  });
  return { text: out, unset };
}

function azdParameters(file: ParameterFile, types: Record<string, string>, env: Record<string, string>): Record<string, unknown> {
  const resolved: Record<string, unknown> = {};
  for (const [name, parameter] of Object.entries(file.parameters)) {
    if ((types[name] === 'array' || types[name] === 'object') && typeof parameter.value === 'string') {
      const { text, unset } = envsubst(parameter.value, env);
      if (text === '' && unset) continue;
      resolved[name] = JSON.parse(text);
      continue;
    }
    const { text, unset } = envsubst(JSON.stringify(parameter), env);
    const value = (JSON.parse(text) as { value: unknown }).value;
    if (value === undefined || (value === '' && unset)) continue;
    resolved[name] = value;
  }
  return resolved;
}

async function deploymentInputs() {
  const file = JSON.parse(await read('infra/main.parameters.json')) as ParameterFile;
  const { main } = await bicep();
  const types = Object.fromEntries([...main.matchAll(/^param (\w+) (\w+)/gm)].map((m) => [m[1]!, m[2]!]));
  const defaults = Object.fromEntries([...main.matchAll(/^param (\w+) \w+ = (.+)$/gm)].map((m) => [m[1]!, m[2]!]));
  return { file, types, defaults };
}

/** REGISTRIES as the broker will read it: the Bicep default when azd leaves the parameter out. */
function registriesSetting(resolved: Record<string, unknown>, defaults: Record<string, string>): string {
  if ('registries' in resolved) return JSON.stringify(resolved.registries);
  expect(defaults.registries).toBe('[]');
  return '[]';
}

const BASE_ENV = { AZURE_ENV_NAME: 'broker-prod', AZURE_LOCATION: 'swedencentral', BROKER_AUDIENCES: 'api://72f988bf-86f1-41af-91ab-2d7cd011db47/registry-broker-broker-prod,8f2c…' };
const CATALOG = [
  { kind: 'dockerhub', credentialSecret: 'dockerhub' },
  { kind: 'token-auth', host: 'ghcr.io', credentialSecret: 'ghcr' },
];

describe('azd', () => {
  it('azure.yaml names the api service as a TypeScript function, zips the staged package without a remote build, and runs the app-registration hook', async () => {
    const yaml = await read('azure.yaml');
    expect(yaml).toMatch(/services:\s*\n\s*api:\s*\n\s*project: \.\s*\n\s*language: ts\s*\n\s*host: function/);
    expect(yaml).toMatch(/^\s*dist: \.deploy$/m);
    expect(yaml).toMatch(/^\s*remoteBuild: false$/m);
    expect(yaml).toMatch(/prepackage:[\s\S]*run: npm run package:functions/);
    const manifest = JSON.parse(await read('package.json')) as { scripts: Record<string, string> };
    expect(manifest.scripts['package:functions']).toBe('node infra/scripts/stage-package.mjs .deploy');
    // azd refuses remoteBuild: false when the project's .funcignore leaves out node_modules; the staged folder has none.
    await expect(stat(join(ROOT, '.funcignore'))).rejects.toThrow();
    expect(yaml).toMatch(/run: \.\/infra\/scripts\/app-registration\.sh/);
    expect((await stat(join(ROOT, 'infra/scripts/app-registration.sh'))).mode & 0o111).not.toBe(0);
    const { file, types } = await deploymentInputs();
    expect(Object.keys(file.parameters).sort()).toEqual(Object.keys(types).sort());
  });

  it('the parameter file uses only the substitutions emulated here, and no default that contains JSON', async () => {
    const text = await read('infra/main.parameters.json');
    const references = [...text.matchAll(/\$\{[^}]*\}/g)].map((m) => m[0]);
    expect(references.length).toBeGreaterThan(3);
    for (const reference of references) expect(reference, reference).toMatch(/^\$\{[A-Za-z_][A-Za-z0-9_]*(=[A-Za-z0-9._-]*)?\}$/);
  });

  it('BROKER_REGISTRIES unset: the catalog parameter is left out, REGISTRIES is "[]", and the broker names REGISTRIES', async () => {
    const { file, types, defaults } = await deploymentInputs();
    const resolved = azdParameters(file, types, BASE_ENV);
    expect(resolved).not.toHaveProperty('registries');
    expect(resolved).toMatchObject({ environmentName: 'broker-prod', adminRole: 'Broker.Admin', maxTtlSeconds: '5400' });
    const setting = registriesSetting(resolved, defaults);
    expect(() => loadConfig({ ...VALID_SETTINGS, REGISTRIES: setting })).toThrow(/REGISTRIES/);
  });

  it('BROKER_REGISTRIES set to the JSON the docs use: the parameter is that array, and REGISTRIES parses as the catalog', async () => {
    const { file, types, defaults } = await deploymentInputs();
    const resolved = azdParameters(file, types, { ...BASE_ENV, BROKER_REGISTRIES: JSON.stringify(CATALOG) });
    expect(resolved.registries).toEqual(CATALOG);
    const config = loadConfig({ ...VALID_SETTINGS, REGISTRIES: registriesSetting(resolved, defaults) });
    expect(config.registries.map((entry) => entry.host)).toEqual(['docker.io', 'ghcr.io']);
  });

  it('every BROKER_REGISTRIES the docs set goes through the same substitution and parses as a catalog', async () => {
    const { file, types, defaults } = await deploymentInputs();
    const docs = (await Promise.all(['docs/operations.md', 'docs/rotation.md', 'README.md'].map(read))).join('\n');
    const values = [...docs.matchAll(/azd env set BROKER_REGISTRIES '([^']+)'/g)].map((m) => m[1]!);
    expect(values.length).toBeGreaterThan(0);
    for (const value of values) {
      const resolved = azdParameters(file, types, { ...BASE_ENV, BROKER_REGISTRIES: value });
      expect(() => loadConfig({ ...VALID_SETTINGS, REGISTRIES: registriesSetting(resolved, defaults) }), value).not.toThrow();
    }
  });
});

const VALID_SETTINGS = {
  BROKER_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  BROKER_AUDIENCES: 'api://72f988bf-86f1-41af-91ab-2d7cd011db47/registry-broker-broker-prod',
  KEY_VAULT_URL: 'https://kv-example.vault.azure.net',
  TABLES_ENDPOINT: 'https://stexample.table.core.windows.net',
};

describe('docs/operations.md names what the code has', () => {
  const routePatterns = routes.map((route) => `/api/${route.route}`);
  const matchesRoute = (path: string) =>
    routePatterns.some((pattern) => {
      const a = pattern.split('/');
      const b = path.split('/');
      return a.length === b.length && a.every((segment, i) => segment.startsWith('{') || segment === b[i]);
    });

  it('every API path it names is a route', async () => {
    const doc = await read('docs/operations.md');
    const paths = [...doc.matchAll(/\/api\/v1\/[A-Za-z0-9/{}._-]*[A-Za-z0-9}]/g)].map((m) => m[0]);
    expect(paths.length).toBeGreaterThan(5);
    for (const path of paths) expect(matchesRoute(path), path).toBe(true);
  });

  it('every route is documented in docs/ or the README', async () => {
    const guides = (await readdir(join(ROOT, 'docs'))).filter((f) => f.endsWith('.md'));
    const docs = [await read('README.md'), ...(await Promise.all(guides.map((f) => read(`docs/${f}`))))].join('\n');
    for (const pattern of routePatterns) expect(docs, pattern).toContain(pattern.replace(/\{[^}]+\}/g, '{').split('{')[0]);
  });

  it('every registry-broker command it shows exists, and every admin command is shown', async () => {
    const doc = await read('docs/operations.md');
    const commands = [...doc.matchAll(/registry-broker (admin \w+(?: (?:list|show|add|update|rm)\b)?|token|docker-login)/g)].map((m) => m[1]!);
    expect(commands.length).toBeGreaterThan(5);
    for (const command of commands) {
      const words = command.split(' ');
      if (words[0] === 'admin') expect(ADMIN_USAGE, command).toMatch(new RegExp(`\\b${words[1]}\\b${words[2] ? `[^\\n]*\\b${words[2]}\\b` : ''}`));
    }
    for (const name of ['grants', 'issuances', 'block', 'unblock', 'credentials', 'rotate', 'audit']) expect(commands.some((c) => c.startsWith(`admin ${name}`)), name).toBe(true);
  });

  it('every setting it names is one src/config.ts reads (or an azd variable of infra/), and it names them all', async () => {
    const doc = await read('docs/operations.md');
    const azdVariables = new Set([
      ...[...(await read('infra/main.parameters.json')).matchAll(/\$\{(\w+)/g)].map((m) => m[1]!),
      ...[...(await read('infra/main.bicep')).matchAll(/^output (\w+)/gm)].map((m) => m[1]!),
      ...[...(await read('infra/scripts/app-registration.sh')).matchAll(/^azd env set (\w+)/gm)].map((m) => m[1]!),
      'AZURE_LOCATION',
    ]);
    const named = new Set([...doc.matchAll(/`([A-Z][A-Z0-9]*_[A-Z0-9_]+|REGISTRIES)`/g)].map((m) => m[1]!));
    for (const name of named) expect(SETTING_NAMES.includes(name) || azdVariables.has(name) || PLATFORM_SETTINGS.has(name), name).toBe(true);
    for (const name of SETTING_NAMES) expect(doc, name).toContain(`\`${name}\``);
  });

  it('every log message the broker writes is explained', async () => {
    const doc = await read('docs/operations.md');
    const sources = (await Promise.all((await listSources('src')).map((f) => read(f)))).join('\n');
    const messages = [...sources.matchAll(/log\.(?:info|warn|error)\('([^']+)'/g)].map((m) => m[1]!);
    messages.push(...['grant store', 'block list'].map((store) => `${store} request failed`));
    expect(messages.length).toBeGreaterThan(10);
    for (const message of new Set(messages)) expect(doc, message).toContain(`\`${message}\``);
  });
});

async function listSources(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(join(ROOT, dir))) {
    const path = join(dir, entry);
    if (path.includes('sandbox')) continue;
    if ((await stat(join(ROOT, path))).isDirectory()) files.push(...(await listSources(path)));
    else if (path.endsWith('.ts')) files.push(path);
  }
  return files;
}

describe('infra/scripts/app-registration.sh, run against stand-ins for az, azd and uuidgen', () => {
  const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const APP_ID = '8f2c6a51-3f0e-4c1e-9b7a-2f1d0c9e8a77';

  /** Runs the hook with `az` answering from `answers` (first matching substring of the arguments wins). */
  async function runHook(answers: [string, string][]) {
    const dir = await mkdtemp(join(tmpdir(), 'hook-'));
    const calls = join(dir, 'calls');
    const stand = (name: string, body: string) => writeFile(join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    const cases = answers.map(([match, out]) => `  *"${match}"*) printf '%s\\n' "${out}" ;;`).join('\n');
    await stand('az', `printf 'az' >> ${calls}; for a in "$@"; do printf '\\t%s' "$(printf '%s' "$a" | tr '\\n' ' ')" >> ${calls}; done; printf '\\n' >> ${calls}\ncase "$*" in\n  *"ad sp show"*) exit 1 ;;\n${cases}\nesac`);
    await stand('azd', `printf 'azd' >> ${calls}; for a in "$@"; do printf '\\t%s' "$a" >> ${calls}; done; printf '\\n' >> ${calls}`);
    await stand('uuidgen', `n=$(cat ${dir}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${dir}/n; printf 'AAAAAAAA-0000-4000-8000-00000000000%s\\n' $n`);
    const run = promisify(execFile);
    const { stdout } = await run('sh', [join(ROOT, 'infra/scripts/app-registration.sh')], {
      env: { PATH: `${dir}:${process.env.PATH}`, AZURE_ENV_NAME: 'broker-prod', AZURE_SUBSCRIPTION_ID: '11111111-2222-3333-4444-555555555555' },
    });
    const lines = (await readFile(calls, 'utf8')).trim().split('\n').map((line) => line.split('\t'));
    await rm(dir, { recursive: true, force: true });
    return { stdout, lines };
  }
  const bodies = (lines: string[][]) => lines.filter((l) => l[1] === 'rest').map((l) => JSON.parse(l[l.indexOf('--body') + 1]!) as Record<string, any>);

  it('first run: creates the app with the tenant-unique App ID URI, both app roles, and sets the azd values the docs read', async () => {
    const { lines } = await runHook([
      ['account show', TENANT],
      ['ad app list', ''],
      ['ad app create', APP_ID],
      ['--query id', 'object-1'],
      ['appRoles', ''],
      ['oauth2PermissionScopes', ''],
    ]);
    expect(lines[0]).toEqual(['az', 'account', 'set', '--subscription', '11111111-2222-3333-4444-555555555555']);
    const uri = `api://${TENANT}/registry-broker-broker-prod`;
    expect(lines.find((l) => l[2] === 'app' && l[3] === 'create')).toContain(uri);
    const [roles, preauthorize] = bodies(lines);
    expect(roles!.appRoles.map((r: { value: string }) => r.value)).toEqual(['Broker.Admin', 'Broker.Caller']);
    expect(roles!.appRoles[0].allowedMemberTypes).toEqual(['User', 'Application']);
    // Workloads are service principals: the caller role can be given to them and to nobody else.
    expect(roles!.appRoles[1].allowedMemberTypes).toEqual(['Application']);
    expect(new Set([roles!.appRoles[0].id, roles!.appRoles[1].id, roles!.api.oauth2PermissionScopes[0].id]).size).toBe(3);
    expect(preauthorize!.api.preAuthorizedApplications[0].appId).toBe('04b07795-8ddb-461a-bbee-02f9e1bf7b46');
    const azd = Object.fromEntries(lines.filter((l) => l[0] === 'azd').map((l) => [l[3]!, l[4]!]));
    expect(azd).toEqual({ BROKER_AUDIENCES: `${uri},${APP_ID}`, BROKER_AUDIENCE: uri, BROKER_APP_ID: APP_ID });
  });

  it('second run: finds the app by its URI, keeps the IDs of its roles and scope, creates nothing', async () => {
    const { lines } = await runHook([
      ['account show', TENANT],
      ['ad app list', APP_ID],
      ['--query id', 'object-1'],
      ["value=='Broker.Admin'", 'aaaaaaaa-1111-4111-8111-111111111111'],
      ["value=='Broker.Caller'", 'bbbbbbbb-2222-4222-8222-222222222222'],
      ['oauth2PermissionScopes', 'cccccccc-3333-4333-8333-333333333333'],
    ]);
    expect(lines.some((l) => l[3] === 'create' && l[2] === 'app')).toBe(false);
    const [roles] = bodies(lines);
    expect(roles!.appRoles.map((r: { id: string }) => r.id)).toEqual(['aaaaaaaa-1111-4111-8111-111111111111', 'bbbbbbbb-2222-4222-8222-222222222222']);
    expect(roles!.api.oauth2PermissionScopes[0].id).toBe('cccccccc-3333-4333-8333-333333333333');
  });
});

describe('deployment package (infra/scripts/stage-package.mjs, what azd zips)', () => {
  it('holds the compiled server, host.json and production dependencies only, loads on its own and registers every function', async () => {
    const out = await mkdtemp(join(tmpdir(), 'package-'));
    const run = promisify(execFile);
    const { stdout } = await run(process.execPath, [join(ROOT, 'infra/scripts/stage-package.mjs'), out], { cwd: ROOT, maxBuffer: 10_000_000 });
    const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as { megabytes: number; files: number; packages: number };
    const manifest = JSON.parse(await read('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const staged = JSON.parse(await readFile(join(out, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(staged).not.toHaveProperty('devDependencies');
    expect(staged).not.toHaveProperty('scripts');
    expect(staged.dependencies).toEqual(manifest.dependencies);
    expect(JSON.parse(await readFile(join(out, 'host.json'), 'utf8'))).toEqual(JSON.parse(await read('host.json')));
    for (const name of Object.keys(manifest.dependencies)) await expect(stat(join(out, 'node_modules', name)), name).resolves.toBeTruthy();
    // A dev dependency that a production dependency also needs (the lock says so) is staged; no other is.
    const lock = JSON.parse(await read('package-lock.json')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.keys(manifest.devDependencies).filter((name) => lock.packages[`node_modules/${name}`]?.dev);
    expect(devOnly).toEqual(expect.arrayContaining(['node', 'typescript', 'vitest', 'azurite', 'esbuild', 'tsx']));
    for (const name of devOnly) await expect(stat(join(out, 'node_modules', name)), name).rejects.toThrow();
    await expect(stat(join(out, 'dist/index.js'))).resolves.toBeTruthy();
    // One bundled entry (infra/scripts/bundle-functions.mjs), not a module per source file.
    for (const left of ['dist/services.js', 'dist/sandbox', 'dist/cli', 'src', 'test', 'bench', 'infra', 'docs']) await expect(stat(join(out, left)), left).rejects.toThrow();
    // 513 MB when node_modules went whole (issue 10); this is the measured size, with room to grow.
    console.log(`deployment package: ${report.megabytes} MB, ${report.files} files, ${report.packages} packages`);
    expect(report.megabytes).toBeLessThan(80);

    // Loaded by Node from the staged folder alone (nothing above /tmp resolves a package), with a
    // stand-in for the worker's @azure/functions-core recording what registers.
    const standIn = join(out, 'functions-core-stand-in.cjs');
    await writeFile(standIn, `const Module = require('node:module'); const names = [];
const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === '@azure/functions-core') return { setProgrammingModel() {}, registerHook: () => ({ dispose() {} }), registerFunction: (m) => { names.push(m.name); return { dispose() {} }; } };
  return load.call(this, request, ...rest);
};
process.on('exit', () => process.stdout.write('REGISTERED ' + JSON.stringify(names) + '\\n'));\n`);
    const env = { PATH: process.env.PATH!, ...VALID_SETTINGS, REGISTRIES: JSON.stringify(CATALOG) };
    const started = await run(process.execPath, ['--require', standIn, join(out, 'dist/index.js')], { cwd: out, env });
    const names = JSON.parse(/REGISTERED (.*)/.exec(started.stdout)![1]!) as string[];
    expect(names).toEqual(expect.arrayContaining([...routes.map((route) => route.name), 'credentialRotation']));
    expect(started.stdout).not.toMatch(/"level":"error"/);

    // In Azure APPLICATIONINSIGHTS_CONNECTION_STRING is set, and the entry imports the exporter then: it
    // too must load from the staged dependencies (nothing it needs was left out as dev or never-loaded),
    // and the Azure SDKs the bundle carries must then trace through the @azure/core-tracing it left
    // external (an ES module import, which the instrumentation's require hook never sees).
    const telemetry = `await import('./dist/index.js');
const { createTracingClient } = await import('@azure/core-tracing');
const recording = () => createTracingClient({ namespace: 'Probe', packageName: 'probe' }).startSpan('probe').span.isRecording();
// The exporter starts in the first quiet moment (3 s after load when no request comes), and its
// sampler is rate-limited: ask until one span records.
let recorded = false;
for (let i = 0; i < 200 && !(recorded = recording()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
console.log(recorded ? 'Azure SDK spans recorded' : 'no Azure SDK spans'); process.exit(0);`;
    const connectionString = 'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/';
    const exporter = await run(process.execPath, ['--require', standIn, '--input-type=module', '-e', telemetry], { cwd: out, env: { ...env, APPLICATIONINSIGHTS_CONNECTION_STRING: connectionString } });
    expect(exporter.stdout).toContain('Azure SDK spans recorded');
    expect(exporter.stdout).not.toMatch(/"level":"error"/);
    await rm(out, { recursive: true, force: true });
  }, 120_000);
});
