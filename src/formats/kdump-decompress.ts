/**
 * One kdump page from its stored bytes. page_desc.flags names the compression (none, zlib, LZO1X, snappy, zstd);
 * every decoder is bounded by the block size before it allocates, and each page must come out exactly one block
 * long (QEMU and makedumpfile compress whole pages and store a page plainly when compression would not shrink it).
 */
import { inflateSync } from 'node:zlib';
import { uncompressSync } from 'snappy';
import { corrupt } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import { lzo1xDecompress } from '../core/lzo.js';
import { loadZstd } from '../sinks/zstd-frames.js';
import { DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD } from './kdump-header.js';
import { snappyBlockLength } from './snappy-frame.js';

const KNOWN = DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD;
const ZSTD_MAGIC = 0xfd2fb528;

export type PageCompression = 'none' | 'zlib' | 'lzo' | 'snappy' | 'zstd';

/** The compression a page_desc.flags value names; more than one bit, or an unknown one, is corruption. */
export function compressionOf(flags: number, offset: bigint): PageCompression {
  const c = flags & KNOWN;
  if (flags & ~KNOWN) throw corrupt(`kdump page_desc flags ${hex(flags)} has unknown bits`, offset);
  switch (c) {
    case 0:
      return 'none';
    case DUMP_DH_COMPRESSED_ZLIB:
      return 'zlib';
    case DUMP_DH_COMPRESSED_LZO:
      return 'lzo';
    case DUMP_DH_COMPRESSED_SNAPPY:
      return 'snappy';
    case DUMP_DH_COMPRESSED_ZSTD:
      return 'zstd';
    default:
      throw corrupt(`kdump page_desc flags ${hex(flags)} name more than one compression`, offset);
  }
}

/**
 * Decompress one page. `data` is what page_desc points at; `at` its file offset for messages. Returns exactly
 * `blockSize` bytes or throws E_CORRUPT (E_UNSUPPORTED when zstd's native binding is missing).
 */
export async function decompressPage(kind: PageCompression, data: Buffer, blockSize: number, at: bigint): Promise<Buffer> {
  let out: Buffer;
  try {
    switch (kind) {
      case 'none':
        out = data;
        break;
      case 'zlib':
        out = inflateSync(data, { maxOutputLength: blockSize });
        break;
      case 'lzo':
        out = lzo1xDecompress(data, blockSize);
        break;
      case 'snappy': {
        const len = snappyBlockLength(data);
        if (len === undefined || len.value !== blockSize) throw new Error(`snappy block announces ${len?.value ?? 'no'} bytes`);
        const u = uncompressSync(data, { asBuffer: true });
        out = typeof u === 'string' ? Buffer.from(u) : u;
        break;
      }
      case 'zstd':
        checkZstdFrame(data, blockSize);
        out = await (await loadZstd()).decompress(data);
        break;
    }
  } catch (e) {
    if (e instanceof MemdumpError && e.code !== 'E_CORRUPT') throw e;
    const why = e instanceof MemdumpError ? e.message : e instanceof Error ? e.message : String(e);
    throw corrupt(`kdump ${kind} page does not decompress (${why})`, at, { compression: kind });
  }
  if (out.length !== blockSize) throw corrupt(`kdump ${kind} page holds ${out.length} bytes, block size is ${blockSize}`, at, { compression: kind });
  return out;
}

/**
 * The binding decodes every frame it is given, concatenated frames included, with no output limit. makedumpfile
 * and QEMU write one frame per page (ZSTD_compressCCtx), so anything else is refused before the binding sees it:
 * the block headers are walked whether or not the frame declares its size (a declared size is not enforced
 * across frames), what they can regenerate is bounded, and the frame plus its optional checksum must be all of
 * `b`. A declared content size must be exactly one block.
 */
export function checkZstdFrame(b: Buffer, blockSize: number): void {
  if (b.length < 6 || b.readUInt32LE(0) !== ZSTD_MAGIC) throw new Error('no zstd frame magic');
  const fhd = b[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const checksumBytes = fhd & 0x04 ? 4 : 0;
  if (fhd & 0x08) throw new Error('reserved bit set in the zstd frame header');
  const dictBytes = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
  const at = 5 + (single ? 0 : 1) + dictBytes;
  if (at + fcsBytes > b.length) throw new Error('zstd frame header is cut short');
  if (fcsBytes > 0) {
    const size = fcsBytes === 1 ? b[at]! : fcsBytes === 2 ? b.readUInt16LE(at) + 256 : fcsBytes === 4 ? b.readUInt32LE(at) : b.readBigUInt64LE(at) > BigInt(blockSize) ? -1 : Number(b.readBigUInt64LE(at));
    if (size !== blockSize) throw new Error(`zstd frame declares ${size} bytes`);
  }
  // raw and RLE blocks regenerate their Block_Size, a compressed block at most 128 KiB: a page needs a few blocks
  const limit = Math.max(32 * blockSize, 256 << 10);
  let bound = 0;
  for (let p = at + fcsBytes; ; ) {
    if (p + 3 > b.length) throw new Error('zstd frame ends inside a block header');
    const h = b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16);
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3) throw new Error('reserved zstd block type');
    bound += type === 2 ? 128 << 10 : size;
    if (bound > limit) throw new Error(`zstd frame may expand beyond ${limit} bytes`);
    p += 3 + (type === 1 ? 1 : size);
    if (h & 1) {
      const end = p + checksumBytes;
      if (end !== b.length) throw new Error(end > b.length ? 'zstd frame is cut short' : `${b.length - end} byte(s) follow the zstd frame (one frame per page)`);
      return;
    }
  }
}
