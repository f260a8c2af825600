import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { inflateSync } from 'node:zlib';
import { adler32 } from '../core/adler32.js';
import type { Range } from '../core/ranges.js';
import { reportSchema } from '../core/report-schema.js';
import { MemorySink, SegmentedMemorySink } from '../../test/helpers/memory-sink.js';
import {
  EVF_SIGNATURE, MAX_SEGMENTS, VOLUME, encodeDigestBody, encodeError2Body, encodeFileHeader, encodeHashBody, encodeHeader2Body,
  encodeHeaderBody, encodeLastSection, encodeSectionDescriptor, encodeTableBody, encodeVolumeBody, header2Text, headerText,
  segmentExtension,
} from './e01-layout.js';
import { createE01Writer, type E01WriterOptions } from './e01-write.js';
import type { ByteSink, MediaDescription } from './types.js';
import { mixedContent } from '../../test/helpers/mixed-content.js';

const hex = (s: string) => Buffer.from(s, 'hex');
const GUID = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

// ---------------------------------------------------------------------------------------------------------------
// encoders against bytes ewfacquire 20140813 wrote (3 MiB of random data, -c deflate:fast -m removable)

test('file header and section descriptors are byte-identical to ewfacquire', () => {
  assert.deepEqual(encodeFileHeader(1), hex('455646090d0aff000101000000'));
  assert.deepEqual(encodeFileHeader(0x1234).subarray(9, 11), hex('3412'));
  assert.deepEqual(
    encodeSectionDescriptor('header2', 280n, 267n),
    hex('6865616465723200000000000000000018010000000000000b0100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000c10249bc'),
  );
  assert.deepEqual(
    encodeSectionDescriptor('sectors', 3148038n, 3146188n),
    hex('736563746f72730000000000000000000609300000000000cc013000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000040046e0c'),
  );
  assert.deepEqual(
    encodeLastSection('done', 3150410n),
    hex('646f6e650000000000000000000000004a123000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003302ac92'),
  );
});

test('volume, digest and hash bodies are byte-identical to ewfacquire; table header too', () => {
  const want = Buffer.alloc(1052);
  for (const [i, v] of [[4, 96], [8, 64], [13, 2], [17, 24], [36, 3], [52, 1], [56, 64], [1048, 255], [1050, 82]] as const) want[i] = v;
  const vol = encodeVolumeBody({ mediaType: 0, chunkCount: 96, sectorCount: 6144n, mediaFlags: 3, compressionLevel: 1, guid: Buffer.alloc(16) });
  assert.deepEqual(vol, want);
  const md5 = hex('abdba3ef735c903d685beecb37699460');
  const sha1 = hex('d5aa110eb809cf8eb7d50ed0c157b0b48cbca87e');
  assert.deepEqual(encodeDigestBody(md5, sha1), Buffer.concat([md5, sha1, Buffer.alloc(40), hex('d5135587')]));
  assert.deepEqual(encodeHashBody(md5), Buffer.concat([md5, Buffer.alloc(16), hex('c508f6dc')]));
  const entries = Uint32Array.from({ length: 96 }, (_, i) => 76 + i * 32772);
  const table = encodeTableBody(1850n, entries);
  assert.deepEqual(table.subarray(0, 24), hex('60000000000000003a0700000000000000000000a200990a'));
  assert.equal(table.length, 24 + 4 * 96 + 4);
  assert.equal(table.readUInt32LE(24 + 4 * 95), 76 + 95 * 32772);
  assert.equal(table.readUInt32LE(24 + 4 * 96), adler32(table, 1, 24, 24 + 4 * 96));
});

