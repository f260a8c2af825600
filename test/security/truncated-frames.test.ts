import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAGIC, T, encodeFrame } from '../../src/receiver/frame.js';
import { goodUpload, listTree, rawTls, startRig, untilClosed, type Rig } from './harness.js';

async function sendAndHangUp(rig: Rig, bytes: Buffer): Promise<void> {
  const s = await rawTls(rig.port);
  const closed = untilClosed(s);
  s.end(bytes);
  await closed;
}

async function quiet(rig: Rig): Promise<void> {
  for (let i = 0; i < 500 && rig.rcv.openConnections > 0; i++) await sleep(10);
}

test('a stream cut inside a frame: .partial with exactly the complete DATA, INCOMPLETE record, never published', async (t) => {
  const rig = await startRig(t);
  const hello = Buffer.concat([MAGIC, encodeFrame(T.HELLO, { v: 1, token: rig.token })]);
  const open = encodeFrame(T.OPEN, { role: 'evidence', meta: { host: 'cut', format: 'lime', layers: [] } });
  const d1 = encodeFrame(T.DATA, Buffer.alloc(3000, 1));
  const d2 = encodeFrame(T.DATA, Buffer.alloc(1000, 2));
  const end = encodeFrame(T.END, { bytes: '4000', sha256: '0'.repeat(64) });
  const good = goodUpload(rig, 4 << 20, 41);
  const cuts = [
    Buffer.concat([hello, open, d1, d2.subarray(0, 500)]), // inside a DATA payload
    Buffer.concat([hello, open, d1, d2.subarray(0, 3)]), // inside a header
    Buffer.concat([hello, open, d1, d2, end.subarray(0, end.length - 1)]), // inside END
  ];
  const expectBytes = [3000, 3000, 4000];
  for (const c of cuts) await sendAndHangUp(rig, c);
  // before authentication completes: nothing at all
  await sendAndHangUp(rig, Buffer.concat([MAGIC, encodeFrame(T.HELLO, { v: 1, token: rig.token }).subarray(0, 20)]));
  await good;
  await quiet(rig);
  const recs = listTree(rig.dir)
    .filter((p) => p.includes('cut-') && p.endsWith('.upload.json'))
    .map((p) => JSON.parse(readFileSync(join(rig.dir, p), 'utf8')) as { status: string; bytes: string; path: string; reason: string });
  assert.equal(recs.length, 3);
  assert.deepEqual(recs.map((r) => Number(r.bytes)).sort(), [...expectBytes].sort());
  for (const r of recs) {
    assert.equal(r.status, 'INCOMPLETE');
    assert.match(r.reason, /closed/);
    assert.ok(r.path.endsWith('.partial'));
    assert.equal(statSync(join(rig.dir, r.path)).size, Number(r.bytes));
  }
  assert.equal(listTree(rig.dir).filter((p) => p.includes('cut-') && p.endsWith('.lime')).length, 0);
});

test('a correct trailer with the wrong digest is INCOMPLETE, and the sender is told', async (t) => {
  const rig = await startRig(t);
  const s = await rawTls(rig.port);
  const closed = untilClosed(s);
  s.write(Buffer.concat([
    MAGIC,
    encodeFrame(T.HELLO, { v: 1, token: rig.token }),
    encodeFrame(T.OPEN, { role: 'evidence', meta: { host: 'lie', format: 'raw', layers: [] } }),
    encodeFrame(T.DATA, Buffer.from('hello')),
    encodeFrame(T.END, { bytes: '5', sha256: 'f'.repeat(64) }),
  ]));
  await sleep(200);
  s.end();
  const got = (await closed).toString('latin1');
  assert.match(got, /"status":"INCOMPLETE"/);
  assert.match(got, /SHA-256 differs/);
  assert.equal(listTree(rig.dir).filter((p) => p.endsWith('.raw')).length, 0);
});
