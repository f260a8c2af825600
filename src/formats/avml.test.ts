import { expectCodeAsync as expectCode } from '../../test/helpers/expect-code.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { defaultAvmlLike, mulberry32 } from '../../test/fixtures/avml-like.js';
import { RandomAccessFile } from '../core/file.js';
import { type Range, normalize } from '../core/ranges.js';
import { AVML_MAGIC, AVML_RECORD_SIZE, type AvmlOpenOptions, AvmlWriter, avml, openAvml } from './avml.js';
import { limeHeader } from './lime.js';
import { STREAM_IDENTIFIER } from './snappy-frame.js';
import type { ByteSink, MemoryImage } from './types.js';

const dir = mkdtempSync(join(tmpdir(), 'memdump-avml-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;

class MemorySink implements ByteSink {
  private readonly parts: Buffer[] = [];
  position = 0n;
  async write(buf: Buffer): Promise<void> {
    this.parts.push(Buffer.from(buf));
    this.position += BigInt(buf.length);
  }
  async writeZeros(n: bigint): Promise<void> {
    await this.write(Buffer.alloc(Number(n)));
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

interface Run {
  readonly range: Range;
  readonly data: Buffer;
}

function run(start: bigint, data: Buffer): Run {
  return { range: { start, end: start + BigInt(data.length) }, data };
}

/** Write runs through an AVML writer, feeding data in pieces of the given sizes (cycled). */
async function writeAvml(
  runs: readonly Run[],
  opts: { recordSize?: number; omitZeroRecords?: boolean; cuts?: readonly number[] } = {},
): Promise<{ file: Buffer; writer: AvmlWriter }> {
  const sink = new MemorySink();
  const plan = { runs: runs.map((r) => r.range), notes: [] };
  const writer =
    opts.recordSize === undefined && opts.omitZeroRecords === undefined
      ? (avml.createWriter(sink, plan) as AvmlWriter)
      : new AvmlWriter(sink, { ...(opts.recordSize === undefined ? {} : { recordSize: opts.recordSize }), omitZeroRecords: opts.omitZeroRecords ?? false });
  const cuts = opts.cuts && opts.cuts.length > 0 ? opts.cuts : [1 << 20];
  let k = 0;
  await writer.begin();
  for (const r of runs) {
    await writer.beginRange(r.range);
    let i = 0;
    while (i < r.data.length) {
      const n = Math.min(r.data.length - i, Math.max(1, cuts[k++ % cuts.length]!));
      await writer.data(r.data.subarray(i, i + n));
      i += n;
    }
    await writer.endRange();
  }
  await writer.end();
  return { file: sink.toBuffer(), writer };
}

async function openBuf(buf: Buffer, options?: AvmlOpenOptions): Promise<MemoryImage> {
  const path = join(dir, `f${fileNo++}.avml`);
  writeFileSync(path, buf);
  const file = await RandomAccessFile.open(path);
  try {
    return options === undefined ? await avml.open(file, {}) : await openAvml(file, options);
  } catch (e) {
    await file.close();
    throw e;
  }
}

/** Open and read every byte of every run (64 KiB steps), then close: the whole reader path. */
async function loadAll(buf: Buffer, options: AvmlOpenOptions = {}): Promise<void> {
  const img = await openBuf(buf, options);
  try {
    for (const r of img.runs) {
      for (let a = r.start; a < r.end; a += 65536n) await img.read(a, Number(r.end - a < 65536n ? r.end - a : 65536n));
    }
  } finally {
    await img.close();
  }
}

/** The same error, at the same offset, whether the file is opened by trailers (errors at read) or walked at open. */
async function expectEither(buf: Buffer, code: string, offset?: bigint): Promise<void> {
  for (const scan of ['auto', 'walk'] as const) await expectCode(loadAll(buf, { scan }), code, offset);
}


async function readAllOf(img: MemoryImage, runs: readonly Run[], step = 1 << 20): Promise<void> {
  for (const r of runs) {
    for (let o = 0; o < r.data.length; o += step) {
      const n = Math.min(step, r.data.length - o);
      const got = await img.read(r.range.start + BigInt(o), n);
      if (!got.equals(r.data.subarray(o, o + n))) assert.fail(`bytes differ in run ${r.range.start.toString(16)} at +${o}`);
    }
  }
}

function mixed(len: number, seed: number): Buffer {
  const rand = mulberry32(seed);
  const b = Buffer.alloc(len);
  let i = 0;
  while (i < len) {
    const n = Math.min(len - i, 1 + Math.floor(rand() * 90000));
    const kind = Math.floor(rand() * 4);
    const piece = b.subarray(i, i + n);
    if (kind === 1) randomBytes(n).copy(piece);
    else if (kind === 2) piece.write('Linux version 6.1.0 (debian-kernel@lists.debian.org) '.repeat(Math.ceil(n / 50)).slice(0, n), 'latin1');
    else if (kind === 3) piece.fill((rand() * 256) | 0);
    i += n;
  }
  return b;
}

/** Offsets of the records in a file we wrote: [header offset, stream length] by walking the trailers forward. */
function recordOffsets(file: Buffer, streamLengths: number[]): number[] {
  const out: number[] = [];
  let pos = 0;
  for (const s of streamLengths) {
    out.push(pos);
    pos += 32 + s + 8;
  }
  assert.equal(pos, file.length);
  return out;
}

/**
 * Model of Volatility 3's AVMLLayer._load_segments/_read_snappy_frames loop (2.11): per record, a window of
 * (end - start) bytes (inclusive end!) and `while decompressed <= end - start`, advancing only when a whole chunk
 * header fits. Returns true when that loop would spin forever. Uncompressed chunk sizes are taken from the header.
 */
function volatilityWouldHang(file: Buffer): boolean {
  let offset = 0;
  while (offset + 4 < file.length) {
    const start = file.readBigUInt64LE(offset + 8);
    const end = file.readBigUInt64LE(offset + 16);
    const expected = Number(end - start);
    const data = file.subarray(offset + 32, offset + 32 + Math.min(expected, file.length - (offset + 32)));
    let decompressed = 0;
    let o = 0;
    let spins = 0;
    while (decompressed <= expected) {
      if (o + 4 < data.length) {
        const type = data[o]!;
        const size = data.readUIntLE(o + 1, 3);
        if (type === 0x00 || type === 0x01) {
          const body = data.subarray(o + 8, o + 4 + size);
          // Compressed: the varint gives the length (a short slice would make libsnappy fail instead).
          decompressed += type === 0x01 ? body.length : body.length > 0 ? varint(body) : 0;
        }
        o += 4 + size;
        spins = 0;
      } else if (++spins > 3) return true;
    }
    offset += 32 + o + 8;
  }
  return false;
}

function varint(b: Buffer): number {
  let v = 0;
  let s = 1;
  for (let i = 0; i < 5 && i < b.length; i++) {
    v += (b[i]! & 0x7f) * s;
    if (b[i]! < 0x80) break;
    s *= 128;
  }
  return v;
}

test('golden header: AVML test vector (image.rs encode_header_avml)', () => {
  const h = limeHeader(AVML_MAGIC, 2, { start: 0x1000n, end: 0x20001n });
  assert.equal(h.toString('hex'), '41564d4c02000000' + '0010000000000000' + '0000020000000000' + '0000000000000000');
});

test('writer output layout: header, framed stream, u64 stream length', async () => {
  const data = Buffer.alloc(0x1f001, 0x41);
  const { file, writer } = await writeAvml([run(0x1000n, data)]);
  assert.equal(file.subarray(0, 32).toString('hex'), '41564d4c02000000' + '0010000000000000' + '0000020000000000' + '0000000000000000');
  assert.equal(file.subarray(32, 42).toString('hex'), STREAM_IDENTIFIER.toString('hex'));
  assert.equal(file.readBigUInt64LE(file.length - 8), BigInt(file.length - 40));
  assert.equal(writer.stats.records, 1);
  assert.equal(writer.stats.bytesOut, BigInt(file.length));
  assert.equal(writer.stats.compressedChunks, 2);
});

test('detect', () => {
  const h = limeHeader(AVML_MAGIC, 2, { start: 0n, end: 1n });
  assert.equal(avml.detect(h, 100n), true);
  assert.equal(avml.detect(limeHeader(0x4c694d45, 1, { start: 0n, end: 1n }), 100n), false);
  assert.equal(avml.detect(limeHeader(AVML_MAGIC, 1, { start: 0n, end: 1n }), 100n), false);
  assert.equal(avml.detect(h.subarray(0, 7), 7n), false);
});

test('round trip: 16 MiB records, zero/random/text data, reads across chunk and record boundaries', async () => {
  const a = mixed(100 * 1024 + 7, 1);
  const b = Buffer.concat([
    Buffer.from('kernel text '.repeat(350000)).subarray(0, 4 << 20),
    Buffer.alloc(4 << 20),
    randomBytes(4 << 20),
    mixed((4 << 20) + 3 * 65536 + 123, 2),
    Buffer.from('end of run b'), // the second record must not be all zeros
  ]);
  const c = Buffer.alloc(2 << 20); // all zeros: AVML would omit it, we keep it
  const runs = [run(0x1000n, a), run(0x100000n, b), run(0x40000000n, c)];
  const { file, writer } = await writeAvml(runs, { cuts: [1, 4095, 65536, 65537, 1 << 20, 3 << 20] });
  assert.equal(writer.stats.records, 4);
  assert.equal(writer.stats.zeroRecords, 1);
  assert.ok(writer.stats.uncompressedChunks >= 64, 'random data stored uncompressed');
  assert.ok(file.length < a.length + b.length + c.length);
  for (const options of [undefined, { indexBudgetChunks: 0 }, { scan: 'walk' as const }, { scan: 'walk' as const, indexBudgetChunks: 300 }]) {
    const img = await openBuf(file, options);
    assert.deepEqual(img.runs, runs.map((r) => r.range));
    assert.equal(img.details['records'], 4);
    assert.equal(img.details['scan'], options?.scan === 'walk' ? 'walk' : 'trailers');
    assert.equal(img.format, 'avml');
    await readAllOf(img, runs);
    // Reads straddling 64 KiB chunk boundaries and the 16 MiB record boundary inside run b.
    const rand = mulberry32(7);
    const edges = [65536, 2 * 65536, AVML_RECORD_SIZE, AVML_RECORD_SIZE + 65536, b.length - 1];
    for (let k = 0; k < 200; k++) {
      const edge = edges[k % edges.length]!;
      const from = Math.max(0, edge - Math.floor(rand() * 70000));
      const len = Math.min(b.length - from, 1 + Math.floor(rand() * 140000));
      const got = await img.read(0x100000n + BigInt(from), len);
      assert.ok(got.equals(b.subarray(from, from + len)), `read at +${from} len ${len}`);
    }
    assert.equal((await img.read(0x1000n, 0)).length, 0);
    await expectCode(img.read(0x0n, 1), 'E_CORRUPT');
    await expectCode(img.read(0x1000n + BigInt(a.length), 1), 'E_CORRUPT');
    await expectCode(img.read(0x1000n + BigInt(a.length) - 1n, 2), 'E_CORRUPT');
    await img.close();
  }
});

test('touching runs and records merge into one run; the map survives', async () => {
  const runs = [run(0x2000n, mixed(5000, 3)), run(0x2000n + 5000n, Buffer.alloc(3000)), run(0x9000n, mixed(10, 4))];
  const { file } = await writeAvml(runs, { recordSize: 1000 });
  const img = await openBuf(file);
  assert.equal(img.details['records'], 5 + 3 + 1);
  assert.deepEqual(img.runs, normalize(runs.map((r) => r.range)));
  await readAllOf(img, runs, 777);
  await img.close();
});

test('incompressible record: the stream is longer than the record; we read it, Volatility 3 would hang', async () => {
  const noise = randomBytes(1 << 20);
  const { file, writer } = await writeAvml([run(0x100000n, noise)]);
  assert.equal(writer.stats.recordsVolatilityCannotRead, 1);
  assert.equal(writer.stats.uncompressedChunks, 16);
  assert.ok(file.length - 40 > noise.length);
  assert.equal(volatilityWouldHang(file), true);
  const img = await openBuf(file);
  assert.equal(img.details['recordsVolatilityCannotRead'], 1);
  assert.ok((await img.read(0x100000n, noise.length)).equals(noise));
  await img.close();
  // The model agrees that compressible files are fine.
  const ok = await writeAvml([run(0x100000n, mixed(1 << 20, 5))]);
  assert.equal(ok.writer.stats.recordsVolatilityCannotRead, 0);
  assert.equal(volatilityWouldHang(ok.file), false);
});

test('property: read(write(x)) == x over random sparse maps', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          gap: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1 << 20 })),
          parts: fc.array(
            fc.oneof(
              fc.integer({ min: 1, max: 70000 }).map((n) => Buffer.alloc(n)),
              fc.integer({ min: 1, max: 70000 }).map((n) => randomBytes(n)),
              fc.uint8Array({ minLength: 1, maxLength: 300 }).map((u) => Buffer.from(u)),
              fc.integer({ min: 1, max: 100000 }).map((n) => Buffer.alloc(n, 'page table ')),
            ),
            { minLength: 1, maxLength: 4 },
          ),
        }),
        { minLength: 1, maxLength: 4 },
      ),
      fc.bigInt({ min: 0n, max: 1n << 40n }),
      // Small record sizes multiply records (and temp-file work); 1000 still gives many records per run.
      fc.oneof(fc.constant(undefined), fc.integer({ min: 1000, max: 200000 })),
      fc.array(fc.integer({ min: 1, max: 150000 }), { minLength: 1, maxLength: 6 }),
      async (spec, base, recordSize, cuts) => {
        const runs: Run[] = [];
        let at = base;
        for (const s of spec) {
          at += BigInt(s.gap);
          const data = Buffer.concat(s.parts);
          runs.push(run(at, data));
          at += BigInt(data.length);
        }
        const { file } = await writeAvml(runs, recordSize === undefined ? { cuts } : { recordSize, cuts });
        const img = await openBuf(file);
        try {
          assert.deepEqual(img.runs, normalize(runs.map((r) => r.range)));
          await readAllOf(img, runs, 50000);
        } finally {
          await img.close();
        }
      },
    ),
    { numRuns: 120, seed: 20240601 },
  );
});