test('error2 body: count, 512 zero bytes, header checksum at 516, runs, runs checksum; 32-bit limits enforced', () => {
  const b = encodeError2Body([{ firstSector: 16n, sectors: 9n }, { firstSector: 0xfffffff0n, sectors: 2n }]);
  assert.equal(b.length, 520 + 16 + 4);
  assert.equal(b.readUInt32LE(0), 2);
  assert.ok(b.subarray(4, 516).every((x) => x === 0));
  assert.equal(b.readUInt32LE(516), adler32(b, 1, 0, 516));
  assert.deepEqual([b.readUInt32LE(520), b.readUInt32LE(524), b.readUInt32LE(528), b.readUInt32LE(532)], [16, 9, 0xfffffff0, 2]);
  assert.equal(b.readUInt32LE(536), adler32(b, 1, 520, 536));
  assert.throws(() => encodeError2Body([{ firstSector: 1n << 32n, sectors: 1n }]), (e: { code?: string }) => e.code === 'E_UNSUPPORTED');
});

test('header2 and header texts have ewfacquire\'s exact layout; values lose tabs and line breaks', () => {
  const when = new Date(2026, 10, 22, 1, 15, 59); // local time, as the header section shows it
  const f = { description: 'desc', caseNumber: 'CASE', evidenceNumber: 'EV', examiner: 'Exam', notes: 'notes', version: '20140813', os: 'Linux', acquired: when, system: when };
  const secs = String(Math.floor(when.getTime() / 1000));
  assert.equal(
    header2Text(f),
    `3\nmain\na\tc\tn\te\tt\tmd\tsn\tav\tov\tm\tu\tp\tdc\ndesc\tCASE\tEV\tExam\tnotes\t\t\t20140813\tLinux\t${secs}\t${secs}\t0\t\n\n` +
      'srce\n0\t1\np\tn\tid\tev\ttb\tlo\tpo\tah\tgu\taq\n0\t0\n\t\t\t\t\t-1\t-1\t\t\t\n\nsub\n0\t1\np\tn\tid\tnu\tco\tgu\n0\t0\n\t\t\t\t1\t\n\n',
  );
  assert.equal(headerText(f), '1\r\nmain\r\nc\tn\ta\te\tt\tav\tov\tm\tu\tp\r\nCASE\tEV\tdesc\tExam\tnotes\t20140813\tLinux\t2026 11 22 1 15 59\t2026 11 22 1 15 59\t0\r\n\r\n');
  const odd = { ...f, notes: 'a\tb\r\nc', examiner: 'Zoë' };
  assert.match(header2Text(odd), /\tZoë\ta b  c\t/);
  assert.match(headerText(odd), /\tZo\?\ta b  c\t/);
  const h2 = inflateSync(encodeHeader2Body(header2Text(odd)));
  assert.deepEqual(h2.subarray(0, 2), hex('fffe'));
  assert.equal(h2.subarray(2).toString('utf16le'), header2Text(odd));
  assert.equal(inflateSync(encodeHeaderBody(headerText(f))).toString('latin1'), headerText(f));
});

test('segment extensions follow libewf: E01…E99, EAA…EZZ, FAA…ZZZ', () => {
  assert.deepEqual([1, 9, 99, 100, 101, 125, 126, 775, 776].map(segmentExtension), ['E01', 'E09', 'E99', 'EAA', 'EAB', 'EAZ', 'EBA', 'EZZ', 'FAA']);
  assert.equal(segmentExtension(MAX_SEGMENTS), 'ZZZ');
  assert.throws(() => segmentExtension(MAX_SEGMENTS + 1), (e: { code?: string }) => e.code === 'E_TOO_LARGE');
});

// ---------------------------------------------------------------------------------------------------------------
// a minimal reader for the writer's own output

interface Section {
  type: string;
  off: number;
  size: number;
}

