/**
 * makedumpfile's "flattened" format (makedumpfile -F, and what QEMU's dump-guest-memory writes for every kdump
 * format): a stream that can go through a pipe. A 4096-byte header ("makedumpfile\0..." signature, then type and
 * version as big-endian i64) is followed by records {offset i64 BE, size i64 BE, size bytes}, each saying "these
 * bytes belong at this offset of the real dump file", and an end record with offset = size = -1. makedumpfile -R
 * rebuilds the file by seeking and writing each record in order, so a later record wins where two overlap and
 * bytes no record covers read as zeros.
 *
 * Here the rebuild is virtual: open() walks the record headers once (16 bytes each, never the data) and keeps a
 * map of disjoint logical extents -> stream offsets in typed arrays, 24 bytes per extent (an out-of-order stream
 * peaks near 100 bytes a record while overlaps are resolved); reads gather from it. A stream that stops before
 * its end record keeps its complete records and says where it stopped (truncatedAt).
 */
import { corrupt, truncated } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';

export const FLAT_SIGNATURE = 'makedumpfile';
export const FLAT_HEADER_SIZE = 4096;
const RECORD_HEADER = 16;
/** Extents kept (24 bytes each): 384 MiB of index at most; QEMU writes one record per 4 KiB page or per buffer. */
export const MAX_FLAT_RECORDS = 16 << 20;
/** Logical offsets beyond 2^53 cannot be exact doubles; no dump file is that large. */
const MAX_LOGICAL = BigInt(Number.MAX_SAFE_INTEGER);
const HEADER_BATCH = 1 << 20;
const SMALL_RECORD = 64n << 10n;
/** Reads of the stream merge extents less than STREAM_GAP apart, up to STREAM_SPAN bytes at once. */
const STREAM_GAP = 4096;
const STREAM_SPAN = 16 << 20;

/** A byte source with a size: the dump file itself, or the file a flattened stream describes. */
export interface DumpBytes {
  readonly size: bigint;
  readonly flattened: boolean;
  /** Exactly `length` bytes at `pos` (zeros where a flattened stream wrote nothing), or E_TRUNCATED past the end. */
  read(pos: bigint, length: number, what: string): Promise<Buffer>;
  /** Flattened only: `pos` if a record wrote it, else where the next written byte is (undefined: none after). */
  nextData?(pos: bigint): bigint | undefined;
  /** Flattened only: where the written bytes from `pos` (which a record wrote) stop, looking no further than `limit`. */
  extentEnd?(pos: bigint, limit: bigint): bigint;
}

export interface FlattenedBytes extends DumpBytes {
  readonly records: number;
  readonly inOrder: boolean;
  /** The stream stops before its end record (makedumpfile -F on a full disk): only complete records were kept. */
  readonly truncatedAt: bigint | undefined;
}

export function isFlattened(head: Buffer): boolean {
  return head.length >= 32 && head.subarray(0, 13).toString('latin1') === FLAT_SIGNATURE + '\0' && head.readBigInt64BE(16) === 1n;
}

export function plainBytes(file: RandomAccessFile): DumpBytes {
  return { size: file.size, flattened: false, read: (pos, length, what) => file.readExact(pos, length, what) };
}

