/**
 * Windows 7 (x64, x86) and Vista x86 hibernation layout: memory range tables chained by page number, each table page
 * followed by the Xpress blocks that hold its pages in table order.
 *
 * Table page ([hibr2bin] Hiber.h PO_MEMORY_RANGE_ARRAY*_NT61, [vol2] hibernate_win7*_vtypes):
 *   x64: u64 NextTable, u32 EntryCount, u32 pad, then EntryCount × {u64 StartPage, u64 EndPage (exclusive)}
 *   x86: u32 NextTable, u32 EntryCount,          then EntryCount × {u32 StartPage, u32 EndPage}
 * A table is followed by the next one only when it is full (255 / 511 entries) and NextTable is set ([vol2] checks
 * EntryCount == 0xFF, [hibr2bin] accepts 0xFF/0x7F/0x1FF/0xFE): a stale NextTable in the last table is ignored.
 * Xpress block ([libhibr] "compressed page data", [hibr2bin] CompressedMemoryBlock, [vol2] get_xpress_block_size):
 *   "\x81\x81xpress", u32 info at 8: pages = (info & 0x3ff) + 1, size = (info >> 10) + 1; 32-byte header, data
 *   padded to 8 bytes. size == pages × 4096 means stored. Blocks hold at most 16 pages.
 * The first block follows the table page ([hibr2bin] GetCompressedBlockOffset: table + PAGE_SIZE).
 */
import { corrupt } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { type HiberHeader, PAGE_SIZE, VISTA_X86, WIN7_X64, WIN7_X86 } from './hiberfil-header.js';
import { type BlockTable, KIND_LZ77, KIND_STORED, MAX_PAGE_NUMBER, type PageIndexBuilder, ReadWindow } from './hiberfil-index.js';

export const XPRESS_MAGIC = Buffer.from('8181787072657373', 'hex');
export const XPRESS_HEADER_SIZE = 32;
export const WIN7_BLOCK_PAGES = 16;
/** A compressed block may exceed its output a little (incompressible data); anything beyond this is corrupt. */
const MAX_BLOCK_DATA = WIN7_BLOCK_PAGES * PAGE_SIZE + PAGE_SIZE;
/** Pages searched for a table when the header field does not point at one ([vol2] _get_first_table_page scans). */
const SCAN_PAGES = 32;

export interface Win7Geometry {
  readonly wide: boolean;
  readonly linkSize: number;
  readonly entrySize: number;
  readonly capacity: number;
}

export function win7Geometry(arch: 'x64' | 'x86'): Win7Geometry {
  const wide = arch === 'x64';
  const linkSize = wide ? 16 : 8;
  const entrySize = wide ? 16 : 8;
  return { wide, linkSize, entrySize, capacity: Math.floor((PAGE_SIZE - linkSize) / entrySize) };
}

export interface XpressBlockHeader {
  readonly pages: number;
  readonly size: number;
  readonly stored: boolean;
  /** Header plus data padded to 8 bytes: where the next block starts. */
  readonly span: number;
}

export function parseXpressHeader(b: Buffer, pos: bigint): XpressBlockHeader {
  if (!b.subarray(0, 8).equals(XPRESS_MAGIC)) throw corrupt('hiberfil: Xpress block signature missing', pos, { found: b.subarray(0, 8).toString('hex') });
  const info = b.readUInt32LE(8);
  const pages = (info & 0x3ff) + 1;
  const size = (info >>> 10) + 1;
  if (pages > WIN7_BLOCK_PAGES) throw corrupt(`hiberfil: Xpress block claims ${pages} pages (at most ${WIN7_BLOCK_PAGES})`, pos);
  if (size > MAX_BLOCK_DATA) throw corrupt(`hiberfil: Xpress block claims ${size} bytes of data`, pos);
  return { pages, size, stored: size === pages * PAGE_SIZE, span: XPRESS_HEADER_SIZE + ((size + 7) & ~7) };
}

async function hasXpressAt(file: RandomAccessFile, pos: bigint): Promise<boolean> {
  if (pos + BigInt(XPRESS_HEADER_SIZE) > file.size) return false;
  return (await file.readAt(pos, 8)).equals(XPRESS_MAGIC);
}

