/**
 * Reading pages out of a kdump: a request becomes a list of pages, their page_descs are looked up, and the stored
 * bytes of pages that sit near each other in the file are fetched with one read (makedumpfile and QEMU write
 * page data in pfn order, so a sequential read of memory is a sequential read of the file), then each page is
 * decompressed. Decompressed pages are kept in a small LRU for callers that read one page in pieces.
 */
import { MemdumpError, hex } from '../core/errors.js';
import { Lru } from '../core/lru.js';
import { type PageCompression, compressionOf, decompressPage } from './kdump-decompress.js';
import type { DumpBytes } from './kdump-flat.js';
import type { PageDesc, PageMap } from './kdump-pages.js';
import { checkReadLength } from './read-length.js';

/** Decompressed bytes handled per batch (whole pages, at least one), and the most stored bytes one file read may
 * span (gaps included): memory per read stays near these whatever the page size (256 KiB pages exist). */
const BATCH_BYTES = 8 << 20;
const MAX_SPAN = 8 << 20;
/** Stored pages closer than this are fetched together rather than with a second read. */
const MERGE_GAP = 64 << 10;
const PAGE_CACHE_BYTES = 1 << 20;

function signedHex(v: bigint): string {
  return v < 0n ? `-${hex(-v)}` : hex(v);
}

export class PageReader {
  private readonly cache: Lru<Buffer>;
  /** Compressions met so far (page_desc flags), for `info`. */
  readonly seen = new Set<PageCompression>();

  constructor(
    private readonly bytes: DumpBytes,
    private readonly pages: PageMap,
    private readonly blockSize: number,
  ) {
    this.cache = new Lru<Buffer>(Math.max(PAGE_CACHE_BYTES, blockSize));
  }

  async read(addr: bigint, length: number): Promise<Buffer> {
    checkReadLength('kdump', length);
    // checked before allocating: an address outside every run fails here, not after a buffer of `length` exists
    const runs = this.pages.runs;
    const lastEnd = runs.length > 0 ? runs[runs.length - 1]!.end : 0n;
    if (length > 0 && (addr < 0n || addr + BigInt(length) > lastEnd)) {
      const at = addr < 0n || addr >= lastEnd ? addr : lastEnd;
      throw new MemdumpError('E_CORRUPT', `kdump: address ${signedHex(at)} is not in any run (page not dumped)`, { details: { address: signedHex(at) } });
    }
    const out = Buffer.allocUnsafe(length);
    const bs = BigInt(this.blockSize);
    const batchPages = Math.max(1, Math.floor(BATCH_BYTES / this.blockSize));
    let done = 0;
    while (done < length) {
      // one batch: up to batchPages pages starting at the page of addr + done
      const a = addr + BigInt(done);
      const firstPfn = a / bs;
      const skip = Number(a - firstPfn * bs);
      const want = Math.min(length - done, batchPages * this.blockSize - skip);
      const count = Math.ceil((skip + want) / this.blockSize);
      // only pages used in part are cached: a caller reading whole pages in order never asks for them again
      const partial = new Set<number>();
      if (skip > 0) partial.add(0);
      if ((skip + want) % this.blockSize !== 0) partial.add(count - 1);
      const pages = await this.pagesOf(Number(firstPfn), count, partial);
      let pos = done;
      for (let i = 0; i < count; i++) {
        const from = i === 0 ? skip : 0;
        const n = Math.min(this.blockSize - from, length - pos);
        pages[i]!.copy(out, pos, from, from + n);
        pos += n;
      }
      done = pos;
    }
    return out;
  }

  /** Decompressed bytes of `count` consecutive pages from `pfn`; every one must be dumped. */
  private async pagesOf(pfn: number, count: number, keep: ReadonlySet<number>): Promise<Buffer[]> {
    const result: (Buffer | undefined)[] = new Array<Buffer | undefined>(count);
    const todo: { i: number; d: PageDesc }[] = [];
    for (let i = 0; i < count; i++) {
      const hit = this.cache.get(pfn + i);
      if (hit) {
        result[i] = hit;
        continue;
      }
      const k = this.pages.descIndexOf(pfn + i);
      if (k < 0) {
        const at = BigInt(pfn + i) * BigInt(this.blockSize);
        throw new MemdumpError('E_CORRUPT', `kdump: address ${hex(at)} is not in any run (page not dumped)`, { details: { address: hex(at) } });
      }
      todo.push({ i, d: await this.pages.desc(k) });
    }
    // fetch stored bytes in file order, merging neighbours into one read
    todo.sort((x, y) => (x.d.offset < y.d.offset ? -1 : x.d.offset > y.d.offset ? 1 : 0));
    for (let s = 0; s < todo.length; ) {
      const start = todo[s]!.d.offset;
      let end = start + BigInt(todo[s]!.d.size);
      let e = s + 1;
      while (e < todo.length) {
        const d = todo[e]!.d;
        const dEnd = d.offset + BigInt(d.size);
        const newEnd = dEnd > end ? dEnd : end;
        if (d.offset > end + BigInt(MERGE_GAP) || newEnd - start > BigInt(MAX_SPAN)) break;
        end = newEnd;
        e++;
      }
      const span = await this.bytes.read(start, Number(end - start), 'kdump page data');
      for (let j = s; j < e; j++) {
        const { i, d } = todo[j]!;
        const kind = compressionOf(d.flags, d.offset);
        this.seen.add(kind);
        if (kind === 'none' && d.size !== this.blockSize) {
          throw new MemdumpError('E_CORRUPT', `kdump: uncompressed page at ${hex(d.offset)} is ${d.size} bytes, block size is ${this.blockSize}`, { details: { offset: hex(d.offset) } });
        }
        const rel = Number(d.offset - start);
        const page = await decompressPage(kind, span.subarray(rel, rel + d.size), this.blockSize, d.offset);
        result[i] = page;
        // an uncompressed page is a view into the span: copy what the cache keeps so the span can be freed
        if (keep.has(i)) this.cache.put(pfn + i, kind === 'none' ? Buffer.from(page) : page, this.blockSize);
      }
      s = e;
    }
    return result as Buffer[];
  }
}
