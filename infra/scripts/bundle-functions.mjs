#!/usr/bin/env node
// The Functions entry (src/index.ts) as one ES module plus the chunks of what it imports on demand,
// written to <out-dir>/index.js (package.json "main" is dist/index.js). A cold worker then compiles
// one file instead of resolving and loading some 770 modules: the import takes about half the
// time (issue 14). Minified, since V8 parses all of it before the first answer (names kept: errors
// name themselves after their class); the source map beside it maps it back.
// Used by `npm run build`, infra/scripts/stage-package.mjs and the benchmark.
// Usage: node infra/scripts/bundle-functions.mjs [out-dir] (default dist)
import { rmSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Left as imports of node_modules, so the deployment package still carries them:
 * - @azure/functions-core is the worker's own; @azure/functions is the programming model the worker
 *   (and the benchmark's stand-in host) talks to, already one file;
 * - @azure/monitor-opentelemetry is imported only when telemetry is configured, and its
 *   instrumentations patch modules as Node's require() loads them;
 * - @azure/core-tracing holds the Azure SDKs' instrumenter, which the Azure SDK instrumentation sets
 *   on the copy that require() finds: bundled, the SDKs would keep a copy of their own and no spans.
 * @opentelemetry/api is bundled: every copy of it keeps the registered meter and tracer providers in
 * one global (keyed by its major version), so the broker's copy sees the exporter's providers, and
 * the bundled copy loads in a fraction of the time its 60-odd files take.
 */
const EXTERNAL = ['@azure/functions-core', '@azure/functions', '@azure/monitor-opentelemetry', '@azure/core-tracing'];

/** Bundles `<root>/src/index.ts` into `outdir`. */
export async function bundleFunctions(outdir, root = ROOT) {
  const { metafile } = await build({
    entryPoints: [join(root, 'src/index.ts')],
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: EXTERNAL,
    minify: true,
    keepNames: true,
    sourcemap: true,
    legalComments: 'eof',
    logLevel: 'warning',
    // The Azure SDKs are CommonJS and require() Node's built-ins; an ES module has no require of its own.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    metafile: true,
  });
  // `import { z } from 'zod'` hands the bundle zod's namespace as a value, and with it all of zod's
  // locales (some 350 kB of minified code every cold worker parses); `import * as z` lets esbuild
  // keep only what the broker uses.
  const locales = Object.values(metafile.outputs).flatMap((output) => Object.keys(output.inputs).filter((input) => output.inputs[input].bytesInOutput > 0 && /\/zod\/v4\/locales\/(?!en\.js$|index\.js$)/.test(input)));
  if (locales.length > 0) throw new Error(`the bundle carries ${locales.length} zod locales: import zod as \`import * as z from 'zod'\`, never \`import { z }\``);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = resolve(ROOT, process.argv[2] ?? 'dist');
  // Emptied first (never the project itself or a folder above it): no chunk of an earlier build stays.
  if (ROOT === out || ROOT.startsWith(out + sep)) throw new Error(`refusing to bundle into ${out}`);
  rmSync(out, { recursive: true, force: true });
  await bundleFunctions(out);
}
