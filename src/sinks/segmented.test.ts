import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { Prng } from '../../test/helpers/prng.js';
import { E01_MAX_SEGMENTS, SegmentedFileSink, e01Naming, piecePath, splitNaming } from './segmented.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;

/** Everything in dir, sorted; what a test expects to find there and nothing else. */
const ls = (dir: string) => readdirSync(dir).sort();

async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const old = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(old);
  }
}

test('E01 names follow libewf: E01…E99, EAA…EZZ, FAA…ZZZ, then none', () => {
  const n = e01Naming('/x/case.E01');
  assert.equal(n.base, '/x/case');
  const expect: [number, string][] = [
    [1, 'E01'],
    [9, 'E09'],
    [10, 'E10'],
    [99, 'E99'],
    [100, 'EAA'],
    [101, 'EAB'],
    [125, 'EAZ'],
    [126, 'EBA'],
    [775, 'EZZ'],
    [776, 'FAA'],
    [E01_MAX_SEGMENTS, 'ZZZ'],
  ];
  for (const [i, ext] of expect) assert.equal(n.ext(i), ext, `segment ${i}`);
  assert.equal(E01_MAX_SEGMENTS, 14971);
  assert.equal(n.ext(E01_MAX_SEGMENTS + 1), undefined);
  assert.equal(n.ext(0), undefined);
  // lowercase sets continue in lowercase, as libewf's glob expects for x.e01
  const lower = e01Naming('/x/case.e01');
  assert.deepEqual([1, 99, 100, 776].map((i) => lower.ext(i)), ['e01', 'e99', 'eaa', 'faa']);
  assert.throws(() => e01Naming('/x/case.raw'), /\.E01/);
});

test('E01 and split names are one-to-one: pieceOf inverts ext and rejects what is never produced', () => {
  for (const n of [e01Naming('a.E01'), e01Naming('a.e01')]) {
    const seen = new Set<string>();
    for (let i = 1; i <= E01_MAX_SEGMENTS; i++) {
      const ext = n.ext(i)!;
      assert.ok(!seen.has(ext), ext);
      seen.add(ext);
      assert.equal(n.pieceOf(ext), i);
    }
    for (const bad of ['E00', 'e00', 'E1', 'E001', 'DAA', 'daa', '[AA', 'EA0', 'partial', 'e01x']) assert.equal(n.pieceOf(bad), undefined, bad);
  }
  // case is part of the name: an upper-case set never produces e02 or map, a lower-case one does produce map (5523)
  assert.equal(e01Naming('a.E01').pieceOf('e02'), undefined);
  assert.equal(e01Naming('a.E01').pieceOf('map'), undefined);
  assert.equal(e01Naming('a.e01').pieceOf('map'), 100 + 8 * 676 + 15);
  const s = splitNaming('a');
  fc.assert(fc.property(fc.integer({ min: 1, max: 1e9 }), (i) => s.pieceOf(s.ext(i)!) === i));
  assert.deepEqual([1, 2, 999, 1000].map((i) => s.ext(i)), ['001', '002', '999', '1000']);
  for (const bad of ['000', '01', '0001', 'E01', '1a2']) assert.equal(s.pieceOf(bad), undefined, bad);
});

test('ewfacquire itself names segment 100 EAA: our names match its 101+ segment set', { skip: !hasTool('ewfacquire') && 'ewfacquire not installed' }, (t) => {
  const dir = tempDir(t);
  const input = join(dir, 'zeros');
  writeFileSync(input, '');
  truncateSync(input, 101 << 20);
  execFileSync('ewfacquire', ['-u', '-q', '-t', join(dir, 'ref'), '-S', String(1 << 20), '-c', 'none', '-m', 'fixed', input], { stdio: 'ignore' });
  const got = ls(dir).filter((f) => f.startsWith('ref.'));
  assert.ok(got.length > 100, `${got.length} segments`);
  const n = e01Naming(join(dir, 'ref.E01'));
  const ours = Array.from({ length: got.length }, (_, i) => 'ref.' + n.ext(i + 1)).sort();
  assert.deepEqual(got, ours);
});

