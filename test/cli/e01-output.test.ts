import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Range } from '../../src/core/ranges.js';
import { formatByName } from '../../src/formats/registry.js';
import { type JobOptions, runJob } from '../../src/pipeline/job.js';
import { parseReport } from '../../src/pipeline/report.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { expectCodeAsync } from '../helpers/expect-code.js';
import { MemorySource } from '../helpers/memory-source.js';
import { Prng } from '../helpers/prng.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const EWF = hasTool('ewfverify') && hasTool('ewfexport') && hasTool('ewfinfo');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** The media an E01 of these runs holds: offset = address, zeros in holes, zero-filled to a whole sector. */
function paddedMedia(runs: readonly Range[], data: readonly Buffer[]): Buffer {
  const end = Number(runs[runs.length - 1]!.end);
  const m = Buffer.alloc(Math.ceil(end / 512) * 512);
  runs.forEach((r, i) => data[i]!.copy(m, Number(r.start)));
  return m;
}

/** LiME written by hand (header: magic, version 1, start, inclusive end, 8 reserved), independent of our writer. */
function lime(runs: readonly Range[], data: readonly Buffer[]): Buffer {
  return Buffer.concat(
    runs.flatMap((r, i) => {
      const h = Buffer.alloc(32);
      h.writeUInt32LE(0x4c694d45, 0);
      h.writeUInt32LE(1, 4);
      h.writeBigUInt64LE(r.start, 8);
      h.writeBigUInt64LE(r.end - 1n, 16);
      return [h, data[i]!];
    }),
  );
}

/** Segment files of the set at dir/base, in set order (E01 < … < E99 < EAA sorts right for the few we make). */
function segmentFiles(dir: string, base: string): string[] {
  return readdirSync(dir)
    .filter((f) => new RegExp(`^${base}\\.(E[0-9]{2}|[E-Z][A-Z]{2})$`).test(f))
    .sort()
    .map((f) => join(dir, f));
}

/** ewfverify's verdict and ewfexport's raw media; both tools read the whole set from its first file. */
function ewfCheck(dir: string, first: string): Buffer {
  const v = spawnSync('ewfverify', ['-q', first], { encoding: 'utf8' });
  assert.equal(v.status, 0, `ewfverify: ${v.stdout}${v.stderr}`);
  assert.match(v.stdout, /SUCCESS/);
  const target = join(dir, 'ewfexport-' + Math.random().toString(36).slice(2));
  execFileSync('ewfexport', ['-u', '-q', '-f', 'raw', '-t', target, first], { stdio: 'ignore' });
  return readFileSync(target + '.raw');
}

function checkSetReport(dir: string, first: string, files: string[]) {
  const rep = parseReport(readFileSync(first + '.report.json', 'utf8'), 'report');
  assert.equal(rep.status, 'COMPLETE');
  assert.equal(rep.format.name, 'e01');
  const all = Buffer.concat(files.map((f) => readFileSync(f)));
  // the report's hashes are over the pieces concatenated in order
  assert.equal(rep.hashes?.digests.sha256, sha256(all));
  // E01 output: the digest over the segment files defaults to SHA-256 alone (MD5/SHA-1 of the media are inside)
  assert.deepEqual(Object.keys(rep.hashes?.digests ?? {}), ['sha256']);
  assert.equal(rep.hashes?.length, String(all.length));
  const pieces = rep.outputs.filter((o) => o.role === 'evidence' || o.role === 'segment');
  assert.deepEqual(
    pieces.map((o) => [o.role, o.path, o.bytes, o.complete]),
    files.map((f, i) => [i === 0 ? 'evidence' : 'segment', f, String(statSync(f).size), true]),
  );
  if (files.length > 1) assert.ok(pieces.every((o) => o.sha256 === null), 'no per-piece sha256 that could be mistaken for the whole');
  assert.ok(rep.e01, 'report.e01 present');
  assert.deepEqual(
    rep.e01.segments,
    files.map((f) => ({ path: f, bytes: String(statSync(f).size) })),
  );
  for (const f of [...files, first + '.report.json', first + '.log', first + '.map.json']) {
    assert.equal(statSync(f).mode & 0o777, 0o600, f);
  }
  assert.ok(!readdirSync(dir).some((f) => f.endsWith('.partial')), 'nothing left .partial');
  return rep;
}

