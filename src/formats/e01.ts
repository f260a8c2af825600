/**
 * Expert Witness (EWF-E01, EnCase style) images: reader and format entry; the writer is e01-write.ts, open-time
 * parsing e01-read.ts. Reads agree byte for byte with `ewfexport -f raw` (checked in test/oracle/ewf-read.test.ts).
 *
 * The media is the stored sectors: sector count × bytes per sector (what ewfexport writes and ewfverify hashes).
 * E01 has no memory map, so the physical runs come from options.sidecarRuns (laid out padded, media offset = address,
 * as e01-write.ts stores them), else FILE.map.json (its run offsets are media offsets), else one run [0, media size).
 *
 * Random access: media offset → chunk → table (binary search) → entry → stored bytes in a segment file. A chunk's
 * stored size is the distance to the next entry, or to the end of its table's data for the last entry. Compressed
 * chunks are inflated (zlib checks its own adler32; output capped at the chunk size), uncompressed ones carry an
 * adler32 that is checked; either failure is E_CORRUPT naming the chunk, segment and offset.
 *
 * Memory: table entries are kept raw (a Uint32Array, 4 bytes per chunk) up to INDEX_BUDGET_CHUNKS entries; beyond that
 * tables are re-read (and re-checked) on demand, least recently used first out. Decoded chunks sit in a small
 * byte-bounded LRU. Segment files are opened on demand, at most MAX_OPEN_SEGMENTS at once.
 */
import { createHash } from 'node:crypto';
import { inflateSync } from 'node:zlib';
import { MemdumpError, hex } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { Hasher } from '../core/hasher.js';
import { type Range, isSortedDisjoint } from '../core/ranges.js';
import { TABLE_COMPRESSED } from './e01-layout.js';
import { MAX_CHUNK_SIZE, type SetIndex, type TableRef, headerDate, loadTable, readSection, signatureKind, variantOf, walkSet } from './e01-read.js';
import { createE01Writer } from './e01-write.js';
import { loadSidecar } from './sidecar.js';
import type { FormatSpec, ImageNote, MemoryImage, OpenOptions } from './types.js';

/** Table entries kept in memory (4 bytes each: 16 MiB, the index of 128 GiB of media at 32 KiB chunks). */
export const INDEX_BUDGET_CHUNKS = 4 << 20;
const CHUNK_CACHE_BYTES = 8 << 20;
const MAX_OPEN_SEGMENTS = 32;
/** Stored chunk bytes fetched with one read when chunks are streamed. */
const SPAN_BYTES = 2 << 20;
const PROGRESS_BYTES = 64n << 20n;
const HASH_BATCH = 1 << 20;
const MEDIA_TYPES: Readonly<Record<number, string>> = { 0x00: 'removable', 0x01: 'fixed', 0x03: 'optical', 0x0e: 'logical', 0x10: 'memory' };

export interface E01OpenOptions extends OpenOptions {
  /** Table entries kept in memory (default INDEX_BUDGET_CHUNKS); others are re-read when needed. */
  readonly indexBudgetChunks?: number;
  readonly maxOpenSegments?: number;
}

/** Keyed LRU with a size budget; the newest entry is always kept. */
class Lru<V> {
  private readonly map = new Map<number, { v: V; cost: number }>();
  private total = 0;
  constructor(private readonly budget: number) {}
  get(k: number): V | undefined {
    const e = this.map.get(k);
    if (e) {
      this.map.delete(k);
      this.map.set(k, e);
    }
    return e?.v;
  }
  /** Keep if it fits without evicting (filling the cache at open). */
  offer(k: number, v: V, cost: number): void {
    if (this.total + cost <= this.budget && !this.map.has(k)) this.put(k, v, cost);
  }
  put(k: number, v: V, cost: number): void {
    const had = this.map.get(k);
    if (had) {
      this.map.delete(k);
      this.total -= had.cost;
    }
    while (this.map.size > 0 && this.total + cost > this.budget) {
      const [old, e] = this.map.entries().next().value!;
      this.map.delete(old);
      this.total -= e.cost;
    }
    this.map.set(k, { v, cost });
    this.total += cost;
  }
  clear(): void {
    this.map.clear();
    this.total = 0;
  }
}

interface Handle {
  readonly file: RandomAccessFile;
  users: number;
  closed: boolean;
}

/** Segment files beyond the first, opened when read and closed least recently used first (never while in use). */
class SegmentFiles {
  private readonly open = new Map<number, Handle>();
  private readonly pending = new Map<number, Promise<Handle>>();
  constructor(
    private readonly first: RandomAccessFile,
    private readonly segments: readonly { path: string; bytes: bigint }[],
    private readonly max: number,
  ) {}