/** Walk one segment file from its file header to next/done, checking every descriptor. */
function sections(seg: Buffer, number: number): Section[] {
  assert.deepEqual(seg.subarray(0, 13), encodeFileHeader(number));
  const out: Section[] = [];
  for (let off = 13; ; ) {
    const type = seg.toString('latin1', off, off + 16).replace(/\0+$/, '');
    const next = Number(seg.readBigUInt64LE(off + 16));
    const size = Number(seg.readBigUInt64LE(off + 24));
    assert.equal(seg.readUInt32LE(off + 72), adler32(seg, 1, off, off + 72), `descriptor checksum of ${type} at ${off}`);
    out.push({ type, off, size });
    if (type === 'next' || type === 'done') {
      assert.equal(next, off);
      assert.equal(size, 0);
      assert.equal(off + 76, seg.length, 'nothing after the last section');
      return out;
    }
    assert.equal(next, off + size, `${type} at ${off}: next = offset + size`);
    off = next;
  }
}

const body = (seg: Buffer, s: Section) => seg.subarray(s.off + 76, s.off + s.size);

/** The media a segment set holds: every table's chunks, inflated or checked against their Adler-32. */
function readMedia(segs: Buffer[]): { media: Buffer; types: string[][]; volume: Buffer } {
  const parts: Buffer[] = [];
  const types: string[][] = [];
  let volume: Buffer | undefined;
  segs.forEach((seg, i) => {
    const list = sections(seg, i + 1);
    types.push(list.map((s) => s.type));
    list.forEach((s, k) => {
      if (s.type === 'volume' || s.type === 'data') {
        volume ??= body(seg, s);
        assert.deepEqual(body(seg, s), volume, 'data repeats volume');
      }
      if (s.type !== 'table') return;
      const t = body(seg, s);
      assert.deepEqual(body(seg, list[k + 1]!), t, 'table2 mirrors table');
      const n = t.readUInt32LE(0);
      const base = Number(t.readBigUInt64LE(8));
      const sectors = list.find((x) => x.off === base);
      assert.equal(sectors?.type, 'sectors', 'table base is its sectors section');
      for (let e = 0; e < n; e++) {
        const v = t.readUInt32LE(24 + 4 * e);
        const start = base + (v & 0x7fffffff);
        const end = e + 1 < n ? base + (t.readUInt32LE(28 + 4 * e) & 0x7fffffff) : base + sectors!.size;
        const stored = seg.subarray(start, end);
        if (v & 0x80000000) parts.push(inflateSync(stored));
        else {
          assert.equal(stored.readUInt32LE(stored.length - 4), adler32(stored, 1, 0, stored.length - 4));
          parts.push(stored.subarray(0, stored.length - 4));
        }
      }
    });
  });
  return { media: Buffer.concat(parts), types, volume: volume! };
}

// ---------------------------------------------------------------------------------------------------------------
// writer

const content = (seed: number, n: number) => mixedContent(seed, n);

const MEDIA: MediaDescription = {
  type: 'memory',
  caseNumber: 'C-7',
  examiner: 'Ann',
  evidenceNumber: 'EV-1',
  notes: 'unit test',
  description: 'test memory',
  acquired: new Date('2024-05-06T07:08:09Z'),
};

interface Written {
  runs: Range[];
  data: Buffer[];
  /** The padded media (zeros before the first run and in holes), without sector padding. */
  padded: Buffer;
}

function layout(seed: number, runs: [number, number][]): Written {
  const rs = runs.map(([s, e]) => ({ start: BigInt(s), end: BigInt(e) }));
  const data = runs.map(([s, e], i) => content(seed + i, e - s));
  const padded = Buffer.alloc(runs[runs.length - 1]![1]);
  runs.forEach(([s], i) => data[i]!.copy(padded, s));
  return { runs: rs, data, padded };
}

