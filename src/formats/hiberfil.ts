/**
 * Windows hibernation files (hiberfil.sys), read in place: `memdump convert hiberfil.sys out.lime --to lime`
 * replaces the decompress-then-analyse step. Two layouts:
 * - Windows 7 / Vista / XP shape ("win7"): memory range tables + "\x81\x81xpress" blocks (hiberfil-win7.ts);
 * - Windows 8, 8.1, 10, 11 x64 ("win8+"): restore sections of compression sets, plain LZ77 or LZ77+Huffman
 *   (hiberfil-win8.ts), with per-build header offsets (hiberfil-header.ts names the source of each).
 * open() walks the tables once into a typed-array index (hiberfil-index.ts); pages are decompressed on read
 * (hiberfil-image.ts). A header Windows wiped on resume (all zeros, or "wake" with nothing parseable behind it)
 * is E_UNSUPPORTED with details.reason "resumed" and a message saying the memory is gone.
 */
import { truncated } from '../core/bytes.js';
import { MemdumpError, hex, isMemdumpError } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { type HiberHeader, PAGE_SIZE, RESUMED_SIGNATURES, WIN7_X64, WIN7_X86, isAllZero, looksLikeHeader, parseHeader, resumedError } from './hiberfil-header.js';
import { HiberImage } from './hiberfil-image.js';
import { BlockTable, KIND_NAMES, type PageIndex, PageIndexBuilder } from './hiberfil-index.js';
import { XPRESS_MAGIC, findFirstTable, firstTableField, walkWin7 } from './hiberfil-win7.js';
import { SET_MAX_PAGES, walkWin8 } from './hiberfil-win8.js';
import type { FormatReader } from './types.js';

/** Loose check that a compression set starts at `off` in `b`; the offset after it, or -1. */
function setAt(b: Buffer, off: number): number {
  if (off + 4 > b.length) return -1;
  const v = b.readUInt32LE(off);
  const n = v & 0xff;
  const size = (v >>> 8) & 0x3fffff;
  if (n === 0 || n > 16 || size === 0 || off + 4 + n * 8 > b.length) return -1;
  let pages = 0;
  for (let i = 0; i < n; i++) {
    // page numbers beyond 2^36 (256 TiB) do not occur
    if (b.readUInt32LE(off + 8 + i * 8) >= 1 << 8) return -1;
    pages += (b[off + 4 + i * 8]! & 0xf) + 1;
  }
  if (pages > SET_MAX_PAGES || size > pages * PAGE_SIZE) return -1;
  return off + 4 + n * 8 + size;
}

/**
 * A wiped header (zeros) over what is still plainly a hibernation file: an Xpress block at a page boundary, or two
 * chained compression sets at one (or one whose successor lies past the head). Raw memory seldom starts with both a
 * zero page and such structures.
 */
export function looksWiped(head: Buffer): boolean {
  if (head.length < 4 * PAGE_SIZE || !isAllZero(head.subarray(0, PAGE_SIZE))) return false;
  for (let off = 2 * PAGE_SIZE; off + 32 <= head.length; off += PAGE_SIZE) {
    if (head.subarray(off, off + 8).equals(XPRESS_MAGIC)) return true;
    const next = setAt(head, off);
    if (next > 0 && (next + 4 > head.length || setAt(head, next) > 0)) return true;
  }
  return false;
}

/** Cr3 from the Windows 7 processor state page ([vol2]), when it is page aligned and its page is in the image. */
function win7Cr3(h: HiberHeader, state: Buffer, index: PageIndex): bigint | undefined {
  const f = h.arch === 'x64' ? WIN7_X64 : WIN7_X86;
  const at = f.cr3 - 2 * PAGE_SIZE;
  const cr3 = h.arch === 'x64' ? state.readBigUInt64LE(at) : BigInt(state.readUInt32LE(at));
  if (cr3 === 0n || (h.arch === 'x64' && (cr3 & 0xfffn) !== 0n) || (cr3 & 0x1fn) !== 0n) return undefined;
  const pageNo = cr3 >> 12n;
  return pageNo < 2n ** 52n && index.find(Number(pageNo)) >= 0 ? cr3 : undefined;
}

