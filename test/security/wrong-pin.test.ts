import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { createServerCertificate, spkiPin } from '../../src/receiver/x509.js';
import { expectCodeAsync } from '../helpers/expect-code.js';
import { goodUpload, listTree, startRig } from './harness.js';

async function settled(rig: { rcv: { openConnections: number } }): Promise<void> {
  for (let i = 0; i < 500 && rig.rcv.openConnections > 0; i++) await sleep(10);
  assert.equal(rig.rcv.openConnections, 0);
}

test('wrong pin: the sender stops after the handshake; the receiver sees 0 application bytes and writes nothing', async (t) => {
  const rig = await startRig(t);
  const otherPin = spkiPin(createServerCertificate({ cn: 'impostor', hosts: ['127.0.0.1'], days: 1 }).certPem);
  assert.notEqual(otherPin, rig.pin);
  const good = goodUpload(rig, 2 << 20, 3);
  const e = await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: otherPin, token: rig.token }), 'E_PIN_MISMATCH');
  assert.equal(e.details['presented'], rig.pin, 'the error names the key the receiver really presented');
  await good;
  await settled(rig);
  const afterGood = rig.rcv.stats.applicationBytes;
  // the control above proves bytes are counted; now an isolated wrong-pin connection
  const e2 = await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: otherPin, token: rig.token }), 'E_PIN_MISMATCH');
  assert.ok(e2);
  await settled(rig);
  // TLS 1.3: the sender has the receiver's certificate before the receiver has the sender's Finished, so the
  // receiver may or may not count a session; the TCP connections certainly reached it
  assert.equal(rig.rcv.stats.connections, 3);
  assert.equal(rig.rcv.stats.applicationBytes, afterGood, 'not one application byte after a pin mismatch');
  assert.ok(afterGood > 2 << 20);
  const files = listTree(rig.dir).filter((p) => !p.includes('good-host'));
  assert.deepEqual(files, ['CASE-1'], 'only the good sender wrote files');
});

test('a malformed pin is a usage error before any connection', async (t) => {
  const rig = await startRig(t);
  for (const pin of ['', 'sha1/abc', 'sha256/short', rig.pin.replace('sha256/', '')]) {
    await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin, token: rig.token }), 'E_USAGE');
  }
  assert.equal(rig.rcv.stats.connections, 0);
});
