import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from 'node:tls';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { MAGIC, T, encodeFrame } from '../../src/receiver/frame.js';
import { spkiPin } from '../../src/receiver/x509.js';
import { CLI, runCli, tempDir } from '../helpers/cli.js';
import { relOf, serve } from '../helpers/receiver.js';
import { expectCodeAsync } from '../helpers/expect-code.js';
import { Prng } from '../helpers/prng.js';

test('memdump receive end to end: --init, tokens, serve, COMPLETE/INCOMPLETE, client certificates, SIGTERM', async (t) => {
  const base = tempDir(t, 'memdump-rcv-cli-');
  const state = join(base, 'state');
  const ev = join(base, 'evidence');

  const init = await runCli(['receive', '--init', state, '--hosts', '127.0.0.1,localhost']);
  assert.equal(init.code, 0, init.stderr);
  const pin = init.stdout.toString().trim();
  assert.equal(pin, spkiPin(readFileSync(join(state, 'server.crt'))));
  assert.equal(statSync(state).mode & 0o777, 0o700);
  for (const f of readdirSync(state)) assert.equal(statSync(join(state, f)).mode & 0o777, 0o600, f);
  assert.equal((await runCli(['receive', '--init', state])).code, 6, 'never overwrites a state directory');

  const issued = await runCli(['receive', '--state', state, '--issue-token', '--case', 'IR-42', '--expires', '2h', '--note', 'for alice']);
  assert.equal(issued.code, 0, issued.stderr);
  const token = issued.stdout.toString().trim();
  assert.ok(!readFileSync(join(state, 'tokens.json'), 'utf8').includes(token.slice(21)), 'only the hash is stored');
  const doomed = (await runCli(['receive', '--state', state, '--issue-token', '--case', 'IR-42', '--expires', '1h'])).stdout.toString().trim();
  const doomedId = doomed.slice(4, 20);
  assert.equal((await runCli(['receive', '--state', state, '--revoke-token', doomedId])).code, 0);
  const listed = await runCli(['--json', 'receive', '--state', state, '--list-tokens']);
  const rows = JSON.parse(listed.stdout.toString()) as { id: string; state: string; case: string }[];
  assert.deepEqual(rows.map((r) => r.state).sort(), ['revoked', 'valid']);
  assert.ok(!listed.stdout.toString().includes(token));

  const cert = await runCli(['receive', '--state', state, '--issue-client-cert', 'alice', '--case', 'IR-CERT', '--out-dir', base]);
  assert.equal(cert.code, 0, cert.stderr);
  assert.equal(statSync(join(base, 'alice.key')).mode & 0o777, 0o600);

  const srv = await serve(['--state', state, '--dir', ev, '--listen', '127.0.0.1:0', '--max-bytes', '64M']);
  t.after(() => srv.child.kill('SIGKILL'));
  const to = { host: '127.0.0.1', port: srv.port, pin };

  // 1. a complete upload with all side files
  const tt = await TlsTarget.connect({ ...to, token });
  const sink = await tt.openEvidence({ host: 'web01', source: 'kcore /proc/kcore', format: 'lime', layers: ['zstd'] });
  const data = new Prng(1).bytes(3 << 20);
  await sink.write(data);
  await sink.writeZeros(4096n);
  const receipt = await sink.finish();
  assert.equal(receipt.complete, true);
  assert.match(receipt.path, new RegExp(`^tls://127\\.0\\.0\\.1:${srv.port}/IR-42/web01-\\d{8}T\\d{6}Z-[0-9a-f]{8}\\.lime\\.zst$`));
  const sides: string[] = [];
  for (const role of ['report', 'log', 'map', 'signature'] as const) sides.push((await tt.putSide(role, Buffer.from(`${role} body`)))!);
  await tt.close();
  const evPath = join(ev, relOf(receipt.path));
  const stored = readFileSync(evPath);
  assert.deepEqual(stored.subarray(0, data.length), data);
  assert.equal(stored.length, data.length + 4096);
  assert.equal(statSync(evPath).mode & 0o777, 0o600);
  assert.equal(statSync(join(ev, 'IR-42')).mode & 0o777, 0o700);
  assert.deepEqual(sides.map((s) => relOf(s).slice(relOf(receipt.path).length)), ['.report.json', '.log', '.map.json', '.report.json.sig']);
  assert.equal(readFileSync(join(ev, relOf(sides[0]!)), 'utf8'), 'report body');
  const rec = JSON.parse(readFileSync(evPath + '.upload.json', 'utf8')) as Record<string, unknown>;
  assert.equal(rec['status'], 'COMPLETE');
  assert.equal(rec['receiverSha256'], createHash('sha256').update(stored).digest('hex'));
  assert.equal(rec['senderSha256'], rec['receiverSha256']);
  assert.deepEqual(rec['auth'], { kind: 'token', tokenId: token.slice(4, 20) });
  assert.equal((rec['peer'] as { address: string }).address, '127.0.0.1');
  assert.equal(((rec['sender'] as { meta: { source: string } }).meta).source, 'kcore /proc/kcore');

  // 2. the revoked token
  await expectCodeAsync(TlsTarget.connect({ ...to, token: doomed }), 'E_AUTH');

  // 3. digest mismatch: bytes arrive intact, the trailer disagrees → INCOMPLETE, nothing published
  const raw = connect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false });
  await new Promise((r) => raw.once('secureConnect', r));
  const rawOut: Buffer[] = [];
  raw.on('data', (d: Buffer) => rawOut.push(d));
  raw.write(Buffer.concat([MAGIC, encodeFrame(T.HELLO, { v: 1, token }), encodeFrame(T.OPEN, { role: 'evidence', meta: { host: 'liar', format: 'raw', layers: [] } }), encodeFrame(T.DATA, Buffer.from('abc')), encodeFrame(T.END, { bytes: '3', sha256: '0'.repeat(64) })]));
  const [, , mismatch] = await srv.uploads(6).then((u) => u.slice(4));
  void mismatch;
  raw.end();

  // 4. disconnect mid-stream → .partial + INCOMPLETE record
  const cut = await TlsTarget.connect({ ...to, token });
  const cutSink = await cut.openEvidence({ host: 'cutoff', source: 's', format: 'raw', layers: [] });
  await cutSink.write(new Prng(2).bytes(1 << 20));
  await cut.close();

  // 5. a client certificate binds its own case
  const ct = await TlsTarget.connect({ ...to, clientCert: readFileSync(join(base, 'alice.crt'), 'utf8'), clientKey: readFileSync(join(base, 'alice.key'), 'utf8') });
  const cs = await ct.openEvidence({ host: 'alice-box', source: 's', format: 'elf', layers: ['age'] });
  await cs.write(Buffer.from('cert upload'));
  const cr = await cs.finish();
  await ct.close();
  assert.match(cr.path, /\/IR-CERT\/alice-box-.*\.elf\.age$/);

  const ups = await srv.uploads(8);
  const byHost = (h: string) => ups.find((u) => String(u['name']).startsWith(h + '-'))!;
  assert.equal(byHost('liar')['status'], 'INCOMPLETE');
  assert.match(String(byHost('liar')['reason']), /SHA-256 differs/);
  assert.equal(byHost('cutoff')['status'], 'INCOMPLETE');
  assert.match(String(byHost('cutoff')['reason']), /closed/);
  assert.equal(byHost('cutoff')['bytes'], String(1 << 20));
  assert.equal(statSync(join(ev, 'IR-42', String(byHost('cutoff')['name']) + '.partial')).size, 1 << 20);
  assert.equal(byHost('alice-box')['status'], 'COMPLETE');
  assert.equal((byHost('alice-box')['auth'] as { kind: string }).kind, 'client-cert');
  const names = readdirSync(join(ev, 'IR-42'));
  assert.ok(!names.some((n) => n.startsWith('liar-') && n.endsWith('.raw')), 'mismatched upload not published');
  assert.ok(names.some((n) => n.startsWith('liar-') && n.endsWith('.raw.partial')));

  // 6. SIGTERM with an upload open: stops listening, the upload ends INCOMPLETE, the sender is told
  const open = await TlsTarget.connect({ ...to, token });
  const os = await open.openEvidence({ host: 'inflight', source: 's', format: 'raw', layers: [] });
  await os.write(Buffer.alloc(100_000, 3));
  srv.child.kill('SIGTERM');
  assert.equal(await srv.exited, 0, srv.stderr());
  await expectCodeAsync(os.finish(), 'E_REMOTE');
  await open.close();
  const last = srv.events.filter((e) => e['event'] === 'upload').find((u) => String(u['name']).startsWith('inflight-'))!;
  assert.equal(last['status'], 'INCOMPLETE');
  assert.match(String(last['reason']), /shutting down/);
  assert.match(srv.stderr(), /COMPLETE case=IR-42 IR-42\/web01-/);
  assert.match(srv.stderr(), /INCOMPLETE case=IR-42 IR-42\/inflight-/);
});

