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
 * Old summary (DumpType 2 as NT 5.x wrote it, and still the layout of 32-bit kernel dumps): SUMMARY_DUMP32/64 in
 * dbgeng's dump header (Volatility 3 symbols/windows/crash64.json _SUMMARY_DUMP_OLD agrees for 64-bit, Ghidra's
 * pagedump SummaryHeader too): u32 Signature, ValidDump, DumpOptions, HeaderSize (+0x0c, absolute offset of the page
 * data), BitmapSize (+0x10, bits), Pages (+0x14, set bits), then an on-disk RTL_BITMAP: u32 SizeOfBitMap (+0x18) and
 * the serialised Buffer pointer (u32 at +0x1c / u64 at +0x20), so the bits start at +0x20 (32-bit) or +0x28 (64-bit).
 * Both layouts carry "SDMP" "DUMP", so DumpType 2 is told apart by which one's fields are consistent.
 *
 * RDMP dumps (DumpType 8/9/10): wincrash-rdmp.ts.
 */
import { corrupt, truncated } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { type CrashHeader, OFF32, OFF64, PAGE_SIZE } from './wincrash-header.js';
import type { PageMap } from './wincrash-map.js';

export const SUMMARY_SIZE = 0x38;
/**
 * One bit for each of the 2^52 pages of a 64-bit physical address space. The bitmap is streamed in CHUNK pieces and
 * must lie inside the file, so its length costs time, not memory; the cap only stops lengths no address space has.
 */
export const MAX_BITMAP_BYTES = 2 ** 49;
const CHUNK = 1 << 20;
/** Where the old summary's bits start (after its serialised RTL_BITMAP). */
export const OLD_SUMMARY_BITS = { 32: 0x20, 64: 0x28 } as const;

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

/**
 * Stream `bits` bits from `bitmapAt` into the map: set bit i is PFN i, its page stored at dataStart + 4096 * (set bits
 * before it). Returns the number of set bits.
 */
