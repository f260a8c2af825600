/**
 * AVML compressed images (microsoft/avml src/image.rs, src/io/snappy.rs; Volatility 3 layers/avml.py).
 *
 * File = records, back to back, nothing else:
 *   32-byte LiME-style header: u32 magic 0x4C4D5641 ("AVML" on disk), u32 version 2, u64 start, u64 end (inclusive),
 *                              u64 padding = 0 (AVML's own reader rejects anything else)
 *   a fresh snappy framed stream of the record's bytes (see snappy-frame.ts)
 *   u64 LE: byte length of that framed stream (stream identifier included)
 * AVML cuts every range into records of at most 16 MiB (counted from the range start) and omits all-zero records.
 *
 * Our writer differs on one point, on purpose: by default it writes all-zero records too. Omitting them turns "RAM
 * that held zeros" into "no RAM here", so the map would not survive a conversion (AVML -> LiME -> AVML, or a verify
 * against the source). The price is not nil: a snappy copy covers at most 64 bytes, so zeros compress only ~21:1
 * (3,077 bytes per 64 KiB chunk; ~0.75 MiB per 16 MiB zero record). `omitZeroRecords` gives AVML's behaviour
 * (and AVML's exact bytes) when size matters more than the map.
 *
 * Known peer pitfall: Volatility 3 (2.11) reads each record's stream from a window of (end - start) bytes and
 * loops forever when the framed stream is not shorter than the record (incompressible memory, e.g. encrypted pages:
 * every chunk is then stored uncompressed with 8 bytes of overhead). The format cannot avoid that; we count such
 * records (writer `stats.recordsVolatilityCannotRead`, reader `details.recordsVolatilityCannotRead`) so callers can
 * warn, and our reader never hangs on them (or on any input).
 *
 * Reader indexing. The stream length sits *after* each stream, so the file cannot be walked forward from header to
 * header without reading every chunk header in between (one small read per 64 KiB of memory: ~262k reads for
 * 16 GiB, seconds at open). We therefore open in two ways:
 * - fast path ('trailers', the default): follow the u64 trailers backwards from the end of the file (one 8-byte and
 *   one 42-byte read per record: header + stream identifier). It must chain exactly to offset 0 with valid headers
 *   and ascending ranges. Each record's chunks are walked the first time the record is read: every chunk header is
 *   checked, the chunks must produce exactly the record's length and end exactly where the u64 says, else E_CORRUPT.
 * - full walk ('walk'; also the fallback whenever the trailers do not chain, e.g. a truncated or damaged file):
 *   header, then every chunk header (13 bytes: type, length, CRC, a compressed chunk's length varint, through a
 *   read-ahead window), until the chunks have produced the record's length; then the u64 must equal the walked
 *   length (padding/skippable chunks before it are accepted). The first problem is reported with its offset:
 *   E_TRUNCATED where the file ends inside something, E_CORRUPT otherwise.
 * Either way a record's chunk table maps uncompressed offsets to chunk file offsets, so `read` decompresses only the
 * chunks it touches (and checks their CRC-32C); a small LRU keeps the last decompressed chunks.
 *
 * Bounds: at most MAX_RECORDS records; every chunk consumes at least 4 file bytes and every trailer step at least
 * 59, so both scans are linear in the file size; at most INDEX_BUDGET_CHUNKS chunk-table entries are kept (LRU by
 * record, rebuilt on demand); no allocation exceeds one chunk body (< 16 MiB).
 */
import { corrupt, toSafeNumber, truncated } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { type Range, fromInclusive } from '../core/ranges.js';
import { LIME_HEADER_SIZE, MAX_RECORDS, limeHeader } from './lime.js';
import {
  CHUNK_COMPRESSED,
  CHUNK_HEADER_SIZE,
  CHUNK_PREAMBLE_SIZE,
  STREAM_IDENTIFIER,
  SnappyFrameEncoder,
  decodeDataChunk,
  inspectChunk,
} from './snappy-frame.js';
import { Lru } from '../core/lru.js';
import { RunIndex } from './run-index.js';
import type { ByteSink, ContainerWriter, FormatSpec, MemoryImage, WritePlan } from './types.js';

