/**
 * Windows hibernation files (hiberfil.sys), read in place: `memdump convert hiberfil.sys out.lime --to lime`
 * replaces the decompress-then-analyse step. Layouts parsed:
 * - Windows 7 x64 and x86, and Vista x86: memory range tables + "\x81\x81xpress" blocks (hiberfil-win7.ts);
 * - Windows 8, 8.1, 10, 11 x64: restore sections of compression sets, plain LZ77 or LZ77+Huffman (hiberfil-win8.ts).
 * Not parsed: XP and Vista x64 (their table formats differ), 32-bit Windows 8+ (E_UNSUPPORTED).
 * The build is taken from the header's LengthSelf (hiberfil-header.ts names the sources); only an unknown
 * LengthSelf makes us guess, and details.layoutChosenBy says which happened.
 * open() walks the tables once into a typed-array run index (hiberfil-index.ts); pages are decompressed on read
 * (hiberfil-image.ts). A header Windows wiped on resume (all zeros, or "wake" with nothing parseable behind it)
 * is E_UNSUPPORTED with details.reason "resumed" and a message saying the memory is gone.
 */
import { corrupt, truncated } from '../core/bytes.js';
import { MemdumpError, hex, isMemdumpError } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { xpressDecompress } from '../core/xpress.js';
import { xpressHuffmanDecompress } from '../core/xpress-huffman.js';
import { type HiberHeader, PAGE_SIZE, RESUMED_SIGNATURES, VISTA_X64_LENGTH_SELF, VISTA_X86, WIN7_X64, WIN7_X86, WIN8_VARIANTS, WIN8_X86_LENGTH_SELF, type Win8Variant, isAllZero, looksLikeHeader, parseHeader, resumedError } from './hiberfil-header.js';
import { HiberImage } from './hiberfil-image.js';
import { BlockTable, KIND_NAMES, MAX_PAGE_NUMBER, type PageIndex, PageIndexBuilder } from './hiberfil-index.js';
import { XPRESS_MAGIC, findFirstTable, firstTableField, firstTableSlots, walkWin7, win7Geometry } from './hiberfil-win7.js';
import { SET_MAX_DESCRIPTORS, SET_MAX_PAGES, walkWin8 } from './hiberfil-win8.js';
import type { FormatReader } from './types.js';

/**
 * A compression set at `off` in `b` that is well formed (1..16 runs in ascending page order, at most 16 pages,
 * data no larger than its pages): the offset after it, or -1.
 */
function setAt(b: Buffer, off: number): number {
  if (off + 4 > b.length) return -1;
  const v = b.readUInt32LE(off);
  const n = v & 0xff;
  const size = (v >>> 8) & 0x3fffff;
  if (n === 0 || n > SET_MAX_DESCRIPTORS || size === 0 || off + 4 + n * 8 > b.length) return -1;
  let pages = 0;
  let end = -1;
  for (let i = 0; i < n; i++) {
    const lo = b.readUInt32LE(off + 4 + i * 8);
    const hi = b.readUInt32LE(off + 8 + i * 8);
    // page numbers beyond 2^36 (256 TiB) do not occur
    if (hi >= 1 << 8) return -1;
    const first = hi * 2 ** 28 + (lo >>> 4);
    if (first < end) return -1;
    const count = (lo & 0xf) + 1;
    end = first + count;
    pages += count;
  }
  if (pages > SET_MAX_PAGES || size > pages * PAGE_SIZE) return -1;
  return off + 4 + n * 8 + size;
}

/** A Windows 7 / Vista memory range table page: 1..capacity entries, each non-empty, in ascending order. */
function tableAt(b: Buffer, off: number): boolean {
  for (const arch of ['x64', 'x86'] as const) {
    const g = win7Geometry(arch);
    const count = b.readUInt32LE(off + (g.wide ? 8 : 4));
    if (count === 0 || count > g.capacity) continue;
    let prev = -1;
    let ok = true;
    for (let e = 0; e < count && ok; e++) {
      const at = off + g.linkSize + e * g.entrySize;
      const start = g.wide ? Number(b.readBigUInt64LE(at)) : b.readUInt32LE(at);
      const end = g.wide ? Number(b.readBigUInt64LE(at + 8)) : b.readUInt32LE(at + 4);
      ok = start >= prev && end > start && end <= MAX_PAGE_NUMBER;
      prev = end;
    }
    if (ok) return true;
  }
  return false;
}

