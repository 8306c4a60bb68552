import { execFile, spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { WORKLOAD_COMMANDS } from '../../src/cli/workload.js';
import { catalogSchema } from '../../src/registries/catalog.js';

/**
 * The first day as the docs tell it, checked against what exists: every `azd env get-value` names a
 * value azd will have, every secret a catalog names is created before the catalog that names it,
 * the examples carry no live credential into a build and run nothing fetched at build time, and the
 * claims issue 10 found false stay gone. Nothing here was deployed; this is what can be checked here.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFile(join(ROOT, path), 'utf8');

async function docFiles(): Promise<string[]> {
  const docs = (await readdir(join(ROOT, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
  const examples = (await readdir(join(ROOT, 'docs/examples'))).map((f) => `docs/examples/${f}`);
  return ['README.md', ...docs, ...examples];
}

/** Every value azd holds for the environment: parameter-file variables, Bicep outputs, what the hook sets, azd's own. */
async function azdValues(): Promise<Set<string>> {
  return new Set([
    ...[...(await read('infra/main.parameters.json')).matchAll(/\$\{(\w+)/g)].map((m) => m[1]!),
    ...[...(await read('infra/main.bicep')).matchAll(/^output (\w+)/gm)].map((m) => m[1]!),
    ...[...(await read('infra/scripts/app-registration.sh')).matchAll(/^azd env set (\w+)/gm)].map((m) => m[1]!),
    'AZURE_ENV_NAME',
    'AZURE_SUBSCRIPTION_ID',
  ]);
}

describe('values the docs read', () => {
  it('every `azd env get-value` names a value azd has, and every `azd env set` one the templates read', async () => {
    const values = await azdValues();
    const parameterVariables = new Set([...(await read('infra/main.parameters.json')).matchAll(/\$\{(\w+)/g)].map((m) => m[1]!));
    let reads = 0;
    for (const path of await docFiles()) {
      const text = await read(path);
      for (const m of text.matchAll(/azd env get-value (\w+)/g)) {
        reads++;
        expect(values.has(m[1]!), `${path}: ${m[1]}`).toBe(true);
      }
      for (const m of text.matchAll(/azd env set (\w+)/g)) expect(parameterVariables.has(m[1]!), `${path}: azd env set ${m[1]}`).toBe(true);
    }
    expect(reads).toBeGreaterThan(10);
  });

  it('no doc or example uses an audience the hook never creates', async () => {
    const hook = await read('infra/scripts/app-registration.sh');
    expect(hook).toMatch(/uri="api:\/\/\$\{tenant\}\/registry-broker-\$\{env_name\}"/);
    for (const path of await docFiles()) {
      const text = await read(path);
      expect(text, path).not.toMatch(/api:\/\/registry-broker(?!-)\b|api:\/\/registry-broker-<env>/);
      expect(text, path).not.toMatch(/REGISTRY_BROKER_AUDIENCE=api:\/\/|BROKER_AUDIENCE=api:\/\//);
    }
  });

  it('every CLI flag the docs pass to token or docker-login exists', async () => {
    const flags = new Map(WORKLOAD_COMMANDS.map((command) => [command.words, new Set(command.flags.map((flag) => flag.name))]));
    let seen = 0;
    for (const path of await docFiles()) {
      const text = (await read(path)).replace(/\s*\\?\n\s*/g, ' ');
      for (const m of text.matchAll(/registry-broker (token|docker-login)((?: --?[a-z-]+(?:[ =](?!--)[^\s"&|;]+)?)+)/g)) {
        for (const flag of m[2]!.matchAll(/--([a-z-]+)/g)) {
          seen++;
          expect(flags.get(m[1]!)!.has(flag[1]!), `${path}: ${m[1]} --${flag[1]}`).toBe(true);
        }
      }
    }
    expect(seen).toBeGreaterThan(10);
  });
});

describe('docs/operations.md, the first day', () => {
  it('says up front what you need: az login and azd auth login, uuidgen, and the rights', async () => {
    const doc = await read('docs/operations.md');
    const before = doc.slice(0, doc.indexOf('## The first day'));
    for (const needed of ['`az login`', '`azd auth login`', '`uuidgen`', 'app registrations', 'role assignments', 'User Access Administrator']) expect(before, needed).toContain(needed);
    // The version whose loadParameters substitutes an array parameter's string and parses it (see infra.test.ts "azd").
    expect(before).toMatch(/\*\*1\.23\.4 or later\*\*/);
  });

  it('creates every secret a catalog names, with content type application/json, before the `azd env set BROKER_REGISTRIES` that names it', async () => {
    const doc = await read('docs/operations.md');
    const created = new Map<string, number>();
    for (const m of doc.matchAll(/az keyvault secret set [^\n]*--name ([\w-]+)[^\n]*/g)) {
      expect(m[0], m[1]).toMatch(/--content-type application\/json/);
      if (!created.has(m[1]!)) created.set(m[1]!, m.index!);
    }
    const catalogs = [...doc.matchAll(/azd env set BROKER_REGISTRIES '([^']+)'/g)];
    expect(catalogs.length).toBeGreaterThanOrEqual(3);
    for (const m of catalogs) {
      const entries = catalogSchema.parse(JSON.parse(m[1]!));
      const needed = entries.flatMap((entry) => {
        const names: string[] = [];
        if ('credentialSecret' in entry) names.push(entry.credentialSecret);
        const rotation = 'rotation' in entry ? entry.rotation : undefined;
        if (rotation && rotation.provider !== 'none' && 'credentialSecret' in entry) names.push(`${entry.credentialSecret}-pending`);
        if (rotation && 'adminSecret' in rotation) names.push(rotation.adminSecret);
        if (entry.login && 'apiSecret' in entry.login) names.push(entry.login.apiSecret);
        return names;
      });
      // Step 2 creates dockerhub; later sections create theirs "as in step 2" or right above.
      for (const name of needed.filter((n) => n !== 'ghcr')) {
        expect(created.get(name), `${name} is created before ${m[1]}`).toBeLessThan(m.index!);
      }
    }
  });

  it('gives yourself the vault role before writing a secret, and the admin role before the first admin command, then signs in again', async () => {
    const doc = await read('docs/operations.md');
    const officer = doc.indexOf('az role assignment create --role "Key Vault Secrets Officer"');
    expect(officer).toBeGreaterThan(0);
    expect(officer).toBeLessThan(doc.indexOf('az keyvault secret set'));
    const admin = doc.indexOf("appRoles[?value=='Broker.Admin'].id");
    expect(admin).toBeGreaterThan(0);
    expect(doc.indexOf('az logout && az login', admin)).toBeLessThan(doc.indexOf('registry-broker admin'));
  });

  it('finds a user-assigned identity\'s principal ID with az identity show, and grants it before the workload runs', async () => {
    const doc = await read('docs/operations.md');
    expect(doc).toContain('az identity show -g "$rg" -n first-workload --query principalId -o tsv');
    expect(doc.indexOf('registry-broker admin grants add --id first-workload')).toBeLessThan(doc.indexOf('az container create'));
  });

  it('the first-token container is filled in entirely by the sed in step 6, and parses', async () => {
    const doc = await read('docs/operations.md');
    const template = await read('docs/examples/first-token.aci.yaml');
    const placeholders = new Set([...template.matchAll(/<[a-z-]+>/g)].map((m) => m[0]));
    const step = doc.slice(doc.indexOf('### 6.'), doc.indexOf('## What is deployed'));
    const replaced = new Set([...step.matchAll(/-e "s\|(<[a-z-]+>)\|/g)].map((m) => m[1]!));
    expect(placeholders.size).toBeGreaterThanOrEqual(5);
    for (const placeholder of placeholders) expect(replaced.has(placeholder), placeholder).toBe(true);
    let filled = template;
    for (const placeholder of replaced) filled = filled.replaceAll(placeholder, 'x');
    const group = parseYaml(filled) as { identity: { type: string }; properties: { containers: { properties: { command: string[]; environmentVariables: { name: string }[] } }[] } };
    expect(group.identity.type).toBe('UserAssigned');
    const container = group.properties.containers[0]!.properties;
    expect(container.environmentVariables.map((v) => v.name).sort()).toEqual(['AUDIENCE', 'BROKER', 'CLIENT_ID']);
    // The token itself is never printed: only status, issuance ID, expiry and a problem's detail.
    expect(container.command.join(' ')).not.toMatch(/echo[^|]*\$mi|cat \/tmp\/answer/);
  });

  it('documents turning on appRoleAssignmentRequired with the Broker.Caller role, which the hook creates for applications only', async () => {
    const doc = await read('docs/operations.md');
    expect(doc).toContain('az ad sp update --id "$app" --set appRoleAssignmentRequired=true');
    expect(doc.indexOf("appRoles[?value=='Broker.Caller'].id")).toBeLessThan(doc.indexOf('appRoleAssignmentRequired=true'));
    const hook = await read('infra/scripts/app-registration.sh');
    expect(hook).toMatch(/caller_role=Broker\.Caller/);
  });

  it('tearing down and deploying again: recovers the soft-deleted vault into a recreated group, or starts a new environment', async () => {
    const doc = await read('docs/operations.md');
    const section = doc.slice(doc.indexOf('## Tear down, and deploy again'));
    const group = section.indexOf('az group create -n "$(azd env get-value AZURE_RESOURCE_GROUP)"');
    const recover = section.indexOf('az keyvault recover --name "$(azd env get-value KEY_VAULT_NAME)"');
    expect(group).toBeGreaterThan(0);
    expect(recover).toBeGreaterThan(group);
    expect(section.indexOf('azd up', recover)).toBeGreaterThan(recover);
    expect(section).toContain('azd env new');
    // The resource group the docs recreate is the one main.bicep names.
    expect(await read('infra/main.bicep')).toMatch(/name: 'rg-\$\{environmentName\}'/);
  });
});

describe('examples', () => {
  it('acr-task.yaml: builds first, then mints a login credential outside the build context right before pushing, with our CLI image, never npx', async () => {
    const text = await read('docs/examples/acr-task.yaml');
    const task = parseYaml(text) as { steps: { id: string; build?: string; cmd?: string }[] };
    expect(task.steps.map((s) => s.id)).toEqual(['build', 'push']);
    const push = task.steps[1]!.cmd!;
    expect(push).toMatch(/^\{\{\.Run\.Registry\}\}\/registry-broker-cli:[\w.]+ sh -c /);
    expect(push).toMatch(/registry-broker docker-login --form login .*--config-dir (\/tmp\/[\w-]+) .*&& docker --config \1 push docker\.io\/acme\/web/);
    expect(push).not.toMatch(/\/workspace/);
    for (const path of await docFiles()) expect(await read(path), path).not.toMatch(/npx (--yes )?registry-broker/);
    // The task is created so that it can be: no commit trigger without a git access token.
    expect(text).toMatch(/az acr task create [\s\S]*--commit-trigger-enabled false/);
  });

  it('cli.Dockerfile builds the CLI from this checkout and installs it with docker, skopeo and the helper', async () => {
    const text = await read('docs/examples/cli.Dockerfile');
    expect(text).toMatch(/RUN npm ci [^\n]*&& npm run build:cli/);
    expect(text).toContain('/src/dist/registry-broker.mjs /usr/local/bin/registry-broker');
    expect(text).toContain('docker-credential-registry-broker');
    expect(text).toMatch(/apk add --no-cache docker-cli skopeo/);
    const manifest = JSON.parse(await read('package.json')) as { scripts: Record<string, string>; bin: Record<string, string> };
    expect(manifest.scripts['build:cli']).toBeDefined();
    expect(Object.keys(manifest.bin)).toContain('docker-credential-registry-broker');
    expect(await read('.dockerignore')).toMatch(/^node_modules$/m);
  });

  it('aci-container-group.yaml: a user-assigned identity granted first, the credential helper configured with its client ID', async () => {
    const group = parseYaml((await read('docs/examples/aci-container-group.yaml')).replaceAll(/<[a-z-]+>/g, 'x')) as {
      identity: { type: string };
      properties: { containers: { properties: { environmentVariables: { name: string }[]; command: string[] } }[] };
    };
    expect(group.identity.type).toBe('UserAssigned');
    const names = group.properties.containers[0]!.properties.environmentVariables.map((v) => v.name);
    expect(names.sort()).toEqual(['REGISTRY_BROKER_AUDIENCE', 'REGISTRY_BROKER_CLIENT_ID', 'REGISTRY_BROKER_SCOPES', 'REGISTRY_BROKER_URL']);
  });

  it('grant.sh sets no maxTtlSeconds, and reads the broker URL and audience from azd', async () => {
    const script = await read('docs/examples/grant.sh');
    const body = /jq -n [\s\S]*?'\{([^']*)\}'/.exec(script)![1]!;
    expect(body).not.toMatch(/maxTtlSeconds/);
    expect(script).toContain('azd env get-value REGISTRY_BROKER_URL');
    expect(script).toContain('azd env get-value BROKER_AUDIENCE');
  });

  it('the shell examples and the hook parse (sh -n / bash -n)', async () => {
    const run = promisify(execFile);
    await run('sh', ['-n', join(ROOT, 'infra/scripts/app-registration.sh')]);
    for (const script of ['docs/examples/grant.sh', 'docs/examples/vm.sh']) await run('bash', ['-n', join(ROOT, script)]);
  });
});

describe('claims the code does not keep stay out of the docs', () => {
  it('a blocked caller\'s 403 does not name the reason', async () => {
    expect(await read('docs/admin.md')).not.toMatch(/403 names the block and its reason/);
  });

  it('skopeo and podman do not read registrytoken; nothing says they do', async () => {
    for (const path of await docFiles()) {
      const text = await read(path);
      expect(text, path).not.toMatch(/skopeo(,| and)[^.\n]*read `?registrytoken/i);
      expect(text, path).not.toMatch(/docker, skopeo and crane read/);
    }
  });

  it('nothing says the private package is published; admin.md does not redefine the app role', async () => {
    const manifest = JSON.parse(await read('package.json')) as { private: boolean };
    expect(manifest.private).toBe(true);
    for (const path of await docFiles()) expect(await read(path), path).not.toMatch(/once published|npm i -g registry-broker\b/);
    expect(await read('docs/admin.md')).not.toMatch(/--app-roles/);
  });

  it('clients.md links the credential-forms contract, and says which form is tested with which client', async () => {
    const clients = await read('docs/clients.md');
    expect(clients).toContain('(credential-forms.md)');
    expect(clients).toMatch(/Tested here/);
    await expect(stat(join(ROOT, 'docs/credential-forms.md'))).resolves.toBeTruthy();
  });

  it('the REGISTRIES comment in local.settings.sample.json names every kind and the optional objects', async () => {
    const sample = JSON.parse(await read('local.settings.sample.json')) as { Comments: Record<string, string> };
    for (const word of ['dockerhub', 'token-auth', 'acr', 'rotation', 'login', 'realm', 'service', 'realmHosts', 'endpoint', 'timeoutSeconds']) expect(sample.Comments.REGISTRIES, word).toContain(word);
  });
});

describe('README: the real Functions host locally', () => {
  it('gives the host blob storage: AzureWebJobsStorage is the Azurite default, and the command it names starts Azurite blob there', async () => {
    const readme = await read('README.md');
    const section = readme.slice(readme.indexOf('## Running under Azure Functions locally'), readme.indexOf('## Layout'));
    expect(section).toContain('AzureWebJobsStorage: "UseDevelopmentStorage=true"');
    const command = /`(node node_modules\/azurite\/dist\/src\/blob\/main\.js [^`]+)`/.exec(section)![1]!;
    expect(command).toContain('--blobPort 10000');
    // Run it (on a free port instead of 10000, which may be taken here) and see the blob service answer.
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = server.address() as { port: number };
        server.close(() => resolve(free));
      });
    });
    const args = command.split(' ').slice(1).map((arg) => (arg === '10000' ? String(port) : arg));
    const azurite = spawn('node', args, { cwd: ROOT, stdio: 'ignore' });
    try {
      let status = 0;
      for (let i = 0; i < 50 && status === 0; i++) {
        status = await fetch(`http://127.0.0.1:${port}/devstoreaccount1?comp=list`).then((r) => r.status, () => 0);
        if (status === 0) await new Promise((r) => setTimeout(r, 100));
      }
      // Anonymous listing is refused: the service is there and speaks the blob protocol.
      expect(status).toBe(403);
    } finally {
      azurite.kill();
    }
  });
});
