/**
 * Windows 8, 8.1, 10 and 11 (x64) hibernation layout: two restore sections (boot loader pages from
 * FirstBootRestorePage, NumPagesForLoader pages; kernel pages from FirstKernelRestorePage, KernelPagesProcessed
 * pages), each a run of back-to-back compression sets ([vol3] hib.py, [hibr2bin] PO_MEMORY_RANGE_TABLE64_NT62):
 *
 *   u32: bits 0-7 descriptor count (1..16), bits 8-29 data size, bits 30-31 method
 *        (0 XpressFast, 1 XpressMax: plain LZ77; 2 XpressHuffFast, 3 XpressHuffMax: LZ77+Huffman)
 *   count × u64 descriptor: bits 0-3 pages - 1, bits 4-63 first page number
 *   data: the pages of all descriptors in order, compressed as one stream; size == pages × 4096 means stored.
 * A set holds at most 16 pages and 64 KiB of data ([hibr2bin] MAX_HIBER_PAGES, MAX_COMPRESSED_BLOCK).
 * The next set starts right after the data, unaligned ([vol3] _read_compression_set).
 */
import { corrupt } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { type HiberHeader, NUM_PAGES_FOR_LOADER, PAGE_SIZE, WIN8_VARIANTS, type Win8Variant } from './hiberfil-header.js';
import { BlockTable, KIND_HUFFMAN, KIND_LZ77, KIND_STORED, MAX_PAGES, MAX_PAGE_NUMBER, PageIndexBuilder, ReadWindow } from './hiberfil-index.js';

export const SET_MAX_PAGES = 16;
export const SET_MAX_DESCRIPTORS = 16;
const SET_MAX_DATA = SET_MAX_PAGES * PAGE_SIZE;

export interface SetHeader {
  readonly descriptors: number;
  readonly size: number;
  readonly method: number;
}

export function parseSetHeader(v: number, pos: bigint): SetHeader {
  const descriptors = v & 0xff;
  const size = (v >>> 8) & 0x3fffff;
  const method = v >>> 30;
  if (descriptors === 0 || descriptors > SET_MAX_DESCRIPTORS) throw corrupt(`hiberfil: compression set lists ${descriptors} page runs (1..${SET_MAX_DESCRIPTORS})`, pos);
  if (size === 0 || size > SET_MAX_DATA) throw corrupt(`hiberfil: compression set holds ${size} bytes of data (1..${SET_MAX_DATA})`, pos);
  return { descriptors, size, method };
}

/**
 * Walk `pageCount` pages of sets from `startPage`; returns where the section's last set ends. Pages above
 * `highestPage` (the header's HighestPhysicalPage, when known) are corrupt.
 */
export async function walkSection(file: RandomAccessFile, startPage: bigint, pageCount: bigint, blocks: BlockTable, out: PageIndexBuilder, highestPage = BigInt(MAX_PAGE_NUMBER)): Promise<bigint> {
  const win = new ReadWindow(file);
  let pos = startPage * BigInt(PAGE_SIZE);
  let done = 0n;
  const runs: [number, number][] = [];
  while (done < pageCount) {
    const h = parseSetHeader((await win.bytes(pos, 4, 'compression set header')).readUInt32LE(0), pos);
    const desc = await win.bytes(pos + 4n, h.descriptors * 8, 'compression set page runs');
    const dataAt = pos + 4n + BigInt(h.descriptors * 8);
    let pages = 0;
    runs.length = 0;
    for (let i = 0; i < h.descriptors; i++) {
      const d = desc.readBigUInt64LE(i * 8);
      const n = Number(d & 0xfn) + 1;
      const first = d >> 4n;
      if (first + BigInt(n) - 1n > highestPage) {
        throw corrupt(`hiberfil: compression set page ${hex(first + BigInt(n) - 1n)} is above the highest physical page (${hex(highestPage)})`, pos + 4n + BigInt(i * 8));
      }
      pages += n;
      runs.push([Number(first), n]);
    }
    if (pages > SET_MAX_PAGES) throw corrupt(`hiberfil: compression set holds ${pages} pages (at most ${SET_MAX_PAGES})`, pos);
    if (h.size > pages * PAGE_SIZE) throw corrupt(`hiberfil: compression set data (${h.size} bytes) is larger than its ${pages} pages`, pos);
    if (dataAt + BigInt(h.size) > file.size) {
      throw new MemdumpError('E_TRUNCATED', `hiberfil: compression set at ${hex(pos)} needs ${h.size} bytes of data, the file ends first`, { details: { offset: hex(pos) } });
    }
    const kind = h.size === pages * PAGE_SIZE ? KIND_STORED : h.method < 2 ? KIND_LZ77 : KIND_HUFFMAN;
    const block = blocks.add(dataAt, h.size, pages, kind);
    let slot = 0;
    for (const [first, n] of runs) {
      out.addRun(first, n, block, slot);
      slot += n;
    }
    done += BigInt(pages);
    pos = dataAt + BigInt(h.size);
  }
  return pos;
}

export interface Win8Walk {
  readonly variant: Win8Variant;
  readonly blocks: BlockTable;
  readonly builder: PageIndexBuilder;
  readonly fields: Record<string, string>;
}

interface Slots {
  readonly v: Win8Variant;
  readonly boot: bigint;
  readonly kernel: bigint;
  readonly kernelPages: bigint;
  readonly highest: bigint;
}

function slotsOf(h: HiberHeader, v: Win8Variant): Slots {
  const r = h.page;
  return { v, boot: r.u64(v.firstBootRestorePage), kernel: r.u64(v.firstKernelRestorePage), kernelPages: r.u64(v.kernelPagesProcessed), highest: r.u64(v.highestPhysicalPage) };
}