/**
 * Whether the set at `off` (whose successor lies past the head) holds data that decodes as far as the head lets
 * us see: stored data always does; compressed data must decode, or fail only for want of the bytes cut off.
 */
function setDataDecodes(head: Buffer, off: number): boolean {
  const v = head.readUInt32LE(off);
  const n = v & 0xff;
  const size = (v >>> 8) & 0x3fffff;
  let pages = 0;
  for (let i = 0; i < n; i++) pages += (head[off + 4 + i * 8]! & 0xf) + 1;
  if (size === pages * PAGE_SIZE) return true;
  const dataAt = off + 4 + n * 8;
  const avail = Math.min(size, head.length - dataAt);
  try {
    const input = head.subarray(dataAt, dataAt + avail);
    if (v >>> 30 >= 2) xpressHuffmanDecompress(input, pages * PAGE_SIZE);
    else xpressDecompress(input, pages * PAGE_SIZE);
    return true;
  } catch (e) {
    if (!isMemdumpError(e) || avail === size) return false;
    const at = e.details['inputOffset'];
    return typeof at === 'number' && at >= avail - 16;
  }
}

/**
 * A wiped header (zeros) over what is still plainly a hibernation file: a well-formed memory range table page
 * followed by an Xpress block, or a well-formed compression set at a page boundary followed by another one (or,
 * when the next one lies past the head, whose data decodes as far as the head goes). Raw memory seldom starts with
 * a zero page and either; a set header alone (12 bytes) is too easy to meet by chance.
 */
