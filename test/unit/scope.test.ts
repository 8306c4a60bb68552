import { describe, expect, it } from 'vitest';
import { formatScope, isRepositoryName, normalizeScopes, parseScope } from '../../src/registries/scope.js';

describe('parseScope', () => {
  it.each([
    ['repository:acme/web:pull', 'acme/web', ['pull']],
    ['repository:acme/web:push,pull', 'acme/web', ['pull', 'push']],
    ['repository:library/alpine:pull,pull', 'library/alpine', ['pull']],
    ['repository:a.b/c_d/e__f/g--h:delete', 'a.b/c_d/e__f/g--h', ['delete']],
  ])('%s', (text, repository, actions) => {
    expect(parseScope(text)).toEqual({ ok: true, scope: { repository, actions } });
  });

  it.each([
    'repository:Acme:pull',
    'repository:a:pull:push',
    'repository:a/../b:pull',
    'repository:a//b:pull',
    'repository:-a:pull',
    'repository:a-:pull',
    'repository:a___b:pull',
    'repository:a:',
    'repository:a:*',
    'repository:a:pull,',
    'registry:catalog:*',
    'repository::pull',
    `repository:${'a'.repeat(256)}:pull`,
    '',
  ])('refuses %j', (text) => {
    expect(parseScope(text).ok).toBe(false);
  });
});

describe('names and normalisation', () => {
  it('limits names to 255 characters', () => {
    expect(isRepositoryName('a'.repeat(255))).toBe(true);
    expect(isRepositoryName('a'.repeat(256))).toBe(false);
  });

  it('merges and orders scopes', () => {
    const scopes = normalizeScopes([
      { repository: 'b', actions: ['push'] },
      { repository: 'a', actions: ['pull'] },
      { repository: 'b', actions: ['pull'] },
    ]);
    expect(scopes.map(formatScope)).toEqual(['repository:a:pull', 'repository:b:pull,push']);
  });
});