async function write(out: ByteSink, w: Written, media: MediaDescription | undefined, options: E01WriterOptions = {}, piece = 65_000, bad: [bigint, number][] = []) {
  const writer = createE01Writer(out, { runs: w.runs, notes: [], ...(media ? { media } : {}) }, { guid: GUID, ...options });
  await writer.begin();
  for (let i = 0; i < w.runs.length; i++) {
    await writer.beginRange(w.runs[i]!);
    for (const [a, n] of bad) if (a >= w.runs[i]!.start && a < w.runs[i]!.end) writer.badBytes(a, n);
    const d = w.data[i]!;
    const scratch = Buffer.alloc(piece);
    for (let off = 0; off < d.length; off += piece) {
      // one reused buffer, overwritten after each call: the writer must copy what it keeps
      const k = d.copy(scratch, 0, off, Math.min(d.length, off + piece));
      await writer.data(scratch.subarray(0, k));
      scratch.fill(0xa5);
    }
    await writer.endRange();
  }
  await writer.end();
  return writer.summary();
}

const sectorPadded = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
const digest = (alg: string, b: Buffer) => createHash(alg).update(b).digest('hex');

test('single segment: section order as ewfacquire, media round trip with holes and sector padding, digests, summary', async () => {
  const w = layout(11, [[5000, 300_000], [1_000_000, 1_700_003]]);
  const sink = new MemorySink();
  const summary = await write(sink, w, MEDIA);
  const { media, types, volume } = readMedia([sink.bytes]);
  const want = sectorPadded(w.padded);
  assert.equal(media.length, want.length);
  assert.ok(media.equals(want), 'chunks inflate to the padded media');
  assert.deepEqual(types, [['header2', 'header2', 'header', 'volume', 'sectors', 'table', 'table2', 'data', 'digest', 'hash', 'done']]);
  assert.equal(volume[VOLUME.mediaType], 0x10);
  assert.equal(volume[VOLUME.mediaFlags], 1, 'memory: image file, not physical');
  assert.equal(volume[VOLUME.compressionLevel], 1);
  assert.equal(volume.readUInt32LE(VOLUME.chunkCount), Math.ceil(want.length / 32768));
  assert.equal(volume.readBigUInt64LE(VOLUME.sectorCount), BigInt(want.length / 512));
  assert.deepEqual(volume.subarray(VOLUME.guid, VOLUME.guid + 16), GUID);
  const list = sections(sink.bytes, 1);
  const dg = body(sink.bytes, list.find((s) => s.type === 'digest')!);
  assert.equal(dg.subarray(0, 16).toString('hex'), digest('md5', want));
  assert.equal(dg.subarray(16, 36).toString('hex'), digest('sha1', want));
  assert.equal(body(sink.bytes, list.find((s) => s.type === 'hash')!).subarray(0, 16).toString('hex'), digest('md5', want));
  const h2 = inflateSync(body(sink.bytes, list[0]!)).subarray(2).toString('utf16le');
  assert.match(h2, /\ntest memory\tC-7\tEV-1\tAnn\tunit test\t\t\tmemdump \S+\t/);
  reportSchema.shape.e01.parse(summary);
  assert.deepEqual(summary, {
    segments: [{ path: 'E01', bytes: String(sink.bytes.length) }],
    mediaType: 'memory',
    mediaBytes: String(w.padded.length),
    storedBytes: String(want.length),
    bytesPerSector: 512,
    sectorsPerChunk: 64,
    chunks: String(Math.ceil(want.length / 32768)),
    compression: 'deflate:fast',
    compressedChunks: summary.compressedChunks,
    mediaDigests: { md5: digest('md5', want), sha1: digest('sha1', want), sha256: digest('sha256', want) },
    errorRuns: [],
  });
  assert.ok(Number(summary.compressedChunks) > 0);
});

