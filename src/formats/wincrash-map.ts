/**
 * Where each physical page of a crash dump lies in the file. Every layout (full: PhysicalMemoryBlock runs; bitmap:
 * one bit per page; RDMP: PFN ranges) stores the present pages back to back in ascending page order, so the map is a
 * list of runs (first PFN, page count, file offset), ascending in PFN, kept in typed arrays: 24 bytes per run whatever
 * the RAM size, and a lookup is a binary search. File offsets ascend too except in RDMP dumps whose ranges were listed
 * out of PFN order: for those, seal() builds a second index in file order.
 *
 * A dump shorter than its map (Windows sets DUMP_FILE_ATTRIBUTES.InsufficientDumpfileSize when the dump file was too
 * small, and copies get cut short) keeps the pages the file holds: add() clips and counts the rest in truncatedPages,
 * and the caller decides whether what remains is worth reading.
 *
 * PFNs fit a double exactly: a 64-bit physical address space has 2^52 pages. File offsets are checked against the
 * file size before they are stored, so they are safe integers too.
 */
import { constants } from 'node:buffer';
import { corrupt } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { PAGE_SIZE } from './wincrash-header.js';

/** A kernel dump of a large host is fragmented (hundreds of thousands of runs); millions more is not a RAM map. */
export const MAX_RUNS = 1 << 21;
const MAX_PFN = 2 ** 52;

export class PageMap {
  private startPfn = new Float64Array(64);
  private pages = new Float64Array(64);
  private offset = new Float64Array(64);
  private n = 0;
  private cachedRuns: Range[] | undefined;
  /** Run indexes in file-offset order, when that differs from PFN order. */
  private byOffset: Uint32Array | undefined;
  private offsetsAscend = true;
  /** End PFN of the last run listed, held or not. */
  private listedEnd = 0;
  /** Pages the layout listed so far, held or not: the next page's file offset is dataStart + storedPages * 4096. */
  storedPages = 0;
  /** Listed pages whose bytes lie past the end of the file (left out of the runs). */
  truncatedPages = 0;
  /** The first listed page that was left out, for the warning. */
  firstMissingPfn: bigint | undefined;

  constructor(
    readonly what: string,
    private readonly fileSize: bigint,
  ) {}

  get count(): number {
    return this.n;
  }

  /** Pages held in the runs. */
  get heldPages(): number {
    return this.storedPages - this.truncatedPages;
  }

  /**
   * Append `count` pages from `pfn` stored at `fileOffset`, in ascending PFN order. Merges with the previous run when
   * both the pages and the bytes continue it; pages past the end of the file are left out and counted. `at` is the
   * header offset to name in errors.
   */
  add(pfn: bigint, count: bigint, fileOffset: bigint, at: bigint): void {
    if (count === 0n) return;
    if (pfn + count > BigInt(MAX_PFN)) throw corrupt(`${this.what}: pages ${hex(pfn)}+${hex(count)} run past the 64-bit address space`, at);
    if (Number(pfn) < this.listedEnd) throw corrupt(`${this.what}: run at page ${hex(pfn)} overlaps or precedes the previous one (ends at page ${hex(this.listedEnd)})`, at);
    this.listedEnd = Number(pfn + count);
    const held = fileOffset >= this.fileSize ? 0n : (this.fileSize - fileOffset) / BigInt(PAGE_SIZE);
    this.storedPages += Number(count); // < 2^52: the PFN check above bounds it
    if (held < count) {
      this.truncatedPages += Number(count - held);
      this.firstMissingPfn ??= pfn + held;
      if (held === 0n) return;
      count = held;
    }
    const p = Number(pfn);
    const c = Number(count);
    const o = Number(fileOffset);
    const i = this.n - 1;
    if (i >= 0) {
      const prevEnd = this.startPfn[i]! + this.pages[i]!;
      const prevFileEnd = this.offset[i]! + this.pages[i]! * PAGE_SIZE;
      if (p === prevEnd && o === prevFileEnd) {
        this.pages[i] = this.pages[i]! + c;
        this.cachedRuns = undefined;
        return;
      }
      if (o < prevFileEnd) this.offsetsAscend = false;
    }
    if (this.n >= MAX_RUNS) throw new MemdumpError('E_TOO_LARGE', `${this.what}: more than ${MAX_RUNS} separate runs of pages`, { details: { maxRuns: MAX_RUNS } });
    if (this.n === this.startPfn.length) this.grow();
    this.startPfn[this.n] = p;
    this.pages[this.n] = c;
    this.offset[this.n] = o;
    this.n++;
    this.cachedRuns = undefined;
  }

