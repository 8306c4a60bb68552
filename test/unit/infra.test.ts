import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ADMIN_USAGE } from '../../src/cli/admin.js';
import { REQUIRED_SETTING_NAMES, SETTING_NAMES } from '../../src/config.js';
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
  return { main: await read('infra/main.bicep'), broker: await read('infra/app/broker.bicep') };
}

/** Platform settings the Functions host and Application Insights read; each identity-based. */
const PLATFORM_SETTINGS = new Set([
  'AzureWebJobsStorage__accountName',
  'AzureWebJobsStorage__credential',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
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
});

/** Every role the broker's identity may get: the role, where, and why. */
const ALLOWED_ROLES: Record<string, { id: string; scopes: string[]; reason: string }> = {
  keyVaultSecretsUser: { id: '4633458b-17de-408a-b874-0445c86b69e6', scopes: ['vault'], reason: 'issuance reads the stored registry credentials' },
  keyVaultSecretsOfficer: {
    id: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
    scopes: ['rotatedSecrets[i]', 'pendingSecrets[i]'],
    reason: 'rotation writes new versions of the secrets it rotates and their staging twins, nothing else',
  },
  storageTableDataContributor: { id: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3', scopes: ['storage'], reason: 'grants, blocks, audit and rotation tables' },
  storageBlobDataOwner: { id: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b', scopes: ['storage'], reason: 'Flex Consumption deployment package and host timer leases' },
  monitoringMetricsPublisher: { id: '3913510d-42f4-4e42-8a64-420c390055eb', scopes: ['insights'], reason: 'telemetry with Entra ID; local auth is off' },
};

describe('role assignments', () => {
  it('each is allow-listed by role id and scope, carries a comment saying why, and none is at subscription or resource-group scope', async () => {
    const { main, broker } = await bicep();
    expect(main).not.toMatch(/Microsoft\.Authorization\/roleAssignments/);
    const roleIds = Object.fromEntries([...block(broker, broker.indexOf('var roles')).matchAll(/(\w+): '([0-9a-f-]{36})'/g)].map((m) => [m[1]!, m[2]!]));
    const assignments = [...broker.matchAll(/^resource (\w+) 'Microsoft\.Authorization\/roleAssignments@[^']+' = /gm)];
    expect(assignments.length).toBeGreaterThanOrEqual(5);
    for (const match of assignments) {
      const body = block(broker, match.index!);
      const linesBefore = broker.slice(0, match.index!).trimEnd().split('\n');
      expect(linesBefore.at(-1), `${match[1]} has a comment saying why`).toMatch(/^\/\/ \S/);
      const role = /roleDefinitions', roles\.(\w+)\)/.exec(body)?.[1];
      const scope = /^\s*scope: (.+)$/m.exec(body)?.[1]?.trim();
      expect(role && ALLOWED_ROLES[role], `${match[1]}: role ${role} is allow-listed`).toBeTruthy();
      expect(roleIds[role!]).toBe(ALLOWED_ROLES[role!]!.id);
      expect(ALLOWED_ROLES[role!]!.scopes, `${match[1]}: scope ${scope}`).toContain(scope);
      expect(body).toMatch(/principalId: broker\.identity\.principalId/);
    }
  });

  it('Secrets Officer exists only per rotated secret, so no rotation means no write access', async () => {
    const { broker } = await bicep();
    for (const match of broker.matchAll(/^resource (\w+) 'Microsoft\.Authorization\/roleAssignments@[^']+' = \[\s*\n\s*for \(name, i\) in rotatedSecretNames/gm)) {
      expect(block(broker, match.index!)).toContain('roles.keyVaultSecretsOfficer');
    }
    const officer = [...broker.matchAll(/roleDefinitions', roles\.keyVaultSecretsOfficer\)/g)].length;
    const looped = [...broker.matchAll(/for \(name, i\) in rotatedSecretNames/g)].length;
    expect(officer).toBe(2);
    expect(looped).toBe(2);
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

  it('every table the broker uses exists', async () => {
    const { broker } = await bicep();
    const { TABLES } = await import('../../src/services.js');
    const declared = /var brokerTables = \[([^\]]+)\]/.exec(broker)![1]!.split(',').map((t) => t.trim().replaceAll("'", ''));
    expect(declared.sort()).toEqual(Object.values(TABLES).sort());
  });
});

describe('azd', () => {
  it('azure.yaml names the api service as a TypeScript function and runs the app-registration hook', async () => {
    const yaml = await read('azure.yaml');
    expect(yaml).toMatch(/services:\s*\n\s*api:\s*\n\s*project: \.\s*\n\s*language: ts\s*\n\s*host: function/);
    expect(yaml).toMatch(/run: \.\/infra\/scripts\/app-registration\.sh/);
    expect((await stat(join(ROOT, 'infra/scripts/app-registration.sh'))).mode & 0o111).not.toBe(0);
    const parameters = JSON.parse(await read('infra/main.parameters.json')) as { parameters: Record<string, unknown> };
    const { main } = await bicep();
    const declared = [...main.matchAll(/^param (\w+)/gm)].map((m) => m[1]!);
    expect(Object.keys(parameters.parameters).sort()).toEqual(declared.sort());
  });
});

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
    const docs = [await read('README.md'), ...(await Promise.all(['operations.md', 'admin.md', 'rotation.md', 'clients.md'].map((f) => read(`docs/${f}`))))].join('\n');
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
      'AZURE_LOCATION',
    ]);
    const named = new Set([...doc.matchAll(/`([A-Z][A-Z0-9]*_[A-Z0-9_]+|REGISTRIES)`/g)].map((m) => m[1]!));
    for (const name of named) expect(SETTING_NAMES.includes(name) || azdVariables.has(name), name).toBe(true);
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
