/**
 * `memdump scan` end to end on the seeded corpus (test/fixtures/scan-corpus.ts): every planted feature of every kind,
 * plain, in UTF-16, gzip, zlib, zip, base64 and nested, found exactly once at its path with its exact text, across
 * chunk boundaries, in the same output whatever the number of workers; nothing (near enough) in random data; the
 * same features at physical addresses when the corpus is wrapped in a LiME image; a live process; YARA against
 * /usr/bin/yara; and the error paths.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MiB, writeCorpus, type CorpusResult } from '../fixtures/scan-corpus.js';
import { RandomStream } from '../fixtures/scan-corpus-rng.js';
import { CLI, runCli, tempDir } from '../helpers/cli.js';
import { findExecutable } from '../helpers/qemu-guest.js';
import { readFeatureFiles, score } from '../helpers/scan-score.js';

const dir = tempDir({ after }, 'memdump-scan-cli-');
const CORPUS = join(dir, 'corpus.bin');
const SIZE = 40 * MiB;
// Features are planted across multiples of 1 MiB and 256 KiB; the scans below cut windows at those multiples.
const corpus: CorpusResult = await writeCorpus(CORPUS, { seed: 2026, size: SIZE, chunkSize: [MiB, 256 * 1024] });

async function scan(args: string[], out: string): Promise<{ code: number | null; stderr: string; json: Record<string, unknown> }> {
  const r = await runCli(['--json', 'scan', ...args, '-o', out]);
  const last = r.stdout.toString().trim().split('\n').pop() ?? '';
  return { code: r.code, stderr: r.stderr, json: last ? (JSON.parse(last) as Record<string, unknown>) : {} };
}

function filesOf(out: string): Record<string, string> {
  const r: Record<string, string> = {};
  for (const f of readdirSync(out).sort()) if (f !== 'scan.json') r[f] = createHash('sha256').update(readFileSync(join(out, f))).digest('hex');
  return r;
}

test('the planted corpus: every kind and every encoding found exactly once, nothing else, across chunk boundaries', async () => {
  for (const chunk of ['1M', '256K']) {
    const out = join(dir, `out-${chunk}`);
    const r = await scan([CORPUS, '--chunk-size', chunk], out);
    assert.equal(r.code, 0, r.stderr);
    const s = score(corpus.truth, readFeatureFiles(out), { decoys: corpus.decoys, regions: corpus.regions });
    for (const [kind, k] of Object.entries(s.perKind)) {
      assert.ok(k.planted > 20, `${kind}: enough planted (${k.planted})`);
      assert.equal(k.found, k.planted, `${kind} (chunk ${chunk}): missing ${k.missing.slice(0, 3).map((m) => `${m.path} ${JSON.stringify(m.feature)}`).join(', ')}`);
      assert.equal(k.duplicates, 0, `${kind}: duplicates`);
      assert.equal(k.decoysReported, 0, `${kind}: decoys reported`);
      assert.equal(k.aliases, 0, `${kind}: stored zip members reported twice`);
    }
    for (const [enc, c] of Object.entries(s.byEncoding)) assert.equal(c.found, c.planted, `encoding ${enc}`);
    assert.ok(s.acrossBoundary.planted > 20, 'features across chunk boundaries were planted');
    assert.equal(s.acrossBoundary.found, s.acrossBoundary.planted);
    // random regions may hold a chance look-alike; the corpus's text holds none
    assert.ok(s.total.falsePositives <= 3, `false positives: ${JSON.stringify(Object.values(s.perKind).flatMap((k) => k.falsePositiveSamples))}`);
    const json = JSON.parse(readFileSync(join(out, 'scan.json'), 'utf8')) as { bytesScanned: string; complete: boolean; containers: Record<string, number> };
    assert.equal(json.bytesScanned, String(SIZE));
    assert.equal(json.complete, true);
    for (const tag of ['GZIP', 'ZLIB', 'ZIP', 'BASE64']) assert.ok((json.containers[tag] ?? 0) > 0, `${tag} containers decoded`);
    const mode = statSync(join(out, 'ccn.txt')).mode & 0o777;
    assert.equal(mode, 0o600, 'feature files hold secrets: 0600');
    assert.equal(statSync(out).mode & 0o777, 0o700);
  }
});

test('the output does not depend on the number of workers', async () => {
  const a = join(dir, 'w1');
  const b = join(dir, 'w3');
  assert.equal((await scan([CORPUS, '--workers', '1', '--chunk-size', '1M'], a)).code, 0);
  assert.equal((await scan([CORPUS, '--workers', '3', '--chunk-size', '1M'], b)).code, 0);
  assert.deepEqual(filesOf(a), filesOf(b));
  assert.deepEqual(filesOf(a), filesOf(join(dir, 'out-1M')));
});

test('histograms count each distinct feature, most frequent first', () => {
  const out = join(dir, 'out-1M');
  const lines = readFileSync(join(out, 'ccn-test_histogram.txt'), 'latin1').trim().split('\n');
  const counts = lines.map((l) => Number(/^n=(\d+)\t/.exec(l)?.[1]));
  assert.ok(counts.length > 1 && counts.every((n) => n >= 1));
  assert.deepEqual([...counts].sort((x, y) => y - x), counts);
  const total = counts.reduce((x, y) => x + y, 0);
  const features = readFileSync(join(out, 'ccn-test.txt'), 'latin1').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  assert.equal(total, features.length);
});

/** 64 MiB of seeded random bytes: the same every run, so a count on it is a property of the scanners, not of the run. */
function randomFile(): string {
  const file = join(dir, 'random.bin');
  if (existsSync(file)) return file;
  const fd = openSync(file, 'w');
  const rs = new RandomStream(99);
  for (let i = 0; i < 64; i++) writeFileSync(fd, rs.take(MiB));
  closeSync(fd);
  return file;
}

