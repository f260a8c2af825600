import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { expectCode, expectCodeAsync } from '../../test/helpers/expect-code.js';
import { pki, startRig } from '../../test/security/harness.js';
import { type AddressInfo, connect as netConnect } from 'node:net';
import { createServer } from 'node:tls';
import { TlsTarget } from './tls-target.js';

test('parseUrl: tls://host:port and tls://[v6]:port only', () => {
  assert.deepEqual(TlsTarget.parseUrl('tls://collector.lab:7443'), { host: 'collector.lab', port: 7443 });
  assert.deepEqual(TlsTarget.parseUrl('tls://10.0.0.5:1'), { host: '10.0.0.5', port: 1 });
  assert.deepEqual(TlsTarget.parseUrl('tls://[::1]:65535/'), { host: '::1', port: 65535 });
  for (const bad of ['https://x:1', 'tls://x', 'tls://x:0', 'tls://x:65536', 'tls://x:1/path', 'tls://user@x:1', 'tls://::1:7443', 'tls://x :1', '']) {
    expectCode(() => TlsTarget.parseUrl(bad), 'E_USAGE');
  }
});

test('the pin is the SHA-256 of the SPKI, as openssl computes it (oracle)', async (t) => {
  const p = pki();
  let viaOpenssl: string;
  try {
    const pub = execFileSync('openssl', ['x509', '-pubkey', '-noout'], { input: p.server.certPem });
    const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub });
    viaOpenssl = 'sha256/' + execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64');
  } catch {
    t.skip('openssl not available');
    return;
  }
  assert.equal(viaOpenssl, p.pin);
  const rig = await startRig(t);
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: viaOpenssl, token: rig.token });
  assert.equal(tt.describe, `tls://127.0.0.1:${rig.port}`);
  assert.ok(!tt.describe.includes(rig.token));
  await tt.close();
  await tt.close(); // twice is fine
});

test('credentials are required and paired; side files follow the evidence', async (t) => {
  const rig = await startRig(t);
  await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin }), 'E_USAGE');
  await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, clientCert: 'x' }), 'E_USAGE');
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  await expectCodeAsync(tt.putSide('report', Buffer.from('{}')), 'E_USAGE');
  await tt.close();
  assert.equal(rig.rcv.stats.connections, 1, 'usage errors never connect');
});

test('abort(): the receiver records INCOMPLETE "sender aborted", the receipt is incomplete, side files still go', async (t) => {
  const rig = await startRig(t);
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  const sink = await tt.openEvidence({ host: 'quit', source: 's', format: 'raw', layers: ['gzip'] });
  await sink.write(Buffer.alloc(5000, 1));
  const r = await sink.abort();
  assert.equal(r.complete, false);
  assert.equal(r.bytes, 5000n);
  assert.match(r.partialPath!, /\.raw\.gz\.partial$/);
  const side = await tt.putSide('log', Buffer.from('log text'));
  assert.match(side!, /\.raw\.gz\.log$/);
  await tt.close();
  assert.equal(rig.records[0]!.status, 'INCOMPLETE');
  assert.match(rig.records[0]!.reason!, /sender aborted/);
  assert.equal(rig.records[1]!.status, 'COMPLETE');
});

test('an AbortSignal interrupts the connection', async (t) => {
  const rig = await startRig(t);
  const ac = new AbortController();
  ac.abort();
  await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token, signal: ac.signal }), 'E_INTERRUPTED');
  // and during the upload: the socket is torn down, the sink fails with the interruption
  const ac2 = new AbortController();
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token, signal: ac2.signal });
  const sink = await tt.openEvidence({ host: 'sig', source: 's', format: 'raw', layers: [] });
  await sink.write(Buffer.alloc(1000));
  ac2.abort();
  await expectCodeAsync(sink.finish(), 'E_INTERRUPTED');
  await tt.close();
  for (let i = 0; i < 300 && rig.records.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(rig.records[0]?.status, 'INCOMPLETE');
});

test('a receiver with the pinned key that never answers fails the sender with E_REMOTE, not a hang', async (t) => {
  const p = pki();
  // the right key, TLS 1.3, reads everything and says nothing (a hung or tarpitting collector)
  const server = createServer({ key: p.server.keyPem, cert: p.server.certPem, minVersion: 'TLSv1.3' }, (s) => s.on('data', () => undefined));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const e = await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port, pin: p.pin, token: 'mdt_0000000000000000_' + 'A'.repeat(43), answerTimeoutMs: 500 }), 'E_REMOTE');
  assert.match(e.message, /did not answer within/);
});

test('a connection dropped before authentication (a collector\'s per-address cap) is retried; nothing had been sent', async (t) => {
  const rig = await startRig(t, { maxPreauthPerIp: 1, handshakeTimeoutMs: 400 });
  // one silent peer from the same address holds the only pre-authentication place until its handshake times out
  const squatter = netConnect(rig.port, '127.0.0.1');
  t.after(() => squatter.destroy());
  await new Promise((r) => squatter.once('connect', r));
  await new Promise((r) => setTimeout(r, 50));
  await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token, attempts: 1 }), 'E_PROTOCOL');
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token, backoffMs: 200 });
  await tt.close();
});
