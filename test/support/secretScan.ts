/**
 * Looks for secrets where none may be: log lines, audit rows, problem bodies. A secret counts as
 * leaked when it, or a recognisable piece of it (a JWT's signature, the first half of a long
 * password), appears anywhere. Reports say what leaked and where, never the value.
 */
export interface Secret {
  what: string;
  value: string;
}

export interface Haystack {
  where: string;
  text: string;
}

/** Shorter values are not secrets worth the name, and would match by chance. */
const MIN_SECRET_LENGTH = 8;
/**
 * Fields that carry a credential. Not `tokenFingerprint`, `credentialSecret`, `apiSecret` and the
 * like: fingerprints and the names of Key Vault secrets are safe to show.
 */
const SECRET_FIELD = /^(token|access_token|refresh_token|registrytoken|password|secret|auth)$/i;

function pieceOf(value: string): string {
  const parts = value.split('.');
  if (parts.length === 3 && parts[2]!.length >= 16) return parts[2]!;
  return value.length >= 24 ? value.slice(0, Math.ceil(value.length / 2)) : value;
}

/** The secret-bearing string fields of a JSON document (any depth) as [name, value], or undefined if it is not JSON. */
export function secretFields(text: string): [string, string][] | undefined {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return undefined;
  }
  const found: [string, string][] = [];
  const walk = (value: unknown, key: string) => {
    if (typeof value === 'string') {
      if (SECRET_FIELD.test(key)) found.push([key, value]);
    } else if (Array.isArray(value)) {
      for (const item of value) walk(item, key);
    } else if (value !== null && typeof value === 'object') {
      for (const [name, item] of Object.entries(value)) walk(item, name);
    }
  };
  walk(document, '');
  return found;
}

export function findLeaks(secrets: Secret[], haystacks: Haystack[]): string[] {
  // One joined text and one search per secret: files mint thousands of tokens and write thousands of rows.
  const starts: number[] = [];
  let joined = '';
  for (const haystack of haystacks) {
    starts.push(joined.length);
    joined += `${haystack.text}\u0000`;
  }
  const whereAt = (index: number) => {
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (starts[middle]! <= index) low = middle;
      else high = middle - 1;
    }
    return haystacks[low]!.where;
  };
  const leaks: string[] = [];
  const seen = new Set<string>();
  for (const secret of secrets) {
    if (secret.value.length < MIN_SECRET_LENGTH || seen.has(secret.value)) continue;
    seen.add(secret.value);
    const index = joined.indexOf(pieceOf(secret.value));
    if (index !== -1) leaks.push(`${secret.what} appears in ${whereAt(index)}`);
  }
  return leaks;
}
