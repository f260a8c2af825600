/**
 * E01 reader behaviour: damaged and incomplete sets, table2 fallback, the bounded index, maps, and layouts ewfacquire
 * cannot make (error2 runs, EnCase 6.7.1 offset overflow, EWF2) built here byte by byte from libewf's document.
 * Files from ewfacquire are made inside the tests from seeded data; those tests skip when ewf-tools is absent.
 * Byte-for-byte agreement with ewfexport/ewfinfo/ewfverify is in test/oracle/ewf-read.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { deflateSync } from 'node:zlib';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { Prng } from '../../test/helpers/prng.js';
import { adler32 } from '../core/adler32.js';
import { RandomAccessFile } from '../core/file.js';
import { e01, e01MediaDigests, openE01, type E01Image, type E01OpenOptions } from './e01.js';
import { openImage } from './registry.js';

const HAVE_EWF = spawnSync('ewfacquire', ['-V']).status === 0;
const NO_EWF = 'ewfacquire (ewf-tools) is not installed';
const dir = mkdtempSync(join(tmpdir(), 'memdump-e01-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;

/** Seeded media that gives both compressed and stored chunks: random, zero, text and low-entropy pieces. */
function mixed(seed: number, size: number): Buffer {
  const rng = new Prng(seed);
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; ) {
    const n = Math.min(size - at, 1000 + rng.int(60000));
    const kind = rng.int(5);
    if (kind <= 1) rng.bytes(n).copy(out, at);
    else if (kind === 2) out.write(`memdump ${seed} ${at} `.repeat(Math.ceil(n / 16)), at, n, 'latin1');
    else if (kind === 3) for (let i = 0; i < n; i++) out[at + i] = rng.int(8);
    at += n;
  }
  return out;
}

/** ewfacquire `data` into a fresh directory; returns the first segment's path. */
function acquire(data: Buffer, args: string[], name = 'img'): string {
  const d = join(dir, `acq${seq++}`);
  execFileSync('mkdir', [d]);
  writeFileSync(join(d, 'in.bin'), data);
  execFileSync('ewfacquire', ['-u', '-q', '-t', join(d, name), ...args, join(d, 'in.bin')], { stdio: 'ignore' });
  return join(d, `${name}.E01`);
}

async function open(path: string, options: E01OpenOptions = {}): Promise<E01Image> {
  return openE01(await RandomAccessFile.open(path), options);
}

async function readAll(img: E01Image): Promise<Buffer> {
  return img.read(0n, Number(img.mediaBytes));
}

/** Offset of the first section of this type in a segment file (walking the chain as the reader does). */
function sectionAt(file: Buffer, type: string): number {
  for (let at = 13; at + 76 <= file.length; ) {
    const t = file.subarray(at, at + 16).toString('latin1').replace(/\0.*$/s, '');
    if (t === type) return at;
    const next = Number(file.readBigUInt64LE(at + 16));
    if (next <= at) break;
    at = next;
  }
  throw new Error(`no ${type} section`);
}

// A 4 MiB acquisition in several 1 MiB segments, shared by the tests below (made once).
let shared: { path: string; data: Buffer } | undefined;
function sharedSet(): { path: string; data: Buffer } {
  shared ??= (() => {
    const data = mixed(11, 4 * 1024 * 1024 + 512 * 7);
    return { path: acquire(data, ['-c', 'deflate:fast', '-S', '1MiB', '-C', 'case 9', '-D', 'desc', '-e', 'exam', '-E', 'ev 1', '-N', 'notes', '-d', 'sha1']), data };
  })();
  return shared;
}

/** Copy every segment of a set (up to .E99) into a fresh directory as img.E01, img.E02, … */
function copySet(src: string): string {
  const d = join(dir, `copy${seq++}`);
  execFileSync('mkdir', [d]);
  for (let i = 1; i <= 99; i++) {
    const from = src.replace(/01$/, String(i).padStart(2, '0'));
    if (!existsSync(from)) break;
    copyFileSync(from, join(d, `img.E${String(i).padStart(2, '0')}`));
  }
  return join(d, 'img.E01');
}