test('concurrent reads share the caches safely', async () => {
  const data = mixed(3 << 20, 14);
  const { file } = await writeAvml([run(0x200000n, data)], { recordSize: 1 << 20 });
  for (const options of [{}, { indexBudgetChunks: 0 }]) {
    const img = await openBuf(file, options);
    const rand = mulberry32(15);
    const reads = Array.from({ length: 300 }, () => {
      const from = Math.floor(rand() * (data.length - 1));
      const len = 1 + Math.floor(rand() * Math.min(200000, data.length - from - 1));
      return { from, len };
    });
    const got = await Promise.all(reads.map((r) => img.read(0x200000n + BigInt(r.from), r.len)));
    got.forEach((g, i) => assert.ok(g.equals(data.subarray(reads[i]!.from, reads[i]!.from + reads[i]!.len)), `read ${i}`));
    await img.close();
  }
});

test('truncated files are E_TRUNCATED with the offset of the incomplete piece', async () => {
  const runs = [run(0x1000n, mixed(200000, 6)), run(0x80000n, mixed(3000, 7))];
  const { file } = await writeAvml(runs);
  const img = await openBuf(file);
  await img.close();
  // Locate the second record: walk the first record's chunks to its u64.
  let p = 32 + 10;
  while (file[p] !== undefined && !(file.readBigUInt64LE(p) === BigInt(p - 32) && file.readUInt32LE(p + 8) === AVML_MAGIC)) {
    p += 4 + file.readUIntLE(p + 1, 3);
  }
  const second = p + 8;
  assert.equal(file.readUInt32LE(second), AVML_MAGIC);
  const firstChunk = 32 + 10;
  const cases: Array<[number, bigint]> = [
    [10, 0n], // inside the first header
    [32, 32n], // header only: no stream identifier
    [36, 32n], // inside the stream identifier
    [firstChunk + 3, BigInt(firstChunk)], // inside a chunk header
    [firstChunk + 100, BigInt(firstChunk)], // inside a chunk body
    [second - 3, BigInt(second - 8)], // inside the u64
    [second - 8, BigInt(second - 8)], // u64 missing
    [second + 20, BigInt(second)], // inside the next header
    [file.length - 1, BigInt(file.length - 8)],
  ];
  for (const [cut, offset] of cases) {
    await expectCode(openBuf(file.subarray(0, cut)), 'E_TRUNCATED', offset);
  }
  await expectCode(openBuf(Buffer.alloc(0)), 'E_TRUNCATED', 0n);
});

