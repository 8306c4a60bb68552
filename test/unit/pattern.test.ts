import { describe, expect, it } from 'vitest';
import { isRepositoryPattern, matchesRepository } from '../../src/grants/pattern.js';

describe('matchesRepository', () => {
  it.each([
    ['acme/web', 'acme/web', true],
    ['acme/web', 'acme/web2', false],
    ['acme/web', 'acme', false],
    ['acme/web-*', 'acme/web-api', true],
    ['acme/web-*', 'acme/web-', true],
    ['acme/web-*', 'acme/web', false],
    ['acme/web-*', 'acme/web-api/sub', false],
    ['acme/*', 'acme/web', true],
    ['acme/*', 'acme/web/sub', false],
    ['acme/*', 'acme', false],
    ['acme/**', 'acme/web', true],
    ['acme/**', 'acme/web/sub/deeper', true],
    // A trailing ** matches one or more segments (issue 9 L7): the bare prefix needs a grant of its own.
    ['acme/**', 'acme', false],
    ['acme/**/web', 'acme/web', true],
    ['acme/**', 'acmex/web', false],
    ['**/web', 'a/b/c/web', true],
    ['**/web', 'web', true],
    ['**/web', 'a/b/c/webx', false],
    ['a/**/z', 'a/z', true],
    ['a/**/z', 'a/b/c/z', true],
    ['a/**/z', 'a/b/c/y', false],
    ['*/*', 'a/b', true],
    ['*/*', 'a', false],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['*', 'anything', true],
    ['*', 'two/segments', false],
    ['**', 'two/segments', true],
    ['acme.web', 'acmexweb', false],
  ])('%s vs %s → %s', (pattern, name, expected) => {
    expect(matchesRepository(pattern, name)).toBe(expected);
  });

  it('stays fast on a pattern built to backtrack', () => {
    const pattern = Array.from({ length: 50 }, () => '**').join('/') + '/x';
    const name = Array.from({ length: 200 }, () => 'a').join('/');
    expect(matchesRepository(pattern, name)).toBe(false);
    expect(matchesRepository(`${'*a'.repeat(100)}b`, 'a'.repeat(250))).toBe(false);
  });

  it('treats pattern text literally (no regex semantics)', () => {
    expect(matchesRepository('a.c', 'abc')).toBe(false);
    expect(matchesRepository('a-b', 'a-b')).toBe(true);
  });
});

describe('isRepositoryPattern', () => {
  it.each(['acme/web', 'acme/*', 'acme/**', '**', 'a/**/b', 'acme/web-*', 'a.b_c-d'])('accepts %s', (pattern) => {
    expect(isRepositoryPattern(pattern)).toBe(true);
  });
  it.each(['', 'Acme/web', 'acme//web', 'acme/web/', 'a**', 'acme/w?b', 'acme/[ab]', 'acme/web$', 'a'.repeat(256), 'acme/(web)'])('refuses %j', (pattern) => {
    expect(isRepositoryPattern(pattern)).toBe(false);
  });
});