  async with<T>(i: number, fn: (f: RandomAccessFile) => Promise<T>): Promise<T> {
    if (i === 0) return fn(this.first);
    let h = this.open.get(i);
    while (!h || h.closed) {
      let p = this.pending.get(i);
      if (!p) {
        p = this.openSegment(i).finally(() => this.pending.delete(i));
        this.pending.set(i, p);
      }
      h = await p;
    }
    this.open.delete(i);
    this.open.set(i, h);
    h.users++;
    try {
      return await fn(h.file);
    } finally {
      h.users--;
      await this.trim();
    }
  }

  private async openSegment(i: number): Promise<Handle> {
    const seg = this.segments[i]!;
    const file = await RandomAccessFile.open(seg.path);
    if (file.size !== seg.bytes) {
      await file.close();
      throw new MemdumpError('E_CORRUPT', `${seg.path} changed since the EWF set was opened (${seg.bytes} bytes then, ${file.size} now)`, { details: { path: seg.path } });
    }
    const h: Handle = { file, users: 0, closed: false };
    this.open.set(i, h);
    return h;
  }

  private async trim(): Promise<void> {
    for (const [k, h] of this.open) {
      if (this.open.size <= this.max) break;
      if (h.users > 0) continue;
      this.open.delete(k);
      h.closed = true;
      await h.file.close();
    }
  }

  async close(): Promise<void> {
    for (const h of this.open.values()) {
      h.closed = true;
      await h.file.close();
    }
    this.open.clear();
    await this.first.close();
  }
}

export class E01Image implements MemoryImage {
  readonly format = 'e01' as const;
  readonly chunkCount: number;
  private readonly chunkCache: Lru<Buffer>;

  constructor(
    private readonly files: SegmentFiles,
    private readonly ix: SetIndex,
    private readonly entries: Lru<Uint32Array>,
    readonly runs: readonly Range[],
    /** Media offset where each run's bytes start. */
    private readonly runOffsets: readonly bigint[],
    readonly notes: readonly ImageNote[],
    readonly details: Record<string, unknown>,
    readonly mediaBytes: bigint,
    readonly chunkSize: number,
  ) {
    this.chunkCount = ix.volume.chunkCount;
    this.chunkCache = new Lru(Math.max(CHUNK_CACHE_BYTES, 2 * chunkSize));
  }