test('zero chunks (holes, zero data) reuse one stored chunk; groups hold at most groupChunks chunks', async () => {
  const w = layout(12, [[64 << 20, (64 << 20) + 100_000]]);
  w.data[0]!.fill(0, 0, 65536); // zero data too
  w.padded.fill(0, 64 << 20, (64 << 20) + 65536);
  const sink = new MemorySink();
  await write(sink, w, { ...MEDIA, compression: 'best' }, { groupChunks: 500 });
  const out = sink.bytes;
  assert.ok(out.length < 200_000, `64 MiB hole costs ${out.length} bytes`);
  const { media, types } = readMedia([out]);
  assert.ok(media.equals(sectorPadded(w.padded)));
  assert.equal(types[0]!.filter((t) => t === 'sectors').length, Math.ceil(2052 / 500));
  // every all-zero chunk is the same stored bytes
  const list = sections(out, 1);
  const stored = new Set<string>();
  for (const s of list.filter((x) => x.type === 'table')) {
    const t = body(out, s);
    const base = Number(t.readBigUInt64LE(8));
    for (let e = 0; e + 1 < t.readUInt32LE(0); e++) {
      const a = base + (t.readUInt32LE(24 + 4 * e) & 0x7fffffff);
      const b = base + (t.readUInt32LE(28 + 4 * e) & 0x7fffffff);
      if (b - a < 200) stored.add(out.subarray(a, b).toString('hex'));
    }
  }
  assert.equal(stored.size, 1);
});

test('segments: next/data sections, segment numbers, table bases per segment file, each segment within its size', async () => {
  const w = layout(13, [[0, 1_500_000], [2_000_000, 2_600_000]]);
  const segmentBytes = 200_000n;
  const sink = new SegmentedMemorySink();
  const summary = await write(sink, w, { ...MEDIA, segmentBytes }, {}, 100_000, [[5000n, 4096]]);
  const segs = sink.segments;
  assert.ok(segs.length >= 4, `${segs.length} segments`);
  const { media, types } = readMedia(segs);
  assert.ok(media.equals(sectorPadded(w.padded)));
  types.forEach((t, i) => {
    assert.deepEqual(t.slice(0, i === 0 ? 4 : 1), i === 0 ? ['header2', 'header2', 'header', 'volume'] : ['data']);
    assert.equal(t[t.length - 1], i === segs.length - 1 ? 'done' : 'next');
    assert.ok(!t.includes('digest') || i === segs.length - 1);
  });
  assert.deepEqual(types[segs.length - 1]!.slice(-5), ['table2', 'error2', 'digest', 'hash', 'done']);
  for (const s of segs) assert.ok(BigInt(s.length) <= segmentBytes, `segment of ${s.length} bytes`);
  assert.deepEqual(
    summary.segments,
    segs.map((s, i) => ({ path: segmentExtension(i + 1), bytes: String(s.length) })),
  );
  // without newSegment the same plan is one segment
  const one = new MemorySink();
  await write(one, w, { ...MEDIA, segmentBytes }, {}, 100_000);
  assert.equal(readMedia([one.bytes]).types.length, 1);
  assert.throws(
    () => createE01Writer(new SegmentedMemorySink(), { runs: w.runs, notes: [], media: { ...MEDIA, segmentBytes: 10_000n } }),
    (e: { code?: string }) => e.code === 'E_USAGE',
  );
});

test('the worker pool keeps chunk order: output identical to single-thread compression', async () => {
  const w = layout(14, [[0, 3_000_000], [3_100_000, 4_000_000]]);
  const a = new MemorySink();
  const b = new MemorySink();
  const sa = await write(a, w, MEDIA, { workers: 0 });
  const sb = await write(b, w, MEDIA, { workers: 2, batchChunks: 3, inFlight: 5, groupChunks: 40 }, 7777);
  const c = new MemorySink();
  await write(c, w, MEDIA, { workers: 0, groupChunks: 40 });
  assert.equal(sa.mediaDigests.md5, sb.mediaDigests.md5);
  assert.ok(b.bytes.equals(c.bytes), 'same bytes whatever the workers and piece sizes');
  assert.ok(readMedia([a.bytes]).media.equals(sectorPadded(w.padded)));
});