test('pure random data gives (almost) no features', async () => {
  const file = randomFile();
  const out = join(dir, 'out-random');
  const r = await scan([file], out);
  assert.equal(r.code, 0, r.stderr);
  const found = [...readFeatureFiles(out).values()].flat();
  assert.ok(found.length <= 2, `features in 64 MiB of random bytes: ${JSON.stringify(found)}`);
});

test('Ctrl-C: exit 130, and what was found so far is kept with a scan.json that says it is incomplete', async () => {
  const out = join(dir, 'out-sigint');
  const child = spawn(process.execPath, [CLI, '--json', 'scan', randomFile(), '-o', out, '--workers', '1', '--chunk-size', '64K'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      // the first progress line: windows have been scanned, many remain
      if (err.includes('"event":"progress"') && !child.killed) child.kill('SIGINT');
    });
    child.on('close', (c) => resolve(c));
  });
  assert.equal(code, 130, err);
  const json = JSON.parse(readFileSync(join(out, 'scan.json'), 'utf8')) as { complete: boolean; bytesScanned: string };
  assert.equal(json.complete, false);
  assert.ok(BigInt(json.bytesScanned) > 0n && BigInt(json.bytesScanned) < BigInt(64 * MiB), json.bytesScanned);
  assert.ok(readdirSync(out).includes('email_histogram.txt'));
});

test('a block device (a swap partition, a disk) is scanned whole: its size comes from the kernel, not fstat', { skip: process.getuid?.() !== 0 && 'needs root (losetup)' }, async (t) => {
  const backing = join(dir, 'block.bin');
  writeFileSync(backing, readFileSync(CORPUS).subarray(0, 4 * MiB));
  const r = spawnSync('losetup', ['-f', '--show', backing]);
  if (r.status !== 0) return t.skip(`losetup refused: ${r.stderr.toString().trim()}`);
  const dev = r.stdout.toString().trim();
  t.after(() => void spawnSync('losetup', ['-d', dev]));
  const out = join(dir, 'out-block');
  const s = await scan([dev, '--scanners', 'email'], out);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(s.json['bytesScanned'], String(4 * MiB));
  const planted = corpus.truth.filter((x) => x.kind === 'email' && x.encoding.length === 0 && x.offset < BigInt(4 * MiB - 64));
  const found = new Set((readFeatureFiles(out).get('email') ?? []).map((e) => e.path));
  assert.ok(planted.length > 0);
  for (const p of planted) assert.ok(found.has(p.path), `email at ${p.path}`);
});

test('a LiME image of the corpus: the same features at physical addresses (hex), plain features where the bytes are', async () => {
  const raw = join(dir, 'corpus16.bin');
  writeFileSync(raw, readFileSync(CORPUS).subarray(0, 16 * MiB));
  const lime = join(dir, 'corpus16.lime');
  const c = await runCli(['-q', 'convert', raw, lime, '--input-format', 'raw', '--to', 'lime']);
  assert.equal(c.code, 0, c.stderr);
  const out = join(dir, 'out-lime');
  const r = await scan([lime], out);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((r.json['input'] as { format?: string }).format, 'lime');
  const plain = corpus.truth.filter((t) => t.encoding.length === 0 && t.offset + BigInt(t.feature.length) <= BigInt(16 * MiB));
  const emails = readFeatureFiles(out).get('email') ?? [];
  const file = readFileSync(raw);
  for (const t of plain.filter((x) => x.kind === 'email')) {
    const line = emails.find((e) => e.path === `0x${t.offset.toString(16)}`);
    assert.ok(line, `email at 0x${t.offset.toString(16)}`);
    assert.equal(file.toString('latin1', Number(t.offset), Number(t.offset) + t.feature.length), line.feature);
  }
});