test('acquire --format e01 from a file source: out.E01 (suffix added), report.e01, case fields in the E01 header; ewfverify and ewfexport agree', async (t) => {
  const dir = tempDir(t);
  const rng = new Prng(0xe01a);
  const img = rng.bytes(5 << 20);
  writeFileSync(join(dir, 'disk.img'), img);
  writeFileSync(join(dir, 'iomem'), '00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n0009fc00-000fffff : Reserved\n00100000-004fffff : System RAM\n');
  const runs = [
    { start: 0x1000n, end: 0x9fc00n },
    { start: 0x100000n, end: 0x500000n },
  ];
  const media = paddedMedia(
    runs,
    runs.map((r) => img.subarray(Number(r.start), Number(r.end))),
  );
  const r = await runCli(
    ['acquire', '--source', 'file', '--input', join(dir, 'disk.img'), '--iomem', join(dir, 'iomem'), '--format', 'e01', '-o', join(dir, 'out'), '--no-context', '--case', 'IR-42', '--examiner', 'A. Tester', '--evidence', 'EV-7', '--segment-size', '1M', '-q'],
    { umask: 0o000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const first = join(dir, 'out.E01');
  const files = segmentFiles(dir, 'out');
  assert.equal(files[0], first);
  assert.ok(files.length >= 4, `incompressible 4.6 MiB in 1 MiB segments: ${files.length} files`);
  assert.ok(files.every((f) => statSync(f).size <= 1 << 20), 'no segment over --segment-size');
  const rep = checkSetReport(dir, first, files);
  assert.equal(rep.e01?.mediaType, 'memory');
  assert.equal(rep.e01?.mediaBytes, String(0x500000));
  assert.equal(rep.e01?.compression, 'deflate:fast');
  assert.equal(rep.e01?.mediaDigests.md5, md5(media));
  assert.equal(rep.e01?.mediaDigests.sha256, sha256(media));
  assert.equal(rep.options['segmentSize'], String(1 << 20));
  const map = JSON.parse(readFileSync(first + '.map.json', 'utf8'));
  assert.equal(map.container, 'e01');
  assert.deepEqual(
    map.runs.map((x: { start: string; fileOffset: string }) => [x.start, x.fileOffset]),
    [
      ['0x1000', '0x1000'],
      ['0x100000', '0x100000'],
    ],
  );
  if (!EWF) return t.skip('ewf-tools not installed');
  assert.deepEqual(ewfCheck(dir, first), media, 'ewfexport gives the padded media');
  const info = execFileSync('ewfinfo', [first], { encoding: 'utf8' });
  assert.match(info, /Case number:\s+IR-42/);
  assert.match(info, /Examiner name:\s+A\. Tester/);
  assert.match(info, /Evidence number:\s+EV-7/);
  assert.match(info, /Media type:\s+memory/);
});

test('convert in.lime out.E01 --to e01 --segment-size 1M: a segment set ewf-tools accept, and it converts back to the same LiME', async (t) => {
  const dir = tempDir(t);
  const rng = new Prng(0x11e);
  // the last run ends mid-sector: the E01 media is zero-filled to the sector
  const runs = [
    { start: 0x1000n, end: 0x9fc00n },
    { start: 0x100000n, end: 0x2c0123n },
  ];
  const data = runs.map((r) => rng.bytes(Number(r.end - r.start)));
  const input = lime(runs, data);
  writeFileSync(join(dir, 'in.lime'), input);
  const out = join(dir, 'out.E01');
  const r = await runCli(['convert', join(dir, 'in.lime'), out, '--to', 'e01', '--segment-size', '1M', '--compression', 'best', '-q'], { umask: 0o000 });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!existsSync(out + '.E01'), 'a path ending in .E01 is kept as it is');
  const files = segmentFiles(dir, 'out');
  assert.ok(files.length >= 3, `${files.length} segment files`);
  const rep = checkSetReport(dir, out, files);
  const media = paddedMedia(runs, data);
  assert.equal(rep.e01?.mediaBytes, String(0x2c0123));
  assert.equal(rep.e01?.storedBytes, String(media.length));
  assert.equal(rep.e01?.compression, 'deflate:best');
  assert.equal(rep.e01?.mediaDigests.md5, md5(media));
  assert.equal(rep.contentSha256 !== null, true);
  if (EWF) assert.deepEqual(ewfCheck(dir, out), media, 'ewfexport gives the padded media, zero-filled to the sector');
  // our own reader finds the runs again through out.E01.map.json
  const back = join(dir, 'back.lime');
  const b = await runCli(['convert', out, back, '--to', 'lime', '-q']);
  assert.equal(b.code, 0, b.stderr);
  assert.deepEqual(readFileSync(back), input);
});

test('E01 to standard output is one segment file; the report says so and ewfverify accepts the stream', async (t) => {
  const dir = tempDir(t);
  const rng = new Prng(0x5d0);
  const runs = [{ start: 0x200000n, end: 0x380000n }];
  const data = [rng.bytes(0x180000)];
  writeFileSync(join(dir, 'in.lime'), lime(runs, data));
  const r = await runCli(['convert', join(dir, 'in.lime'), '-', '--to', 'e01', '--segment-size', '1M', '--report', join(dir, 'r.json'), '-q']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.subarray(0, 8), Buffer.from('EVF\x09\x0d\x0a\xff\x00', 'latin1'));
  const rep = parseReport(readFileSync(join(dir, 'r.json'), 'utf8'), 'r.json');
  assert.equal(rep.hashes?.digests.sha256, sha256(r.stdout));
  assert.deepEqual(rep.e01?.segments, [{ path: '-', bytes: String(r.stdout.length) }]);
  assert.ok(rep.warnings.some((w) => /one segment/.test(w)), rep.warnings.join('; '));
  assert.ok(rep.outputs.length === 1 && rep.outputs[0]!.sha256 === sha256(r.stdout));
  if (!EWF) return t.skip('ewf-tools not installed');
  const file = join(dir, 'stream.E01');
  writeFileSync(file, r.stdout);
  assert.deepEqual(ewfCheck(dir, file), paddedMedia(runs, data));
});

test('E01 usage: options without --format e01, a bad level, and an existing segment name are refused before any byte is written', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'in.lime'), lime([{ start: 0n, end: 0x10000n }], [Buffer.alloc(0x10000, 7)]));
  let r = await runCli(['convert', join(dir, 'in.lime'), join(dir, 'x.lime'), '--to', 'lime', '--segment-size', '2M']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /E_USAGE.*--segment-size applies to E01/);
  r = await runCli(['convert', join(dir, 'in.lime'), join(dir, 'x'), '--to', 'e01', '--compression', 'max']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /E_USAGE.*--compression/);
  r = await runCli(['convert', join(dir, 'in.lime'), join(dir, 'x'), '--to', 'e01', '--segment-size', '100K']);
  assert.equal(r.code, 2);
  writeFileSync(join(dir, 'y.E07'), 'an older acquisition');
  r = await runCli(['convert', join(dir, 'in.lime'), join(dir, 'y.E01'), '--to', 'e01', '--json']);
  assert.equal(r.code, 6, r.stderr);
  assert.equal(JSON.parse(r.stderr.trim().split('\n').pop()!).error.code, 'E_DEST_EXISTS');
  assert.deepEqual(readdirSync(dir).sort(), ['in.lime', 'y.E07']);
  assert.equal(readFileSync(join(dir, 'y.E07'), 'utf8'), 'an older acquisition');
  const help = (await runCli(['acquire', '--help'])).stdout.toString();
  assert.match(help, /lime \| padded \| raw \| elf \| avml \| e01/);
  assert.match(help, /--segment-size/);
  assert.match((await runCli(['convert', '--help'])).stdout.toString(), /--to e01/);
});