async function openWin7(file: RandomAccessFile, h: HiberHeader, base: Record<string, unknown>, first: { page: bigint; from: string }): Promise<HiberImage> {
  const blocks = new BlockTable();
  const builder = new PageIndexBuilder();
  const walk = await walkWin7(file, h.arch, first.page, blocks, builder);
  const index = builder.finish();
  const details: Record<string, unknown> = { ...base, layout: 'win7', layoutVariant: `win7-${h.arch}`, firstTablePage: hex(first.page), firstTablePageFrom: first.from, tables: walk.tables };
  const state = await file.readExact(2n * BigInt(PAGE_SIZE), PAGE_SIZE, 'hiberfil processor state');
  const cr3 = win7Cr3(h, state, index);
  if (cr3 !== undefined) Object.assign(details, { cr3: hex(cr3), cr3Source: `KPROCESSOR_STATE at page 2 (offset ${hex(BigInt(h.arch === 'x64' ? WIN7_X64.cr3 : WIN7_X86.cr3))})` });
  return new HiberImage(file, index, blocks, finishDetails(details, index, blocks));
}

/**
 * Which layout: an Xpress block after a table page is Windows 7; otherwise Windows 8+ by its restore sections. When
 * neither shows, the Windows 7 FirstTablePage (if inside the file) is walked anyway so the error says what is wrong
 * with that table rather than that nothing matched.
 */
async function openParsed(file: RandomAccessFile, h: HiberHeader): Promise<HiberImage> {
  const base: Record<string, unknown> = { signature: h.signature, arch: h.arch, imageType: h.imageType, pageSize: h.pageSize, systemTime: h.systemTime };
  const first = await findFirstTable(file, h);
  if (first) return openWin7(file, h, base, first);
  const field = firstTableField(file, h);
  if (h.arch === 'x86') {
    if (field !== undefined) return openWin7(file, h, base, { page: field, from: 'header' });
    throw new MemdumpError('E_UNSUPPORTED', 'hiberfil: 32-bit Windows 8+ hibernation files are not supported (no Windows 7 memory table found either)', { details: { signature: h.signature, arch: h.arch } });
  }
  let w;
  try {
    w = await walkWin8(file, h);
  } catch (e) {
    if (isMemdumpError(e) && e.details['reason'] === 'no-variant' && field !== undefined) return openWin7(file, h, base, { page: field, from: 'header' });
    throw e;
  }
  const index = w.builder.finish();
  const details: Record<string, unknown> = { ...base, layout: 'win8+', layoutVariant: w.variant.name, ...w.fields };
  return new HiberImage(file, index, w.blocks, finishDetails(details, index, w.blocks));
}

function finishDetails(d: Record<string, unknown>, index: PageIndex, blocks: BlockTable): Record<string, unknown> {
  const compression: Record<string, number> = {};
  blocks.kinds.forEach((n, k) => {
    if (n > 0) compression[KIND_NAMES[k]!] = n;
  });
  return { ...d, pages: index.count, blocks: blocks.count, compression, duplicatePages: index.duplicates };
}

export async function openHiberfil(file: RandomAccessFile): Promise<HiberImage> {
  if (file.size < 3n * BigInt(PAGE_SIZE)) throw truncated(`hiberfil: a hibernation file has at least 3 pages, this one has ${file.size} bytes`, 0n);
  const h = parseHeader(await file.readExact(0n, PAGE_SIZE, 'hiberfil header'));
  try {
    return await openParsed(file, h);
  } catch (e) {
    if ((RESUMED_SIGNATURES as readonly string[]).includes(h.signature) && isMemdumpError(e) && e.code !== 'E_TOO_LARGE') {
      throw resumedError(`signature "${h.signature}" and no parseable memory tables behind it`, { signature: h.signature }, e);
    }
    throw e;
  }
}

export const hiberfil: FormatReader = {
  name: 'hiberfil',
  description: 'Windows hibernation file (hiberfil.sys, Windows 7 and 8/10/11; Xpress LZ77 and LZ77+Huffman)',
  detect(head) {
    return looksLikeHeader(head) || looksWiped(head);
  },
  open(file) {
    return openHiberfil(file);
  },
};
