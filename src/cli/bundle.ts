import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

/**
 * The CLI as one self-contained file: everything it imports bundled in, so it runs with nothing but
 * Node ≥ 20 beside it (a build step image, a VM, a node's kubelet directory). The same file is the
 * docker credential helper when it is linked as `docker-credential-registry-broker`.
 * `npm run build:cli` writes dist/registry-broker.mjs; the tests bundle into a directory of their own.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export async function bundleCli(outfile: string): Promise<void> {
  const { version } = JSON.parse(await readFile(`${ROOT}/package.json`, 'utf8')) as { version: string };
  await build({
    entryPoints: [`${ROOT}/src/cli/main.ts`],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    minify: true,
    legalComments: 'eof',
    logLevel: 'warning',
    define: { REGISTRY_BROKER_VERSION: JSON.stringify(version) },
    // The Azure SDKs are CommonJS and require() Node's built-ins; an ES module has no require of its own.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await bundleCli(process.argv[2] ?? `${ROOT}/dist/registry-broker.mjs`);
}
