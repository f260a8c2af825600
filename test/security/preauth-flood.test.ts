import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { goodUpload, startRig } from './harness.js';

/**
 * Review finding 5: 128 idle TCP connections took every slot and a sender with a valid token failed. The
 * attacker here uses another loopback address (127.0.0.2) than the sender (127.0.0.1), as it would another host.
 */
function idle(port: number, from: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: from }, () => resolve(s));
    s.on('error', reject);
  });
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond());
}

test('idle unauthenticated connections from one address are capped; a sender with a token still gets through', async (t) => {
  const rig = await startRig(t);
  const socks: Socket[] = [];
  t.after(() => socks.forEach((s) => s.destroy()));
  let dropped = 0;
  for (let i = 0; i < 128; i++) {
    const s = await idle(rig.port, '127.0.0.2');
    s.on('close', () => dropped++);
    socks.push(s);
  }
  await until(() => rig.rcv.stats.connections >= 128 && dropped >= 96);
  assert.equal(rig.rcv.preauthConnections, 32, 'the default --max-preauth-per-ip');
  assert.equal(dropped, 96);
  await goodUpload(rig, 1 << 20, 9);
  assert.equal(rig.records.at(-1)?.status, 'COMPLETE');
});

test('authenticated sessions do not count against the pre-authentication room, and keep their slots', async (t) => {
  const rig = await startRig(t, { maxConnections: 4, maxPreauthPerIp: 2 });
  const a = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  const b = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  const c = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  // three authenticated from 127.0.0.1, over its pre-authentication cap of 2
  assert.equal(rig.rcv.preauthConnections, 0);
  const socks: Socket[] = [];
  t.after(() => socks.forEach((s) => s.destroy()));
  for (const from of ['127.0.0.3', '127.0.0.3', '127.0.0.4', '127.0.0.4', '127.0.0.5']) socks.push(await idle(rig.port, from));
  await until(() => rig.rcv.stats.connections >= 8 && rig.rcv.preauthConnections === 4);
  assert.equal(rig.rcv.preauthConnections, 4, 'pre-authentication room is --max-connections in all');
  // the authenticated sessions are unaffected
  const sink = await a.openEvidence({ host: 'kept', source: 's', format: 'raw', layers: [] });
  await sink.write(Buffer.alloc(5000, 1));
  assert.equal((await sink.finish()).complete, true);
  await Promise.all([a.close(), b.close(), c.close()]);
});

test('a TLS handshake that never starts is dropped after --handshake-timeout', { timeout: 30_000 }, async (t) => {
  const rig = await startRig(t, { preAuthTimeoutMs: 60_000, handshakeTimeoutMs: 200 });
  const s = await idle(rig.port, '127.0.0.6');
  await new Promise((r) => s.on('close', r));
  await until(() => rig.rcv.preauthConnections === 0);
  assert.ok(rig.rcv.stats.tlsErrors >= 1);
});
