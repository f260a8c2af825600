import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseReport } from '../../src/pipeline/report.js';
import { TWO_RUN_LAYOUT, fakeRoot, kcoreByte } from '../fixtures/generate.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { withTmpfs } from '../helpers/tmpfs.js';

const LAYOUT = TWO_RUN_LAYOUT;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

test('acquire from a kcore tree: 0600 whatever the umask, hashes match the file, report, log and context', async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  const out = join(dir, 'out.lime');
  const r = await runCli(['acquire', '--root', root, '-o', out, '--case', 'IR-7', '--examiner', 'tester', '--hash-window', '1M'], { umask: 0o000 });
  assert.equal(r.code, 0, r.stderr);
  const st = statSync(out);
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(statSync(out + '.report.json').mode & 0o777, 0o600);
  assert.equal(statSync(out + '.context').mode & 0o777, 0o700);
  assert.ok(!existsSync(out + '.partial'));
  const bytes = readFileSync(out);
  const rep = parseReport(readFileSync(out + '.report.json', 'utf8'), 'report');
  assert.equal(rep.status, 'COMPLETE');
  assert.equal(rep.hashes?.digests.md5, md5(bytes));
  assert.equal(rep.hashes?.digests.sha256, sha256(bytes));
  assert.equal(rep.hashes?.window.hashes.length, Math.ceil(bytes.length / (1 << 20)));
  assert.equal(rep.hashes?.window.hashes[0], sha256(bytes.subarray(0, 1 << 20)));
  assert.equal(rep.source.kind, 'kcore');
  assert.equal(rep.case.case, 'IR-7');
  assert.equal(rep.memoryMap.acquired.length, 2);
  assert.equal(rep.accounting.read, rep.accounting.requested);
  // LiME layout: two records, direct-map bytes (not the 0xEE text alias)
  assert.equal(bytes.readUInt32LE(0), 0x4c694d45);
  assert.equal(bytes.readBigUInt64LE(16), 0x9fbffn, 'inclusive end keeps the last byte of the range');
  const second = 32 + (0x9fc00 - 0x1000);
  assert.equal(bytes.readBigUInt64LE(second + 8), 0x100000n);
  const at = second + 32 + (0x200000 - 0x100000);
  assert.equal(bytes[at + 5], kcoreByte(0x200005n));
  // context kept and hashed
  const ctx = readdirSync(out + '.context').sort();
  assert.deepEqual(ctx, ['cmdline.txt', 'iomem.txt', 'kallsyms.txt', 'modules.txt', 'os-release.txt', 'uname.txt', 'vmcoreinfo.txt']);
  const vmci = rep.context.find((c) => c.name === 'vmcoreinfo');
  assert.equal(vmci?.sha256, sha256(readFileSync(join(out + '.context', 'vmcoreinfo.txt'))));
  assert.match(readFileSync(out + '.log', 'utf8'), /COMPLETE/);
  // verify and info agree with the report
  const v = await runCli(['verify', out, '--json']);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(JSON.parse(v.stdout.toString()).verdict, 'MATCH');
  const i = await runCli(['info', out, '--json']);
  const info = JSON.parse(i.stdout.toString());
  assert.equal(info.format, 'lime');
  assert.equal(info.report.matches, true);
  assert.equal(info.ranges.count, 2);
  // an independent tool agrees on the hash
  assert.equal(execFileSync('md5sum', [out]).toString().split(' ')[0], md5(bytes));
});

test('default output name is HOSTNAME_YYYYMMDDTHHMMSSZ.lime in the current directory', async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  const r = await runCli(['acquire', '--root', root, '--no-context', '-q'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const names = readdirSync(dir).filter((n) => n.endsWith('.lime'));
  assert.equal(names.length, 1);
  assert.match(names[0]!, /^[A-Za-z0-9._-]+_\d{8}T\d{6}Z\.lime$/);
});

test('never overwrites, never follows a symlink, refuses a leftover .partial', async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  const existing = join(dir, 'existing.lime');
  writeFileSync(existing, 'keep me');
  let r = await runCli(['acquire', '--root', root, '-o', existing]);
  assert.equal(r.code, 6);
  assert.match(r.stderr, /E_DEST_EXISTS/);
  assert.equal(readFileSync(existing, 'utf8'), 'keep me');

  const target = join(dir, 'target');
  writeFileSync(target, 'victim');
  const link = join(dir, 'link.lime');
  symlinkSync(target, link);
  r = await runCli(['acquire', '--root', root, '-o', link, '--json']);
  assert.equal(r.code, 6);
  assert.equal(JSON.parse(r.stderr.trim().split('\n').pop()!).error.code, 'E_DEST_SYMLINK');
  assert.equal(readFileSync(target, 'utf8'), 'victim');

  const partialLink = join(dir, 'p.lime');
  symlinkSync(target, partialLink + '.partial');
  r = await runCli(['acquire', '--root', root, '-o', partialLink]);
  assert.equal(r.code, 6);
  assert.equal(readFileSync(target, 'utf8'), 'victim');
  assert.ok(lstatSync(partialLink + '.partial').isSymbolicLink());
});

