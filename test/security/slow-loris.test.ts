import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { MAGIC, T, encodeFrame } from '../../src/receiver/frame.js';
import { goodUpload, listTree, rawTls, startRig, untilClosed } from './harness.js';

const PRE_AUTH = 400;
const IDLE = 500;

/** Writes one byte at a time with a pause, until the receiver closes; returns how many it managed to send. */
async function trickle(s: { write: (b: Buffer) => boolean; destroyed: boolean }, bytes: Buffer, pauseMs: number): Promise<number> {
  let i = 0;
  for (; i < bytes.length && !s.destroyed; i++) {
    s.write(bytes.subarray(i, i + 1));
    await sleep(pauseMs);
  }
  return i;
}

test('slow senders are dropped (pre-auth deadline, idle timeout) while a good sender completes', async (t) => {
  const rig = await startRig(t, { preAuthTimeoutMs: PRE_AUTH, idleTimeoutMs: IDLE });
  // 1: TCP, no TLS handshake at all
  const tcp = tcpConnect({ host: '127.0.0.1', port: rig.port });
  const tcpClosed = new Promise<void>((r) => tcp.on('close', () => r()));
  tcp.on('error', () => undefined);
  // 2: TLS, then silence
  const silent = await rawTls(rig.port);
  const silentClosed = untilClosed(silent);
  // 3: TLS, HELLO one byte per 50 ms (never completes within the deadline)
  const slowHello = await rawTls(rig.port);
  const slowHelloClosed = untilClosed(slowHello);
  const hello = Buffer.concat([MAGIC, encodeFrame(T.HELLO, { v: 1, token: rig.token })]);
  const sent = trickle(slowHello, hello, 50);
  // 4: authenticated, then a DATA frame one byte per 50 ms: bytes arrive, but no complete frame
  const slowData = await rawTls(rig.port);
  const slowDataClosed = untilClosed(slowData);
  slowData.write(Buffer.concat([hello, encodeFrame(T.OPEN, { role: 'evidence', meta: { host: 'loris', format: 'raw', layers: [] } }), encodeFrame(T.DATA, Buffer.alloc(100, 7))]));
  const sentData = trickle(slowData, encodeFrame(T.DATA, Buffer.alloc(4000, 8)), 50);

  await goodUpload(rig, 4 << 20, 51);
  await Promise.all([tcpClosed, silentClosed, slowHelloClosed, slowDataClosed]);
  assert.ok((await sent) < hello.length, 'the slow HELLO was cut off');
  assert.ok((await sentData) < 4005, 'the slow DATA frame was cut off');
  const loris = listTree(rig.dir).filter((p) => p.includes('loris-'));
  assert.equal(loris.length, 2, loris.join());
  const rec = JSON.parse(readFileSync(join(rig.dir, loris.find((p) => p.endsWith('.upload.json'))!), 'utf8')) as { status: string; reason: string; bytes: string };
  assert.equal(rec.status, 'INCOMPLETE');
  assert.match(rec.reason, /idle/);
  assert.equal(rec.bytes, '100');
});

test('a slow but honest sender survives the idle timeout: PING keeps it alive', async (t) => {
  const rig = await startRig(t, { idleTimeoutMs: IDLE });
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  const sink = await tt.openEvidence({ host: 'patient', source: 's', format: 'raw', layers: [] });
  for (let i = 0; i < 3; i++) {
    await sink.write(Buffer.alloc(1000, i));
    await sleep(IDLE * 2); // like --rate-limit, or a slow source
  }
  const r = await sink.finish();
  assert.equal(r.complete, true);
  assert.equal(r.bytes, 3000n);
  await tt.close();
});
