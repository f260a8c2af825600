import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { issueToken, revokeToken } from '../../src/receiver/tokens.js';
import { expectCodeAsync } from '../helpers/expect-code.js';
import { goodUpload, listTree, startRig } from './harness.js';

test('an expired token is refused (E_AUTH, "expired"), no file; a valid one meanwhile works', async (t) => {
  const rig = await startRig(t);
  const { token } = await issueToken(rig.tokensPath, { case: 'CASE-1', ttlMs: 60_000, now: new Date(Date.now() - 120_000) });
  const good = goodUpload(rig, 1 << 20, 9);
  const e = await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token }), 'E_AUTH');
  assert.match(e.message, /expired/);
  await good;
  assert.deepEqual(listTree(rig.dir).filter((p) => !p.includes('good-host')), ['CASE-1']);
});

test('revocation takes effect on a running receiver, for new connections', async (t) => {
  const rig = await startRig(t);
  const { token, entry } = await issueToken(rig.tokensPath, { case: 'CASE-1', ttlMs: 60_000 });
  const before = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token });
  await before.close();
  await revokeToken(rig.tokensPath, entry.id);
  const e = await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token }), 'E_AUTH');
  assert.match(e.message, /revoked/);
  assert.deepEqual(listTree(rig.dir), []);
  // other tokens are untouched by the rewrite
  await goodUpload(rig, 1000, 1);
});
