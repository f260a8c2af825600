/**
 * Which pages a kdump holds and where their page_desc lies. The 2nd bitmap marks dumped pfns; page_desc[k]
 * belongs to the k-th set bit. Runs of set bits become the image's runs, and for each run we keep its first pfn,
 * length and the index of its first page_desc (typed arrays, 24 bytes a run), so a pfn's page_desc is found by
 * binary search with no per-page memory. page_desc entries themselves are read lazily, 1024 at a time, via an LRU.
 */
import { corrupt, truncated } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import { Lru } from '../core/lru.js';
import type { Range } from '../core/ranges.js';
import type { DumpBytes } from './kdump-flat.js';
import { type KdumpLayout, PAGE_DESC_SIZE } from './kdump-header.js';

/** Runs kept (24 bytes each plus a Range): a dump fragmented beyond this is refused rather than indexed. */
export const MAX_RUNS = 1 << 21;
const BITMAP_CHUNK = 1 << 20;
const DESC_BLOCK = 1024;
const DESC_CACHE_BLOCKS = 64;

export interface PageDesc {
  offset: bigint;
  size: number;
  flags: number;
}

export class PageMap {
  readonly runs: Range[] = [];
  private starts: Float64Array = new Float64Array(256);
  private lens: Float64Array = new Float64Array(256);
  private bases: Float64Array = new Float64Array(256);
  private n = 0;
  /** page_desc entries the 2nd bitmap implies (dumped pages in the slice). */
  descCount = 0;
  private readonly descCache = new Lru<Buffer>(DESC_CACHE_BLOCKS);

  private constructor(
    private readonly bytes: DumpBytes,
    private readonly layout: KdumpLayout,
  ) {}

  get runCount(): number {
    return this.n;
  }

  /** Append pages [pfn, pfn+len) whose first page_desc is number `base`; merges with the previous run when contiguous. */
  private add(pfn: number, len: number, base: number): void {
    const k = this.n - 1;
    if (k >= 0 && this.starts[k]! + this.lens[k]! === pfn && this.bases[k]! + this.lens[k]! === base) {
      this.lens[k] = this.lens[k]! + len;
      return;
    }
    if (this.n === MAX_RUNS) throw new MemdumpError('E_TOO_LARGE', `kdump holds more than ${MAX_RUNS} separate runs of pages`);
    if (this.n === this.starts.length) {
      const grow = (a: Float64Array): Float64Array => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      [this.starts, this.lens, this.bases] = [grow(this.starts), grow(this.lens), grow(this.bases)];
    }
    this.starts[this.n] = pfn;
    this.lens[this.n] = len;
    this.bases[this.n] = base;
    this.n++;
  }

  private finish(): void {
    const bs = BigInt(this.layout.blockSize);
    this.runs.length = 0;
    for (let i = 0; i < this.n; i++) this.runs.push({ start: BigInt(this.starts[i]!) * bs, end: BigInt(this.starts[i]! + this.lens[i]!) * bs });
  }

