import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { MAGIC, MAX_JSON, T, encodeFrame } from '../../src/receiver/frame.js';
import { Prng } from '../helpers/prng.js';
import { listTree, rawTls, refusalIn, startRig, untilClosed } from './harness.js';

/**
 * Review finding 1 (critical): HELLO.v of ~16 KiB was echoed into the REFUSE message, the REFUSE then exceeded the
 * JSON cap, encodeFrame threw on a promise chain without a catch, and the unhandled rejection killed the receiver
 * with an authenticated upload half-written beside it.
 */
test('a huge or odd HELLO.v gets a bounded coded refusal; an upload running alongside completes', { timeout: 30_000 }, async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  const rig = await startRig(t);

  const victim = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  const sink = await victim.openEvidence({ host: 'victim', source: 's', format: 'raw', layers: [] });
  const data = new Prng(3).bytes(300_000);
  await sink.write(data.subarray(0, 100_000));

  const hostile: unknown[] = ['A'.repeat(MAX_JSON - 16), '\u001b]0;pwned\u0007' + 'B'.repeat(200), { toString: 1, valueOf: 2 }, ['x'], 2];
  for (const v of hostile) {
    const s = await rawTls(rig.port);
    const closed = untilClosed(s);
    const body = Buffer.from(JSON.stringify({ v }).slice(0, MAX_JSON));
    const h = Buffer.from([T.HELLO, 0, 0, 0, 0]);
    h.writeUInt32BE(body.length, 1);
    s.write(Buffer.concat([MAGIC, h, body]));
    const r = refusalIn(await closed);
    assert.equal(r?.code, 'E_PROTOCOL', JSON.stringify(v).slice(0, 80));
    assert.match(r.message, /protocol version .* is not supported/);
    assert.ok(r.message.length < 200, `message of ${r.message.length} characters`);
    assert.ok(!/[\u0000-\u001f]/.test(r.message), 'control characters are escaped');
  }

  await sink.write(data.subarray(100_000));
  const receipt = await sink.finish();
  assert.equal(receipt.complete, true);
  await victim.close();
  assert.equal(rig.records.length, 1);
  assert.equal(rig.records[0]!.status, 'COMPLETE');
  assert.equal(rig.records[0]!.receiverSha256, createHash('sha256').update(data).digest('hex'));
  assert.ok(listTree(rig.dir).some((p) => p.endsWith('.raw.upload.json')));
  assert.deepEqual(unhandled, []);
});

test('a case label echoed back from OPEN.meta is cut and escaped too', async (t) => {
  const rig = await startRig(t);
  const s = await rawTls(rig.port);
  const closed = untilClosed(s);
  s.write(Buffer.concat([MAGIC, encodeFrame(T.HELLO, { v: 1, token: rig.token })]));
  s.write(encodeFrame(T.OPEN, { role: 'evidence', meta: { host: 'h', format: 'raw', case: 'Z'.repeat(10_000) } }));
  const r = refusalIn(await closed);
  assert.equal(r?.code, 'E_AUTH');
  assert.ok(r.message.length < 200, r.message.slice(0, 100));
});