export function looksWiped(head: Buffer): boolean {
  if (head.length < 4 * PAGE_SIZE || !isAllZero(head.subarray(0, PAGE_SIZE))) return false;
  for (let off = 2 * PAGE_SIZE; off + 32 <= head.length; off += PAGE_SIZE) {
    if (head.subarray(off, off + 8).equals(XPRESS_MAGIC) && tableAt(head, off - PAGE_SIZE)) return true;
    const next = setAt(head, off);
    if (next < 0) continue;
    if (next + 4 + SET_MAX_DESCRIPTORS * 8 <= head.length ? setAt(head, next) > 0 : setDataDecodes(head, off)) return true;
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

type ChosenBy = 'LengthSelf' | 'guess';

function noPages(layout: string): MemdumpError {
  return new MemdumpError('E_CORRUPT', `hiberfil: the ${layout} tables list no pages at all: this is not an intact hibernation image`, { details: { layoutVariant: layout, pages: 0 } });
}

async function openWin7(file: RandomAccessFile, h: HiberHeader, base: Record<string, unknown>, first: { page: bigint; from: string }, variant: string, chosenBy: ChosenBy): Promise<HiberImage> {
  const blocks = new BlockTable();
  const builder = new PageIndexBuilder();
  const walk = await walkWin7(file, h.arch, first.page, blocks, builder);
  const index = builder.finish();
  if (index.pages === 0) throw noPages(variant);
  const details: Record<string, unknown> = { ...base, layout: 'win7', layoutVariant: variant, layoutChosenBy: chosenBy, firstTablePage: hex(first.page), firstTablePageFrom: first.from, tables: walk.tables };
  const state = await file.readExact(2n * BigInt(PAGE_SIZE), PAGE_SIZE, 'hiberfil processor state');
  const cr3 = win7Cr3(h, state, index);
  if (cr3 !== undefined) Object.assign(details, { cr3: hex(cr3), cr3Source: `KPROCESSOR_STATE at page 2 (offset ${hex(BigInt(h.arch === 'x64' ? WIN7_X64.cr3 : WIN7_X86.cr3))})` });
  return new HiberImage(file, index, blocks, finishDetails(details, index, blocks));
}

async function openWin8(file: RandomAccessFile, h: HiberHeader, base: Record<string, unknown>, variants: readonly Win8Variant[], chosenBy: ChosenBy): Promise<HiberImage> {
  const w = await walkWin8(file, h, variants, chosenBy);
  const index = w.builder.finish();
  if (index.pages === 0) throw noPages(w.variant.name);
  const details: Record<string, unknown> = { ...base, layout: 'win8+', layoutVariant: w.variant.name, layoutChosenBy: chosenBy, ...w.fields };
  if (w.variant.firstSecureRestorePage !== undefined) {
    const secure = h.page.u64(w.variant.firstSecureRestorePage);
    details['firstSecureRestorePage'] = hex(secure);
    if (secure !== 0n) {
      (details['caveats'] as string[]).push('FirstSecureRestorePage is set: the VBS secure kernel (VTL1) pages are stored in a section of their own and are not included');
    }
  }
  return new HiberImage(file, index, w.blocks, finishDetails(details, index, w.blocks));
}

type Profile =
  | { readonly kind: 'win8'; readonly variant: Win8Variant }
  | { readonly kind: 'win7'; readonly variant: string; readonly firstTableSlot: number }
  | { readonly kind: 'unsupported'; readonly what: string };

/** The build a known LengthSelf names ([leechcore], [ntdiff]); undefined when we do not know it. */
export function profileOf(h: HiberHeader): Profile | undefined {
  const n = h.lengthSelf;
  if (h.arch === 'x64') {
    const v = WIN8_VARIANTS.find((x) => x.lengthSelf.includes(n));
    if (v) return { kind: 'win8', variant: v };
    if (n === WIN7_X64.lengthSelf) return { kind: 'win7', variant: 'win7-x64', firstTableSlot: WIN7_X64.firstTablePage };
    if (n === VISTA_X64_LENGTH_SELF) return { kind: 'unsupported', what: 'Windows Vista x64 hibernation files (their memory range tables differ from Windows 7) are not supported' };
    return undefined;
  }
  if (n >= WIN8_X86_LENGTH_SELF.min && n <= WIN8_X86_LENGTH_SELF.max) return { kind: 'unsupported', what: '32-bit Windows 8/10 hibernation files are not supported' };
  if (n === WIN7_X86.lengthSelf) return { kind: 'win7', variant: 'win7-x86', firstTableSlot: WIN7_X86.firstTablePage };
  if (n === VISTA_X86.lengthSelf) return { kind: 'win7', variant: 'vista-x86', firstTableSlot: VISTA_X86.firstTablePage };
  return undefined;
}

async function openKnown(file: RandomAccessFile, h: HiberHeader, base: Record<string, unknown>, p: Profile): Promise<HiberImage> {
  if (p.kind === 'unsupported') {
    throw new MemdumpError('E_UNSUPPORTED', `hiberfil: ${p.what} (LengthSelf ${hex(h.lengthSelf)})`, { details: { signature: h.signature, arch: h.arch, lengthSelf: hex(h.lengthSelf) } });
  }
  if (p.kind === 'win8') return openWin8(file, h, base, [p.variant], 'LengthSelf');
  const field = h.arch === 'x64' ? h.page.u64(p.firstTableSlot) : BigInt(h.page.u32(p.firstTableSlot));
  const filePages = file.size / BigInt(PAGE_SIZE);
  if (field === 0n || (field >= filePages && field >= (h.arch === 'x64' ? 1n << 36n : 1n << 24n))) throw corrupt(`hiberfil: ${p.variant} FirstTablePage (${hex(field)}) is not a page of a hibernation file`, BigInt(p.firstTableSlot));
  if (field >= filePages) throw truncated(`hiberfil: ${p.variant} FirstTablePage (${hex(field)}) is past the end of the file (${file.size} bytes): the file is truncated`, BigInt(p.firstTableSlot));
  return openWin7(file, h, base, { page: field, from: 'header' }, p.variant, 'LengthSelf');
}

/**
 * LengthSelf unknown: an Xpress block after the header's FirstTablePage (or, by page scan, after any early page) is
 * Windows 7; otherwise Windows 8+ by its restore sections. On a 64-bit header a failed or empty Windows 7 walk hands
 * over to the Windows 8+ walk: an Xpress signature can sit in a Windows 10 file's slack or in a stored page, and
 * Windows 10 keeps FirstSecureRestorePage in Windows 7's FirstTablePage slot.
 */
async function openGuessed(file: RandomAccessFile, h: HiberHeader, base: Record<string, unknown>): Promise<HiberImage> {
  const slots = firstTableSlots(h.arch);
  const variant = `win7-${h.arch}`;
  const first = await findFirstTable(file, h, slots);
  if (first && h.arch === 'x86') return openWin7(file, h, base, first, variant, 'guess');
  if (first) {
    let win7Error: unknown;
    try {
      return await openWin7(file, h, base, first, variant, 'guess');
    } catch (e) {
      if (!isMemdumpError(e) || e.code === 'E_TOO_LARGE') throw e;
      win7Error = e;
    }
    try {
      return await openWin8(file, h, base, WIN8_VARIANTS, 'guess');
    } catch (e) {
      if (isMemdumpError(e) && e.details['reason'] === 'no-variant') throw win7Error;
      throw e;
    }
  }
  const fields = slots.map((s) => firstTableField(file, h, s)).filter((f) => f !== undefined);
  if (h.arch === 'x86') {
    if (fields[0] !== undefined) return openWin7(file, h, base, { page: fields[0], from: 'header' }, variant, 'guess');
    throw new MemdumpError('E_UNSUPPORTED', `hiberfil: 32-bit header with an unknown LengthSelf (${hex(h.lengthSelf)}) and no Windows 7 memory table found`, { details: { signature: h.signature, arch: h.arch, lengthSelf: hex(h.lengthSelf) } });
  }
  try {
    return await openWin8(file, h, base, WIN8_VARIANTS, 'guess');
  } catch (e) {
    if (!isMemdumpError(e) || e.details['reason'] !== 'no-variant' || fields[0] === undefined) throw e;
    // nothing fits Windows 8+: walk the Windows 7 FirstTablePage so the error says what is wrong with that table,
    // unless it is no table at all (then the Windows 8+ error says more)
    try {
      return await openWin7(file, h, base, { page: fields[0], from: 'header' }, variant, 'guess');
    } catch (e7) {
      throw isMemdumpError(e7) && e7.details['pages'] === 0 ? e : e7;
    }
  }
}

async function openParsed(file: RandomAccessFile, h: HiberHeader): Promise<HiberImage> {
  const caveats: string[] = [];
  if ((RESUMED_SIGNATURES as readonly string[]).includes(h.signature)) {
    caveats.push(`signature "${h.signature}": Windows has resumed from this file since it was written, so its contents may be stale (not the memory of the running system)`);
  }
  const base: Record<string, unknown> = { signature: h.signature, arch: h.arch, imageType: h.imageType, pageSize: h.pageSize, systemTime: h.systemTime, lengthSelf: hex(h.lengthSelf), caveats };
  const p = profileOf(h);
  return p ? openKnown(file, h, base, p) : openGuessed(file, h, base);
}

function finishDetails(d: Record<string, unknown>, index: PageIndex, blocks: BlockTable): Record<string, unknown> {
  const compression: Record<string, number> = {};
  blocks.kinds.forEach((n, k) => {
    if (n > 0) compression[KIND_NAMES[k]!] = n;
  });
  const out: Record<string, unknown> = { ...d, pages: index.pages, blocks: blocks.count, compression, duplicatePages: index.duplicates };
  if ((d['caveats'] as string[]).length === 0) delete out['caveats'];
  return out;
}

export async function openHiberfil(file: RandomAccessFile): Promise<HiberImage> {
  if (file.size < 3n * BigInt(PAGE_SIZE)) throw truncated(`hiberfil: a hibernation file has at least 3 pages, this one has ${file.size} bytes`, 0n);
  const h = parseHeader(await file.readExact(0n, PAGE_SIZE, 'hiberfil header'));
  try {
    return await openParsed(file, h);
  } catch (e) {
    if ((RESUMED_SIGNATURES as readonly string[]).includes(h.signature) && isMemdumpError(e) && (e.code === 'E_CORRUPT' || e.code === 'E_TRUNCATED')) {
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
