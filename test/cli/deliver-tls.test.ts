import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseReport } from '../../src/pipeline/report.js';
import { TWO_RUN_LAYOUT, fakeRoot } from '../fixtures/generate.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { analystKeys } from '../helpers/keys.js';
import { startCollector } from '../helpers/receiver.js';

// acquire, process and convert with --to tls:// into a real `memdump receive`: the pipeline's side of the protocol
// (report, log, signature and map as side files; layers; the pin checked before anything is read)
const LAYOUT = TWO_RUN_LAYOUT;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const collector = (t: { after: (fn: () => void | Promise<void>) => void }, extra: string[] = []) => startCollector(t, 'IR-42', extra);

test('acquire --to tls:// with --recipient and --sign-key: nothing on the sender, everything verified on the collector', async (t) => {
  const c = await collector(t);
  const work = tempDir(t);
  const root = fakeRoot(join(work, 'root'), LAYOUT);
  const plain = join(work, 'plain.lime');
  assert.equal((await runCli(['acquire', '--root', root, '-o', plain, '-q', '--no-context'])).code, 0);
  const { identity, recipient, sign, signPub } = analystKeys(work);
  const before = readdirSync(work).sort();

  const r = await runCli(['acquire', '--root', root, '--no-context', '--case', 'IR-42', ...c.to, '--recipient', recipient, '--sign-key', sign, '--json'], { cwd: work });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(work).sort(), before, 'the examined host got no file');
  const [ev, rep, sig, log] = await c.srv.uploads(4);
  assert.deepEqual([ev, rep, sig, log].map((u) => [u!['role'], u!['status']]), [
    ['evidence', 'COMPLETE'],
    ['report', 'COMPLETE'],
    ['signature', 'COMPLETE'],
    ['log', 'COMPLETE'],
  ]);
  const file = join(c.evidence, String(ev!['path']));
  assert.match(file, /IR-42\/[^/]+-\d{8}T\d{6}Z-[^/]+\.lime\.age$/);
  const cipher = readFileSync(file);
  assert.equal(ev!['receiverSha256'], sha256(cipher));
  // the report the sender delivered sits beside the file and describes it
  const report = parseReport(readFileSync(file + '.report.json', 'utf8'), 'r');
  assert.equal(report.status, 'COMPLETE');
  assert.equal(report.delivery?.stored.sha256, sha256(cipher));
  assert.equal(report.delivery?.remote?.evidence, `tls://127.0.0.1:${c.srv.port}/${ev!['path']}`);
  assert.equal(report.outputs[0]?.path, report.delivery?.remote?.evidence);
  assert.ok(!JSON.stringify(report.argv).includes(readFileSync(c.tokenFile, 'utf8').trim()), 'the token is not in the report');
  assert.ok(existsSync(file + '.upload.json'));
  // the analyst's side: verify (ciphertext + signature by the trusted key), then decrypt against the container hashes
  const v = await runCli(['verify', file, '--trusted-key', signPub, '--json']);
  assert.equal(v.code, 0, v.stdout.toString());
  assert.equal(JSON.parse(v.stdout.toString()).signature.trusted, true);
  const d = await runCli(['decrypt', file, join(work, 'back.lime'), '-i', identity, '--json']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(JSON.parse(d.stdout.toString()).verdict, 'MATCH');
  assert.ok(readFileSync(join(work, 'back.lime')).equals(readFileSync(plain)));
  const printed = JSON.parse(r.stdout.toString());
  assert.equal(printed.output, report.delivery?.remote?.evidence);
});

test('convert IN tls://… --to padded delivers the map as a side file; process PID --to tls:// delivers a core', async (t) => {
  const c = await collector(t);
  const work = tempDir(t);
  const root = fakeRoot(join(work, 'root'), LAYOUT);
  const lime = join(work, 'x.lime');
  assert.equal((await runCli(['acquire', '--root', root, '-o', lime, '-q', '--no-context'])).code, 0);
  const local = join(work, 'local.padded');
  assert.equal((await runCli(['convert', lime, local, '--to', 'padded', '-q'])).code, 0);
  const r = await runCli(['convert', lime, `tls://127.0.0.1:${c.srv.port}`, '--to', 'padded', '--pin', c.pin, '--token-file', c.tokenFile, '-q']);
  assert.equal(r.code, 0, r.stderr);
  const all = await c.srv.uploads(4);
  assert.deepEqual(all.map((u) => u['role']), ['evidence', 'map', 'report', 'log']);
  const ev = all[0]!;
  const file = join(c.evidence, String(ev['path']));
  assert.match(file, /\.padded$/);
  assert.ok(readFileSync(file).equals(readFileSync(local)), 'the collector holds the same bytes as a local conversion');
  assert.deepEqual(JSON.parse(readFileSync(file + '.map.json', 'utf8')), JSON.parse(readFileSync(local + '.map.json', 'utf8')));
  assert.equal(JSON.parse((await runCli(['verify', file, '--json'])).stdout.toString()).verdict, 'MATCH');

  // a live process (a child of ours) as an ELF core, straight to the collector
  const victim = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => victim.kill('SIGKILL'));
  const p = await runCli(['process', String(victim.pid), '--to', `tls://127.0.0.1:${c.srv.port}`, '--pin', c.pin, '--token-file', c.tokenFile, '-q']);
  assert.equal(p.code, 0, p.stderr);
  const more = await c.srv.uploads(7);
  const core = more[4]!;
  assert.equal(core['role'], 'evidence');
  assert.equal(core['status'], 'COMPLETE');
  const corePath = join(c.evidence, String(core['path']));
  assert.match(corePath, /\.elf$/);
  assert.equal(readFileSync(corePath).subarray(0, 4).toString('latin1'), '\x7fELF');
  assert.equal(JSON.parse((await runCli(['verify', corePath, '--json'])).stdout.toString()).verdict, 'MATCH');
});

test('a rate-limited sender outlives an idle timeout shorter than its pauses; a wrong pin reads nothing and sends nothing', async (t) => {
  const c = await collector(t, ['--idle-timeout', '1s']);
  const work = tempDir(t);
  const root = fakeRoot(join(work, 'root'), LAYOUT);
  // 8.6 MiB at 2 MiB/s in 4 MiB chunks: pauses of ~2 s between chunks, twice the receiver's idle timeout
  const r = await runCli(['acquire', '--root', root, '--no-context', '-q', '--rate-limit', '2M', ...c.to]);
  assert.equal(r.code, 0, r.stderr);
  const [ev] = await c.srv.uploads(1);
  assert.equal(ev!['status'], 'COMPLETE');

  const wrong = c.to.map((a) => (a === c.pin ? 'sha256/' + Buffer.alloc(32, 1).toString('base64') : a));
  const w = await runCli(['acquire', '--root', root, '--no-context', ...wrong], { cwd: work });
  assert.equal(w.code, 13, w.stderr);
  assert.match(w.stderr, /E_PIN_MISMATCH/);
  assert.doesNotMatch(w.stderr, /COMPLETE|INCOMPLETE/, 'no acquisition started');
  const files = readdirSync(join(c.evidence, 'IR-42'));
  assert.equal(files.filter((f) => !f.includes('.')).length, 0);
  assert.equal(files.filter((f) => f.endsWith('.lime')).length, 1, 'only the first, rate-limited upload is there');
});