test('E01 mode: the writer decides the pieces; 0600 under umask 0; position counts across pieces; segments in the receipt', async (t) => {
  const dir = tempDir(t);
  const rng = new Prng(0xe01);
  const a = rng.bytes(5000);
  const b = rng.bytes(3000);
  const sink = await withUmask(0, () => SegmentedFileSink.e01(join(dir, 'm.E01')));
  assert.equal(typeof sink.newSegment, 'function');
  await sink.write(a);
  await sink.writeZeros(1000n);
  assert.equal(sink.position, 6000n);
  await withUmask(0, () => sink.newSegment!());
  await sink.write(b);
  assert.equal(sink.position, 9000n);
  assert.deepEqual(ls(dir), ['m.E01.partial', 'm.E02.partial']);
  const r = await sink.finish();
  assert.deepEqual(ls(dir), ['m.E01', 'm.E02']);
  assert.equal(r.path, join(dir, 'm.E01'));
  assert.equal(r.bytes, 9000n);
  assert.equal(r.complete, true);
  assert.deepEqual(r.segments, [
    { path: join(dir, 'm.E01'), bytes: 6000n },
    { path: join(dir, 'm.E02'), bytes: 3000n },
  ]);
  for (const f of ls(dir)) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  assert.deepEqual(readFileSync(join(dir, 'm.E01')), Buffer.concat([a, Buffer.alloc(1000)]));
  assert.deepEqual(readFileSync(join(dir, 'm.E02')), b);
});

test('E01 mode goes past E99: segment 100 is EAA, 102 is EAC', async (t) => {
  const dir = tempDir(t);
  const sink = await SegmentedFileSink.e01(join(dir, 'big.E01'));
  for (let i = 1; i <= 102; i++) {
    if (i > 1) await sink.newSegment!();
    await sink.write(Buffer.from([i & 0xff]));
  }
  const r = await sink.finish();
  const files = ls(dir);
  assert.equal(files.length, 102);
  for (const name of ['big.E01', 'big.E99', 'big.EAA', 'big.EAB', 'big.EAC']) assert.ok(files.includes(name), name);
  assert.equal(r.segments?.[99]?.path, join(dir, 'big.EAA'));
  assert.deepEqual(readFileSync(join(dir, 'big.E99')), Buffer.from([99]));
  assert.deepEqual(readFileSync(join(dir, 'big.EAA')), Buffer.from([100]));
  assert.deepEqual(readFileSync(join(dir, 'big.EAC')), Buffer.from([102]));
});

test('split mode rolls over exactly at the boundary and divides a write that crosses it', async (t) => {
  const dir = tempDir(t);
  const rng = new Prng(7);
  // exactly two pieces' worth: no third, empty piece
  let sink = await SegmentedFileSink.split(join(dir, 'exact'), 4096n);
  assert.equal(sink.newSegment, undefined, 'split sets are not E01 segment sets');
  const whole = rng.bytes(8192);
  await sink.write(whole.subarray(0, 4096));
  assert.deepEqual(ls(dir), ['exact.001.partial'], 'a full piece does not open the next one before a byte needs it');
  await sink.write(whole.subarray(4096));
  let r = await sink.finish();
  assert.deepEqual(ls(dir), ['exact.001', 'exact.002']);
  assert.deepEqual(r.segments?.map((s) => s.bytes), [4096n, 4096n]);

  // writes of random sizes (and zero runs) across many boundaries: the pieces concatenate to the stream
  sink = await SegmentedFileSink.split(join(dir, 'odd'), 1000n);
  const parts: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    if (rng.int(4) === 0) {
      const n = rng.int(2500);
      await sink.writeZeros(BigInt(n));
      parts.push(Buffer.alloc(n));
    } else {
      const b = rng.bytes(rng.int(2500) + 1);
      await sink.write(b);
      parts.push(b);
    }
  }
  const stream = Buffer.concat(parts);
  assert.equal(sink.position, BigInt(stream.length));
  r = await sink.finish();
  const files = ls(dir).filter((f) => f.startsWith('odd.'));
  assert.equal(files.length, Math.ceil(stream.length / 1000));
  const sizes = files.map((f) => statSync(join(dir, f)).size);
  assert.ok(sizes.slice(0, -1).every((s) => s === 1000), String(sizes));
  assert.deepEqual(Buffer.concat(files.map((f) => readFileSync(join(dir, f)))), stream);
  assert.equal(r.bytes, BigInt(stream.length));
  assert.deepEqual(r.segments?.map((s) => s.path), files.map((f) => join(dir, f)));
});

