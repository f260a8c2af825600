/**
 * An open E01 segment set as a MemoryImage (openE01 in e01.ts builds it): random access and in-order streaming of the
 * media, chunk by chunk. Where each chunk is stored comes from e01-table-index.ts.
 *
 * Compressed chunks are inflated (zlib checks its own adler32; output capped at the chunk size), uncompressed ones carry
 * an adler32 that is checked; either failure is E_CORRUPT naming the chunk, segment and offset. Decoded chunks sit in a
 * small byte-bounded LRU.
 */
import { inflateSync } from 'node:zlib';
import { MemdumpError, hex } from '../core/errors.js';
import type { Range } from '../core/ranges.js';
import type { SegmentFiles } from './e01-segment-set.js';
import type { SetIndex } from './e01-set-index.js';
import { Lru } from '../core/lru.js';
import { type Span, type StoredRef, TableIndex } from './e01-table-index.js';
import { RunIndex } from './run-index.js';
import type { ImageNote, MemoryImage } from './types.js';

const CHUNK_CACHE_BYTES = 8 << 20;

export class E01Image implements MemoryImage {
  readonly format = 'e01' as const;
  readonly chunkCount: number;
  private readonly chunkCache: Lru<Buffer>;
  private readonly index: TableIndex;
  /** Physical run → media offset (padded layout from the map, or one run from 0). */
  private readonly runIndex = new RunIndex('E01');

  constructor(
    private readonly files: SegmentFiles,
    ix: SetIndex,
    entries: Lru<Uint32Array>,
    readonly runs: readonly Range[],
    /** Media offset where each run's bytes start. */
    runOffsets: readonly bigint[],
    readonly notes: readonly ImageNote[],
    readonly details: Record<string, unknown>,
    readonly mediaBytes: bigint,
    readonly chunkSize: number,
  ) {
    this.chunkCount = ix.volume.chunkCount;
    this.index = new TableIndex(files, ix, entries);
    this.chunkCache = new Lru(Math.max(CHUNK_CACHE_BYTES, 2 * chunkSize));
    runs.forEach((r, i) => this.runIndex.add(r, runOffsets[i]!, 0n));
  }

  read(addr: bigint, length: number): Promise<Buffer> {
    return this.runIndex.gather(addr, length, (_run, off, out, at, n) => this.readMedia(off, out, at, n));
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

  /** Chunks [c, …) of one table whose stored bytes are one read (at least chunk c). */
  private async span(c: number, to: number): Promise<Span> {
    const s = await this.index.span(c, to);
    // One chunk's stored size is checked before reading it: a lying last entry could point at gigabytes.
    this.checkSize(s.chunks[s.chunks.length - 1]!);
    return s;
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
    const path = this.index.pathOf(r.c);
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
    this.index.clear();
    return this.files.close();
  }
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