  /** Scan the 2nd bitmap in 1 MiB pieces (memory stays flat whatever the machine size). */
  static async build(bytes: DumpBytes, layout: KdumpLayout): Promise<PageMap> {
    const m = new PageMap(bytes, layout);
    const first = Number(layout.startPfn);
    const last = Number(layout.endPfn);
    let runStart = -1;
    let count = 0;
    for (let byte0 = Math.floor(first / 8), next = 0; byte0 * 8 < last; byte0 = next) {
      // a flattened stream may describe a vast bitmap it never wrote (a hole reads as zeros: no pages): jump over it
      const data = bytes.nextData?.(layout.bitmap2Offset + BigInt(byte0));
      if (bytes.nextData && (data === undefined || data > layout.bitmap2Offset + BigInt(byte0))) {
        const skipTo = data === undefined ? Math.ceil(last / 8) : Math.min(Number(data - layout.bitmap2Offset), Math.ceil(last / 8));
        if (runStart >= 0) {
          m.add(runStart, byte0 * 8 - runStart, count);
          count += byte0 * 8 - runStart;
          runStart = -1;
        }
        next = skipTo;
        continue;
      }
      let want = Math.min(BITMAP_CHUNK, Math.ceil(last / 8) - byte0);
      const at = layout.bitmap2Offset + BigInt(byte0);
      // a flattened stream may write the bitmap in scattered small records: read only the written extent here, so
      // the scan costs what the stream holds rather than a chunk per record
      if (bytes.extentEnd) want = Math.max(1, Math.min(want, Number(bytes.extentEnd(at, at + BigInt(want)) - at)));
      next = byte0 + want;
      const chunk = await bytes.read(at, want, 'kdump 2nd bitmap');
      for (let i = 0; i < chunk.length; i++) {
        const v = chunk[i]!;
        const pfn0 = (byte0 + i) * 8;
        // whole bytes first: most of a bitmap is 0x00 or 0xff
        if ((v === 0xff && runStart >= 0 && pfn0 >= first && pfn0 + 8 <= last) || (v === 0 && runStart < 0)) continue;
        for (let b = 0; b < 8; b++) {
          const pfn = pfn0 + b;
          const set = (v >> b) & 1 && pfn >= first && pfn < last;
          if (set && runStart < 0) runStart = pfn;
          else if (!set && runStart >= 0) {
            m.add(runStart, pfn - runStart, count);
            count += pfn - runStart;
            runStart = -1;
          }
        }
      }
    }
    if (runStart >= 0) {
      m.add(runStart, last - runStart, count);
      count += last - runStart;
    }
    m.descCount = count;
    m.finish();
    return m;
  }

  /** Where page_desc number k lives. */
  descPosition(k: number): bigint {
    return this.layout.descOffset + BigInt(k) * BigInt(PAGE_DESC_SIZE);
  }

