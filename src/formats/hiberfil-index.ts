/**
 * Page → (block, slot) index for hibernation files, in typed arrays so 16 GiB of RAM (4M pages) costs ~60 MB
 * rather than millions of objects. Blocks are Windows 7 Xpress blocks or Windows 8+ compression sets: where the
 * bytes sit, how they are stored and how many pages they decompress to.
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

export class PageIndexBuilder {
  private page = new Float64Array(4096);
  private block = new Uint32Array(4096);
  private slot = new Uint8Array(4096);
  count = 0;

  add(page: number, block: number, slot: number): void {
    if (this.count >= MAX_PAGES) {
      throw new MemdumpError('E_TOO_LARGE', `hiberfil: the tables list more than ${MAX_PAGES} pages (${MAX_PAGES / 262144} GiB of RAM); not indexing them`, { details: { maxPages: MAX_PAGES } });
    }
    const i = this.count;
    if (i >= this.page.length) {
      this.page = grow(this.page, i + 1, (n) => new Float64Array(n));
      this.block = grow(this.block, i + 1, (n) => new Uint32Array(n));
      this.slot = grow(this.slot, i + 1, (n) => new Uint8Array(n));
    }
    this.page[i] = page;
    this.block[i] = block;
    this.slot[i] = slot;
    this.count++;
  }

  /** Sort by page (stable); a page listed twice keeps its last copy, the one Windows restores last. */
  finish(): PageIndex {
    const n = this.count;
    const page = this.page;
    let sorted = true;
    for (let i = 1; i < n && sorted; i++) if (page[i]! <= page[i - 1]!) sorted = false;
    const order = sorted ? undefined : this.bySegments() ?? this.byPage();
    const at = (i: number) => (order ? order[i]! : i);
    let unique = 0;
    for (let i = 0; i < n; i++) if (i + 1 >= n || page[at(i + 1)] !== page[at(i)]) unique++;
    const outPage = new Float64Array(unique);
    const outBlock = new Uint32Array(unique);
    const outSlot = new Uint8Array(unique);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const j = at(i);
      if (i + 1 < n && page[at(i + 1)] === page[j]) continue;
      outPage[k] = page[j]!;
      outBlock[k] = this.block[j]!;
      outSlot[k] = this.slot[j]!;
      k++;
    }
    return new PageIndex(outPage, outBlock, outSlot, n - unique);
  }

  /**
   * Pages arrive as runs of consecutive numbers (a descriptor or table entry each): sorting the runs by their first
   * page is ~16× less work than sorting pages. Valid only when the runs do not overlap; undefined otherwise.
   */
  private bySegments(): Uint32Array | undefined {
    const n = this.count;
    const page = this.page;
    let segs = 0;
    for (let i = 0; i < n; i++) if (i === 0 || page[i] !== page[i - 1]! + 1) segs++;
    const start = new Uint32Array(segs + 1);
    for (let i = 0, k = 0; i < n; i++) if (i === 0 || page[i] !== page[i - 1]! + 1) start[k++] = i;
    start[segs] = n;
    const seg = new Uint32Array(segs);
    for (let k = 0; k < segs; k++) seg[k] = k;
    seg.sort((a, b) => page[start[a]!]! - page[start[b]!]! || a - b);
    const order = new Uint32Array(n);
    let o = 0;
    for (let k = 0; k < segs; k++) {
      const sg = seg[k]!;
      for (let i = start[sg]!; i < start[sg + 1]!; i++) order[o++] = i;
    }
    for (let i = 1; i < n; i++) if (page[order[i]!]! <= page[order[i - 1]!]!) return undefined;
    return order;
  }

  private byPage(): Uint32Array {
    const page = this.page;
    const order = new Uint32Array(this.count);
    for (let i = 0; i < order.length; i++) order[i] = i;
    return order.sort((a, b) => page[a]! - page[b]! || a - b);
  }
}

export class PageIndex {
  readonly runs: Range[];
  constructor(
    readonly page: Float64Array,
    readonly block: Uint32Array,
    readonly slot: Uint8Array,
    readonly duplicates: number,
  ) {
    const runs: Range[] = [];
    let i = 0;
    while (i < page.length) {
      let j = i + 1;
      while (j < page.length && page[j] === page[j - 1]! + 1) j++;
      runs.push({ start: BigInt(page[i]!) * BigInt(PAGE_SIZE), end: (BigInt(page[j - 1]!) + 1n) * BigInt(PAGE_SIZE) });
      i = j;
    }
    this.runs = runs;
  }

  get count(): number {
    return this.page.length;
  }

  /** Position of `pageNo` in the index, or -1; `hint` (the previous answer) makes sequential reads O(1). */
  find(pageNo: number, hint = -1): number {
    const p = this.page;
    if (hint >= 0 && hint + 1 < p.length && p[hint + 1] === pageNo) return hint + 1;
    let lo = 0;
    let hi = p.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = p[mid]!;
      if (v < pageNo) lo = mid + 1;
      else if (v > pageNo) hi = mid - 1;
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
