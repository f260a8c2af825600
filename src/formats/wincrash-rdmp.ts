/**
 * RDMP page ranges (DumpType 8/9/10, Windows 11 `.dump /k`, `/ka`, `/f`). The layout is known only from
 * kdmp-parser-rs (RdmpHeader64, reverse engineered; we have no real file): at 0x2000 u32 0x40, "RDMP", "DUMP", u32,
 * u64 MetadataSize, u64 FirstPageOffset (= 0x2020 + MetadataSize), 16 bytes (for /f: u32 NumberOfRanges, u64
 * TotalNumberOfPages at 0x2028), then { u64 PFN, u64 PageCount } ranges up to FirstPageOffset; the pages of each
 * range follow back to back, in list order.
 *
 * The list ends at FirstPageOffset, at a range of 0 pages, for /f once TotalNumberOfPages are listed and for /k and
 * /ka at a range at PFN 0 (kdmp-parser's rules). kdmp-parser keeps the ranges in an ordered map, so a list out of PFN
 * order reads there; we sort it too (each range keeps its file offset) and refuse only overlaps.
 */
import { corrupt, truncated } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import type { CrashHeader } from './wincrash-header.js';
import { PAGE_SIZE } from './wincrash-header.js';
import type { LayoutFacts } from './wincrash-layout.js';
import { MAX_RUNS, type PageMap } from './wincrash-map.js';

const RDMP_MARKER = 0x40;
/** The 16 bytes before the ranges, and one range for each run a PageMap accepts: a longer list is not a RAM map. */
export const MAX_RDMP_METADATA = 0x10 + 16 * MAX_RUNS;
const CHUNK = 1 << 16;
const MAX_PFN = 2n ** 52n;

/** Ranges as listed: PFN, page count, file offset (clamped to the file size: past it, no byte is held anyway). */
class RangeList {
  pfn = new Float64Array(64);
  count = new Float64Array(64);
  offset = new Float64Array(64);
  n = 0;
  push(pfn: number, count: number, offset: number): void {
    if (this.n === this.pfn.length) {
      for (const k of ['pfn', 'count', 'offset'] as const) {
        const a = new Float64Array(this.n * 2);
        a.set(this[k]);
        this[k] = a;
      }
    }
    this.pfn[this.n] = pfn;
    this.count[this.n] = count;
    this.offset[this.n] = offset;
    this.n++;
  }
}

export async function rdmpLayout(file: RandomAccessFile, h: CrashHeader, map: PageMap): Promise<LayoutFacts> {
  const at = BigInt(h.headerSize);
  const s = await file.readExact(at, 0x30, 'crash dump RDMP header');
  if (s.readUInt32LE(0) !== RDMP_MARKER || s.toString('latin1', 4, 8) !== 'RDMP' || s.toString('latin1', 8, 12) !== 'DUMP') {
    throw corrupt(`crash dump (DumpType ${h.dumpType}) has no RDMP header`, at);
  }
  const metadataSize = s.readBigUInt64LE(0x10);
  const firstPage = s.readBigUInt64LE(0x18);
  if (metadataSize > BigInt(MAX_RDMP_METADATA)) {
    throw new MemdumpError('E_TOO_LARGE', `RDMP MetadataSize ${hex(metadataSize)} holds more ranges than the ${MAX_RUNS} runs a memory map may have`, {
      details: { offset: hex(at + 0x10n), limit: hex(MAX_RDMP_METADATA) },
    });
  }
  if (metadataSize < 0x10n || metadataSize % 16n !== 0n) throw corrupt(`RDMP MetadataSize ${hex(metadataSize)} is not 16 bytes plus whole 16-byte ranges`, at + 0x10n);
  if (firstPage !== at + 0x20n + metadataSize) throw corrupt(`RDMP FirstPageOffset ${hex(firstPage)} does not follow its ${hex(metadataSize)} bytes of metadata`, at + 0x18n);
  if (firstPage > file.size) throw truncated(`RDMP page data would start at ${hex(firstPage)}, past the end of the file`, at + 0x18n);
  const complete = h.dumpType === 10;
  const totalPages = complete ? s.readBigUInt64LE(0x28) : undefined;

  const list = new RangeList();
  let pages = 0n;
  let pos = at + 0x30n;
  let ordered = true;
  outer: while (pos < firstPage) {
    const n = Number((firstPage - pos) / 16n < BigInt(CHUNK / 16) ? (firstPage - pos) / 16n : BigInt(CHUNK / 16));
    const buf = await file.readExact(pos, n * 16, 'RDMP page ranges');
    for (let i = 0; i < n; i++, pos += 16n) {
      if (totalPages !== undefined && pages >= totalPages) break outer;
      const pfn = buf.readBigUInt64LE(i * 16);
      const count = buf.readBigUInt64LE(i * 16 + 8);
      if (count === 0n || (totalPages === undefined && pfn === 0n)) break outer;
      if (pfn + count > MAX_PFN) throw corrupt(`RDMP range ${hex(pfn)}+${hex(count)} runs past the 64-bit address space`, pos);
      const offset = firstPage + pages * BigInt(PAGE_SIZE);
      if (list.n > 0 && Number(pfn) < list.pfn[list.n - 1]!) ordered = false;
      list.push(Number(pfn), Number(count), Number(offset < file.size ? offset : file.size));
      pages += count;
    }
  }
  // the list was bounded by MAX_RDMP_METADATA, so its index is too
  const order = new Uint32Array(list.n);
  for (let i = 0; i < list.n; i++) order[i] = i;
  if (!ordered) order.sort((a, b) => list.pfn[a]! - list.pfn[b]!);
  for (const i of order) map.add(BigInt(list.pfn[i]!), BigInt(list.count[i]!), BigInt(list.offset[i]!), at + 0x30n + 16n * BigInt(i));

  const facts: Record<string, unknown> = { summary: 'RDMP', headerSize: hex(firstPage), presentPages: pages.toString(), ranges: list.n };
  if (!ordered) facts['rangeOrder'] = 'listed out of PFN order (sorted; each range keeps its file offset)';
  if (totalPages !== undefined) {
    facts['totalPages'] = totalPages.toString();
    if (pages !== totalPages) facts['warning'] = `RDMP TotalNumberOfPages says ${totalPages}, the ranges hold ${pages}`;
  }
  return { facts };
}
