/**
 * The three ways a kernel crash dump says which pages it holds; each fills a PageMap.
 *
 * Full (DumpType 1): the page data starts right after the header (0x1000 / 0x2000) and follows the
 * PhysicalMemoryBlock runs in order (Volatility 3 layers/crash.py, kdmp-parser-rs full_physmem).
 *
 * Bitmap (DumpType 5 "bitmap full" with an FDMP summary, 6 "bitmap kernel" / live kernel dumps and kernel dumps
 * with an SDMP summary): a summary header right after the dump header. Offsets from Volatility 3
 * symbols/windows/crash_common.json (_SUMMARY_DUMP: HeaderSize 0x20, Pages 0x28, BitmapSize 0x30, bitmap 0x38) and
 * kdmp-parser-rs BmpHeader64 (the same offsets named FirstPage, TotalPresentPages, Pages; it also confirms that
 * 0x30 is the bitmap length in bits and 0x28 the count of set bits, which Volatility 2 had swapped). Bit i of the
 * bitmap (LSB first) is PFN i; present pages are stored from HeaderSize (an absolute file offset) in PFN order.
 *
 * RDMP (DumpType 8/9/10, Windows 11 `.dump /k`, `/ka`, `/f`): layout known only from kdmp-parser-rs
 * (RdmpHeader64, reverse engineered; we have no real file): at 0x2000 u32 0x40, "RDMP", "DUMP", u32,
 * u64 MetadataSize, u64 FirstPageOffset (= 0x2020 + MetadataSize), two u64 (for /f: u32 NumberOfRanges, u64
 * TotalNumberOfPages at 0x2028), then { u64 PFN, u64 PageCount } ranges up to FirstPageOffset; pages back to back.
 */
import { corrupt, truncated } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { type CrashHeader, OFF32, OFF64, PAGE_SIZE } from './wincrash-header.js';
import { PageMap } from './wincrash-map.js';

export const SUMMARY_SIZE = 0x38;
/** 2^30 pages = 4 TiB of RAM; a longer bitmap is not a crash dump we should trust with our memory. */
export const MAX_BITMAP_BYTES = 1 << 27;
const CHUNK = 1 << 20;
const RDMP_MARKER = 0x40;

export interface LayoutFacts {
  /** What `info` shows about the layout (summary header fields, warnings). */
  readonly facts: Record<string, unknown>;
}

export function fullLayout(h: CrashHeader, map: PageMap): LayoutFacts {
  const b = h.physicalMemoryBlock;
  const blockAt = BigInt(h.bits === 64 ? OFF64.physicalMemoryBlock : OFF32.physicalMemoryBlock);
  const runSize = h.bits === 64 ? 16n : 8n;
  if (b.numberOfRuns > b.capacity) throw corrupt(`PhysicalMemoryBlock claims ${b.numberOfRuns} runs, the header holds at most ${b.capacity}`, blockAt);
  if (b.numberOfRuns === 0) throw corrupt('full crash dump lists no physical memory runs', blockAt);
  let pos = BigInt(h.headerSize);
  let pages = 0n;
  b.runs.forEach((r, i) => {
    map.add(r.basePage, r.pageCount, pos, blockAt + runSize * BigInt(i + 1));
    pos += r.pageCount * BigInt(PAGE_SIZE);
    pages += r.pageCount;
  });
  const facts: Record<string, unknown> = { pagesFrom: hex(BigInt(h.headerSize)) };
  if (pages !== b.numberOfPages) facts['warning'] = `NumberOfPages says ${b.numberOfPages}, the runs hold ${pages}`;
  return { facts };
}