  private grow(): void {
    const cap = this.startPfn.length * 2;
    for (const k of ['startPfn', 'pages', 'offset'] as const) {
      const a = new Float64Array(cap);
      a.set(this[k]);
      this[k] = a;
    }
  }

  /** Drop the spare capacity once the map is complete. */
  seal(): void {
    this.startPfn = this.startPfn.slice(0, this.n);
    this.pages = this.pages.slice(0, this.n);
    this.offset = this.offset.slice(0, this.n);
    if (!this.offsetsAscend) {
      const order = new Uint32Array(this.n);
      for (let i = 0; i < this.n; i++) order[i] = i;
      this.byOffset = order.sort((a, b) => this.offset[a]! - this.offset[b]!);
    }
  }

  get runs(): readonly Range[] {
    if (!this.cachedRuns) {
      const out: Range[] = new Array(this.n);
      for (let i = 0; i < this.n; i++) {
        const s = BigInt(this.startPfn[i]!) * BigInt(PAGE_SIZE);
        out[i] = { start: s, end: s + BigInt(this.pages[i]!) * BigInt(PAGE_SIZE) };
      }
      this.cachedRuns = out;
    }
    return this.cachedRuns;
  }

  /** Index of the run holding addr, or -1. */
  private indexOf(addr: bigint): number {
    if (addr < 0n) return -1;
    const pfn = Number(addr / BigInt(PAGE_SIZE));
    let lo = 0;
    let hi = this.n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.startPfn[mid]!;
      if (pfn < s) hi = mid - 1;
      else if (pfn >= s + this.pages[mid]!) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  fileOffsetOf(addr: bigint): bigint | undefined {
    const i = this.indexOf(addr);
    if (i < 0) return undefined;
    return BigInt(this.offset[i]!) + (addr - BigInt(this.startPfn[i]!) * BigInt(PAGE_SIZE));
  }

  /** The first physical address whose bytes lie in file offsets [start, end). */
  firstAddressIn(start: bigint, end: bigint): bigint | undefined {
    // in file order, the first run whose data ends after `start` (runs never share file bytes)
    const run = (k: number) => (this.byOffset ? this.byOffset[k]! : k);
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const r = run(mid);
      if (BigInt(this.offset[r]! + this.pages[r]! * PAGE_SIZE) <= start) lo = mid + 1;
      else hi = mid;
    }
    if (lo >= this.n) return undefined;
    const r = run(lo);
    const off = BigInt(this.offset[r]!);
    if (off >= end) return undefined;
    const base = BigInt(this.startPfn[r]!) * BigInt(PAGE_SIZE);
    return base + (start > off ? start - off : 0n);
  }

  /** Bytes at a physical address; a read may span adjacent runs but never a hole (E_CORRUPT). */
  async read(file: RandomAccessFile, addr: bigint, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new MemdumpError('E_CORRUPT', `${this.what}: bad read length ${length} at address ${hex(addr)}`, { details: { address: hex(addr), length: String(length) } });
    }
    if (length === 0) return Buffer.alloc(0);
    // the whole range must be held before anything is allocated for it: a caller's bad length costs nothing
    const end = addr + BigInt(length);
    let i = this.indexOf(addr);
    if (i < 0) throw new MemdumpError('E_CORRUPT', `${this.what}: address ${hex(addr)} is not in any run`, { details: { address: hex(addr) } });
    for (;;) {
      const runEnd = BigInt(this.startPfn[i]! + this.pages[i]!) * BigInt(PAGE_SIZE);
      if (runEnd >= end) break;
      if (i + 1 >= this.n || this.startPfn[i + 1]! !== this.startPfn[i]! + this.pages[i]!) {
        throw new MemdumpError('E_CORRUPT', `${this.what}: read of ${length} bytes at ${hex(addr)} reaches address ${hex(runEnd)}, which is not in any run`, {
          details: { address: hex(runEnd) },
        });
      }
      i++;
    }
    if (length > constants.MAX_LENGTH) throw new MemdumpError('E_TOO_LARGE', `${this.what}: read of ${length} bytes is larger than one buffer can hold`, { details: { length } });
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const a = addr + BigInt(done);
      const i = this.indexOf(a);
      if (i < 0) throw new MemdumpError('E_CORRUPT', `${this.what}: address ${hex(a)} is not in any run`, { details: { address: hex(a) } });
      const runStart = BigInt(this.startPfn[i]!) * BigInt(PAGE_SIZE);
      const into = a - runStart;
      const avail = BigInt(this.pages[i]!) * BigInt(PAGE_SIZE) - into;
      const n = Number(avail < BigInt(length - done) ? avail : BigInt(length - done));
      (await file.readExact(BigInt(this.offset[i]!) + into, n, `${this.what} page data`)).copy(out, done);
      done += n;
    }
    return out;
  }
}
