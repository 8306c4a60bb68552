/**
 * Reads a web stream as UTF-8 text, refusing it as soon as it passes `limit` bytes: a body without a
 * length up front (chunked) is never read into memory beyond the limit. Leaving the loop early
 * cancels the stream.
 */
export async function readAtMost(stream: AsyncIterable<Uint8Array> | null | undefined, limit: number, tooLarge: () => Error): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream ?? []) {
    size += chunk.byteLength;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