test('refuses to start when any piece name of the set (or its .partial) exists, and never follows a symlink', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.E05'), 'keep');
  await expectCodeAsync(SegmentedFileSink.e01(join(dir, 'a.E01')), 'E_DEST_EXISTS');
  writeFileSync(join(dir, 'b.EAA.partial'), 'keep');
  await expectCodeAsync(SegmentedFileSink.e01(join(dir, 'b.E01')), 'E_DEST_EXISTS');
  writeFileSync(join(dir, 'c.017'), 'keep');
  await expectCodeAsync(SegmentedFileSink.split(join(dir, 'c'), 10n), 'E_DEST_EXISTS');
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'victim');
  symlinkSync(victim, join(dir, 'd.E02'));
  await expectCodeAsync(SegmentedFileSink.e01(join(dir, 'd.E01')), 'E_DEST_SYMLINK');
  symlinkSync(victim, join(dir, 'e.E01.partial'));
  await expectCodeAsync(SegmentedFileSink.e01(join(dir, 'e.E01')), 'E_DEST_SYMLINK');
  // names outside the scheme do not block it
  writeFileSync(join(dir, 'f.E01.report.json'), '{}');
  writeFileSync(join(dir, 'f.E00'), '');
  const ok = await SegmentedFileSink.e01(join(dir, 'f.E01'));
  await ok.abort();
  assert.equal(readFileSync(victim, 'utf8'), 'victim');
  assert.deepEqual(ls(dir), ['a.E05', 'b.EAA.partial', 'c.017', 'd.E02', 'e.E01.partial', 'f.E00', 'f.E01.partial', 'f.E01.report.json', 'victim']);
});

test('a piece name that appears mid-run stops the set: E_DEST_SYMLINK, victim untouched; abort keeps every .partial', async (t) => {
  const dir = tempDir(t);
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'victim');
  const sink = await SegmentedFileSink.e01(join(dir, 'm.E01'));
  await sink.write(Buffer.from('one'));
  await sink.newSegment!();
  await sink.write(Buffer.from('two'));
  symlinkSync(victim, join(dir, 'm.E03.partial'));
  await expectCodeAsync(sink.newSegment!(), 'E_DEST_SYMLINK');
  const r = await sink.abort();
  assert.equal(r.complete, false);
  assert.equal(r.partialPath, join(dir, 'm.E01.partial'));
  assert.deepEqual(r.segments, [
    { path: join(dir, 'm.E01.partial'), bytes: 3n },
    { path: join(dir, 'm.E02.partial'), bytes: 3n },
  ]);
  assert.ok(!existsSync(join(dir, 'm.E01')) && !existsSync(join(dir, 'm.E02')), 'nothing complete-looking');
  assert.equal(readFileSync(join(dir, 'm.E02.partial'), 'utf8'), 'two');
  assert.equal(readFileSync(victim, 'utf8'), 'victim');
  assert.ok(lstatSync(join(dir, 'm.E03.partial')).isSymbolicLink());
});

test('abort mid-split leaves only .partial pieces, 0600, with the bytes written', async (t) => {
  const dir = tempDir(t);
  const sink = await withUmask(0, () => SegmentedFileSink.split(join(dir, 'img'), 10n));
  await withUmask(0, () => sink.write(Buffer.alloc(25, 0x41)));
  const r = await sink.abort();
  assert.deepEqual(ls(dir), ['img.001.partial', 'img.002.partial', 'img.003.partial']);
  for (const f of ls(dir)) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  assert.equal(r.bytes, 25n);
  assert.deepEqual(r.segments?.map((s) => s.bytes), [10n, 10n, 5n]);
  assert.equal((await sink.abort()).bytes, 25n, 'abort is idempotent');
});

test('a piece name taken between the last write and finish: earlier pieces published, the rest stay .partial, the error names it', async (t) => {
  const dir = tempDir(t);
  const sink = await SegmentedFileSink.split(join(dir, 's'), 4n);
  await sink.write(Buffer.from('aaaabbbbcc'));
  writeFileSync(join(dir, 's.002'), 'intruder');
  const e = await expectCodeAsync(sink.finish(), 'E_DEST_EXISTS');
  assert.match(e.message, /s\.002 appeared/);
  assert.match(e.message, /1 of 3 pieces were published, 2 stay \.partial/);
  assert.deepEqual(e.details['partial'], [join(dir, 's.002.partial'), join(dir, 's.003.partial')]);
  const r = await sink.abort();
  assert.deepEqual(r.segments?.map((s) => s.path), [join(dir, 's.001'), join(dir, 's.002.partial'), join(dir, 's.003.partial')]);
  assert.equal(readFileSync(join(dir, 's.002'), 'utf8'), 'intruder');
  assert.deepEqual(ls(dir), ['s.001', 's.002', 's.002.partial', 's.003.partial']);
});

test('E01 sets end at ZZZ: asking for segment 14972 is E_UNSUPPORTED, not a wrong name', async () => {
  const n = e01Naming('/nowhere/x.E01');
  assert.equal(n.ext(E01_MAX_SEGMENTS + 1), undefined);
  await expectCodeAsync(Promise.resolve().then(() => piecePath(n, E01_MAX_SEGMENTS + 1)), 'E_UNSUPPORTED');
});