  private findRun(addr: bigint): number {
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.runs[mid]!;
      if (addr < r.start) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  async read(addr: bigint, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`bad read length ${length}`);
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const a = addr + BigInt(done);
      const ri = this.findRun(a);
      if (ri < 0) throw new MemdumpError('E_CORRUPT', `E01: address ${hex(a)} is not in any run`, { details: { address: hex(a) } });
      const r = this.runs[ri]!;
      const n = Number(BigInt(length - done) < r.end - a ? BigInt(length - done) : r.end - a);
      await this.readMedia(this.runOffsets[ri]! + (a - r.start), out, done, n);
      done += n;
    }
    return out;
  }

  /** Copy media bytes [off, off + n) into out at `at`. */
  async readMedia(off: bigint, out: Buffer, at: number, n: number): Promise<void> {
    if (off < 0n || off + BigInt(n) > this.mediaBytes) {
      throw new MemdumpError('E_CORRUPT', `E01: media bytes ${hex(off)}-${hex(off + BigInt(n))} are beyond the stored media (${this.mediaBytes} bytes)`, { details: { offset: hex(off) } });
    }
    if (n === 0) return;
    const cs = BigInt(this.chunkSize);
    const first = Number(off / cs);
    const last = Number((off + BigInt(n) - 1n) / cs);
    let skip = Number(off % cs);
    const copy = (data: Buffer) => {
      const k = Math.min(n, data.length - skip);
      data.copy(out, at, skip, skip + k);
      at += k;
      n -= k;
      skip = 0;
    };
    // Small reads (scanners, random access) go through the chunk cache; long ones stream past it.
    if (last - first < 3) for (let c = first; c <= last; c++) copy(await this.chunk(c));
    else for await (const data of this.chunks(first, last + 1)) copy(data);
  }

  private tableOf(c: number): number {
    const t = this.ix.tables;
    let lo = 0;
    let hi = t.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (t[mid]!.firstChunk <= c) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private async entriesOf(ti: number): Promise<Uint32Array> {
    const hit = this.entries.get(ti);
    if (hit) return hit;
    const ref = this.ix.tables[ti]!;
    const e = await this.files.with(ref.segment, async (f) => {
      const s = await readSection(f, ref.offset);
      return (await loadTable(f, s, ref.footer, { dataStart: ref.dataStart, dataEnd: ref.dataEnd }, ref)).entries;
    });
    this.entries.put(ti, e, e.length);
    return e;
  }

  /** Chunks [c, …) of one table whose stored bytes are one read of at most SPAN_BYTES (at least chunk c). */
  private async span(c: number, to: number): Promise<Span> {
    const ti = this.tableOf(c);
    const ref = this.ix.tables[ti]!;
    const entries = await this.entriesOf(ti);
    const stop = Math.min(to, ref.firstChunk + ref.count);
    const at = entryOffset(ref, entries, c - ref.firstChunk);
    const chunks: StoredRef[] = [];
    let pos = at;
    for (let k = c; k < stop; k++) {
      const i = k - ref.firstChunk;
      const end = i + 1 < ref.count ? entryOffset(ref, entries, i + 1) : ref.dataEnd;
      if (chunks.length > 0 && end - at > SPAN_BYTES) break;
      chunks.push({ c: k, at: pos, size: end - pos, compressed: i < ref.overflowAt && (entries[i]! & TABLE_COMPRESSED) !== 0 });
      pos = end;
    }
    const last = chunks[chunks.length - 1]!;
    // One chunk's stored size is checked before reading it: a lying last entry could point at gigabytes.
    this.checkSize(last);
    return { segment: ref.segment, at, size: pos - at, chunks };
  }

  private readSpan(s: Span): Promise<Buffer> {
    return this.files.with(s.segment, (f) => f.readExact(BigInt(s.at), s.size, `E01 chunk ${s.chunks[0]!.c}`));
  }

  /** Decoded chunks [from, to) in order; the next span is read while the current one is decoded. */
  async *chunks(from: number, to: number): AsyncGenerator<Buffer> {
    const fetch = (c: number) => {
      const p = this.span(c, to).then(async (s) => ({ s, buf: await this.readSpan(s) }));
      p.catch(() => undefined); // awaited below; a consumer that stops early must not leave it unhandled
      return p;
    };
    let next = from < to ? fetch(from) : undefined;
    while (next) {
      const { s, buf } = await next;
      const c1 = s.chunks[s.chunks.length - 1]!.c + 1;
      next = c1 < to ? fetch(c1) : undefined;
      for (const r of s.chunks) yield this.decode(r, buf.subarray(r.at - s.at, r.at - s.at + r.size));
    }
  }

  /** The media bytes of chunk c (the last chunk may be short), through the cache. */
  async chunk(c: number): Promise<Buffer> {
    const hit = this.chunkCache.get(c);
    if (hit) return hit;
    const s = await this.span(c, c + 1);
    const data = this.decode(s.chunks[0]!, await this.readSpan(s));
    this.chunkCache.put(c, data, data.length);
    return data;
  }

  private expected(c: number): number {
    const left = this.mediaBytes - BigInt(c) * BigInt(this.chunkSize);
    return left < BigInt(this.chunkSize) ? Number(left) : this.chunkSize;
  }

  private bad(r: StoredRef, why: string): MemdumpError {
    const path = this.ix.segments[this.ix.tables[this.tableOf(r.c)]!.segment]!.path;
    return new MemdumpError('E_CORRUPT', `E01 chunk ${r.c} (${path} at ${hex(r.at)}): ${why}`, { details: { chunk: r.c, path, offset: hex(r.at) } });
  }

  private checkSize(r: StoredRef): void {
    const expected = this.expected(r.c);
    const limit = r.compressed ? this.chunkSize + (this.chunkSize >> 6) + 1024 : this.chunkSize + 4;
    if (r.size > limit || r.size < (r.compressed ? 1 : expected + 4)) {
      throw this.bad(r, `stored size ${r.size} does not fit a ${r.compressed ? 'compressed' : 'plain'} chunk of ${expected} bytes`);
    }
  }

  private decode(r: StoredRef, stored: Buffer): Buffer {
    this.checkSize(r);
    const expected = this.expected(r.c);
    let data: Buffer;
    if (r.compressed) {
      try {
        data = inflateSync(stored, { maxOutputLength: this.chunkSize });
      } catch (e) {
        throw this.bad(r, `zlib: ${(e as Error).message}`);
      }
      if (data.length < expected) throw this.bad(r, `inflates to ${data.length} bytes, ${expected} expected`);
    } else {
      data = stored.subarray(0, r.size - 4);
      if (!plainChunkIntact(data, stored.readUInt32LE(r.size - 4))) throw this.bad(r, 'adler32 mismatch');
    }
    return data.subarray(0, expected);
  }

  close(): Promise<void> {
    this.chunkCache.clear();
    this.entries.clear();
    return this.files.close();
  }
}