/** Why these offsets cannot describe this file (undefined: they can). */
function implausible(file: RandomAccessFile, s: Slots, loaderPages: bigint): string | undefined {
  const filePages = file.size / BigInt(PAGE_SIZE);
  const limit = s.highest > 0n && s.highest <= BigInt(MAX_PAGE_NUMBER) ? s.highest + 1n : BigInt(MAX_PAGES);
  if (s.kernelPages === 0n) return 'KernelPagesProcessed is 0 (every hibernation has kernel pages)';
  if (s.kernelPages > BigInt(MAX_PAGES) || s.kernelPages > limit) return `KernelPagesProcessed (${s.kernelPages}) is more than the machine's ${limit} pages`;
  if (loaderPages > limit) return `NumPagesForLoader (${loaderPages}) is more than the machine's ${limit} pages`;
  if (s.kernel === 0n || s.kernel >= filePages) return `FirstKernelRestorePage ${hex(s.kernel)} is not a page of the file`;
  if (loaderPages > 0n && (s.boot === 0n || s.boot >= filePages)) return `FirstBootRestorePage ${hex(s.boot)} is not a page of the file`;
  if (loaderPages > 0n && s.boot === s.kernel) return 'the boot and kernel sections start at the same page';
  return undefined;
}

async function walkVariant(file: RandomAccessFile, s: Slots, loaderPages: bigint): Promise<Win8Walk> {
  const blocks = new BlockTable();
  const builder = new PageIndexBuilder();
  const highest = s.highest > 0n && s.highest <= BigInt(MAX_PAGE_NUMBER) ? s.highest : BigInt(MAX_PAGE_NUMBER);
  await walkSection(file, s.boot, loaderPages, blocks, builder, highest);
  await walkSection(file, s.kernel, s.kernelPages, blocks, builder, highest);
  const fields: Record<string, string> = {
    numPagesForLoader: loaderPages.toString(),
    firstBootRestorePage: hex(s.boot),
    firstKernelRestorePage: hex(s.kernel),
    kernelPagesProcessed: s.kernelPages.toString(),
    highestPhysicalPage: hex(s.highest),
  };
  return { variant: s.v, blocks, builder, fields };
}

/**
 * Walk the two restore sections with one build's offsets. `chosenBy` 'LengthSelf': the header named the build,
 * so offsets that do not fit the file are reported, never replaced by another build's. 'guess' (a LengthSelf we do
 * not know): builds whose slots are plausible are tried, those whose HighestPhysicalPage slot also bounds the
 * page counts first; the first plausible build decides — its walk failing (E_TRUNCATED, E_CORRUPT) is the answer,
 * because a later build that "walks" would read the wrong counts and silently lose memory.
 */
export async function walkWin8(file: RandomAccessFile, h: HiberHeader, variants: readonly Win8Variant[], chosenBy: 'LengthSelf' | 'guess'): Promise<Win8Walk> {
  const loaderPages = h.page.u64(NUM_PAGES_FOR_LOADER);
  if (chosenBy === 'LengthSelf') {
    const s = slotsOf(h, variants[0]!);
    const why = implausible(file, s, loaderPages);
    if (why !== undefined) {
      const cut = s.kernel >= file.size / BigInt(PAGE_SIZE) && s.kernel < 1n << 36n && s.kernelPages > 0n;
      throw new MemdumpError(cut ? 'E_TRUNCATED' : 'E_CORRUPT', `hiberfil: ${s.v.name} header (LengthSelf ${hex(h.lengthSelf)}): ${why}${cut ? `; the file (${file.size} bytes) is truncated` : ''}`, {
        details: { layoutVariant: s.v.name, lengthSelf: hex(h.lengthSelf), fileSize: file.size.toString() },
      });
    }
    return walkVariant(file, s, loaderPages);
  }
  const candidates = variants.map((v) => slotsOf(h, v)).filter((s) => implausible(file, s, loaderPages) === undefined);
  const bounded = (s: Slots) => s.highest > 0n && s.highest <= BigInt(MAX_PAGE_NUMBER) && s.kernelPages <= s.highest + 1n;
  candidates.sort((a, b) => Number(bounded(b)) - Number(bounded(a)));
  const pick = candidates[0];
  if (pick) return walkVariant(file, pick, loaderPages);
  // offsets that would be fine in a longer file: the file was cut (a partial copy of hiberfil.sys)
  for (const v of variants) {
    const s = slotsOf(h, v);
    if (s.kernelPages > 0n && s.kernelPages <= BigInt(MAX_PAGES) && s.kernel >= file.size / BigInt(PAGE_SIZE) && s.kernel < 1n << 36n) {
      throw new MemdumpError('E_TRUNCATED', `hiberfil: the kernel restore section starts at page ${hex(s.kernel)} (${v.name} layout), past the end of the file (${file.size} bytes): the file is truncated`, {
        details: { offset: hex(s.kernel * BigInt(PAGE_SIZE)), fileSize: file.size.toString(), layoutVariant: v.name },
      });
    }
  }
  throw new MemdumpError('E_CORRUPT', `hiberfil: no Windows 8/10/11 restore section offsets in the header point inside the file (LengthSelf ${hex(h.lengthSelf)} is not a known build; tried ${variants.map((v) => v.name).join(', ')})`, {
    details: { numPagesForLoader: loaderPages.toString(), lengthSelf: hex(h.lengthSelf), reason: 'no-variant' },
  });
}