test('badBytes: media byte ranges become merged sector runs in error2 and in summary()', async () => {
  const w = layout(15, [[4096, 200_000], [300_000, 400_000]]);
  const sink = new MemorySink();
  const bad: [bigint, number][] = [[8192n, 4096], [12288n, 100], [300_000n, 1]];
  const summary = await write(sink, w, MEDIA, {}, 65_000, bad);
  assert.deepEqual(summary.errorRuns, [
    { firstSector: '16', sectors: '9' },
    { firstSector: '585', sectors: '1' },
  ]);
  const list = sections(sink.bytes, 1);
  const e = body(sink.bytes, list.find((s) => s.type === 'error2')!);
  assert.deepEqual(e, encodeError2Body([{ firstSector: 16n, sectors: 9n }, { firstSector: 585n, sectors: 1n }]));
});

test('compression none stores every chunk raw; no media description means memory, fast, empty case fields', async () => {
  const w = layout(16, [[0, 500_000]]);
  const none = new MemorySink();
  const s = await write(none, w, { ...MEDIA, type: 'fixed', compression: 'none' });
  assert.equal(s.compressedChunks, '0');
  const r = readMedia([none.bytes]);
  assert.equal(r.volume[VOLUME.compressionLevel], 0);
  assert.equal(r.volume[VOLUME.mediaType], 1);
  assert.equal(r.volume[VOLUME.mediaFlags], 3);
  assert.ok(r.media.equals(sectorPadded(w.padded)));
  const plain = new MemorySink();
  const d = await write(plain, w, undefined);
  assert.equal(d.mediaType, 'memory');
  assert.equal(d.compression, 'deflate:fast');
  const h2 = inflateSync(body(plain.bytes, sections(plain.bytes, 1)[0]!)).subarray(2).toString('utf16le');
  assert.match(h2, /\n\t\t\t\t\t\t\tmemdump /);
});

test('misuse is E_INTERNAL: data outside a range, ranges out of order, end before the last run', async () => {
  const runs = [{ start: 0n, end: 4096n }, { start: 8192n, end: 9000n }];
  const code = (e: { code?: string }) => e.code === 'E_INTERNAL';
  const mk = async () => {
    const wr = createE01Writer(new MemorySink(), { runs, notes: [] }, { workers: 0 });
    await wr.begin();
    return wr;
  };
  let wr = await mk();
  await assert.rejects(wr.data(Buffer.alloc(1)), code);
  await wr.beginRange(runs[0]!);
  await assert.rejects(wr.data(Buffer.alloc(4097)), code);
  await wr.abort();
  wr = await mk();
  await wr.beginRange(runs[1]!);
  await wr.data(Buffer.alloc(808));
  await wr.endRange();
  await assert.rejects(wr.beginRange(runs[0]!), code);
  await wr.abort();
  wr = await mk();
  await wr.beginRange(runs[0]!);
  await wr.data(Buffer.alloc(4096));
  await wr.endRange();
  await assert.rejects(wr.end(), code);
  await wr.abort();
});

test('mediaWritten after a failure counts only chunks whose data and table reached the sink, not those still queued', async () => {
  const data = mixedContent(21, 40 * 32768);
  const sink = new MemorySink();
  const wr = createE01Writer(sink, { runs: [{ start: 0n, end: BigInt(data.length) }], notes: [] }, { guid: GUID, groupChunks: 8, inFlight: 8 });
  await wr.begin();
  await wr.beginRange({ start: 0n, end: BigInt(data.length) });
  assert.equal(wr.mediaWritten(), 0n);
  // 30 of 40 chunks handed over: some groups are written, the rest sit in the pool and the open group
  await wr.data(data.subarray(0, 30 * 32768));
  const written = wr.mediaWritten();
  await wr.abort();
  assert.equal(written % 32768n, 0n);
  assert.ok(written <= 30n * 32768n, `${written} ≤ what was handed over`);
  assert.ok(written >= 8n * 32768n, `${written}: at least one full group of 8 reached the sink`);
  // the sink holds exactly those chunks' table entries: every written group ends in a table2 section
  const tables2 = sink.bytes.toString('latin1').split('table2').length - 1;
  assert.equal(BigInt(tables2) * 8n * 32768n, written);
});