test('-o - writes the same bytes to stdout; the report goes to --report or stderr', async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  const file = join(dir, 'f.lime');
  assert.equal((await runCli(['acquire', '--root', root, '-o', file, '-q'])).code, 0);
  const r = await runCli(['acquire', '--root', root, '-o', '-', '--report', join(dir, 'side.json'), '-q']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout, readFileSync(file));
  const rep = parseReport(readFileSync(join(dir, 'side.json'), 'utf8'), 'side');
  assert.equal(rep.hashes?.digests.sha256, sha256(r.stdout));
  const r2 = await runCli(['acquire', '--root', root, '-o', '-', '-q']);
  assert.equal(r2.code, 0);
  const rep2 = parseReport(r2.stderr, 'stderr');
  assert.equal(rep2.hashes?.digests.md5, md5(r2.stdout));
});

test('SIGTERM mid-acquisition keeps NAME.partial and writes an INCOMPLETE report with the last good offset', async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  const out = join(dir, 'slow.lime');
  let pid = 0;
  const p = runCli(['acquire', '--root', root, '-o', out, '--rate-limit', '1M', '--chunk-size', '1M'], { onSpawn: (x) => (pid = x) });
  while (!existsSync(out + '.partial') || statSync(out + '.partial').size < 1 << 20) await new Promise((r) => setTimeout(r, 50));
  process.kill(pid, 'SIGTERM');
  const r = await p;
  assert.equal(r.code, 130, r.stderr);
  assert.ok(!existsSync(out), 'no complete-looking file');
  assert.ok(existsSync(out + '.partial'));
  const rep = parseReport(readFileSync(out + '.report.json', 'utf8'), 'report');
  assert.equal(rep.status, 'INCOMPLETE');
  assert.equal(rep.failure?.code, 'E_INTERRUPTED');
  assert.equal(rep.failure?.lastGoodOffset, String(statSync(out + '.partial').size));
  assert.equal(rep.hashes?.digests.sha256, sha256(readFileSync(out + '.partial')), 'hashes describe the partial bytes');
  const a = rep.accounting;
  assert.equal(BigInt(a.read) + BigInt(a.zeroFilled) + BigInt(a.skipped), BigInt(a.requested));
  assert.ok(BigInt(a.skipped) > 0n);
  assert.equal(rep.outputs[0]?.complete, false);
  assert.equal(rep.outputs[0]?.path, out + '.partial');
  const v = await runCli(['verify', out + '.partial']);
  assert.equal(v.code, 0, v.stdout.toString());
  assert.match(v.stdout.toString(), /INCOMPLETE/);
});

test('a full disk mid-write: exit 7, .partial kept, INCOMPLETE report', { skip: process.getuid?.() !== 0 ? 'needs root to mount a tmpfs' : false }, async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  await withTmpfs(t, join(dir, 'mnt'), '12m', (mnt) => fullDisk(root, mnt));
});

