/**
 * Random access to the pages of a hibernation file: the index says which block (Xpress block or compression set)
 * and which slot hold a page; stored blocks are read in place, compressed ones are decompressed whole (≤ 64 KiB)
 * the first time a page of theirs is read and kept in a small LRU, so memory does not grow with the file.
 */
import { MemdumpError, hex, isMemdumpError } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { Lru } from '../core/lru.js';
import type { Range } from '../core/ranges.js';
import { xpressDecompress } from '../core/xpress.js';
import { xpressHuffmanDecompress } from '../core/xpress-huffman.js';
import { PAGE_SIZE } from './hiberfil-header.js';
import { type BlockTable, KIND_HUFFMAN, KIND_NAMES, KIND_STORED, MAX_PAGE_NUMBER, type PageIndex } from './hiberfil-index.js';
import type { MemoryImage } from './types.js';
import { checkReadLength } from './read-length.js';

/** 64 decompressed blocks of at most 64 KiB: 4 MiB whatever the file size. */
const CACHE_BYTES = 64 * 16 * PAGE_SIZE;

export class HiberImage implements MemoryImage {
  readonly format = 'hiberfil' as const;
  readonly notes = [];
  readonly runs: readonly Range[];
  private readonly cache = new Lru<Buffer>(CACHE_BYTES);

  constructor(
    private readonly file: RandomAccessFile,
    private readonly index: PageIndex,
    private readonly blocks: BlockTable,
    readonly details: Record<string, unknown>,
  ) {
    this.runs = index.runs;
  }

  /** File offset of a page stored uncompressed; undefined for compressed pages. */
  fileOffsetOf(addr: bigint): bigint | undefined {
    const page = addr >> 12n;
    if (page > BigInt(MAX_PAGE_NUMBER)) return undefined;
    const i = this.index.find(Number(page));
    if (i < 0) return undefined;
    const b = this.index.block[i]!;
    if (this.blocks.kind[b] !== KIND_STORED) return undefined;
    const slot = this.index.slot[i]! + (Number(page) - this.index.first[i]!);
    return BigInt(this.blocks.offset[b]!) + BigInt(slot * PAGE_SIZE) + (addr & 0xfffn);
  }

  async read(addr: bigint, length: number): Promise<Buffer> {
    checkReadLength('hiberfil', length);
    const idx = this.index;
    // the whole span must lie in runs before `length` bytes are allocated
    for (let a = addr, h = -1; a < addr + BigInt(length); ) {
      if (a < 0n || a >> 12n > BigInt(MAX_PAGE_NUMBER)) throw idx.notInRuns(a);
      h = idx.find(Number(a >> 12n), h);
      if (h < 0) throw idx.notInRuns(a);
      a = BigInt(idx.first[h]! + idx.count[h]!) * BigInt(PAGE_SIZE);
    }
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    let hint = -1;
    while (done < length) {
      const a = addr + BigInt(done);
      const pageBig = a >> 12n;
      if (pageBig > BigInt(MAX_PAGE_NUMBER)) throw idx.notInRuns(a);
      const within = Number(a & 0xfffn);
      const page = Number(pageBig);
      const i = idx.find(page, hint);
      if (i < 0) throw idx.notInRuns(a);
      const b = idx.block[i]!;
      const s = idx.slot[i]! + (page - idx.first[i]!);
      // the rest of this index run sits in the following slots of the same block
      const n = Math.min((idx.first[i]! + idx.count[i]! - page) * PAGE_SIZE - within, length - done);
      const from = s * PAGE_SIZE + within;
      if (this.blocks.kind[b] === KIND_STORED) {
        const at = BigInt(this.blocks.offset[b]!) + BigInt(from);
        (await this.file.readExact(at, n, 'hiberfil stored pages')).copy(out, done);
      } else {
        (await this.decoded(b)).copy(out, done, from, from + n);
      }
      done += n;
      hint = i;
    }
    return out;
  }

  private async decoded(b: number): Promise<Buffer> {
    const hit = this.cache.get(b);
    if (hit) return hit;
    const offset = BigInt(this.blocks.offset[b]!);
    const size = this.blocks.size[b]!;
    const want = this.blocks.pages[b]! * PAGE_SIZE;
    const kind = this.blocks.kind[b]!;
    const input = await this.file.readExact(offset, size, 'hiberfil compressed block');
    let data: Buffer;
    try {
      data = kind === KIND_HUFFMAN ? xpressHuffmanDecompress(input, want) : xpressDecompress(input, want);
    } catch (e) {
      if (isMemdumpError(e) && e.code !== 'E_CORRUPT' && e.code !== 'E_TRUNCATED') throw e;
      throw new MemdumpError('E_CORRUPT', `hiberfil: ${KIND_NAMES[kind]} block of ${size} bytes at offset ${hex(offset)} does not decompress: ${e instanceof Error ? e.message : String(e)}`, {
        details: { offset: hex(offset), size, kind: KIND_NAMES[kind], ...(isMemdumpError(e) ? {} : { decoderFault: true }) },
        cause: e,
      });
    }
    if (data.length !== want) {
      throw new MemdumpError('E_CORRUPT', `hiberfil: block at offset ${hex(offset)} decompresses to ${data.length} bytes, its pages need ${want}`, { details: { offset: hex(offset), size } });
    }
    this.cache.put(b, data, data.length);
    return data;
  }

  close(): Promise<void> {
    this.cache.clear();
    return this.file.close();
  }
}
