import { describe, expect, it } from 'vitest';
import type { CallerIdentity } from '../../src/auth/callerToken.js';
import { decide } from '../../src/grants/decision.js';
import { grantBodySchema, type Grant } from '../../src/grants/model.js';

const caller: CallerIdentity = {
  tenantId: 't',
  objectId: '11111111-1111-1111-1111-111111111111',
  appId: '22222222-2222-2222-2222-222222222222',
  roles: [],
  tokenVersion: '1.0',
};
const now = new Date('2026-11-23T12:00:00Z');
const grant = (fields: Partial<Grant> & { id: string }): Grant =>
  grantBodySchema.parse({ subjects: [{ objectId: caller.objectId }], registry: 'docker.io', repositories: ['acme/web'], actions: ['pull'], ...fields });

describe('decide', () => {
  it('denies by default', () => {
    expect(decide(caller, 'docker.io', [{ repository: 'acme/web', actions: ['pull'] }], [], now)).toEqual({ allowed: false, notGranted: ['repository:acme/web:pull'] });
  });

  it('allows exactly what a grant covers, and names the grant', () => {
    const decision = decide(caller, 'docker.io', [{ repository: 'acme/web', actions: ['pull'] }], [grant({ id: 'g' })], now);
    expect(decision).toEqual({ allowed: true, grantIds: ['g'], maxTtlSeconds: undefined });
  });

  it('caps the lifetime at the time left before a grant\'s notAfter (issue 9 L3)', () => {
    const ending = grant({ id: 'ending', notAfter: new Date(now.getTime() + 10_000).toISOString() });
    expect(decide(caller, 'docker.io', [{ repository: 'acme/web', actions: ['pull'] }], [ending], now)).toMatchObject({ allowed: true, maxTtlSeconds: 10 });
    const both = grant({ id: 'both', maxTtlSeconds: 600, notAfter: new Date(now.getTime() + 3600_000).toISOString() });
    expect(decide(caller, 'docker.io', [{ repository: 'acme/web', actions: ['pull'] }], [both], now)).toMatchObject({ maxTtlSeconds: 600 });
    // Of two grants that each cover the request, the one allowing the longer lifetime is used.
    const open = grant({ id: 'open', maxTtlSeconds: 900 });
    expect(decide(caller, 'docker.io', [{ repository: 'acme/web', actions: ['pull'] }], [ending, open], now)).toMatchObject({ grantIds: ['open'], maxTtlSeconds: 900 });
  });

  it('lists only the missing actions', () => {
    const decision = decide(caller, 'docker.io', [{ repository: 'acme/web', actions: ['pull', 'push', 'delete'] }], [grant({ id: 'g', actions: ['pull', 'push'] })], now);
    expect(decision).toEqual({ allowed: false, notGranted: ['repository:acme/web:delete'] });
  });

  it.each([
    ['another subject', { subjects: [{ objectId: '33333333-3333-3333-3333-333333333333' }] }],
    ['another registry', { registry: 'ghcr.io' }],
    ['disabled', { enabled: false }],
    ['past notAfter', { notAfter: '2026-11-23T11:59:59Z' }],
    ['another repository', { repositories: ['acme/api'] }],
  ])('ignores a grant for %s', (_name, fields) => {
    const decision = decide(caller, 'docker.io', [{ repository: 'acme/web', actions: ['pull'] }], [grant({ id: 'g', ...fields } as Grant)], now);
    expect(decision.allowed).toBe(false);
  });

  it('matches a subject by client ID', () => {
    const g = grant({ id: 'g', subjects: [{ appId: caller.appId! }] });
    expect(decide(caller, 'docker.io', [{ repository: 'acme/web', actions: ['pull'] }], [g], now).allowed).toBe(true);
  });

  it('combines grants across scopes and takes the tightest lifetime of those used', () => {
    const decision = decide(
      caller,
      'docker.io',
      [{ repository: 'acme/web', actions: ['pull'] }, { repository: 'acme/base', actions: ['pull'] }],
      [grant({ id: 'web', maxTtlSeconds: 900 }), grant({ id: 'base', repositories: ['acme/base'], maxTtlSeconds: 300 })],
      now,
    );
    expect(decision).toEqual({ allowed: true, grantIds: ['base', 'web'], maxTtlSeconds: 300 });
  });
});
