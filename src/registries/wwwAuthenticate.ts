/**
 * Parses one `WWW-Authenticate` challenge (RFC 9110 §11.6.1): `Bearer realm="…",service="…"`.
 * A small hand-written scanner: the header comes from a remote registry and is untrusted.
 */
export interface ParsedChallenge {
  scheme: string;
  params: Map<string, string>;
}

const MAX_HEADER_LENGTH = 4096;

export function parseWwwAuthenticate(header: string): ParsedChallenge | undefined {
  if (header.length > MAX_HEADER_LENGTH) return undefined;
  let i = 0;
  const skipSpace = () => {
    while (i < header.length && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < header.length && /[A-Za-z0-9!#$%&'*+.^_`|~-]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  skipSpace();
  const scheme = readToken();
  if (!scheme) return undefined;
  const params = new Map<string, string>();
  while (i < header.length) {
    skipSpace();
    if (header[i] === ',') {
      i++;
      continue;
    }
    const name = readToken().toLowerCase();
    if (!name) return undefined;
    skipSpace();
    if (header[i] !== '=') return undefined;
    i++;
    skipSpace();
    let value = '';
    if (header[i] === '"') {
      i++;
      while (i < header.length && header[i] !== '"') {
        if (header[i] === '\\' && i + 1 < header.length) i++;
        value += header[i];
        i++;
      }
      if (header[i] !== '"') return undefined;
      i++;
    } else {
      value = readToken();
    }
    params.set(name, value);
  }
  return { scheme: scheme.toLowerCase(), params };
}