test('flipped CRC byte: open succeeds, reading that chunk is E_CORRUPT naming the chunk offset', async () => {
  const data = mixed(300000, 8);
  const { file } = await writeAvml([run(0x1000n, data)]);
  // Second data chunk: walk past the identifier and the first chunk.
  const c1 = 32 + 10;
  const c2 = c1 + 4 + file.readUIntLE(c1 + 1, 3);
  const bad = Buffer.from(file);
  bad[c2 + 5] = bad[c2 + 5]! ^ 0x10;
  const img = await openBuf(bad);
  assert.ok((await img.read(0x1000n, 65536)).equals(data.subarray(0, 65536)), 'first chunk still fine');
  const e = await expectCode(img.read(0x1000n + 65536n, 10), 'E_CORRUPT', BigInt(c2));
  assert.match(e.message, /CRC/);
  await expectCode(img.read(0x1000n, 65537), 'E_CORRUPT', BigInt(c2));
  await img.close();
  // A flipped data byte inside an uncompressed chunk is caught the same way.
  const noise = randomBytes(70000);
  const r = await writeAvml([run(0n, noise)]);
  const bad2 = Buffer.from(r.file);
  bad2[32 + 10 + 8 + 1234] = bad2[32 + 10 + 8 + 1234]! ^ 0xff;
  const img2 = await openBuf(bad2);
  await expectCode(img2.read(1000n, 500), 'E_CORRUPT', 42n);
  assert.ok((await img2.read(65536n, 1000)).equals(noise.subarray(65536, 66536)));
  await img2.close();
});