export const AVML_MAGIC = 0x4c4d5641;
export const AVML_VERSION = 2;
/** AVML's MAX_BLOCK_SIZE: records hold at most 16 MiB. */
export const AVML_RECORD_SIZE = 16 * 1024 * 1024;
const TRAILER_SIZE = 8;
/** Chunk-table entries kept in memory (~25 bytes each: ~25 MB, the tables of 64 GiB of memory); LRU by record. */
export const INDEX_BUDGET_CHUNKS = 1 << 20;
const CHUNK_CACHE_ENTRIES = 32;
const WALK_WINDOW = 16 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// Writer

export interface AvmlWriterOptions {
  /** Record size (default AVML's 16 MiB); smaller only for tests. */
  readonly recordSize?: number;
  /**
   * Leave out records that hold only zeros, as AVML does (default false: keep them, see the top of this file).
   * Streaming still works: a record's header and stream are held back (as a count of zero bytes, not a buffer)
   * until its first non-zero byte arrives. With this set, the output is byte-identical to AVML's for the same input.
   */
  readonly omitZeroRecords?: boolean;
}

export interface AvmlWriterStats {
  /** Records written. */
  records: number;
  /** Records written that hold only zeros (AVML itself omits them). */
  zeroRecords: number;
  /** All-zero records left out (omitZeroRecords). */
  omittedZeroRecords: number;
  compressedChunks: number;
  uncompressedChunks: number;
  bytesIn: bigint;
  bytesOut: bigint;
  /** Records whose framed stream is not shorter than the record: Volatility 3 (2.11) hangs on these. */
  recordsVolatilityCannotRead: number;
}

const ZERO_CHUNK = Buffer.alloc(65536);

function isAllZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i += ZERO_CHUNK.length) {
    const n = Math.min(ZERO_CHUNK.length, b.length - i);
    if (Buffer.compare(b.subarray(i, i + n), ZERO_CHUNK.subarray(0, n)) !== 0) return false;
  }
  return true;
}

interface OpenRecord {
  readonly start: bigint;
  readonly end: bigint;
  readonly length: number;
  readonly encoder: SnappyFrameEncoder;
  allZero: boolean;
  /** Header written (always at once unless omitZeroRecords). */
  started: boolean;
  /** Zero bytes received but not yet given to the encoder (only while !started). */
  heldZeros: number;
}

/**
 * Streams an AVML file: per run, records of at most 16 MiB; each record's data is compressed 64 KiB at a time as
 * it arrives (only a partial chunk is ever buffered), so memory stays constant whatever the run size.
 * `stats` says what was written, including how many records Volatility 3 will not be able to read.
 */
export class AvmlWriter implements ContainerWriter {
  readonly stats: AvmlWriterStats = {
    records: 0,
    zeroRecords: 0,
    omittedZeroRecords: 0,
    compressedChunks: 0,
    uncompressedChunks: 0,
    bytesIn: 0n,
    bytesOut: 0n,
    recordsVolatilityCannotRead: 0,
  };
  private readonly recordSize: number;
  private readonly omitZeroRecords: boolean;
  private run: Range | undefined;
  private pos = 0n;
  private record: OpenRecord | undefined;

  constructor(
    private readonly out: ByteSink,
    options: AvmlWriterOptions = {},
  ) {
    this.recordSize = options.recordSize ?? AVML_RECORD_SIZE;
    this.omitZeroRecords = options.omitZeroRecords ?? false;
    if (!Number.isSafeInteger(this.recordSize) || this.recordSize <= 0) throw new RangeError(`bad AVML record size ${this.recordSize}`);
  }

  async begin(): Promise<void> {}

  async beginRange(r: Range): Promise<void> {
    if (this.run) throw new MemdumpError('E_INTERNAL', 'AVML writer: beginRange before the previous range ended');
    if (r.end <= r.start) throw new MemdumpError('E_INTERNAL', `AVML writer: empty range ${hex(r.start)}`);
    this.run = r;
    this.pos = r.start;
  }