  /** Run index holding pfn, or -1. */
  private runOf(pfn: number): number {
    let lo = 0;
    let hi = this.n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (pfn < this.starts[mid]!) hi = mid - 1;
      else if (pfn >= this.starts[mid]! + this.lens[mid]!) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  /** page_desc index of a dumped pfn, or -1 for a hole. */
  descIndexOf(pfn: number): number {
    const r = this.runOf(pfn);
    return r < 0 ? -1 : this.bases[r]! + (pfn - this.starts[r]!);
  }

  /** Page data starts after the table (makedumpfile and QEMU both put it right there): a descriptor pointing
   * before that points into the headers, bitmaps or table, which only a corrupt or misaligned table does. */
  get dataStart(): bigint {
    return this.descPosition(this.descCount);
  }

  /** The cached block of up to DESC_BLOCK page_descs holding number k (fewer where an incomplete dump ends). */
  private async descBlock(k: number): Promise<Buffer> {
    const block = Math.floor(k / DESC_BLOCK);
    let buf = this.descCache.get(block);
    if (!buf) {
      const from = block * DESC_BLOCK;
      // an incomplete dump may end inside the table: read only what is there, so earlier entries stay usable
      const count = Math.min(DESC_BLOCK, this.descCount - from, this.descsInFile() - from);
      if (k >= from + count) throw truncated(`kdump page_desc ${k} lies beyond the end of the dump`, this.descPosition(k));
      buf = await this.bytes.read(this.descPosition(from), count * PAGE_DESC_SIZE, 'kdump page_desc table');
      this.descCache.put(block, buf, 1);
    }
    return buf;
  }

  /** page_desc at byte `o` of a block, or undefined when it is zero or points outside the page data (checked, never trusted). */
  private decode(buf: Buffer, o: number): PageDesc | undefined {
    const offset = buf.readBigInt64LE(o);
    const size = buf.readUInt32LE(o + 8);
    const flags = buf.readUInt32LE(o + 12);
    if (offset < this.dataStart || size === 0 || size > this.layout.blockSize || offset + BigInt(size) > this.bytes.size) return undefined;
    return { offset, size, flags };
  }

  /** page_desc number k, or undefined when it is zero or points outside the page data. */
  async descOrUndefined(k: number): Promise<PageDesc | undefined> {
    const buf = await this.descBlock(k);
    return this.decode(buf, (k % DESC_BLOCK) * PAGE_DESC_SIZE);
  }

  async desc(k: number): Promise<PageDesc> {
    const d = await this.descOrUndefined(k);
    if (d) return d;
    const o = this.descPosition(k);
    const raw = await this.bytes.read(o, PAGE_DESC_SIZE, 'kdump page_desc');
    const offset = raw.readBigInt64LE(0);
    const size = raw.readUInt32LE(8);
    throw corrupt(`kdump page_desc ${k} points at ${size} bytes at ${hex(offset)} (page data lies in ${hex(this.dataStart)}-${hex(this.bytes.size)}, block size ${this.layout.blockSize})`, o);
  }

  private descsInFile(): number {
    const room = this.bytes.size > this.layout.descOffset ? (this.bytes.size - this.layout.descOffset) / BigInt(PAGE_DESC_SIZE) : 0n;
    return Number(room < BigInt(this.descCount) ? room : BigInt(this.descCount));
  }

  /**
   * A complete dump: the whole page_desc table is in the file, and its first and last entries point into the page
   * data (a 2nd bitmap with a bit too many or too few shifts every entry after it, which shows at the ends).
   */
  async checkComplete(): Promise<void> {
    // an empty split slice ends after its 2nd bitmap: there is no table to check
    if (this.descCount === 0) return;
    const end = this.descPosition(this.descCount);
    if (end > this.bytes.size) throw truncated(`kdump page_desc table for ${this.descCount} pages needs ${end} bytes, the dump has ${this.bytes.size}`, this.layout.descOffset);
    await this.desc(0);
    await this.desc(this.descCount - 1);
  }

  /**
   * An incomplete dump (makedumpfile ran out of space, or a flattened stream cut short) has page_descs past what it
   * wrote that are zero or point beyond the end; a flattened stream may also hold a descriptor whose data it never
   * wrote. Keep only pages whose page_desc is present and plausible. The table is read once, a block at a time,
   * and entries in a hole of a flattened stream (zeros) are skipped without reading. Returns the pages dropped.
   */
  async trimIncomplete(): Promise<number> {
    const usable = this.descsInFile();
    const old = { starts: this.starts, lens: this.lens, bases: this.bases, n: this.n };
    this.starts = new Float64Array(256);
    this.lens = new Float64Array(256);
    this.bases = new Float64Array(256);
    this.n = 0;
    const bytes = this.bytes;
    const written = (d: PageDesc): boolean => {
      if (!bytes.nextData || !bytes.extentEnd) return true;
      const end = d.offset + BigInt(d.size);
      return bytes.nextData(d.offset) === d.offset && bytes.extentEnd(d.offset, end) === end;
    };
    let dropped = 0;
    for (let r = 0; r < old.n; r++) {
      const base = old.bases[r]!;
      const len = old.lens[r]!;
      const pfn0 = old.starts[r]!;
      let keepFrom = -1;
      const close = (j: number): void => {
        if (keepFrom >= 0) this.add(pfn0 + keepFrom, j - keepFrom, base + keepFrom);
        keepFrom = -1;
      };
      for (let j = 0; j < len; ) {
        const k = base + j;
        if (k >= usable) {
          close(j);
          dropped += len - j;
          break;
        }
        if (bytes.nextData) {
          const pos = this.descPosition(k);
          const next = bytes.nextData(pos);
          const zeros = next === undefined ? len - j : Math.min(len - j, Number((next - pos) / BigInt(PAGE_DESC_SIZE)));
          if (zeros > 0) {
            close(j);
            dropped += zeros;
            j += zeros;
            continue;
          }
        }
        const buf = await this.descBlock(k);
        const blockEnd = Math.min(len, (Math.floor(k / DESC_BLOCK) + 1) * DESC_BLOCK - base, usable - base);
        for (; j < blockEnd; j++) {
          const d = this.decode(buf, ((base + j) % DESC_BLOCK) * PAGE_DESC_SIZE);
          if (d && written(d)) {
            if (keepFrom < 0) keepFrom = j;
          } else {
            close(j);
            dropped++;
          }
        }
      }
      close(len);
    }
    this.descCache.clear();
    this.finish();
    return dropped;
  }
}