test('structural corruption is E_CORRUPT, at open or at first read, with the same offset either way', async () => {
  const data = mixed(150000, 9);
  const { file } = await writeAvml([run(0x1000n, data), run(0x100000n, mixed(1000, 10))]);
  const mutate = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(file);
    f(b);
    return b;
  };
  await loadAll(file, { scan: 'auto' });
  await loadAll(file, { scan: 'walk' });
  // Bad magic, version, padding, inverted range.
  await expectEither(mutate((b) => b.writeUInt32LE(0x4c694d45, 0)), 'E_CORRUPT', 0n);
  await expectEither(mutate((b) => b.writeUInt32LE(1, 4)), 'E_CORRUPT', 0n);
  await expectEither(mutate((b) => (b[30] = 1)), 'E_CORRUPT', 24n);
  await expectEither(mutate((b) => b.writeBigUInt64LE(0xfffn, 16)), 'E_CORRUPT', 0n);
  // Locate the first record's u64 (p) and so the second record (p + 8).
  let p = 42;
  while (!(file.readBigUInt64LE(p) === BigInt(p - 32) && file.readUInt32LE(p + 8) === AVML_MAGIC)) p += 4 + file.readUIntLE(p + 1, 3);
  // Record claims more bytes than the stream holds: the stream's u64 (and the next record) show up early.
  await expectEither(mutate((b) => b.writeBigUInt64LE(0x1000n + 150000n, 16)), 'E_CORRUPT', BigInt(p));
  // Record claims fewer bytes than the stream holds: the second chunk would overflow it.
  await expectEither(mutate((b) => b.writeBigUInt64LE(0x1000n + 100000n, 16)), 'E_CORRUPT');
  // Stream length field wrong or zero (low byte < 0x80, so it cannot pass for a skippable chunk either).
  await expectEither(mutate((b) => b.writeBigUInt64LE(0n, p)), 'E_CORRUPT', BigInt(p));
  await expectEither(mutate((b) => b.writeBigUInt64LE(0x10000000005n, p)), 'E_CORRUPT', BigInt(p));
  // Second record overlapping / before the first.
  await expectEither(mutate((b) => b.writeBigUInt64LE(0x2000n, p + 8 + 8)), 'E_CORRUPT', BigInt(p + 8));
  // Stream not starting with the identifier; reserved chunk type; oversized uncompressed chunk.
  await expectEither(mutate((b) => (b[32] = 0x01)), 'E_CORRUPT', 32n);
  await expectEither(mutate((b) => (b[42] = 0x05)), 'E_CORRUPT', 42n);
  await expectEither(
    mutate((b) => {
      b[42] = 0x01;
      b.writeUIntLE(65541, 43, 3);
    }),
    'E_CORRUPT',
    42n,
  );
  // A chunk header inside the first stream made longer: it now crosses the stream end the u64 gives.
  await expectEither(mutate((b) => b.writeUIntLE(b.readUIntLE(43, 3) + 40, 43, 3)), 'E_CORRUPT');
  // Garbage after the last record.
  await expectEither(Buffer.concat([file, Buffer.from('junk')]), 'E_TRUNCATED', BigInt(file.length));
  await expectEither(Buffer.concat([file, Buffer.alloc(40)]), 'E_CORRUPT', BigInt(file.length));
});