function flip(b: Buffer, i: number, mask = 1): void {
  b[i] = b[i]! ^ mask;
}

test('a multi-segment ewfacquire set reads back exactly, with a tiny index budget and one open segment', { skip: !HAVE_EWF && NO_EWF }, async () => {
  const { path, data } = sharedSet();
  for (const options of [{}, { indexBudgetChunks: 1, maxOpenSegments: 1 }]) {
    const img = await open(path, options);
    const segs = img.details['segments'] as { firstChunk: number; chunks: number }[];
    assert.ok(segs.length >= 3, `segments: ${segs.length}`);
    assert.deepEqual(img.runs, [{ start: 0n, end: BigInt(data.length) }]);
    assert.ok((await readAll(img)).equals(data));
    // Reads straddling every segment boundary, against the order the tables were loaded in.
    for (const s of segs.slice(1).reverse()) {
      const at = BigInt(s.firstChunk * 32768 - 1000);
      assert.ok((await img.read(at, 2000)).equals(data.subarray(Number(at), Number(at) + 2000)));
    }
    const rng = new Prng(3);
    for (let i = 0; i < 200; i++) {
      const a = rng.int(data.length);
      const n = Math.min(data.length - a, rng.int(100_000));
      assert.ok((await img.read(BigInt(a), n)).equals(data.subarray(a, a + n)), `read ${a}+${n}`);
    }
    // Many reads at once through one open segment and a one-table index: handles are shared, never closed in use.
    const spots = Array.from({ length: 64 }, () => rng.int(data.length - 70_000));
    const got = await Promise.all(spots.map((a) => img.read(BigInt(a), 70_000)));
    got.forEach((b, i) => assert.ok(b.equals(data.subarray(spots[i]!, spots[i]! + 70_000)), `concurrent read ${spots[i]}`));
    const d = await e01MediaDigests(img);
    assert.deepEqual(img.details['storedDigests'], { md5: d.md5, sha1: d.sha1 });
    assert.equal(d.bytes, BigInt(data.length));
    await img.close();
  }
});