/** Walk a flattened stream's records and return the reassembled file as a DumpBytes. */
export async function openFlattened(file: RandomAccessFile): Promise<FlattenedBytes> {
  const head = await file.readExact(0n, 32, 'makedumpfile flat header');
  if (!isFlattened(head)) throw corrupt('not a makedumpfile flattened stream', 0n);
  const version = head.readBigInt64BE(24);
  if (version !== 1n) throw new MemdumpError('E_UNSUPPORTED', `makedumpfile flattened format version ${version} (only 1 exists)`);
  let starts: Float64Array = new Float64Array(1024);
  let sizes: Float64Array = new Float64Array(1024);
  let srcs: Float64Array = new Float64Array(1024);
  let n = 0;
  let pos = BigInt(FLAT_HEADER_SIZE);
  let batch: Buffer = Buffer.alloc(0);
  let batchAt = 0n;
  let sorted = true;
  let logicalEnd = 0;
  let lastSize = 0n;
  // a stream cut short (full disk, killed pipe) keeps what its complete records say; the reader treats the dump
  // as incomplete rather than refusing evidence that is mostly there
  let truncatedAt: bigint | undefined;
  for (;;) {
    if (pos + BigInt(RECORD_HEADER) > file.size) {
      truncatedAt = pos;
      break;
    }
    if (pos < batchAt || pos + BigInt(RECORD_HEADER) > batchAt + BigInt(batch.length)) {
      // small records: read their headers in 1 MiB windows (few reads); large ones: just the header, so the walk
      // never reads the data it skips
      batch = await file.readAt(pos, lastSize < SMALL_RECORD ? HEADER_BATCH : RECORD_HEADER);
      batchAt = pos;
    }
    const o = Number(pos - batchAt);
    const offset = batch.readBigInt64BE(o);
    const size = batch.readBigInt64BE(o + 8);
    if (offset === -1n && size === -1n) break;
    if (offset < 0n || size < 0n) throw corrupt(`flattened record offset ${offset} size ${size}`, pos);
    const data = pos + BigInt(RECORD_HEADER);
    if (size > file.size - data) {
      truncatedAt = pos;
      break;
    }
    if (offset + size > MAX_LOGICAL) throw corrupt(`flattened record places bytes at ${hex(offset)}`, pos);
    if (size > 0n) {
      if (n === MAX_FLAT_RECORDS) throw new MemdumpError('E_TOO_LARGE', `flattened stream has more than ${MAX_FLAT_RECORDS} records`);
      if (n === starts.length) {
        const grow = (a: Float64Array): Float64Array => {
          const b = new Float64Array(a.length * 2);
          b.set(a);
          return b;
        };
        [starts, sizes, srcs] = [grow(starts), grow(sizes), grow(srcs)];
      }
      starts[n] = Number(offset);
      sizes[n] = Number(size);
      srcs[n] = Number(data);
      if (starts[n]! < logicalEnd) sorted = false;
      logicalEnd = Math.max(logicalEnd, starts[n]! + sizes[n]!);
      n++;
    }
    pos = data + size;
    lastSize = size;
  }
  const map = sorted ? { starts, sizes, srcs, n } : resolveOverlaps(starts, sizes, srcs, n);
  if (n === 0) throw truncated('flattened stream holds no complete record', BigInt(FLAT_HEADER_SIZE));
  return new FlatBytes(file, map.starts, map.sizes, map.srcs, map.n, BigInt(logicalEnd), n, sorted, truncatedAt);
}

/**
 * Records written out of order or over each other: cut the logical space at every record boundary and give each
 * piece to the last record covering it (a sweep with a max-heap of covering record numbers, lazily pruned).
 */
function resolveOverlaps(starts: Float64Array, sizes: Float64Array, srcs: Float64Array, n: number): { starts: Float64Array; sizes: Float64Array; srcs: Float64Array; n: number } {
  const cuts = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    cuts[2 * i] = starts[i]!;
    cuts[2 * i + 1] = starts[i]! + sizes[i]!;
  }
  cuts.sort();
  const byStart = new Uint32Array(n);
  for (let i = 0; i < n; i++) byStart[i] = i;
  byStart.sort((a, b) => starts[a]! - starts[b]! || a - b);
  const heap: number[] = [];
  const push = (v: number): void => {
    heap.push(v);
    for (let i = heap.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (heap[p]! >= heap[i]!) break;
      [heap[p], heap[i]] = [heap[i]!, heap[p]!];
      i = p;
    }
  };
  const pop = (): void => {
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && heap[l]! > heap[m]!) m = l;
      if (r < heap.length && heap[r]! > heap[m]!) m = r;
      if (m === i) break;
      [heap[m], heap[i]] = [heap[i]!, heap[m]!];
      i = m;
    }
  };
  const out = { starts: new Float64Array(2 * n), sizes: new Float64Array(2 * n), srcs: new Float64Array(2 * n), n: 0 };
  let next = 0;
  for (let c = 0; c + 1 < cuts.length; c++) {
    const a = cuts[c]!;
    const b = cuts[c + 1]!;
    if (b === a) continue;
    while (next < n && starts[byStart[next]!]! <= a) push(byStart[next++]!);
    while (heap.length > 0 && starts[heap[0]!]! + sizes[heap[0]!]! <= a) pop();
    if (heap.length === 0) continue;
    const w = heap[0]!;
    const src = srcs[w]! + (a - starts[w]!);
    const k = out.n - 1;
    if (k >= 0 && out.starts[k]! + out.sizes[k]! === a && out.srcs[k]! + out.sizes[k]! === src) {
      out.sizes[k] = out.sizes[k]! + (b - a);
    } else {
      out.starts[out.n] = a;
      out.sizes[out.n] = b - a;
      out.srcs[out.n] = src;
      out.n++;
    }
  }
  return out;
}

