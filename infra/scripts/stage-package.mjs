#!/usr/bin/env node
// Stages what Azure Functions runs, and nothing else, in one folder (default .deploy/; azure.yaml's
// `dist` zips it): the server type-checked and bundled into dist/ (infra/scripts/bundle-functions.mjs;
// no sandbox, no CLI), host.json, a package.json without dev dependencies or scripts, and the
// production dependencies copied from node_modules as package-lock.json lists them (the lock's `dev`
// flag, as `npm ci --omit=dev` reads it), without the files Node never loads. The bundle leaves a few
// of them external, and the Application Insights exporter is loaded from there.
// Prints the staged size. Usage: node infra/scripts/stage-package.mjs [out-dir]
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleFunctions } from './bundle-functions.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(root, process.argv[2] ?? '.deploy');
// It is emptied first: never the project itself or a folder above it.
if (root === out || root.startsWith(out + sep)) throw new Error(`refusing to stage into ${out}`);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

execFileSync(join(root, 'node_modules/.bin/tsc'), ['-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
await bundleFunctions(join(out, 'dist'), root);

cpSync(join(root, 'host.json'), join(out, 'host.json'));
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const { name, version, description, type, main, engines, dependencies } = manifest;
writeFileSync(join(out, 'package.json'), `${JSON.stringify({ name, version, private: true, description, type, main, engines, dependencies }, null, 2)}\n`);

const NEVER_LOADED = /(\.d\.[cm]?ts|\.[cm]?ts|\.map)$/;
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
let packages = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  if (!path.startsWith('node_modules/') || entry.dev || entry.link) continue;
  const from = join(root, path);
  // An optional dependency for another platform is in the lock but not on disk.
  if (!existsSync(from)) {
    if (entry.optional || entry.devOptional) continue;
    throw new Error(`${path} is a production dependency but is not installed: run npm ci first`);
  }
  // Nested node_modules are lock entries of their own, staged (or left out as dev) by themselves.
  // Type declarations, TypeScript sources and source maps never load at run time: more than half the bytes.
  cpSync(from, join(out, path), {
    recursive: true,
    filter: (source) => relative(from, source).split(sep)[0] !== 'node_modules' && !NEVER_LOADED.test(source),
  });
  packages++;
}

function size(dir) {
  let bytes = 0;
  let files = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = size(path);
      bytes += inner.bytes;
      files += inner.files;
    } else {
      bytes += statSync(path).size;
      files++;
    }
  }
  return { bytes, files };
}
const staged = size(out);
console.log(JSON.stringify({ staged: relative(root, out) || out, packages, files: staged.files, megabytes: Math.round(staged.bytes / 1e5) / 10 }));