  async data(chunk: Buffer): Promise<void> {
    const run = this.run;
    if (!run) throw new MemdumpError('E_INTERNAL', 'AVML writer: data outside a range');
    if (BigInt(chunk.length) > run.end - this.pos) {
      throw new MemdumpError('E_INTERNAL', `AVML writer: ${chunk.length} bytes given, range ${hex(run.start)} has ${run.end - this.pos} left`);
    }
    const parts: Buffer[] = [];
    let i = 0;
    while (i < chunk.length) {
      const rec = this.record ?? this.openRecord(parts);
      const n = Math.min(chunk.length - i, Number(rec.end - this.pos));
      const piece = chunk.subarray(i, i + n);
      if (rec.allZero && !isAllZero(piece)) rec.allZero = false;
      if (!rec.started && rec.allZero) {
        rec.heldZeros += n; // still all zeros: nothing to write yet
      } else {
        if (!rec.started) this.startRecord(rec, parts);
        for (const b of rec.encoder.push(piece)) parts.push(b);
      }
      i += n;
      this.pos += BigInt(n);
      if (this.pos === rec.end) this.closeRecord(parts);
    }
    this.stats.bytesIn += BigInt(chunk.length);
    await this.flush(parts);
  }

  async endRange(): Promise<void> {
    const run = this.run;
    if (!run) throw new MemdumpError('E_INTERNAL', 'AVML writer: endRange without beginRange');
    if (this.pos !== run.end) {
      throw new MemdumpError('E_INTERNAL', `AVML writer: range ${hex(run.start)}-${hex(run.end - 1n)} ended after ${this.pos - run.start} bytes`);
    }
    this.run = undefined;
  }

  async end(): Promise<void> {
    if (this.run) throw new MemdumpError('E_INTERNAL', 'AVML writer: end inside a range');
  }

  private openRecord(parts: Buffer[]): OpenRecord {
    const run = this.run!;
    const limit = this.pos + BigInt(this.recordSize);
    const end = limit < run.end ? limit : run.end;
    const rec: OpenRecord = {
      start: this.pos,
      end,
      length: Number(end - this.pos),
      encoder: new SnappyFrameEncoder(),
      allZero: true,
      started: false,
      heldZeros: 0,
    };
    this.record = rec;
    if (!this.omitZeroRecords) this.startRecord(rec, parts);
    return rec;
  }

  /** Header, then any zeros held back while the record looked omittable. */
  private startRecord(rec: OpenRecord, parts: Buffer[]): void {
    rec.started = true;
    parts.push(limeHeader(AVML_MAGIC, AVML_VERSION, { start: rec.start, end: rec.end }));
    while (rec.heldZeros > 0) {
      const n = Math.min(rec.heldZeros, ZERO_CHUNK.length);
      for (const b of rec.encoder.push(ZERO_CHUNK.subarray(0, n))) parts.push(b);
      rec.heldZeros -= n;
    }
  }

  private closeRecord(parts: Buffer[]): void {
    const rec = this.record!;
    this.record = undefined;
    if (!rec.started) {
      this.stats.omittedZeroRecords++;
      return;
    }
    for (const b of rec.encoder.finish()) parts.push(b);
    const s = rec.encoder.stats;
    const trailer = Buffer.alloc(TRAILER_SIZE);
    trailer.writeBigUInt64LE(BigInt(s.bytesOut));
    parts.push(trailer);
    this.stats.records++;
    if (rec.allZero) this.stats.zeroRecords++;
    this.stats.compressedChunks += s.compressedChunks;
    this.stats.uncompressedChunks += s.uncompressedChunks;
    if (s.bytesOut >= rec.length) this.stats.recordsVolatilityCannotRead++;
  }