class FlatBytes implements FlattenedBytes {
  readonly flattened = true;
  constructor(
    private readonly file: RandomAccessFile,
    private readonly starts: Float64Array,
    private readonly sizes: Float64Array,
    private readonly srcs: Float64Array,
    private readonly n: number,
    readonly size: bigint,
    readonly records: number,
    /** Records ascending and disjoint (QEMU interleaves two regions, so its streams are not). */
    readonly inOrder: boolean,
    readonly truncatedAt: bigint | undefined,
  ) {}

  /** Index of the last extent starting at or before p, or -1. */
  private floor(p: number): number {
    let lo = 0;
    let hi = this.n - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid]! <= p) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
  }

  nextData(pos: bigint): bigint | undefined {
    const p = Number(pos);
    const i = this.floor(p);
    if (i >= 0 && this.starts[i]! + this.sizes[i]! > p) return pos;
    return i + 1 < this.n ? BigInt(this.starts[i + 1]!) : undefined;
  }

  extentEnd(pos: bigint, limit: bigint): bigint {
    const p = Number(pos);
    const stop = Number(limit);
    let i = this.floor(p);
    if (i < 0 || this.starts[i]! + this.sizes[i]! <= p) return pos;
    // records that follow each other without a gap are one written extent; the walk ends at `limit`, so it costs
    // no more than the read it sizes
    let end = this.starts[i]! + this.sizes[i]!;
    while (end < stop && i + 1 < this.n && this.starts[i + 1]! === end) end += this.sizes[++i]!;
    return BigInt(Math.min(end, stop));
  }

  async read(pos: bigint, length: number, what: string): Promise<Buffer> {
    if (pos < 0n || pos + BigInt(length) > this.size) {
      throw truncated(`${what}: ${length} bytes at ${hex(pos)} lie beyond the ${this.size}-byte dump the flattened stream describes`, pos);
    }
    const out = Buffer.alloc(length);
    const p0 = Number(pos);
    const stop = p0 + length;
    let i = Math.max(0, this.floor(p0));
    // p0 may lie in a hole after extent i: start with the first extent that reaches past p0
    if (i < this.n && this.starts[i]! + this.sizes[i]! <= p0) i++;
    while (i < this.n && this.starts[i]! < stop) {
      // extents whose stream bytes follow each other (a record header or a small gap apart) are fetched with one
      // read: QEMU and makedumpfile -F write one record per page or per buffer, and per-record reads would crawl
      const srcFrom = this.srcs[i]! + Math.max(0, p0 - this.starts[i]!);
      let j = i;
      let srcTo = this.srcs[j]! + (Math.min(stop, this.starts[j]! + this.sizes[j]!) - this.starts[j]!);
      while (j + 1 < this.n && this.starts[j + 1]! < stop) {
        const k = j + 1;
        const kTo = this.srcs[k]! + (Math.min(stop, this.starts[k]! + this.sizes[k]!) - this.starts[k]!);
        if (this.srcs[k]! < srcTo || this.srcs[k]! - srcTo > STREAM_GAP || kTo - srcFrom > STREAM_SPAN) break;
        srcTo = kTo;
        j = k;
      }
      const span = srcTo > srcFrom ? await this.file.readExact(BigInt(srcFrom), srcTo - srcFrom, what) : Buffer.alloc(0);
      for (let k = i; k <= j; k++) {
        const s = this.starts[k]!;
        const a = Math.max(s, p0);
        const b = Math.min(s + this.sizes[k]!, stop);
        if (b <= a) continue;
        const from = this.srcs[k]! + (a - s) - srcFrom;
        span.copy(out, a - p0, from, from + (b - a));
      }
      i = j + 1;
    }
    return out;
  }
}
