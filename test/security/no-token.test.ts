import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { MAGIC, T, encodeFrame } from '../../src/receiver/frame.js';
import { expectCodeAsync } from '../helpers/expect-code.js';
import { goodUpload, listTree, rawTls, refusalIn, startRig, untilClosed } from './harness.js';

test('no credential: coded E_AUTH refusal, connection closed, no file; a good sender meanwhile completes', async (t) => {
  const rig = await startRig(t);
  const good = goodUpload(rig, 3 << 20, 5);
  const attempts: [string, Buffer[]][] = [
    ['E_AUTH', [MAGIC, encodeFrame(T.HELLO, { v: 1 })]],
    ['E_AUTH', [MAGIC, encodeFrame(T.HELLO, { v: 1, case: 'CASE-1' })]],
    // skipping HELLO does not skip authentication: before it only HELLO and PING frames are read at all
    ['E_PROTOCOL', [MAGIC, encodeFrame(T.OPEN, { role: 'evidence', meta: { host: 'x', format: 'raw', layers: [] } }), encodeFrame(T.DATA, Buffer.alloc(1000, 1))]],
    ['E_PROTOCOL', [MAGIC, encodeFrame(T.DATA, Buffer.alloc(1000, 1))]],
    ['E_PROTOCOL', [MAGIC, encodeFrame(T.PING), encodeFrame(T.END, { bytes: '0', sha256: '0'.repeat(64) })]],
  ];
  for (const [code, frames] of attempts) {
    const s = await rawTls(rig.port);
    const closed = untilClosed(s);
    s.write(Buffer.concat(frames));
    const r = refusalIn(await closed);
    assert.equal(r?.code, code, JSON.stringify(r));
    if (code === 'E_PROTOCOL') assert.match(r.message, /before authentication/);
  }
  await good;
  assert.deepEqual(listTree(rig.dir).filter((p) => !p.includes('good-host')), ['CASE-1']);
});

test('unknown and malformed tokens map to E_AUTH at the sender, with the receiver message', async (t) => {
  const rig = await startRig(t);
  const forged = rig.token.slice(0, -2) + (rig.token.endsWith('AA') ? 'BB' : 'AA');
  for (const token of [forged, 'mdt_0123456789abcdef_' + 'x'.repeat(43), 'Bearer abc', 'x'.repeat(300)]) {
    const e = await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token }), 'E_AUTH');
    assert.match(e.message, /receiver refused/);
  }
  assert.deepEqual(listTree(rig.dir), []);
  assert.equal(rig.records.length, 0);
});

test('a token for one case cannot upload into another', async (t) => {
  const rig = await startRig(t);
  const e = await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token, case: 'OTHER' }), 'E_AUTH');
  assert.match(e.message, /CASE-1/);
  const ok = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  await expectCodeAsync(ok.openEvidence({ host: 'h', source: 's', format: 'raw', layers: [], case: 'OTHER' }), 'E_AUTH');
  await ok.close();
  assert.deepEqual(listTree(rig.dir), []);
});