/** Where FirstTablePage may sit when LengthSelf does not say: Windows 7 ([ntdiff] x64 0x60, x86 0x4c), Vista x86 0x50. */
export function firstTableSlots(arch: 'x64' | 'x86'): readonly number[] {
  return arch === 'x64' ? [WIN7_X64.firstTablePage] : [WIN7_X86.firstTablePage, VISTA_X86.firstTablePage];
}

/** The FirstTablePage at `slot` (u64 on x64, u32 on x86) when it points inside the file (whatever is there). */
export function firstTableField(file: RandomAccessFile, h: HiberHeader, slot: number): bigint | undefined {
  const field = h.arch === 'x64' ? h.page.u64(slot) : BigInt(h.page.u32(slot));
  return field > 0n && field < file.size / BigInt(PAGE_SIZE) ? field : undefined;
}

/** The first table page: a header FirstTablePage (from `slots`) that an Xpress block follows, else the first such page. */
export async function findFirstTable(file: RandomAccessFile, h: HiberHeader, slots: readonly number[]): Promise<{ page: bigint; from: 'header' | 'scan' } | undefined> {
  const page = BigInt(PAGE_SIZE);
  for (const slot of slots) {
    const field = firstTableField(file, h, slot);
    if (field !== undefined && (await hasXpressAt(file, (field + 1n) * page))) return { page: field, from: 'header' };
  }
  for (let p = 1n; p <= BigInt(SCAN_PAGES); p++) if (await hasXpressAt(file, (p + 1n) * page)) return { page: p, from: 'scan' };
  return undefined;
}

export interface Win7Walk {
  readonly tables: number;
}

export async function walkWin7(file: RandomAccessFile, arch: 'x64' | 'x86', firstTable: bigint, blocks: BlockTable, out: PageIndexBuilder): Promise<Win7Walk> {
  const g = win7Geometry(arch);
  const win = new ReadWindow(file);
  const page = BigInt(PAGE_SIZE);
  let table = firstTable;
  let tables = 0;
  for (;;) {
    tables++;
    const off = table * page;
    const t = await win.bytes(off, PAGE_SIZE, 'memory range table');
    const next = g.wide ? t.readBigUInt64LE(0) : BigInt(t.readUInt32LE(0));
    const count = t.readUInt32LE(g.wide ? 8 : 4);
    if (count > g.capacity) throw corrupt(`hiberfil: memory range table lists ${count} entries (a page holds ${g.capacity})`, off);
    let pos = off + page;
    let left = 0;
    let slot = 0;
    let block = -1;
    for (let e = 0; e < count; e++) {
      const at = g.linkSize + e * g.entrySize;
      const start = g.wide ? t.readBigUInt64LE(at) : BigInt(t.readUInt32LE(at));
      const end = g.wide ? t.readBigUInt64LE(at + 8) : BigInt(t.readUInt32LE(at + 4));
      if (end < start) throw corrupt(`hiberfil: memory range ends (page ${hex(end)}) before it starts (page ${hex(start)})`, off + BigInt(at));
      if (end > BigInt(MAX_PAGE_NUMBER)) throw corrupt(`hiberfil: memory range page ${hex(end)} is beyond any physical address`, off + BigInt(at));
      for (let p = Number(start); p < Number(end); ) {
        if (left === 0) {
          const h = parseXpressHeader(await win.bytes(pos, XPRESS_HEADER_SIZE, 'Xpress block header'), pos);
          const dataAt = pos + BigInt(XPRESS_HEADER_SIZE);
          if (dataAt + BigInt(h.size) > file.size) {
            throw new MemdumpError('E_TRUNCATED', `hiberfil: Xpress block at ${hex(pos)} needs ${h.size} bytes, the file ends first`, { details: { offset: hex(pos) } });
          }
          block = blocks.add(dataAt, h.size, h.pages, h.stored ? KIND_STORED : KIND_LZ77);
          pos += BigInt(h.span);
          left = h.pages;
          slot = 0;
        }
        const k = Math.min(left, Number(end) - p);
        out.addRun(p, k, block, slot);
        slot += k;
        left -= k;
        p += k;
      }
    }
    if (next === 0n || count !== g.capacity) return { tables };
    // tables are written front to back; insisting on it also makes a loop impossible
    if (next * page < pos || next >= file.size / page) throw corrupt(`hiberfil: next memory range table (page ${hex(next)}) is not after this table's blocks`, off);
    table = next;
  }
}