test('padding and skippable chunks between the data and the u64 are accepted', async () => {
  const data = Buffer.from('hello AVML');
  const { file } = await writeAvml([run(0x5000n, data)]);
  const stream = file.subarray(32, file.length - 8);
  const extra = Buffer.from([0xfe, 2, 0, 0, 0, 0, 0x99, 0, 0, 0]);
  const s2 = Buffer.concat([stream.subarray(0, 10), extra, stream.subarray(10), extra]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(s2.length));
  const img = await openBuf(Buffer.concat([file.subarray(0, 32), s2, len]));
  assert.equal((await img.read(0x5000n, data.length)).toString(), 'hello AVML');
  await img.close();
});

test('writer contract errors are E_INTERNAL', async () => {
  const w = new AvmlWriter(new MemorySink(), { recordSize: 100 });
  await w.begin();
  await expectCode(w.data(Buffer.alloc(1)), 'E_INTERNAL');
  await w.beginRange({ start: 0n, end: 10n });
  await expectCode(w.data(Buffer.alloc(11)), 'E_INTERNAL');
  await w.data(Buffer.alloc(5));
  await expectCode(w.endRange(), 'E_INTERNAL');
  assert.throws(() => new AvmlWriter(new MemorySink(), { recordSize: 0 }), RangeError);
});