async function scanBitmap(file: RandomAccessFile, map: PageMap, bitmapAt: bigint, bits: bigint, dataStart: bigint): Promise<number> {
  const before = map.storedPages;
  const total = Number(bits);
  const nbytes = Math.ceil(total / 8);
  let runStart = -1;
  const flush = (end: number) => {
    map.add(BigInt(runStart), BigInt(end - runStart), dataStart + BigInt(map.storedPages - before) * BigInt(PAGE_SIZE), bitmapAt + BigInt(Math.floor(runStart / 8)));
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
  return map.storedPages - before;
}

export async function bitmapLayout(file: RandomAccessFile, h: CrashHeader, map: PageMap, s?: Buffer): Promise<LayoutFacts> {
  const at = BigInt(h.headerSize);
  s ??= await summaryHeader(file, h);
  const signature = s.toString('latin1', 0, 4);
  const dataStart = s.readBigUInt64LE(0x20);
  const present = s.readBigUInt64LE(0x28);
  const bits = s.readBigUInt64LE(0x30);
  if (bits === 0n) throw corrupt('summary header BitmapSize is 0 pages', at + 0x30n);
  const bitmapBytes = (bits + 7n) / 8n;
  if (bitmapBytes > BigInt(MAX_BITMAP_BYTES)) {
    throw new MemdumpError('E_TOO_LARGE', `summary bitmap of ${bits} pages (${bitmapBytes} bytes) is larger than a 64-bit physical address space needs (${MAX_BITMAP_BYTES} bytes)`, {
      details: { offset: hex(at + 0x30n) },
    });
  }
  const bitmapAt = at + BigInt(SUMMARY_SIZE);
  if (bitmapAt + bitmapBytes > file.size) throw truncated(`summary bitmap of ${bitmapBytes} bytes runs past the end of the file`, bitmapAt);
  if (dataStart < bitmapAt + bitmapBytes) throw corrupt(`summary HeaderSize ${hex(dataStart)} lies inside the bitmap (which ends at ${hex(bitmapAt + bitmapBytes)})`, at + 0x20n);
  if (dataStart > file.size) throw truncated(`page data would start at ${hex(dataStart)}, past the end of the file`, at + 0x20n);
  const set = await scanBitmap(file, map, bitmapAt, bits, dataStart);
  const facts: Record<string, unknown> = {
    summary: signature,
    dumpOptions: hex(s.readUInt32LE(8)),
    headerSize: hex(dataStart),
    bitmapPages: bits.toString(),
    presentPages: present.toString(),
  };
  if (BigInt(set) !== present) facts['warning'] = `summary Pages says ${present} present pages, the bitmap has ${set}`;
  return { facts };
}

/** The fixed part of the summary header, with its signatures checked. */
async function summaryHeader(file: RandomAccessFile, h: CrashHeader): Promise<Buffer> {
  const at = BigInt(h.headerSize);
  const s = await file.readExact(at, SUMMARY_SIZE, 'crash dump summary header');
  const signature = s.toString('latin1', 0, 4);
  if (signature !== 'SDMP' && signature !== 'FDMP') throw corrupt(`bitmap crash dump (DumpType ${h.dumpType}) has no SDMP/FDMP summary header (found ${JSON.stringify(signature)})`, at);
  if (s.toString('latin1', 4, 8) !== 'DUMP') throw corrupt('summary header ValidDump is not "DUMP"', at + 4n);
  return s;
}

/** Why the summary's 64-bit (bitmap dump) fields do not describe this file, or undefined when they do. */
function newLayoutProblem(s: Buffer, at: bigint, fileSize: bigint): string | undefined {
  const dataStart = s.readBigUInt64LE(0x20);
  const present = s.readBigUInt64LE(0x28);
  const bits = s.readBigUInt64LE(0x30);
  const bitsEnd = at + BigInt(SUMMARY_SIZE) + (bits + 7n) / 8n;
  if (bits === 0n || (bits + 7n) / 8n > BigInt(MAX_BITMAP_BYTES)) return `BitmapSize ${bits} at +0x30`;
  if (present > bits) return `Pages ${present} at +0x28 exceeds BitmapSize ${bits}`;
  if (dataStart % BigInt(PAGE_SIZE) !== 0n || dataStart < bitsEnd || dataStart > fileSize) return `HeaderSize ${hex(dataStart)} at +0x20`;
  return undefined;
}

/**
 * DumpType 2 (kernel summary): the bitmap-dump summary if its fields are consistent, else the old SUMMARY_DUMP32/64
 * if its HeaderSize is page-aligned past the bits and its Pages equals the set bits, else E_UNSUPPORTED.
 */
export async function summaryLayout(file: RandomAccessFile, h: CrashHeader, map: PageMap): Promise<LayoutFacts> {
  const at = BigInt(h.headerSize);
  const s = await summaryHeader(file, h);
  const newProblem = newLayoutProblem(s, at, file.size);
  if (newProblem === undefined) {
    const l = await bitmapLayout(file, h, map, s);
    return { facts: { ...l.facts, summaryLayout: 'bitmap-dump summary (64-bit fields)' } };
  }
  const unsupported = (oldProblem: string) =>
    new MemdumpError('E_UNSUPPORTED', `kernel summary crash dump (DumpType 2) whose summary header fits neither known layout (bitmap-dump layout: ${newProblem}; old SUMMARY_DUMP${h.bits} layout: ${oldProblem})`, {
      details: { offset: hex(at), dumpType: 2 },
    });
  const dataStart = BigInt(s.readUInt32LE(0x0c));
  const bits = BigInt(s.readUInt32LE(0x10));
  const pages = s.readUInt32LE(0x14);
  const bitmapAt = at + BigInt(OLD_SUMMARY_BITS[h.bits]);
  if (bits === 0n) throw unsupported('BitmapSize is 0');
  if (dataStart % BigInt(PAGE_SIZE) !== 0n || dataStart < bitmapAt + (bits + 7n) / 8n || dataStart > file.size) throw unsupported(`HeaderSize ${hex(dataStart)} at +0x0c`);
  const set = await scanBitmap(file, map, bitmapAt, bits, dataStart);
  if (set !== pages) throw unsupported(`Pages says ${pages}, the bitmap has ${set} set bits`);
  return {
    facts: {
      summary: s.toString('latin1', 0, 4),
      summaryLayout: `old SUMMARY_DUMP${h.bits} (32-bit fields)`,
      dumpOptions: hex(s.readUInt32LE(8)),
      headerSize: hex(dataStart),
      bitmapPages: bits.toString(),
      presentPages: String(pages),
    },
  };
}
