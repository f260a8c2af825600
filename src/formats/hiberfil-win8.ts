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
import { MemdumpError, hex, isMemdumpError } from '../core/errors.js';
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

/** Walk `pageCount` pages of sets from `startPage`; returns where the section's last set ends. */
export async function walkSection(file: RandomAccessFile, startPage: bigint, pageCount: bigint, blocks: BlockTable, out: PageIndexBuilder): Promise<bigint> {
  const win = new ReadWindow(file);
  let pos = startPage * BigInt(PAGE_SIZE);
  let done = 0n;
  while (done < pageCount) {
    const h = parseSetHeader((await win.bytes(pos, 4, 'compression set header')).readUInt32LE(0), pos);
    const desc = await win.bytes(pos + 4n, h.descriptors * 8, 'compression set page runs');
    const dataAt = pos + 4n + BigInt(h.descriptors * 8);
    let pages = 0;
    const runs: [number, number][] = [];
    for (let i = 0; i < h.descriptors; i++) {
      const d = desc.readBigUInt64LE(i * 8);
      const n = Number(d & 0xfn) + 1;
      const first = d >> 4n;
      if (first + BigInt(n) > BigInt(MAX_PAGE_NUMBER)) throw corrupt(`hiberfil: compression set page ${hex(first)} is beyond any physical address`, pos + 4n + BigInt(i * 8));
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
    for (const [first, n] of runs) for (let k = 0; k < n; k++) out.add(first + k, block, slot++);
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

function plausible(file: RandomAccessFile, first: bigint, count: bigint): boolean {
  return count === 0n || (first > 0n && first < file.size / BigInt(PAGE_SIZE) && count <= BigInt(MAX_PAGES));
}

/**
 * Try each build's offsets (newest first) and keep the first whose two sections walk cleanly. The header has no
 * build number, so this is how the build is told; a walk that fails with a coded error moves on to the next build,
 * and if every build fails the first (newest) build's error is reported.
 */
export async function walkWin8(file: RandomAccessFile, h: HiberHeader): Promise<Win8Walk> {
  const r = h.page;
  const loaderPages = r.u64(NUM_PAGES_FOR_LOADER);
  let firstError: unknown;
  for (const v of WIN8_VARIANTS) {
    const boot = r.u64(v.firstBootRestorePage);
    const kernel = r.u64(v.firstKernelRestorePage);
    const kernelPages = r.u64(v.kernelPagesProcessed);
    // every hibernation has kernel pages; a build whose KernelPagesProcessed slot reads 0 is the wrong build
    if (kernelPages === 0n || !plausible(file, boot, loaderPages) || !plausible(file, kernel, kernelPages)) continue;
    if (loaderPages > 0n && kernelPages > 0n && boot === kernel) continue;
    const blocks = new BlockTable();
    const builder = new PageIndexBuilder();
    try {
      await walkSection(file, boot, loaderPages, blocks, builder);
      await walkSection(file, kernel, kernelPages, blocks, builder);
    } catch (e) {
      if (!isMemdumpError(e)) throw e;
      firstError ??= e;
      continue;
    }
    const fields = {
      numPagesForLoader: loaderPages.toString(),
      firstBootRestorePage: hex(boot),
      firstKernelRestorePage: hex(kernel),
      kernelPagesProcessed: kernelPages.toString(),
    };
    return { variant: v, blocks, builder, fields };
  }
  if (firstError) throw firstError;
  // offsets that would be fine in a longer file: the file was cut (a partial copy of hiberfil.sys)
  for (const v of WIN8_VARIANTS) {
    const kernel = r.u64(v.firstKernelRestorePage);
    const kernelPages = r.u64(v.kernelPagesProcessed);
    if (kernelPages > 0n && kernelPages <= BigInt(MAX_PAGES) && kernel >= file.size / BigInt(PAGE_SIZE) && kernel < 1n << 36n) {
      throw new MemdumpError('E_TRUNCATED', `hiberfil: the kernel restore section starts at page ${hex(kernel)} (${v.name} layout), past the end of the file (${file.size} bytes): the file is truncated`, {
        details: { offset: hex(kernel * BigInt(PAGE_SIZE)), fileSize: file.size.toString(), layoutVariant: v.name },
      });
    }
  }
  throw new MemdumpError('E_CORRUPT', `hiberfil: no Windows 8/10/11 restore section offsets in the header point inside the file (tried ${WIN8_VARIANTS.map((v) => v.name).join(', ')})`, {
    details: { numPagesForLoader: loaderPages.toString(), reason: 'no-variant' },
  });
}