test('a file as AVML writes it (seeded avml-like generator) reads back exactly, and our writer reproduces it', async () => {
  const like = defaultAvmlLike();
  assert.equal(like.records.length, 3, 'the all-zero 16 MiB block is omitted');
  const img = await openBuf(like.file, { scan: 'walk' });
  assert.equal(img.details['records'], 3);
  assert.equal(img.details['scan'], 'walk');
  // The two records of the second range are not adjacent (zero block omitted): three runs.
  assert.deepEqual(
    img.runs,
    like.records.map((r) => ({ start: r.start, end: r.end })),
  );
  // Records end where AVML's off-by-one puts them: at the iomem end minus one.
  assert.equal(like.records[0]!.end, 0x9fbffn);
  assert.equal(like.records[2]!.end, 0x22fffffn);
  for (const rec of like.records) {
    const range = like.ranges.find((r) => r.start <= rec.start && rec.end <= r.end)!;
    const want = range.data.subarray(Number(rec.start - range.start), Number(rec.end - range.start));
    for (let o = 0; o < want.length; o += 1 << 20) {
      const n = Math.min(1 << 20, want.length - o);
      assert.ok((await img.read(rec.start + BigInt(o), n)).equals(want.subarray(o, o + n)));
    }
  }
  await expectCode(img.read(0x1100000n, 1), 'E_CORRUPT'); // the hole
  assert.ok(Number(img.details['uncompressedChunks']) > 0, 'the fixture has incompressible chunks');
  await img.close();
  // Same records through our writer (one run per record): byte-identical file.
  const runs = like.records.map((rec) => {
    const range = like.ranges.find((r) => r.start <= rec.start && rec.end <= r.end)!;
    return run(rec.start, range.data.subarray(Number(rec.start - range.start), Number(rec.end - range.start)));
  });
  const ours = await writeAvml(runs, { cuts: [4096, 100000, 1 << 20] });
  assert.ok(ours.file.equals(like.file), 'same bytes as the AVML-like file');
  // And the full ranges (zero block included) with omitZeroRecords: AVML's exact output.
  const full = await writeAvml(
    like.ranges.map((r) => run(r.start, r.data)),
    { omitZeroRecords: true, cuts: [65536 * 3 + 17, 4096] },
  );
  assert.equal(full.writer.stats.omittedZeroRecords, 1);
  assert.ok(full.file.equals(like.file), 'omitZeroRecords reproduces AVML byte for byte');
  // The default open (trailers) agrees with the walk.
  const fast = await openBuf(like.file);
  assert.equal(fast.details['scan'], 'trailers');
  assert.deepEqual(fast.runs, like.records);
  await fast.close();
});