test('a live process: features at virtual addresses that hold them', async (t) => {
  const py = findExecutable('python3');
  if (!py) return t.skip('python3 not installed');
  const email = `audit.${randomBytes(4).toString('hex')}@example-corp.com`;
  const child = spawn(py, ['-c', `import sys,time\nb=bytearray(b"\\nmail to ${email} now\\n")*3\nprint("ready",flush=True)\ntime.sleep(600)`], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const out = join(dir, 'out-pid');
  const r = await scan(['--pid', String(child.pid), '--scanners', 'email'], out);
  assert.equal(r.code, 0, r.stderr);
  const hits = (readFeatureFiles(out).get('email') ?? []).filter((e) => e.feature === email);
  assert.ok(hits.length >= 3, `the three copies in the bytearray at least (${hits.length})`);
  const fd = openSync(`/proc/${child.pid}/mem`, 'r');
  for (const h of hits) {
    assert.match(h.path, /^0x[0-9a-f]+$/);
    const b = Buffer.alloc(email.length);
    readSync(fd, b, 0, b.length, Number(BigInt(h.path)));
    assert.equal(b.toString('latin1'), email, `${h.path} holds the email`);
  }
});

test('YARA: the same matches as /usr/bin/yara on the plain bytes, one per match (overlapping starts merged)', async (t) => {
  const rules = join(dir, 'aws.yar');
  writeFileSync(rules, 'rule aws_key_id { strings: $k = /A(KIA|SIA)[A-Z2-7]{16}/ condition: $k }\nrule zero_run { strings: $z = /\\x00{64,}/ condition: $z }\n');
  const out = join(dir, 'out-yara');
  const r = await scan([CORPUS, '--yara', rules, '--scanners', 'aws-access-key'], out);
  assert.equal(r.code, 0, r.stderr);
  const lines = readFileSync(join(out, 'yara.txt'), 'latin1').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  const aws = lines.filter((l) => l.split('\t')[1] === 'aws_key_id').map((l) => BigInt(l.split('\t')[0] as string));
  const planted = corpus.truth.filter((x) => x.kind === 'aws-access-key' && x.encoding.length === 0).map((x) => x.offset);
  assert.deepEqual(aws.filter((a) => planted.includes(a)).length, planted.length, 'every plain planted key id');
  const zeroRuns = lines.filter((l) => l.split('\t')[1] === 'zero_run').map((l) => BigInt(l.split('\t')[0] as string));
  assert.deepEqual([...new Set(zeroRuns)].length, zeroRuns.length, 'no duplicate offsets');
  const yara = findExecutable('yara');
  if (!yara) return t.skip('yara (Debian package) not installed: the oracle comparison is skipped');
  const rule1 = join(dir, 'aws-only.yar');
  writeFileSync(rule1, 'rule aws_key_id { strings: $k = /A(KIA|SIA)[A-Z2-7]{16}/ condition: $k }\n');
  const y = await new Promise<string>((resolve, reject) => {
    const p = spawn(yara, ['-s', rule1, CORPUS], { stdio: ['ignore', 'pipe', 'inherit'] });
    let s = '';
    p.stdout.on('data', (d: Buffer) => (s += d.toString('latin1')));
    p.on('error', reject);
    p.on('close', () => resolve(s));
  });
  const theirs = y.split('\n').filter((l) => /^0x[0-9a-f]+:\$k:/.test(l)).map((l) => BigInt(l.split(':')[0] as string));
  assert.deepEqual([...aws].sort((a, b) => (a < b ? -1 : 1)), [...new Set(theirs)].sort((a, b) => (a < b ? -1 : 1)));
});

test('errors: missing input, non-empty output directory, bad rules, bad options; nothing is overwritten', async () => {
  const out = join(dir, 'out-err');
  mkdirSync(out);
  writeFileSync(join(out, 'keep.txt'), 'mine');
  const busy = await runCli(['scan', CORPUS, '-o', out]);
  assert.equal(busy.code, 6, busy.stderr);
  assert.equal(readFileSync(join(out, 'keep.txt'), 'utf8'), 'mine');
  const missing = await runCli(['scan', join(dir, 'nope.bin'), '-o', join(dir, 'o2')]);
  assert.equal(missing.code, 3, missing.stderr);
  const rules = join(dir, 'bad.yar');
  writeFileSync(rules, 'rule broken { strings: $a = "x" condition: $b }\n');
  const bad = await runCli(['scan', CORPUS, '-o', join(dir, 'o3'), '--yara', rules]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /E_USAGE/);
  for (const args of [['--scanners', 'nosuch'], ['--max-depth', 'x'], ['--chunk-size', '1']]) {
    const u = await runCli(['scan', CORPUS, '-o', join(dir, `o4${args[0]}`), ...args]);
    assert.equal(u.code, 2, `${args.join(' ')}: ${u.stderr}`);
  }
  const noOut = await runCli(['scan', CORPUS]);
  assert.equal(noOut.code, 2);
  const plainSecret = await runCli(['scan', CORPUS, '--find-secret', 'hunter2hunter2']);
  assert.equal(plainSecret.code, 2, 'a secret on the command line is refused');
});
