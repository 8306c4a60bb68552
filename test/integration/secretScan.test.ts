import { expect, it } from 'vitest';
import { createTableClient } from '../../src/tables.js';
import { startHarness } from '../support/harness.js';

/** The scan every harness runs at close() must catch what it promises to catch, wherever it hides. */
it('close() fails when a handed-out token, a stored password or a managed-identity token leaks', async () => {
  const h = await startHarness();
  const caller = h.sandbox.identity('workload');
  await h.grant({ id: 'web', subjects: [{ objectId: caller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
  const callerToken = await h.tokenFor(caller);
  const issued = (await (await h.post('/v1/tokens', { registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] }, callerToken)).json()) as { token: string };
  expect(issued.token).toBeTruthy();

  // Each leak the way a careless change would make it: a log field, half a password, an audit column.
  h.sandbox.services.log.info('minted', { upstream: issued.token });
  h.sandbox.services.log.warn('credential refused', { hint: h.sandbox.registryPassword.slice(0, 20) });
  const table = createTableClient(h.sandbox.config.tables, 'issuances', { getToken: async () => null });
  await table.createEntity({ partitionKey: 'leak', rowKey: '1', note: `Bearer ${callerToken}` });

  const closed = h.close();
  await expect(closed).rejects.toThrow(/a credential the broker handed out \(token\) appears in log line/);
  await expect(closed).rejects.toThrow(/the stored registry password appears in log line/);
  await expect(closed).rejects.toThrow(/a managed-identity token appears in table row issuances\/leak\/1/);
  // The report names what and where, never the value itself.
  await expect(closed).rejects.not.toThrow(issued.token.split('.')[2]!);
});