export async function bitmapLayout(file: RandomAccessFile, h: CrashHeader, map: PageMap): Promise<LayoutFacts> {
  const at = BigInt(h.headerSize);
  const s = await file.readExact(at, SUMMARY_SIZE, 'crash dump summary header');
  const signature = s.toString('latin1', 0, 4);
  if (signature !== 'SDMP' && signature !== 'FDMP') throw corrupt(`bitmap crash dump (DumpType ${h.dumpType}) has no SDMP/FDMP summary header (found ${JSON.stringify(signature)})`, at);
  if (s.toString('latin1', 4, 8) !== 'DUMP') throw corrupt('summary header ValidDump is not "DUMP"', at + 4n);
  const dataStart = s.readBigUInt64LE(0x20);
  const present = s.readBigUInt64LE(0x28);
  const bits = s.readBigUInt64LE(0x30);
  if (bits === 0n) throw corrupt('summary header BitmapSize is 0 pages', at + 0x30n);
  const bitmapBytes = (bits + 7n) / 8n;
  if (bitmapBytes > BigInt(MAX_BITMAP_BYTES)) {
    throw new MemdumpError('E_TOO_LARGE', `summary bitmap of ${bits} pages (${bitmapBytes} bytes) is larger than the ${MAX_BITMAP_BYTES}-byte limit`, { details: { offset: hex(at + 0x30n) } });
  }
  const bitmapAt = at + BigInt(SUMMARY_SIZE);
  if (bitmapAt + bitmapBytes > file.size) throw truncated(`summary bitmap of ${bitmapBytes} bytes runs past the end of the file`, bitmapAt);
  if (dataStart < bitmapAt + bitmapBytes) throw corrupt(`summary HeaderSize ${hex(dataStart)} lies inside the bitmap (which ends at ${hex(bitmapAt + bitmapBytes)})`, at + 0x20n);
  if (dataStart > file.size) throw truncated(`page data would start at ${hex(dataStart)}, past the end of the file`, at + 0x20n);

  const total = Number(bits);
  const nbytes = Number(bitmapBytes);
  let runStart = -1;
  const flush = (end: number) => {
    map.add(BigInt(runStart), BigInt(end - runStart), dataStart + BigInt(map.storedPages) * BigInt(PAGE_SIZE), bitmapAt + BigInt(runStart >>> 3));
    runStart = -1;
  };
  for (let off = 0; off < nbytes; off += CHUNK) {
    const n = Math.min(CHUNK, nbytes - off);
    const buf = await file.readExact(bitmapAt + BigInt(off), n, 'crash dump summary bitmap');
    for (let j = 0; j < n; j++) {
      const base = (off + j) * 8;
      let byte = buf[j]!;
      if (base + 8 > total) byte &= (1 << (total - base)) - 1; // bits past BitmapSize are not pages
      if (byte === 0) {
        if (runStart >= 0) flush(base);
        continue;
      }
      if (byte === 0xff) {
        if (runStart < 0) runStart = base;
        continue;
      }
      for (let b = 0; b < 8; b++) {
        const set = (byte >> b) & 1;
        if (set && runStart < 0) runStart = base + b;
        else if (!set && runStart >= 0) flush(base + b);
      }
    }
  }
  if (runStart >= 0) flush(total);
  const facts: Record<string, unknown> = {
    summary: signature,
    dumpOptions: hex(s.readUInt32LE(8)),
    headerSize: hex(dataStart),
    bitmapPages: bits.toString(),
    presentPages: present.toString(),
  };
  if (BigInt(map.storedPages) !== present) facts['warning'] = `summary Pages says ${present} present pages, the bitmap has ${map.storedPages}`;
  return { facts };
}

export async function rdmpLayout(file: RandomAccessFile, h: CrashHeader, map: PageMap): Promise<LayoutFacts> {
  const at = BigInt(h.headerSize);
  const s = await file.readExact(at, 0x30, 'crash dump RDMP header');
  if (s.readUInt32LE(0) !== RDMP_MARKER || s.toString('latin1', 4, 8) !== 'RDMP' || s.toString('latin1', 8, 12) !== 'DUMP') {
    throw corrupt(`crash dump (DumpType ${h.dumpType}) has no RDMP header`, at);
  }
  const metadataSize = s.readBigUInt64LE(0x10);
  const firstPage = s.readBigUInt64LE(0x18);
  if (firstPage !== at + 0x20n + metadataSize) throw corrupt(`RDMP FirstPageOffset ${hex(firstPage)} does not follow its ${hex(metadataSize)} bytes of metadata`, at + 0x18n);
  if (firstPage > file.size) throw truncated(`RDMP page data would start at ${hex(firstPage)}, past the end of the file`, at + 0x18n);
  const complete = h.dumpType === 10;
  const totalPages = complete ? s.readBigUInt64LE(0x28) : undefined;
  let pages = 0n;
  let pos = at + 0x30n;
  outer: while (pos + 16n <= firstPage) {
    const n = Number((firstPage - pos) / 16n < BigInt(CHUNK / 16) ? (firstPage - pos) / 16n : BigInt(CHUNK / 16));
    const buf = await file.readExact(pos, n * 16, 'RDMP page ranges');
    for (let i = 0; i < n; i++, pos += 16n) {
      // kdmp-parser's end rules: /f stops once TotalNumberOfPages are listed, /k and /ka at a range with PFN 0
      if (totalPages !== undefined && pages >= totalPages) break outer;
      const pfn = buf.readBigUInt64LE(i * 16);
      const count = buf.readBigUInt64LE(i * 16 + 8);
      if (totalPages === undefined && pfn === 0n) break outer;
      map.add(pfn, count, firstPage + pages * BigInt(PAGE_SIZE), pos);
      pages += count;
    }
  }
  const facts: Record<string, unknown> = { summary: 'RDMP', headerSize: hex(firstPage), presentPages: pages.toString() };
  if (totalPages !== undefined) {
    facts['totalPages'] = totalPages.toString();
    if (pages !== totalPages) facts['warning'] = `RDMP TotalNumberOfPages says ${totalPages}, the ranges hold ${pages}`;
  }
  return { facts };
}
