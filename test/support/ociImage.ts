import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeOciLayout } from '../../src/sandbox/ociImage.js';

/** A fresh one-layer OCI image layout in a temporary directory. */
export async function writeOciImage(label: string): Promise<string> {
  return writeOciLayout(await mkdtemp(join(tmpdir(), 'registry-broker-image-')), label);
}