function jobOptions(source: MemorySource, output: string, extra: Partial<JobOptions>): JobOptions {
  return {
    command: 'image',
    argv: ['test'],
    caseFields: { case: 'C-1' },
    root: '/',
    source,
    attempts: [],
    lockdown: undefined,
    ram: source.ranges,
    notes: [],
    format: formatByName('padded'),
    output,
    digests: ['md5', 'sha256'],
    windowSize: 0n,
    rateLimit: 0,
    maxDiskUsage: 100,
    policy: {},
    context: undefined,
    reportPath: undefined,
    contentHash: false,
    warnings: [],
    options: {},
    ...extra,
  };
}

test('runJob splitBytes: OUT.001, OUT.002, … cut exactly every N bytes; one output entry per piece; no map when sidecarMap is false; image section kept', async (t) => {
  const dir = tempDir(t);
  const rng = new Prng(0x5b1);
  const runs = [
    { start: 0n, end: 0x30000n },
    { start: 0x40000n, end: 0x52345n },
  ];
  const data = runs.map((r) => rng.bytes(Number(r.end - r.start)));
  const source = new MemorySource({ runs, data });
  const padded = Buffer.alloc(0x52345);
  runs.forEach((r, i) => data[i]!.copy(padded, Number(r.start)));
  const out = join(dir, 'disk.img');
  const image = {
    device: { path: '/dev/test', type: 'file' as const, bytes: String(padded.length), sectorSize: 512, mounted: null, swap: null },
    sectors: { in: '0', out: '0', bad: '0', retriesPerSector: 0, maxErrors: null },
    split: null,
    verify: null,
  };
  const res = await runJob(jobOptions(source, out, { splitBytes: 0x10000n, sidecarMap: false, imageReport: async (c) => ({ ...image, split: { bytes: '65536', files: (c.receipt.segments ?? []).map((s) => ({ path: s.path, bytes: String(s.bytes) })) } }) }));
  assert.equal(res.exitCode, 0);
  const names = readdirSync(dir).sort();
  assert.deepEqual(names, ['disk.img.001', 'disk.img.002', 'disk.img.003', 'disk.img.004', 'disk.img.005', 'disk.img.006', 'disk.img.log', 'disk.img.report.json']);
  const files = names.filter((n) => /\.\d{3}$/.test(n)).map((n) => join(dir, n));
  assert.deepEqual(files.map((f) => statSync(f).size), [0x10000, 0x10000, 0x10000, 0x10000, 0x10000, 0x2345]);
  assert.deepEqual(Buffer.concat(files.map((f) => readFileSync(f))), padded);
  const rep = parseReport(readFileSync(out + '.report.json', 'utf8'), 'report');
  assert.equal(rep.hashes?.digests.sha256, sha256(padded));
  assert.deepEqual(rep.outputs.map((o) => [o.role, o.path, o.sha256]), files.map((f, i) => [i === 0 ? 'evidence' : 'segment', f, null]));
  assert.equal(rep.image?.device.path, '/dev/test');
  assert.deepEqual(rep.image?.split?.files.map((f) => f.path), files);
  assert.equal(rep.e01, undefined);
  for (const f of files) assert.equal(statSync(f).mode & 0o777, 0o600);

  // stdout cannot be split; E01 is split by --segment-size
  await expectCodeAsync(runJob(jobOptions(source, '-', { splitBytes: 0x10000n })), 'E_USAGE');
  await expectCodeAsync(runJob(jobOptions(source, join(dir, 'e'), { splitBytes: 0x10000n, format: formatByName('e01') })), 'E_USAGE');
  assert.ok(!readdirSync(dir).some((n) => n.startsWith('e.')), 'refused before creating anything');
});

