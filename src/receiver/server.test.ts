import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { TlsTarget } from '../delivery/tls-target.js';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { listTree, startRig } from '../../test/security/harness.js';

test('--max-connections: the extra sender gets a coded E_LIMIT refusal; a freed slot is usable again', async (t) => {
  const rig = await startRig(t, { maxConnections: 2 });
  const a = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  const b = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  const e = await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token, attempts: 1 }), 'E_LIMIT');
  assert.match(e.message, /busy/);
  assert.equal(rig.rcv.stats.busy, 1);
  await a.close();
  for (let i = 0; i < 200 && rig.rcv.activeSessions > 1; i++) await new Promise((r) => setTimeout(r, 10));
  const c = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  await Promise.all([b.close(), c.close()]);
});

test('close(): open uploads end INCOMPLETE with a record, the sender is told, nothing is published', async (t) => {
  const rig = await startRig(t);
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  const sink = await tt.openEvidence({ host: 'open', source: 's', format: 'raw', layers: [] });
  await sink.write(Buffer.alloc(12345, 1));
  // the sender's bytes are in flight; wait until the receiver has them all
  for (let i = 0; i < 500 && rig.rcv.stats.applicationBytes < 12345; i++) await new Promise((r) => setTimeout(r, 10));
  await rig.rcv.close();
  const e = await expectCodeAsync(sink.finish(), 'E_REMOTE');
  assert.match(e.message, /shutting down/);
  await tt.close();
  assert.equal(rig.records.length, 1);
  assert.equal(rig.records[0]!.status, 'INCOMPLETE');
  assert.equal(rig.records[0]!.bytes, '12345');
  const files = listTree(rig.dir);
  assert.ok(files.some((f) => f.endsWith('.raw.partial')));
  assert.ok(!files.some((f) => f.endsWith('.raw')));
  const rec = JSON.parse(readFileSync(join(rig.dir, files.find((f) => f.endsWith('.upload.json'))!), 'utf8')) as { reason: string };
  assert.match(rec.reason, /shutting down/);
});

test('periodic ACKs carry an offset that has reached the file: at most what was sent, the RESULT exact', async (t) => {
  const rig = await startRig(t);
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  const sink = await tt.openEvidence({ host: 'acks', source: 's', format: 'raw', layers: [] });
  const chunk = Buffer.alloc(1 << 20, 9);
  for (let i = 0; i < 17; i++) await sink.write(chunk);
  const r = await sink.finish();
  assert.equal(r.bytes, 17n << 20n);
  // ACKs go out at each 8 MiB received and report what was written by then; up to 4 MiB (plus a frame) may
  // still be queued behind the socket, so the last one lies in (16 - 4 - 1, 16] MiB
  assert.ok(tt.lastAcked <= 16n << 20n && tt.lastAcked > 11n << 20n, String(tt.lastAcked));
  await tt.close();
});