test('omitZeroRecords: zero records vanish, held-back zeros are written once a record turns non-zero', async () => {
  const rec = 100000;
  const lead = Buffer.concat([Buffer.alloc(rec + 70000), Buffer.from('late data'), Buffer.alloc(rec - 70009)]); // record 2 starts with zeros
  const runs = [run(0x10000n, Buffer.concat([lead, Buffer.alloc(rec), mixed(rec, 13)]))];
  const { file, writer } = await writeAvml(runs, { recordSize: rec, omitZeroRecords: true, cuts: [1, 999, 65536, 4096] });
  assert.equal(writer.stats.omittedZeroRecords, 2);
  assert.equal(writer.stats.records, 2);
  const img = await openBuf(file);
  const base = 0x10000n;
  assert.deepEqual(img.runs, [
    { start: base + BigInt(rec), end: base + BigInt(2 * rec) },
    { start: base + BigInt(3 * rec), end: base + BigInt(4 * rec) },
  ]);
  const data = runs[0]!.data;
  assert.ok((await img.read(base + BigInt(rec), rec)).equals(data.subarray(rec, 2 * rec)));
  assert.ok((await img.read(base + BigInt(3 * rec), rec)).equals(data.subarray(3 * rec, 4 * rec)));
  await img.close();
});