  private async flush(parts: Buffer[]): Promise<void> {
    if (parts.length === 0) return;
    const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    this.stats.bytesOut += BigInt(buf.length);
    await this.out.write(buf);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reader

/** Per record: where each data chunk is. Offsets are JS numbers (file size and record length are checked safe). */
export interface ChunkTable {
  readonly count: number;
  /** File offset of each data chunk's header. */
  readonly fileOffset: Float64Array;
  /** Offset of the chunk's first byte within the record's uncompressed data (ascending). */
  readonly dataOffset: Float64Array;
  readonly bodyLength: Uint32Array;
  readonly dataLength: Uint32Array;
  readonly type: Uint8Array;
}

interface RecordEntry {
  readonly range: Range;
  readonly headerOffset: bigint;
  /** From the record's u64 (checked against the chunks when the record is walked). */
  readonly streamLength: bigint;
}

interface WalkResult {
  readonly table: ChunkTable;
  readonly streamLength: bigint;
  /** Offset just past the record (after the u64). */
  readonly next: bigint;
  readonly compressed: number;
  readonly uncompressed: number;
}

/** Read-ahead over the file for walking chunk headers: a peek inside the current window costs no I/O. */
class Window {
  private buf: Buffer = Buffer.alloc(0);
  private at = 0n;
  constructor(private readonly file: RandomAccessFile) {}

  /**
   * Up to n bytes at pos (fewer only at end of file). On a miss, reads max(n, readahead) bytes: callers pass a
   * small readahead when the next header is known to be far away (a large chunk body lies in between).
   */
  async peek(pos: bigint, n: number, readahead = WALK_WINDOW): Promise<Buffer> {
    const endWanted = pos + BigInt(n);
    if (pos >= this.at && endWanted <= this.at + BigInt(this.buf.length)) {
      const o = Number(pos - this.at);
      return this.buf.subarray(o, o + n);
    }
    const left = this.file.size - pos;
    const want = BigInt(Math.max(n, readahead));
    const len = Number(left < want ? (left > 0n ? left : 0n) : want);
    this.buf = await this.file.readAt(pos, len);
    this.at = pos;
    return this.buf.subarray(0, n);
  }
}

function describe(r: Range): string {
  return `${hex(r.start)}-${hex(r.end - 1n)}`;
}

/**
 * Walk one record's framed stream starting right after the header at `headerOffset`, checking every chunk header,
 * and return its chunk table and end. `statedLength`, when known (from the record's u64), bounds the walk: no chunk
 * may cross the stream end it implies. Linear in the stream size; every iteration consumes at least 4 bytes.
 */
async function walkRecord(
  file: RandomAccessFile,
  win: Window,
  headerOffset: bigint,
  range: Range,
  maxChunks: number,
  statedLength?: bigint,
): Promise<WalkResult> {
  const what = `AVML record ${describe(range)}`;
  const length = toSafeNumber(range.end - range.start, `${what} length`);
  const streamStart = headerOffset + BigInt(LIME_HEADER_SIZE);
  const streamEnd = statedLength === undefined ? undefined : streamStart + statedLength;
  const fileOffset: number[] = [];
  const dataOffset: number[] = [];
  const bodyLength: number[] = [];
  const dataLength: number[] = [];
  const type: number[] = [];
  let compressed = 0;
  let uncompressed = 0;
  let produced = 0;
  let pos = streamStart;
  let first = true;
  let lastBody = 0;
  for (;;) {
    const remaining = file.size - pos;
    // After a big chunk the next header is rarely in the window: read just enough for it, the u64 and a header.
    const pre = await win.peek(pos, CHUNK_PREAMBLE_SIZE, lastBody >= WALK_WINDOW / 2 ? 64 : WALK_WINDOW);
    const streamSoFar = pos - streamStart;
    if (produced === length) {
      // All data is there: the u64 stream length should follow (possibly after padding/skippable chunks).
      if (remaining < BigInt(TRAILER_SIZE)) {
        throw truncated(`${what}: file ends before the stream length field`, pos, { have: remaining.toString() });
      }
      const stated = pre.readBigUInt64LE(0);
      if (stated === streamSoFar) {
        const table = toTable(fileOffset, dataOffset, bodyLength, dataLength, type);
        return { table, streamLength: streamSoFar, next: pos + 8n, compressed, uncompressed };
      }
      if (pre[0]! < 0x80 || (streamEnd !== undefined && pos >= streamEnd)) {
        throw corrupt(`${what}: stream length field says ${stated} bytes, the stream has ${streamSoFar}`, pos, {
          stated: stated.toString(),
          walked: streamSoFar.toString(),
        });
      }
    } else if (!first && (pos === streamEnd || (pre.length >= TRAILER_SIZE && pre.readBigUInt64LE(0) === streamSoFar))) {
      // The stream ended early: its length field is here (followed by EOF or the next record).
      const atEof = remaining === BigInt(TRAILER_SIZE);
      const nextIsRecord = pre.length >= TRAILER_SIZE + 4 && pre.readUInt32LE(TRAILER_SIZE) === AVML_MAGIC;
      if (pos === streamEnd || atEof || nextIsRecord) {
        throw corrupt(`${what}: stream ends after ${produced} of the record's ${length} bytes`, pos, { produced, length });
      }
    }
    const info = inspectChunk(pre, pos, remaining, first, what);
    first = false;
    if (streamEnd !== undefined && pos + BigInt(CHUNK_HEADER_SIZE + info.bodyLength) > streamEnd) {
      throw corrupt(`${what}: chunk crosses the stream end its length field gives (${hex(streamEnd)})`, pos);
    }
    if (info.kind === 'compressed' || info.kind === 'uncompressed') {
      if (info.dataLength > length - produced) {
        throw corrupt(`${what}: stream holds more than the record's ${length} bytes`, pos, { produced, chunk: info.dataLength });
      }
      if (info.dataLength > 0) {
        if (fileOffset.length >= maxChunks) throw new MemdumpError('E_TOO_LARGE', `${what}: more than ${maxChunks} chunks`, { details: { offset: hex(pos) } });
        fileOffset.push(Number(pos));
        dataOffset.push(produced);
        bodyLength.push(info.bodyLength);
        dataLength.push(info.dataLength);
        type.push(info.type);
        produced += info.dataLength;
      }
      if (info.type === CHUNK_COMPRESSED) compressed++;
      else uncompressed++;
    }
    lastBody = info.bodyLength;
    pos += BigInt(CHUNK_HEADER_SIZE + info.bodyLength);
  }
}

function toTable(fileOffset: number[], dataOffset: number[], bodyLength: number[], dataLength: number[], type: number[]): ChunkTable {
  return {
    count: fileOffset.length,
    fileOffset: Float64Array.from(fileOffset),
    dataOffset: Float64Array.from(dataOffset),
    bodyLength: Uint32Array.from(bodyLength),
    dataLength: Uint32Array.from(dataLength),
    type: Uint8Array.from(type),
  };
}

/** Check a record header's fixed fields; null when they are fine, else why not. AVML's reader also wants zero padding. */
function headerProblem(h: Buffer): { why: string; at: number } | null {
  const magic = h.readUInt32LE(0);
  if (magic !== AVML_MAGIC) return { why: `bad AVML magic ${hex(magic)}`, at: 0 };
  const version = h.readUInt32LE(4);
  if (version !== AVML_VERSION) return { why: `unsupported AVML version ${version}`, at: 0 };
  const first = h.readBigUInt64LE(8);
  const last = h.readBigUInt64LE(16);
  if (h.readBigUInt64LE(24) !== 0n) return { why: 'AVML header padding is not zero', at: 24 };
  if (last < first) return { why: `AVML record ends (${hex(last)}) before it starts (${hex(first)})`, at: 0 };
  if (last === 0xffffffffffffffffn) return { why: 'AVML record end overflows the address space', at: 0 };
  return null;
}

function parseHeader(h: Buffer, offset: bigint): Range {
  const p = headerProblem(h);
  if (p) throw corrupt(p.why, offset + BigInt(p.at), p.at === 0 ? { expected: hex(AVML_MAGIC) } : {});
  return fromInclusive(h.readBigUInt64LE(8), h.readBigUInt64LE(16));
}

/** Smallest possible stream: identifier (10) and one data chunk (4 + CRC 4 + 1). */
const MIN_STREAM = 19n;

/**
 * Fast path: follow the u64 trailers from the end of the file back to offset 0, reading 8 + 42 bytes per record.
 * Returns undefined as soon as anything does not fit (truncated or damaged file): the forward walk then reports
 * exactly what and where. Each record's chunks are still walked and checked, on first read.
 */
async function scanTrailers(file: RandomAccessFile): Promise<RecordEntry[] | undefined> {
  const back: RecordEntry[] = [];
  let end = file.size;
  while (end > 0n) {
    if (back.length >= MAX_RECORDS) return undefined;
    if (end < BigInt(LIME_HEADER_SIZE + TRAILER_SIZE) + MIN_STREAM) return undefined;
    const streamLength = (await file.readExact(end - 8n, 8, 'AVML stream length')).readBigUInt64LE(0);
    if (streamLength < MIN_STREAM || streamLength > end - BigInt(LIME_HEADER_SIZE + TRAILER_SIZE)) return undefined;
    const headerOffset = end - 8n - streamLength - BigInt(LIME_HEADER_SIZE);
    const h = await file.readExact(headerOffset, LIME_HEADER_SIZE + STREAM_IDENTIFIER.length, 'AVML header');
    if (headerProblem(h) !== null || !h.subarray(LIME_HEADER_SIZE).equals(STREAM_IDENTIFIER)) return undefined;
    back.push({ range: fromInclusive(h.readBigUInt64LE(8), h.readBigUInt64LE(16)), headerOffset, streamLength });
    end = headerOffset;
  }
  const records = back.reverse();
  for (let i = 1; i < records.length; i++) if (records[i]!.range.start < records[i - 1]!.range.end) return undefined;
  return records;
}

/** Slow path: walk every chunk header from the start; the first problem is thrown with its offset. */
async function scanForward(file: RandomAccessFile, maxChunks: number, tables: Lru<ChunkTable>): Promise<{ records: RecordEntry[]; compressed: number; uncompressed: number }> {
  const win = new Window(file);
  const records: RecordEntry[] = [];
  let compressed = 0;
  let uncompressed = 0;
  let pos = 0n;
  if (file.size === 0n) throw truncated('AVML file is empty', 0n);
  while (pos < file.size) {
    if (records.length >= MAX_RECORDS) throw new MemdumpError('E_TOO_LARGE', `AVML file has more than ${MAX_RECORDS} records`, { details: { offset: hex(pos) } });
    if (file.size - pos < LIME_HEADER_SIZE) throw truncated('AVML file ends inside a record header', pos);
    const range = parseHeader(await win.peek(pos, LIME_HEADER_SIZE), pos);
    const prev = records[records.length - 1];
    if (prev && range.start < prev.range.end) {
      throw corrupt(`AVML record ${hex(range.start)} overlaps or precedes the previous one (ends ${hex(prev.range.end)})`, pos);
    }
    const w = await walkRecord(file, win, pos, range, maxChunks);
    tables.offer(records.length, w.table, w.table.count);
    records.push({ range, headerOffset: pos, streamLength: w.streamLength });
    compressed += w.compressed;
    uncompressed += w.uncompressed;
    pos = w.next;
  }
  return { records, compressed, uncompressed };
}

class AvmlImage implements MemoryImage {
  readonly format = 'avml' as const;
  readonly notes = [];
  readonly runs: readonly Range[];
  private readonly chunks = new Lru<Buffer>(CHUNK_CACHE_ENTRIES);
  private readonly recordIndex = new RunIndex('AVML');

  constructor(
    private readonly file: RandomAccessFile,
    private readonly records: readonly RecordEntry[],
    private readonly tables: Lru<ChunkTable>,
    readonly details: Record<string, unknown>,
    private readonly maxChunks: number,
  ) {
    // Touching records (a range cut into 16 MiB records) form one run.
    const runs: Range[] = [];
    for (const { range } of records) {
      const last = runs[runs.length - 1];
      if (last && last.end === range.start) runs[runs.length - 1] = { start: last.start, end: range.end };
      else runs.push(range);
    }
    this.runs = runs;
    // entry i is record i (records are never empty: a header's end is inclusive), at offset 0 of its own stream
    for (const { range } of records) this.recordIndex.add(range, 0n, 0n);
  }

  private async tableOf(i: number): Promise<ChunkTable> {
    const hit = this.tables.get(i);
    if (hit) return hit;
    const rec = this.records[i]!;
    const w = await walkRecord(this.file, new Window(this.file), rec.headerOffset, rec.range, this.maxChunks, rec.streamLength);
    this.tables.put(i, w.table, w.table.count);
    return w.table;
  }

  private async chunk(t: ChunkTable, ci: number, what: string): Promise<Buffer> {
    const fo = t.fileOffset[ci]!;
    const hit = this.chunks.get(fo);
    if (hit) return hit;
    const at = BigInt(fo);
    const body = await this.file.readExact(at + BigInt(CHUNK_HEADER_SIZE), t.bodyLength[ci]!, `${what} chunk`);
    const data = decodeDataChunk(t.type[ci]!, body, at, t.dataLength[ci]!, what);
    this.chunks.put(fo, data, 1);
    return data;
  }

  read(addr: bigint, length: number): Promise<Buffer> {
    return this.recordIndex.gather(addr, length, async (ri, offset, out, at, n) => {
      const rec = this.records[ri]!;
      const t = await this.tableOf(ri);
      for (let off = Number(offset), filled = 0; filled < n; ) {
        // Last chunk whose dataOffset <= off.
        let lo = 0;
        let hi = t.count - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (t.dataOffset[mid]! <= off) lo = mid;
          else hi = mid - 1;
        }
        const data = await this.chunk(t, lo, `AVML record ${describe(rec.range)}`);
        const inChunk = off - t.dataOffset[lo]!;
        const k = Math.min(data.length - inChunk, n - filled);
        data.copy(out, at + filled, inChunk, inChunk + k);
        filled += k;
        off += k;
      }
    });
  }

  close(): Promise<void> {
    this.chunks.clear();
    this.tables.clear();
    return this.file.close();
  }
}

export interface AvmlOpenOptions {
  /** Chunk-table entries kept in memory (default INDEX_BUDGET_CHUNKS, ~25 bytes each); others are re-walked. */
  readonly indexBudgetChunks?: number;
  /**
   * 'auto' (default): follow the u64 trailers back from the end (O(records)) and walk each record's chunks on first
   * read; fall back to 'walk' when the trailers do not chain. 'walk': check every chunk header of the file now.
   */
  readonly scan?: 'auto' | 'walk';
}

/** Open an AVML file (what `avml.open` does, with knobs for tests and deep checks). */
export async function openAvml(file: RandomAccessFile, options: AvmlOpenOptions = {}): Promise<MemoryImage> {
  toSafeNumber(file.size, 'AVML file size');
  if (file.size === 0n) throw truncated('AVML file is empty', 0n);
  // Every data chunk takes at least 9 file bytes (header, CRC, one byte): a hard cap on what a walk can index.
  const maxChunks = Math.max(1, Number(file.size / 9n));
  const tables = new Lru<ChunkTable>(options.indexBudgetChunks ?? INDEX_BUDGET_CHUNKS);
  let records = options.scan === 'walk' ? undefined : await scanTrailers(file);
  const scan = records ? 'trailers' : 'walk';
  let chunkCounts: Record<string, number> = {};
  if (!records) {
    const f = await scanForward(file, maxChunks, tables);
    records = f.records;
    chunkCounts = { compressedChunks: f.compressed, uncompressedChunks: f.uncompressed };
  }
  let storedBytes = 0n;
  let uncompressedBytes = 0n;
  let volatilityCannotRead = 0;
  for (const r of records) {
    const len = r.range.end - r.range.start;
    storedBytes += r.streamLength;
    uncompressedBytes += len;
    if (r.streamLength >= len) volatilityCannotRead++;
  }
  const details: Record<string, unknown> = {
    records: records.length,
    compression: 'snappy (framed)',
    storedBytes: storedBytes.toString(),
    uncompressedBytes: uncompressedBytes.toString(),
    recordsVolatilityCannotRead: volatilityCannotRead,
    scan,
    ...chunkCounts,
  };
  return new AvmlImage(file, records, tables, details, maxChunks);
}

export const avml: FormatSpec = {
  name: 'avml',
  extension: 'avml',
  description: 'AVML v2: LiME-style headers with snappy-framed record data (AVML, Volatility 3); zero records kept',
  needsSidecarMap: false,
  detect(head) {
    return head.length >= 8 && head.readUInt32LE(0) === AVML_MAGIC && head.readUInt32LE(4) === AVML_VERSION;
  },
  open(file) {
    return openAvml(file);
  },
  createWriter(out: ByteSink, _plan: WritePlan): ContainerWriter {
    return new AvmlWriter(out);
  },
};