async function fullDisk(root: string, mnt: string): Promise<void> {
  const out = join(mnt, 'full.lime');
  const p = runCli(['acquire', '--root', root, '-o', out, '--rate-limit', '2M', '--chunk-size', '1M', '--max-disk-usage', '100']);
  while (!existsSync(out + '.partial') || statSync(out + '.partial').size < 1 << 20) await new Promise((r) => setTimeout(r, 20));
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${join(mnt, 'filler')}`, 'bs=1M', 'count=64'], { stdio: 'ignore' });
  } catch {
    // dd stops at ENOSPC: that is the point
  }
  const r = await p;
  assert.equal(r.code, 7, r.stderr);
  assert.ok(!existsSync(out));
  assert.ok(existsSync(out + '.partial'));
  assert.ok(!existsSync(out + '.report.json'), 'no truncated report file is left behind');
  const from = r.stderr.indexOf('here it is:\n{') + 'here it is:\n'.length;
  const text = r.stderr.slice(from, r.stderr.indexOf('\n}\n', from) + 3);
  const rep = parseReport(text, 'report');
  assert.equal(rep.status, 'INCOMPLETE');
  assert.equal(rep.failure?.code, 'E_NO_SPACE');
}

test('disk-space guard refuses before reading any memory', { skip: process.getuid?.() !== 0 ? 'needs root to mount a tmpfs' : false }, async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  await withTmpfs(t, join(dir, 'mnt'), '4m', async (mnt) => {
    const r = await runCli(['acquire', '--root', root, '-o', join(mnt, 'x.lime')]);
    assert.equal(r.code, 7);
    assert.match(r.stderr, /E_NO_SPACE/);
    assert.deepEqual(readdirSync(mnt), []);
  });
});

test('source selection explains each failure: lockdown, missing devices, hidden iomem', async (t) => {
  const dir = tempDir(t);
  const locked = fakeRoot(join(dir, 'locked'), LAYOUT, { lockdown: 'confidentiality' });
  let r = await runCli(['acquire', '--root', locked, '-o', join(dir, 'a.lime'), '--json']);
  assert.equal(r.code, 5);
  const err = JSON.parse(r.stderr.trim().split('\n').pop()!).error;
  assert.equal(err.code, 'E_NO_SOURCE');
  const reasons = Object.fromEntries(err.details.attempts.map((a: { source: string; reason: string }) => [a.source, a.reason]));
  assert.match(reasons.kcore, /lockdown=confidentiality/);
  assert.match(reasons.crash, /does not exist/);
  assert.match(reasons.mem, /lockdown/);
  const hidden = fakeRoot(join(dir, 'hidden'), LAYOUT, { iomem: '00000000-00000000 : System RAM\n00000000-00000000 : Reserved\n' });
  r = await runCli(['acquire', '--root', hidden, '-o', join(dir, 'b.lime')]);
  assert.equal(r.code, 5);
  assert.match(r.stderr, /E_IOMEM_HIDDEN/);
  const integrity = fakeRoot(join(dir, 'integrity'), LAYOUT, { lockdown: 'integrity' });
  r = await runCli(['acquire', '--root', integrity, '-o', join(dir, 'c.lime'), '-q']);
  assert.equal(r.code, 0, 'lockdown=integrity does not block kcore');
});

test('raw needs an explicit opt-in and keeps its map beside it; control characters are escaped', async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  let r = await runCli(['acquire', '--root', root, '-o', join(dir, 'x.raw'), '--format', 'raw']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /E_RAW_NEEDS_OPT_IN/);
  r = await runCli(['acquire', '--root', root, '-o', join(dir, 'x.raw'), '--format', 'raw', '--allow-raw', '--case', 'evil\x1b[31mred\x07', '-q']);
  assert.equal(r.code, 0, r.stderr);
  const map = JSON.parse(readFileSync(join(dir, 'x.raw.map.json'), 'utf8'));
  assert.equal(map.runs.length, 2);
  assert.equal(map.runs[1].fileOffset, '0x' + (0x9fc00 - 0x1000).toString(16));
  const text = readFileSync(join(dir, 'x.raw.report.json'), 'utf8') + readFileSync(join(dir, 'x.raw.log'), 'utf8');
  assert.ok(!text.includes('\x1b'), 'no raw escape in report or log');
  assert.match(readFileSync(join(dir, 'x.raw.log'), 'utf8'), /evil\\x1b\[31mred\\x07/);
  // converting back restores addresses
  r = await runCli(['convert', join(dir, 'x.raw'), join(dir, 'back.lime'), '--to', 'lime', '-q']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse((await runCli(['info', join(dir, 'back.lime'), '--json'])).stdout.toString());
  assert.deepEqual(info.ranges.list.map((x: { start: string }) => x.start), ['0x1000', '0x100000']);
});

test('the rate limit slows the read (lower bound only: a slow machine cannot fail it)', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'img');
  writeFileSync(img, Buffer.alloc(3 << 20, 1));
  const t0 = performance.now();
  const r = await runCli(['acquire', '--source', 'file', '--input', img, '-o', join(dir, 'r.lime'), '--rate-limit', '1M', '--chunk-size', '1M', '-q']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(performance.now() - t0 >= 1900);
});