test('runJob e01 interrupted mid-copy: every segment stays .partial, the report is INCOMPLETE and lists them, no e01 section', async (t) => {
  const dir = tempDir(t);
  const rng = new Prng(0xabc);
  // the writer keeps a few MiB of chunks in flight to its compression threads: cut well after that
  const runs = [{ start: 0n, end: 16n << 20n }];
  const source = new MemorySource({ runs, data: [rng.bytes(16 << 20)] });
  const ac = new AbortController();
  const res = await runJob(
    jobOptions(source, join(dir, 'cut'), {
      command: 'convert',
      format: formatByName('e01'),
      policy: { signal: ac.signal },
      media: { type: 'memory', caseNumber: null, examiner: null, evidenceNumber: null, notes: null, description: 'test', acquired: new Date(0), compression: 'none', segmentBytes: 1n << 20n },
      onProgress: (done) => {
        if (done >= 12n << 20n) ac.abort();
      },
    }),
  );
  assert.notEqual(res.exitCode, 0);
  const rep = res.report;
  assert.equal(rep.status, 'INCOMPLETE');
  assert.equal(rep.e01, undefined);
  const names = readdirSync(dir).sort();
  assert.ok(!names.some((n) => /\.E\d\d$/.test(n)), `nothing complete-looking: ${names.join(' ')}`);
  const partial = names.filter((n) => n.endsWith('.partial'));
  assert.ok(partial.length >= 3, partial.join(' '));
  assert.equal(partial[0], 'cut.E01.partial');
  assert.deepEqual(
    rep.outputs.map((o) => [o.path, o.complete]),
    partial.map((n) => [join(dir, n), false]),
  );
  assert.equal(rep.hashes?.length, String(partial.reduce((s, n) => s + statSync(join(dir, n)).size, 0)));
});
