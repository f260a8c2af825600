import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:tls';
import { test } from 'node:test';
import { listTree, startRig } from './harness.js';

function handshake(port: number, version: 'TLSv1.2' | 'TLSv1.3'): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1', maxVersion: version });
    s.once('secureConnect', () => {
      const v = s.getProtocol() ?? 'none';
      s.destroy();
      resolve(v);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(`error:${e.code ?? e.message}`));
  });
}

test('TLS 1.2 (and older) clients are refused at the handshake; TLS 1.3 is accepted', async (t) => {
  const rig = await startRig(t);
  const old = await handshake(rig.port, 'TLSv1.2');
  assert.match(old, /^error:/, old);
  assert.match(old, /VERSION|PROTOCOL/i);
  assert.equal(await handshake(rig.port, 'TLSv1.3'), 'TLSv1.3');
  assert.ok(rig.rcv.stats.tlsErrors >= 1);
  assert.deepEqual(listTree(rig.dir), []);
});

/** Async on purpose: the receiver runs in this process, so a blocking spawnSync would starve it. */
function sClient(port: number, flag: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, flag], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out }));
    c.stdin.end();
  });
}

test('openssl s_client -tls1_2 gets no session either (an independent client)', async (t) => {
  const rig = await startRig(t);
  const old = await sClient(rig.port, '-tls1_2');
  assert.notEqual(old.code, 0, old.out);
  assert.match(old.out, /alert protocol version|no protocols available|wrong version|unsupported protocol/i);
  const ok = await sClient(rig.port, '-tls1_3');
  assert.match(ok.out, /TLSv1\.3/);
});