function vm(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

test('20 concurrent senders × 4 MiB: all COMPLETE with the right SHA-256; receiver peak RSS stays bounded', async (t) => {
  const base = tempDir(t, 'memdump-rcv-load-');
  const state = join(base, 'state');
  const ev = join(base, 'evidence');
  const pin = (await runCli(['receive', '--init', state, '--hosts', '127.0.0.1'])).stdout.toString().trim();
  const token = (await runCli(['receive', '--state', state, '--issue-token', '--case', 'LOAD', '--expires', '1h'])).stdout.toString().trim();
  const srv = await serve(['--state', state, '--dir', ev, '--listen', '127.0.0.1:0', '--max-connections', '32', '--max-preauth-per-ip', '32']);
  t.after(() => srv.child.kill('SIGKILL'));
  const idle = vm(srv.child.pid!, 'VmRSS');
  const N = 20;
  const SIZE = 4 << 20;
  const digests = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const tt = await TlsTarget.connect({ host: '127.0.0.1', port: srv.port, pin, token });
      const sink = await tt.openEvidence({ host: `sender${i}`, source: 'load', format: 'raw', layers: [] });
      const prng = new Prng(1000 + i);
      const h = createHash('sha256');
      for (let left = SIZE; left > 0; ) {
        const b = prng.bytes(Math.min(left, 192 << 10));
        h.update(b);
        await sink.write(b);
        left -= b.length;
      }
      const r = await sink.finish();
      await tt.close();
      return { rel: relOf(r.path), sha: h.digest('hex') };
    }),
  );
  const peak = vm(srv.child.pid!, 'VmHWM');
  for (const d of digests) {
    const rec = JSON.parse(readFileSync(join(ev, d.rel + '.upload.json'), 'utf8')) as { status: string; receiverSha256: string; bytes: string };
    assert.equal(rec.status, 'COMPLETE');
    assert.equal(rec.receiverSha256, d.sha);
    assert.equal(rec.bytes, String(SIZE));
    assert.equal(createHash('sha256').update(readFileSync(join(ev, d.rel))).digest('hex'), d.sha);
  }
  t.diagnostic(`receiver RSS idle ${(idle / 2 ** 20).toFixed(1)} MiB, peak (VmHWM) ${(peak / 2 ** 20).toFixed(1)} MiB for ${N} × ${SIZE / 2 ** 20} MiB`);
  // 80 MiB went through; a receiver that buffered uploads would exceed this
  assert.ok(peak - idle < 64 * 2 ** 20, `peak ${peak} vs idle ${idle}`);
  srv.child.kill('SIGTERM');
  assert.equal(await srv.exited, 0);
});

