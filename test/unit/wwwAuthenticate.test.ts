import { describe, expect, it } from 'vitest';
import { parseWwwAuthenticate } from '../../src/registries/wwwAuthenticate.js';

describe('parseWwwAuthenticate', () => {
  it('reads Docker Hub\'s challenge', () => {
    const parsed = parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"');
    expect(parsed?.scheme).toBe('bearer');
    expect(parsed?.params.get('realm')).toBe('https://auth.docker.io/token');
    expect(parsed?.params.get('service')).toBe('registry.docker.io');
  });

  it('handles spaces, token values and escapes', () => {
    const parsed = parseWwwAuthenticate('Bearer  realm="https://x/token", service=ghcr.io ,scope="repository:a\\"b:pull"');
    expect(parsed?.params.get('service')).toBe('ghcr.io');
    expect(parsed?.params.get('scope')).toBe('repository:a"b:pull');
  });

  it.each(['', 'Bearer realm="unterminated', 'Bearer =x', 'Bearer realm', `Bearer realm="${'x'.repeat(5000)}"`])('refuses %j', (header) => {
    expect(parseWwwAuthenticate(header)).toBeUndefined();
  });
});