interface StoredRef {
  readonly c: number;
  readonly at: number;
  readonly size: number;
  readonly compressed: boolean;
}

interface Span {
  readonly segment: number;
  readonly at: number;
  readonly size: number;
  readonly chunks: StoredRef[];
}

const ZLIB_HEADER = Buffer.from([0x78, 0x01]);
const STORED_BLOCK_MAX = 0xffff;

/**
 * Check an uncompressed chunk's adler32 by letting zlib do it: the bytes are wrapped as stored deflate blocks between
 * a zlib header and the stored checksum (big-endian, as zlib wants it) and inflated. 1.4× faster than adler32.ts here.
 */
function plainChunkIntact(data: Buffer, stored: number): boolean {
  const blocks = Math.max(1, Math.ceil(data.length / STORED_BLOCK_MAX));
  const z = Buffer.allocUnsafe(2 + blocks * 5 + data.length + 4);
  ZLIB_HEADER.copy(z, 0);
  let o = 2;
  for (let b = 0, i = 0; b < blocks; b++) {
    const n = Math.min(STORED_BLOCK_MAX, data.length - i);
    z[o] = b === blocks - 1 ? 1 : 0;
    z.writeUInt16LE(n, o + 1);
    z.writeUInt16LE(~n & 0xffff, o + 3);
    data.copy(z, o + 5, i, i + n);
    o += 5 + n;
    i += n;
  }
  z.writeUInt32BE(stored, o);
  try {
    inflateSync(z);
    return true;
  } catch {
    return false;
  }
}

function entryOffset(ref: TableRef, entries: Uint32Array, i: number): number {
  const e = entries[i]!;
  return ref.base + (i >= ref.overflowAt ? e : e & 0x7fffffff);
}

function fields(ix: SetIndex): Record<string, string | null> {
  const v = (ix.header2 ?? ix.header)?.values;
  const get = (k: string) => {
    const s = v?.get(k) ?? ix.header?.values.get(k);
    return s === undefined || s === '' ? null : s;
  };
  return {
    caseNumber: get('c'),
    description: get('a'),
    examiner: get('e'),
    evidenceNumber: get('n'),
    notes: get('t'),
    acquiredAt: headerDate(get('m') ?? undefined),
    systemDate: headerDate(get('u') ?? undefined),
    software: get('av'),
    os: get('ov'),
    model: get('md'),
    serialNumber: get('sn'),
  };
}