test('the receiver process survives hostile senders (huge HELLO.v, deep JSON, pre-auth DATA) while an upload runs', async (t) => {
  const base = tempDir(t, 'memdump-rcv-hostile-');
  const state = join(base, 'state');
  const ev = join(base, 'evidence');
  const pin = (await runCli(['receive', '--init', state, '--hosts', '127.0.0.1'])).stdout.toString().trim();
  const token = (await runCli(['receive', '--state', state, '--issue-token', '--case', 'IR-9', '--expires', '1h'])).stdout.toString().trim();
  const srv = await serve(['--state', state, '--dir', ev, '--listen', '127.0.0.1:0']);
  t.after(() => srv.child.kill('SIGKILL'));
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: srv.port, pin, token });
  const sink = await tt.openEvidence({ host: 'victim', source: 's', format: 'raw', layers: [] });
  const data = new Prng(77).bytes(1 << 20);
  await sink.write(data.subarray(0, 1000));
  const attacks = [
    Buffer.from(JSON.stringify({ v: 'A'.repeat(16_000) })),
    Buffer.from(`{"v":1,"token":"${token}","sender":{"x":${'['.repeat(7000)}${']'.repeat(7000)}}}`),
  ];
  for (const body of attacks) {
    const h = Buffer.from([T.HELLO, 0, 0, 0, 0]);
    h.writeUInt32BE(body.length, 1);
    const s = connect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('secureConnect', r));
    const closed = new Promise((r) => s.on('close', r));
    s.resume();
    s.end(Buffer.concat([MAGIC, h, body, encodeFrame(T.PING)]));
    await closed;
  }
  await sink.write(data.subarray(1000));
  const r = await sink.finish();
  assert.equal(r.complete, true);
  await tt.close();
  const [up] = await srv.uploads(1);
  assert.equal(up!['status'], 'COMPLETE');
  assert.equal(srv.child.exitCode, null, srv.stderr());
  assert.doesNotMatch(srv.stderr(), /internal error/);
  const help = await runCli(['receive', '--help']);
  for (const opt of ['--max-preauth-per-ip', '--handshake-timeout', '--min-rate']) assert.match(help.stdout.toString(), new RegExp(opt));
  srv.child.kill('SIGTERM');
  assert.equal(await srv.exited, 0, srv.stderr());
});
