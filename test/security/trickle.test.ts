import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAGIC, T, dataHeader, encodeFrame } from '../../src/receiver/frame.js';
import { rawTls, refusalIn, startRig } from './harness.js';

/** Review (low): a sender trickling a frame just inside the idle timeout held its session for ever. */
test('an authenticated upload below --min-rate after the grace period ends INCOMPLETE (E_LIMIT)', { timeout: 60_000 }, async (t) => {
  const rig = await startRig(t, { minRate: 1 << 20, minRateGraceMs: 300 });
  const s = await rawTls(rig.port);
  const parts: Buffer[] = [];
  let closed = false;
  s.on('data', (d: Buffer) => parts.push(d));
  s.on('error', () => undefined);
  s.on('close', () => (closed = true));
  s.write(Buffer.concat([MAGIC, encodeFrame(T.HELLO, { v: 1, token: rig.token }), encodeFrame(T.OPEN, { role: 'evidence', meta: { host: 'slow', format: 'raw' } })]));
  let sent = 0;
  // 10 bytes every 50 ms is far below 1 MiB/s; a receiver without a floor never closes (the loop gives up)
  for (let i = 0; i < 400 && !closed; i++) {
    s.write(Buffer.concat([dataHeader(10), Buffer.alloc(10, 7)]));
    sent++;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(closed, `still open after ${sent} frames`);
  const r = refusalIn(Buffer.concat(parts));
  assert.equal(r?.code, 'E_LIMIT', JSON.stringify(r));
  assert.match(r.message, /slower than/);
  assert.equal(rig.records.length, 1);
  assert.equal(rig.records[0]!.status, 'INCOMPLETE');
});