test('mutation fuzz: 600 flips/truncations never hang and only fail with coded errors', async () => {
  const runs = [run(0x1000n, mixed(150000, 11)), run(0x40000n, mixed(5000, 12)), run(0x50000n, Buffer.alloc(100))];
  const { file } = await writeAvml(runs, { recordSize: 120000 });
  const streamLengths: number[] = [];
  {
    let p = 0;
    while (p < file.length) {
      let q = p + 42;
      while (!(file.readBigUInt64LE(q) === BigInt(q - p - 32) && (q + 8 === file.length || file.readUInt32LE(q + 8) === AVML_MAGIC))) q += 4 + file.readUIntLE(q + 1, 3);
      streamLengths.push(q - p - 32);
      p = q + 8;
    }
  }
  const starts = recordOffsets(file, streamLengths);
  const rand = mulberry32(0xf022);
  const cases: Buffer[] = [];
  for (let i = 0; i < 600; i++) {
    const kind = i % 6;
    const pos = (n: number) => Math.floor(rand() * n);
    const near = () => {
      const s = starts[pos(starts.length)]!;
      return Math.min(file.length - 1, s + pos(64));
    };
    let m: Buffer;
    if (kind === 0) m = file.subarray(0, pos(file.length));
    else if (kind === 1) {
      m = Buffer.from(file);
      const at = pos(m.length);
      m[at] = m[at]! ^ (1 << pos(8));
    } else if (kind === 2) {
      m = Buffer.from(file);
      m[near()] = pos(256);
    } else if (kind === 3) {
      m = Buffer.from(file);
      const at = Math.min(m.length - 8, near());
      m.writeBigUInt64LE(BigInt(Math.floor(rand() * 2 ** 53)) * (rand() < 0.5 ? 1n : 1n << 11n) & 0xffffffffffffffffn, at);
    } else if (kind === 4) {
      const at = pos(file.length);
      m = Buffer.concat([file.subarray(0, at), file.subarray(at + 1 + pos(20))]);
    } else {
      m = Buffer.from(file);
      for (let k = 0; k < 8; k++) m[pos(m.length)] = pos(256);
    }
    cases.push(m);
  }
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { writeFileSync } = require('node:fs');
    (async () => {
      const { openAvml } = await import(workerData.avmlUrl);
      const { RandomAccessFile } = await import(workerData.fileUrl);
      const path = workerData.dir + '/fuzz.avml';
      for (let i = 0; i < workerData.cases.length; i++) {
        writeFileSync(path, workerData.cases[i]);
        let outcome = 'ok';
        const f = await RandomAccessFile.open(path);
        try {
          const img = await openAvml(f, [{}, { indexBudgetChunks: 0 }, { scan: 'walk' }, { scan: 'walk', indexBudgetChunks: 1 }][i % 4]);
          for (const r of img.runs) {
            for (let a = r.start; a < r.end; a += 50000n) {
              const left = r.end - a;
              await img.read(a, Number(left < 50000n ? left : 50000n));
            }
          }
        } catch (e) {
          outcome = e && e.name === 'MemdumpError' ? e.code : 'OTHER ' + (e && e.stack ? e.stack : String(e));
        } finally {
          await f.close();
        }
        parentPort.postMessage({ i, outcome });
      }
      parentPort.postMessage({ done: true });
    })().catch((e) => parentPort.postMessage({ fatal: String(e && e.stack || e) }));
  `;
  const worker = new Worker(code, {
    eval: true,
    workerData: {
      cases,
      dir,
      avmlUrl: new URL('./avml.js', import.meta.url).href,
      fileUrl: new URL('../core/file.js', import.meta.url).href,
    },
  });
  const outcomes = new Map<string, number>();
  let last = -1;
  let lastProgress = Date.now();
  await new Promise<void>((resolve, reject) => {
    const watchdog = setInterval(() => {
      if (Date.now() - lastProgress > 10000) {
        clearInterval(watchdog);
        void worker.terminate();
        reject(new Error(`fuzz case ${last + 1} made no progress for 10 s (hang)`));
      }
    }, 250);
    worker.on('message', (m: { i?: number; outcome?: string; done?: boolean; fatal?: string }) => {
      lastProgress = Date.now();
      if (m.fatal) {
        clearInterval(watchdog);
        reject(new Error(m.fatal));
      } else if (m.done) {
        clearInterval(watchdog);
        resolve();
      } else {
        last = m.i!;
        const o = m.outcome!;
        if (!['ok', 'E_TRUNCATED', 'E_CORRUPT', 'E_TOO_LARGE'].includes(o)) {
          clearInterval(watchdog);
          reject(new Error(`fuzz case ${m.i}: ${o}`));
        }
        outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
      }
    });
    worker.on('error', (e) => {
      clearInterval(watchdog);
      reject(e);
    });
  });
  await worker.terminate();
  const total = [...outcomes.values()].reduce((a, b) => a + b, 0);
  assert.equal(total, 600);
  assert.ok((outcomes.get('E_CORRUPT') ?? 0) > 0 && (outcomes.get('E_TRUNCATED') ?? 0) > 0, JSON.stringify([...outcomes]));
  console.log(`# avml fuzz outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
});