test('details: case fields, media and digests from the set', { skip: !HAVE_EWF && NO_EWF }, async () => {
  const { path, data } = sharedSet();
  const img = await open(path);
  const d = img.details;
  assert.equal(d['variant'], 'encase6');
  assert.equal(d['caseNumber'], 'case 9');
  assert.equal(d['description'], 'desc');
  assert.equal(d['examiner'], 'exam');
  assert.equal(d['evidenceNumber'], 'ev 1');
  assert.equal(d['notes'], 'notes');
  assert.match(String(d['acquiredAt']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(d['bytesPerSector'], 512);
  assert.equal(d['sectorsPerChunk'], 64);
  assert.equal(d['mediaBytes'], String(data.length));
  assert.equal(d['sectorCount'], String(data.length / 512));
  assert.equal(d['chunkCount'], Math.ceil(data.length / 32768));
  assert.equal(d['compression'], 'deflate:fast');
  assert.deepEqual(d['errorRuns'], []);
  assert.deepEqual(d['problems'], []);
  await img.close();
});

test('a flipped byte in a compressed chunk: E_CORRUPT for that chunk only, and the media digests fail', { skip: !HAVE_EWF && NO_EWF }, async () => {
  const { path, data } = sharedSet();
  const bad = copySet(path);
  const img0 = await open(bad);
  const segCount = (img0.details['segments'] as unknown[]).length;
  await img0.close();
  // Segment 1's largest compressed chunk (a flip in a tiny stream of repeats can decode to the same bytes).
  const f = readFileSync(bad);
  const t = sectionAt(f, 'table');
  const base = Number(f.readBigUInt64LE(t + 76 + 8));
  const entry = (i: number) => base + (f.readUInt32LE(t + 100 + i * 4) & 0x7fffffff);
  const compressed = [...Array(f.readUInt32LE(t + 76) - 1).keys()].filter((i) => i > 0 && f.readUInt32LE(t + 100 + i * 4) >>> 31 === 1);
  assert.ok(compressed.length > 0, 'the fixture has compressed chunks in segment 1');
  const c = compressed.reduce((best, i) => (entry(i + 1) - entry(i) > entry(best + 1) - entry(best) ? i : best));
  const at = entry(c);
  const size = entry(c + 1) - at;
  flip(f, at + (size >> 1), 0x55);
  writeFileSync(bad, f);
  const img = await open(bad);
  assert.equal((img.details['segments'] as unknown[]).length, segCount);
  const e = await expectCodeAsync(img.read(BigInt(c * 32768 + 5), 10), 'E_CORRUPT');
  assert.equal(e.details['chunk'], c);
  assert.equal(e.details['offset'], '0x' + at.toString(16));
  assert.match(e.message, new RegExp(`chunk ${c} `));
  assert.ok((await img.read(BigInt((c + 1) * 32768), 32768)).equals(data.subarray((c + 1) * 32768, (c + 2) * 32768)), 'neighbours still read');
  await expectCodeAsync(e01MediaDigests(img), 'E_CORRUPT');
  await img.close();
});

test('a flipped byte in a stored (uncompressed) chunk fails its adler32', { skip: !HAVE_EWF && NO_EWF }, async () => {
  const data = mixed(5, 200 * 1024);
  const path = acquire(data, ['-c', 'none']);
  const f = readFileSync(path);
  const s = sectionAt(f, 'sectors');
  flip(f, s + 76 + 32768 + 4 + 100); // chunk 1's 101st byte
  writeFileSync(path, f);
  const img = await open(path);
  assert.ok((await img.read(0n, 32768)).equals(data.subarray(0, 32768)));
  const e = await expectCodeAsync(img.read(32768n + 100n, 1), 'E_CORRUPT');
  assert.equal(e.details['chunk'], 1);
  assert.match(e.message, /adler32/);
  await img.close();
});

test('a damaged table falls back to table2 (noted); both damaged is E_CORRUPT', { skip: !HAVE_EWF && NO_EWF }, async () => {
  const data = mixed(6, 300 * 1024);
  const path = acquire(data, ['-c', 'deflate:best']);
  const f = readFileSync(path);
  const t = sectionAt(f, 'table');
  flip(f, t + 100 + 8, 0x10); // third entry: the entries checksum no longer matches
  writeFileSync(path, f);
  let img = await open(path);
  assert.ok((await readAll(img)).equals(data));
  assert.match(String((img.details['problems'] as string[])[0]), /entries checksum mismatch.*table2 copy was used/);
  await img.close();
  const t2 = sectionAt(f, 'table2');
  flip(f, t2 + 76); // table2's entry count: header checksum fails
  writeFileSync(path, f);
  await expectCodeAsync(open(path), 'E_CORRUPT', BigInt(t2));
});

test('a missing, truncated, misnumbered or foreign segment is a coded error', { skip: !HAVE_EWF && NO_EWF }, async () => {
  const { path } = sharedSet();
  const p = copySet(path);
  const e02 = p.replace(/01$/, '02');
  const e03 = p.replace(/01$/, '03');
  renameSync(e02, e02 + '.away');
  const e = await expectCodeAsync(open(p), 'E_NOT_FOUND');
  assert.match(e.message, /segment 2 .*img\.E02.* is missing/);
  copyFileSync(e02 + '.away', e02);
  truncateSync(e02, statSync(e02).size >> 1);
  await expectCodeAsync(open(p), 'E_TRUNCATED');
  copyFileSync(e03, e02);
  assert.match((await expectCodeAsync(open(p), 'E_CORRUPT')).message, /says segment 3, expected segment 2/);
  // segment 2 of another acquisition (different size): its data section disagrees with the volume
  const other = acquire(mixed(12, 3 * 1024 * 1024 + 512), ['-c', 'deflate:fast', '-S', '1MiB']);
  copyFileSync(other.replace(/01$/, '02'), e02);
  assert.match((await expectCodeAsync(open(p), 'E_CORRUPT')).message, /another acquisition/);
  // a set named otherwise cannot find its second segment
  const lone = join(dir, 'lone.img');
  copyFileSync(p, lone);
  assert.match((await expectCodeAsync(open(lone), 'E_NOT_FOUND')).message, /not named \.E01/);
});

test('a stored digest with a bad checksum is E_CORRUPT', { skip: !HAVE_EWF && NO_EWF }, async () => {
  const path = acquire(mixed(7, 100 * 1024), ['-d', 'sha1']);
  const f = readFileSync(path);
  const h = sectionAt(f, 'digest');
  flip(f, h + 76 + 3);
  writeFileSync(path, f);
  await expectCodeAsync(open(path), 'E_CORRUPT', BigInt(h));
});

test('runs: whole media by default, the sidecar map beside the file, or given runs laid out padded', { skip: !HAVE_EWF && NO_EWF }, async () => {
  const data = mixed(8, 256 * 1024);
  const path = acquire(data, ['-c', 'deflate:fast']);
  const given = [
    { start: 0x1000n, end: 0x21000n },
    { start: 0x30000n, end: 0x3f000n },
  ];
  let img = await open(path, { sidecarRuns: given });
  assert.deepEqual(img.runs, given);
  assert.ok((await img.read(0x30000n, 0xf000)).equals(data.subarray(0x30000, 0x3f000)));
  assert.ok((await img.read(0x1000n, 0x20000)).equals(data.subarray(0x1000, 0x21000)));
  await expectCodeAsync(img.read(0x21000n, 1), 'E_CORRUPT');
  await expectCodeAsync(img.readMedia(BigInt(data.length) - 1n, Buffer.alloc(2), 0, 2), 'E_CORRUPT');
  await img.close();
  await expectCodeAsync(open(path, { sidecarRuns: [{ start: 0x1000n, end: BigInt(data.length) + 1n }] }), 'E_CORRUPT');
  await expectCodeAsync(open(path, { sidecarRuns: [...given].reverse() }), 'E_USAGE');
  // A map file beside the E01 (as raw and padded have); the magic still says e01, the map gives the runs.
  const map = { kind: 'memdump-map', version: 1, container: 'raw', notes: [], runs: [{ start: '0x7000', end: '0x9000', fileOffset: '0x3000' }] };
  writeFileSync(path + '.map.json', JSON.stringify(map));
  const any = await openImage(path);
  assert.equal(any.format, 'e01');
  assert.deepEqual(any.runs, [{ start: 0x7000n, end: 0x9000n }]);
  assert.ok((await any.read(0x7000n, 0x2000)).equals(data.subarray(0x3000, 0x5000)));
  assert.equal(any.details['map'], 'sidecar');
  await any.close();
  rmSync(path + '.map.json');
  img = await open(path);
  assert.deepEqual(img.runs, [{ start: 0n, end: BigInt(data.length) }]);
  await img.close();
});

// ---------------------------------------------------------------------------------------------------------------
// Sets built here, for what ewfacquire does not write.

function desc(type: string, offset: number, size: number, self = false): Buffer {
  const d = Buffer.alloc(76);
  d.write(type, 0, 'latin1');
  d.writeBigUInt64LE(BigInt(self ? offset : offset + size), 16);
  d.writeBigUInt64LE(BigInt(self ? 0 : size), 24);
  d.writeUInt32LE(adler32(d, 1, 0, 72), 72);
  return d;
}

function sum(b: Buffer, end: number): Buffer {
  b.writeUInt32LE(adler32(b, 1, 0, end), end);
  return b;
}

const HOLE = 1 << 20;
const ZERO_HOLE = Buffer.alloc(HOLE);

interface Piece {
  at: number;
  bytes: Buffer;
}

/**
 * One EnCase 6 style segment: header, volume, sectors, table, table2, [error2], hash, done. `chunks` are the stored
 * chunk bytes; `rel` their offsets from the sectors descriptor (default back to back), as table entries (bit 31 set
 * by the caller for compressed ones). Written sparsely: holes stay holes.
 */
function buildSet(path: string, o: { sectors: bigint; spc: number; chunks: Buffer[]; entries?: number[]; error2?: [number, number][]; md5?: Buffer }): void {
  const pieces: Piece[] = [];
  const head = Buffer.from('EVF\x09\x0d\x0a\xff\x00\x01\x01\x00\x00\x00', 'latin1');
  pieces.push({ at: 0, bytes: head });
  const vol = Buffer.alloc(1052);
  vol[0] = 0x10;
  vol.writeUInt32LE(o.chunks.length, 4);
  vol.writeUInt32LE(o.spc, 8);
  vol.writeUInt32LE(512, 12);
  vol.writeBigUInt64LE(o.sectors, 16);
  vol[36] = 1;
  pieces.push({ at: 13, bytes: Buffer.concat([desc('volume', 13, 76 + 1052), sum(vol, 1048)]) });
  const sectorsAt = 13 + 76 + 1052;
  const entries: number[] = [];
  let pos = 76;
  o.chunks.forEach((c, i) => {
    const rel = o.entries?.[i] ?? pos;
    entries.push(rel);
    pieces.push({ at: sectorsAt + rel, bytes: c });
    pos = rel + c.length;
  });
  const tableAt = sectorsAt + pos;
  pieces.push({ at: sectorsAt, bytes: desc('sectors', sectorsAt, pos) });
  const th = Buffer.alloc(24);
  th.writeUInt32LE(entries.length, 0);
  th.writeBigUInt64LE(BigInt(sectorsAt), 8);
  sum(th, 20);
  const list = Buffer.alloc(entries.length * 4 + 4);
  entries.forEach((e, i) => list.writeUInt32LE(e >>> 0, i * 4));
  sum(list, entries.length * 4);
  const tsize = 76 + 24 + list.length;
  let at = tableAt;
  for (const type of ['table', 'table2']) {
    pieces.push({ at, bytes: Buffer.concat([desc(type, at, tsize), th, list]) });
    at += tsize;
  }
  if (o.error2) {
    const h = Buffer.alloc(520);
    h.writeUInt32LE(o.error2.length, 0);
    sum(h, 516);
    const runs = Buffer.alloc(o.error2.length * 8 + 4);
    o.error2.forEach(([s, n], i) => (runs.writeUInt32LE(s, i * 8), runs.writeUInt32LE(n, i * 8 + 4)));
    sum(runs, o.error2.length * 8);
    pieces.push({ at, bytes: Buffer.concat([desc('error2', at, 76 + 520 + runs.length), h, runs]) });
    at += 76 + 520 + runs.length;
  }
  if (o.md5) {
    const h = Buffer.alloc(36);
    o.md5.copy(h);
    pieces.push({ at, bytes: Buffer.concat([desc('hash', at, 112), sum(h, 32)]) });
    at += 112;
  }
  pieces.push({ at, bytes: desc('done', at, 0, true) });
  const fd = openSync(path, 'w');
  for (const p of pieces) {
    // Zero stretches of 1 MiB are left as holes: the overflow test's 2 GiB file costs a few writes.
    for (let i = 0; i < p.bytes.length; i += HOLE) {
      const part = p.bytes.subarray(i, i + HOLE);
      if (part.length < HOLE || !part.equals(ZERO_HOLE)) writeSync(fd, part, 0, part.length, p.at + i);
    }
  }
  closeSync(fd);
}

function plain(data: Buffer): Buffer {
  const b = Buffer.alloc(data.length + 4);
  data.copy(b);
  b.writeUInt32LE(adler32(data), data.length);
  return b;
}

test('error2 runs and a set without header sections', async () => {
  const media = mixed(9, 3 * 32768 - 1024);
  const p = join(dir, 'err.E01');
  const chunks = [0, 1, 2].map((i) => media.subarray(i * 32768, (i + 1) * 32768));
  buildSet(p, { sectors: BigInt(media.length / 512), spc: 64, chunks: [deflateSync(chunks[0]!), plain(chunks[1]!), deflateSync(chunks[2]!)], error2: [[8, 8], [130, 2]] });
  // mark chunks 0 and 2 compressed
  const f = readFileSync(p);
  const t = sectionAt(f, 'table');
  for (const tt of [t, sectionAt(f, 'table2')]) {
    for (const i of [0, 2]) f.writeUInt32LE((f.readUInt32LE(tt + 100 + i * 4) | 0x80000000) >>> 0, tt + 100 + i * 4);
    f.writeUInt32LE(adler32(f, 1, tt + 100, tt + 112), tt + 112);
  }
  writeFileSync(p, f);
  const img = await open(p);
  assert.deepEqual(img.details['errorRuns'], [
    { firstSector: '8', sectors: '8' },
    { firstSector: '130', sectors: '2' },
  ]);
  assert.equal(img.details['mediaType'], 'memory');
  assert.equal(img.details['caseNumber'], null);
  assert.deepEqual(img.details['storedDigests'], { md5: null, sha1: null });
  assert.ok((await readAll(img)).equals(media));
  await img.close();
});

test('EnCase 6.7.1 sectors past 2 GiB: overflowed 32-bit entries read as stored chunks', async () => {
  const chunkSize = 32768 * 512; // 16 MiB chunks keep the 2 GiB sparse file to a few writes
  const zeros = plain(Buffer.alloc(chunkSize));
  const tail = [Buffer.alloc(chunkSize, 0xa5), Buffer.alloc(chunkSize - 512, 0x5a)];
  const chunks = [...Array<Buffer>(128).fill(zeros), plain(tail[0]!), plain(tail[1]!)];
  const entries = chunks.map((_, i) => 76 + i * (chunkSize + 4));
  assert.ok(entries[128]! >= 2 ** 31 && entries[127]! < 2 ** 31);
  const p = join(dir, 'overflow.E01');
  buildSet(p, { sectors: BigInt((130 * chunkSize - 512) / 512), spc: 32768, chunks, entries });
  const img = await open(p);
  const at = BigInt(128 * chunkSize);
  assert.ok((await img.read(at - 16n, 32)).equals(Buffer.concat([Buffer.alloc(16), Buffer.alloc(16, 0xa5)])));
  assert.ok((await img.read(at + BigInt(chunkSize) - 8n, 16)).equals(Buffer.concat([Buffer.alloc(8, 0xa5), Buffer.alloc(8, 0x5a)])));
  assert.equal(img.details['compressedChunks'], 0);
  await img.close();
});

test('EWF2 (Ex01) and logical (L01) files are E_UNSUPPORTED; detect wants segment 1', async () => {
  for (const [name, sig] of [
    ['x.Ex01', 'EVF2\r\n\x81\x00\x02\x01'],
    ['x.Lx01', 'LEF2\r\n\x81\x00\x02\x01'],
    ['x.L01', 'LVF\x09\x0d\x0a\xff\x00\x01\x01\x00\x00\x00'],
  ] as const) {
    const p = join(dir, name);
    writeFileSync(p, Buffer.concat([Buffer.from(sig, 'latin1'), Buffer.alloc(200)]));
    assert.equal(e01.detect(readFileSync(p), 213n), true);
    await expectCodeAsync(open(p), 'E_UNSUPPORTED');
  }
  const seg = Buffer.from('EVF\x09\x0d\x0a\xff\x00\x01\x01\x00\x00\x00', 'latin1');
  assert.equal(e01.detect(seg, 13n), true);
  seg[9] = 2;
  assert.equal(e01.detect(seg, 13n), false);
  assert.equal(e01.detect(Buffer.from('EVF'), 3n), false);
  const p = join(dir, 'short.E01');
  writeFileSync(p, seg.subarray(0, 10));
  await expectCodeAsync(open(p), 'E_TRUNCATED');
});
