/**
 * Page → (block, slot) index for hibernation files, kept as runs in typed arrays: 16 GiB of RAM in 16-page sets
 * (262k runs) costs ~4 MB rather than millions of objects. Blocks are Windows 7 Xpress blocks or Windows 8+
 * compression sets: where the bytes sit, how they are stored and how many pages they decompress to.
 */
import { readSync } from 'node:fs';
import { truncated } from '../core/bytes.js';
import { MemdumpError, fromSystemError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { PAGE_SIZE } from './hiberfil-header.js';

export const KIND_STORED = 0;
export const KIND_LZ77 = 1;
export const KIND_HUFFMAN = 2;
export const KIND_NAMES = ['stored', 'lz77', 'huffman'] as const;

/** More pages than this (128 GiB of RAM) is E_TOO_LARGE: the index alone would take ~1.7 GB. */
export const MAX_PAGES = 1 << 25;
/** Separate page ranges an image may have (as the crash dump and kdump readers cap runs). */
export const MAX_RUNS = 1 << 21;
/** Page numbers stay exact in a Float64Array and page * 4096 stays below 2^64. */
export const MAX_PAGE_NUMBER = 2 ** 52 - 1;

function grow<T extends Float64Array | Uint32Array | Uint8Array>(a: T, need: number, make: (n: number) => T): T {
  if (need <= a.length) return a;
  const b = make(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

export class BlockTable {
  offset = new Float64Array(1024);
  size = new Uint32Array(1024);
  pages = new Uint8Array(1024);
  kind = new Uint8Array(1024);
  count = 0;
  readonly kinds = [0, 0, 0];

  add(offset: bigint, size: number, pages: number, kind: number): number {
    const i = this.count;
    this.offset = grow(this.offset, i + 1, (n) => new Float64Array(n));
    this.size = grow(this.size, i + 1, (n) => new Uint32Array(n));
    this.pages = grow(this.pages, i + 1, (n) => new Uint8Array(n));
    this.kind = grow(this.kind, i + 1, (n) => new Uint8Array(n));
    this.offset[i] = Number(offset);
    this.size[i] = size;
    this.pages[i] = pages;
    this.kind[i] = kind;
    this.kinds[kind]!++;
    this.count++;
    return i;
  }
}

/** Most pages one added run may hold: a compression set descriptor or a table entry cut at a block edge (16). */
export const MAX_RUN_PAGES = 16;
const RING = 32;

/**
 * Collects (first page, count, block, first slot) runs as the tables list them: one entry per descriptor rather
 * than per page, so a file of tiny sets costs ~14 bytes per set, not per page it claims.
 */
export class PageIndexBuilder {
  private first = new Float64Array(1024);
  private count = new Uint8Array(1024);
  private block = new Uint32Array(1024);
  private slot = new Uint8Array(1024);
  runs = 0;
  /** Pages added, duplicates included. */
  pages = 0;

  addRun(first: number, count: number, block: number, slot: number): void {
    if (count < 1 || count > MAX_RUN_PAGES) throw new RangeError(`hiberfil index: run of ${count} pages`);
    if (this.pages + count > MAX_PAGES) {
      throw new MemdumpError('E_TOO_LARGE', `hiberfil: the tables list more than ${MAX_PAGES} pages (${MAX_PAGES / 262144} GiB of RAM); not indexing them`, { details: { maxPages: MAX_PAGES } });
    }
    const i = this.runs;
    if (i >= this.first.length) {
      this.first = grow(this.first, i + 1, (n) => new Float64Array(n));
      this.count = grow(this.count, i + 1, (n) => new Uint8Array(n));
      this.block = grow(this.block, i + 1, (n) => new Uint32Array(n));
      this.slot = grow(this.slot, i + 1, (n) => new Uint8Array(n));
    }
    this.first[i] = first;
    this.count[i] = count;
    this.block[i] = block;
    this.slot[i] = slot;
    this.runs++;
    this.pages += count;
  }

  /**
   * Sort runs by first page and resolve overlaps page by page: a page listed twice keeps its last copy (the one
   * Windows restores last). Runs hold at most 16 pages, so once runs are visited in start order only the 16 pages
   * after the current start can still change: a 32-slot ring holds them, whatever the number of duplicates.
   */
  finish(): PageIndex {
    const n = this.runs;
    const first = this.first;
    let sorted = true;
    for (let i = 1; i < n && sorted; i++) if (first[i]! < first[i - 1]!) sorted = false;
    let order: Uint32Array | undefined;
    if (!sorted) {
      order = new Uint32Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
      order.sort((a, b) => first[a]! - first[b]! || a - b);
    }
    const out = new RunBuilder();
    const ring = new Int32Array(RING).fill(-1);
    let cursor = 0;
    let hi = 0;
    let duplicates = 0;
    const emit = (p: number) => {
      const r = ring[p % RING]!;
      if (r < 0) return;
      ring[p % RING] = -1;
      out.add(p, this.block[r]!, this.slot[r]! + (p - first[r]!));
    };
    for (let k = 0; k < n; k++) {
      const r = order ? order[k]! : k;
      const s = first[r]!;
      const e = s + this.count[r]!;
      while (cursor < s && cursor < hi) emit(cursor++);
      if (cursor < s) cursor = s;
      for (let p = s; p < e; p++) {
        const cur = ring[p % RING]!;
        if (cur >= 0) duplicates++;
        if (cur < r) ring[p % RING] = r;
      }
      if (e > hi) hi = e;
    }
    while (cursor < hi) emit(cursor++);
    return out.finish(duplicates);
  }
}

/** Coalesces pages emitted in ascending order into runs of consecutive pages in consecutive slots of one block. */
class RunBuilder {
  first = new Float64Array(1024);
  count = new Uint8Array(1024);
  block = new Uint32Array(1024);
  slot = new Uint8Array(1024);
  n = 0;
  pages = 0;

  add(page: number, block: number, slot: number): void {
    const l = this.n - 1;
    if (l >= 0 && this.first[l]! + this.count[l]! === page && this.block[l] === block && this.slot[l]! + this.count[l]! === slot && this.count[l]! < 255) {
      this.count[l]!++;
    } else {
      const i = this.n;
      if (i >= this.first.length) {
        this.first = grow(this.first, i + 1, (k) => new Float64Array(k));
        this.count = grow(this.count, i + 1, (k) => new Uint8Array(k));
        this.block = grow(this.block, i + 1, (k) => new Uint32Array(k));
        this.slot = grow(this.slot, i + 1, (k) => new Uint8Array(k));
      }
      this.first[i] = page;
      this.count[i] = 1;
      this.block[i] = block;
      this.slot[i] = slot;
      this.n++;
    }
    this.pages++;
  }

  finish(duplicates: number): PageIndex {
    const n = this.n;
    // views, not copies: a copy would double the peak for a moment on the largest indexes
    return new PageIndex(this.first.subarray(0, n), this.count.subarray(0, n), this.block.subarray(0, n), this.slot.subarray(0, n), this.pages, duplicates);
  }
}

/** Sorted, disjoint runs of pages: run i covers pages first[i] .. first[i]+count[i]-1 at slots slot[i].. of block[i]. */
export class PageIndex {
  readonly runs: Range[];
  constructor(
    readonly first: Float64Array,
    readonly count: Uint8Array,
    readonly block: Uint32Array,
    readonly slot: Uint8Array,
    /** Distinct pages. */
    readonly pages: number,
    readonly duplicates: number,
  ) {
    // count first: each run becomes an object of two BigInts (~110 bytes), so a file of scattered single pages
    // would cost ~17× its size before anyone could refuse it
    let n = 0;
    for (let k = 0; k < first.length; k++) if (k === 0 || first[k] !== first[k - 1]! + count[k - 1]!) n++;
    if (n > MAX_RUNS) throw new MemdumpError('E_TOO_LARGE', `hiberfil: ${n} separate page ranges (more than ${MAX_RUNS})`, { details: { ranges: n, limit: MAX_RUNS } });
    const runs: Range[] = [];
    let i = 0;
    while (i < first.length) {
      let j = i + 1;
      while (j < first.length && first[j] === first[j - 1]! + count[j - 1]!) j++;
      runs.push({ start: BigInt(first[i]!) * BigInt(PAGE_SIZE), end: BigInt(first[j - 1]! + count[j - 1]!) * BigInt(PAGE_SIZE) });
      i = j;
    }
    this.runs = runs;
  }

  /** Index of the run holding `pageNo`, or -1; `hint` (the previous answer) makes sequential reads O(1). */
  find(pageNo: number, hint = -1): number {
    const f = this.first;
    const c = this.count;
    for (const h of [hint, hint + 1]) if (h >= 0 && h < f.length && f[h]! <= pageNo && pageNo < f[h]! + c[h]!) return h;
    let lo = 0;
    let hi = f.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = f[mid]!;
      if (pageNo < v) hi = mid - 1;
      else if (pageNo >= v + c[mid]!) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  notInRuns(addr: bigint): MemdumpError {
    return new MemdumpError('E_CORRUPT', `hiberfil: address ${hex(addr)} is not in any run`, { details: { address: hex(addr) } });
  }
}

/**
 * Forward reads of small structures (set and block headers) through a 4 KiB window. Headers sit between the blocks'
 * data: where blocks are small (zero pages compress to a few bytes) one read serves many headers, where they are
 * large one read per header skips the data, so open() never reads the whole file (a 1 MiB window did).
 */
export class ReadWindow {
  private buf: Buffer = Buffer.alloc(0);
  private base = 0n;
  constructor(
    private readonly file: RandomAccessFile,
    private readonly size = 4096,
  ) {}

  /** Exactly `len` bytes at `pos` (len ≤ window size) or E_TRUNCATED naming `what`. */
  async bytes(pos: bigint, len: number, what: string): Promise<Buffer> {
    if (pos >= this.base && pos + BigInt(len) <= this.base + BigInt(this.buf.length)) {
      const o = Number(pos - this.base);
      return this.buf.subarray(o, o + len);
    }
    if (pos + BigInt(len) > this.file.size) {
      throw truncated(`hiberfil: ${what} needs ${len} bytes, the file ends first`, pos, { fileSize: this.file.size.toString() });
    }
    // Synchronous on purpose: the walk is strictly sequential (each header says where the next one is), and a
    // thread-pool round trip per header cost 4× more than the read itself (24 µs vs 6 µs; 262k headers for 16 GiB).
    // a fresh buffer each time: slices handed out earlier (a table page) must stay intact
    const want = Math.max(len, this.size);
    this.buf = Buffer.allocUnsafe(want);
    let got = 0;
    try {
      while (got < want) {
        const n = readSync(this.file.fd, this.buf, got, want - got, pos + BigInt(got));
        if (n === 0) break;
        got += n;
      }
    } catch (e) {
      throw fromSystemError(e, `reading ${this.file.path} at ${hex(pos)}`);
    }
    this.buf = this.buf.subarray(0, got);
    this.base = pos;
    return this.buf.subarray(0, len);
  }
}