/** Open a set from its first segment (what e01.open does, with knobs for tests). */
export async function openE01(file: RandomAccessFile, options: E01OpenOptions = {}): Promise<E01Image> {
  const entries = new Lru<Uint32Array>(options.indexBudgetChunks ?? INDEX_BUDGET_CHUNKS);
  const ix = await walkSet(file, (i, e) => entries.offer(i, e, e.length));
  const v = ix.volume;
  const path = file.path;
  if (v.bytesPerSector === 0 || v.sectorsPerChunk === 0) throw new MemdumpError('E_CORRUPT', `${path}: EWF volume has ${v.bytesPerSector} bytes per sector, ${v.sectorsPerChunk} sectors per chunk`);
  const chunkSize = v.bytesPerSector * v.sectorsPerChunk;
  if (chunkSize > MAX_CHUNK_SIZE) throw new MemdumpError('E_UNSUPPORTED', `${path}: EWF chunks of ${chunkSize} bytes (limit ${MAX_CHUNK_SIZE})`);
  const spc = BigInt(v.sectorsPerChunk);
  if (BigInt(v.chunkCount) !== (v.sectorCount + spc - 1n) / spc) {
    throw new MemdumpError('E_CORRUPT', `${path}: EWF volume says ${v.chunkCount} chunks for ${v.sectorCount} sectors of ${v.sectorsPerChunk} per chunk`);
  }
  const mediaBytes = v.sectorCount * BigInt(v.bytesPerSector);
  let runs: readonly Range[];
  let offsets: bigint[];
  let notes: readonly ImageNote[] = [];
  let map: string;
  const side = options.sidecarRuns ? undefined : await loadSidecar(path);
  if (options.sidecarRuns) {
    if (!isSortedDisjoint(options.sidecarRuns)) throw new MemdumpError('E_USAGE', `${path}: the runs given for the E01 are not ascending and disjoint`);
    runs = options.sidecarRuns;
    offsets = runs.map((r) => r.start);
    map = 'given runs (media offset = address)';
  } else if (side) {
    ({ runs, fileOffsets: offsets, notes } = side);
    map = 'sidecar';
  } else {
    runs = mediaBytes > 0n ? [{ start: 0n, end: mediaBytes }] : [];
    offsets = [0n];
    map = 'none (the whole media from address 0)';
  }
  runs.forEach((r, i) => {
    const o = offsets[i];
    if (o === undefined || o + (r.end - r.start) > mediaBytes) {
      throw new MemdumpError('E_CORRUPT', `${path}: run ${hex(r.start)}-${hex(r.end - 1n)} needs media bytes up to ${o === undefined ? '?' : hex(o + (r.end - r.start))}, the E01 holds ${mediaBytes}`);
    }
  });
  const compressedChunks = ix.tables.reduce((n, t) => n + t.compressed, 0);
  const details: Record<string, unknown> = {
    variant: variantOf(ix),
    segments: ix.segments.map((s, i) => {
      const own = ix.tables.filter((t) => t.segment === i);
      return { path: s.path, bytes: s.bytes.toString(), firstChunk: own[0]?.firstChunk ?? null, chunks: own.reduce((n, t) => n + t.count, 0) };
    }),
    mediaType: MEDIA_TYPES[v.mediaType] ?? `unknown (${hex(v.mediaType)})`,
    isPhysical: (v.mediaFlags & 0x02) !== 0,
    bytesPerSector: v.bytesPerSector,
    sectorsPerChunk: v.sectorsPerChunk,
    chunkCount: v.chunkCount,
    compressedChunks,
    sectorCount: v.sectorCount.toString(),
    mediaBytes: mediaBytes.toString(),
    compression: v.compressionLevel === 1 ? 'fast' : v.compressionLevel === 2 ? 'best' : v.compressionLevel === 0 ? (compressedChunks > 0 ? 'deflate (level not recorded)' : 'none') : `level ${v.compressionLevel}`,
    errorGranularity: v.errorGranularity,
    setIdentifier: /^0*$/.test(v.guid) ? null : v.guid,
    ...fields(ix),
    storedDigests: { md5: ix.md5, sha1: ix.sha1 },
    errorRuns: ix.errorRuns,
    map,
    problems: ix.problems,
  };
  const files = new SegmentFiles(file, ix.segments, options.maxOpenSegments ?? MAX_OPEN_SEGMENTS);
  return new E01Image(files, ix, entries, runs, offsets, notes, details, mediaBytes, chunkSize);
}

/**
 * MD5 and SHA-1 of the whole stored media, read in order (what ewfverify computes), to compare with
 * details.storedDigests. A damaged chunk throws E_CORRUPT.
 */
export async function e01MediaDigests(img: MemoryImage, onProgress?: (done: bigint, total: bigint) => void): Promise<{ md5: string; sha1: string; bytes: bigint }> {
  if (!(img instanceof E01Image)) throw new MemdumpError('E_USAGE', `e01MediaDigests needs an image opened as e01, not ${img.format}`);
  // The digests run in worker threads while this thread reads and inflates; 1 MiB batches keep messages few.
  const hasher = new Hasher({ digests: ['md5', 'sha1'], windowSize: 0n });
  const batch = Buffer.allocUnsafe(Math.max(HASH_BATCH, img.chunkSize));
  try {
    let used = 0;
    let done = 0n;
    let step = 0n;
    for await (const data of img.chunks(0, img.chunkCount)) {
      if (used + data.length > batch.length) {
        await hasher.update(batch.subarray(0, used));
        used = 0;
      }
      used += data.copy(batch, used);
      done += BigInt(data.length);
      if (onProgress && (done - step >= PROGRESS_BYTES || done === img.mediaBytes)) {
        step = done;
        onProgress(done, img.mediaBytes);
      }
    }
    if (used > 0) await hasher.update(batch.subarray(0, used));
    const r = await hasher.digest();
    return { md5: r.digests.md5!, sha1: r.digests.sha1!, bytes: r.length };
  } catch (e) {
    await hasher.close();
    throw e;
  }
}

export const e01: FormatSpec = {
  name: 'e01',
  extension: 'E01',
  description: 'Expert Witness (EnCase 6 E01): zlib chunks with adler32 in segment files .E01, .E02, …; map in FILE.map.json',
  needsSidecarMap: true,
  detect(head) {
    const kind = signatureKind(head);
    // EWF2 and logical files are claimed too, so that open can say why they are not supported.
    if (kind === 'ewf1') return head.length >= 13 && head[8] === 1 && head.readUInt16LE(9) === 1;
    return kind !== undefined;
  },
  open: (file, options) => openE01(file, options),
  createWriter: (out, plan) => createE01Writer(out, plan),
};
