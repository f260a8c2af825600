/**
 * Headers of makedumpfile's compressed dump ("kdump-compressed", diskdump), as makedumpfile's diskdump_mod.h and
 * QEMU's include/sysemu/dump.h lay them out for 64-bit machines. The file is a sequence of block_size blocks:
 *
 *   block 0                      disk_dump_header (464 bytes used)
 *   block 1 .. sub_hdr_size      kdump_sub_header, then vmcoreinfo, ELF notes, eraseinfo (where its offsets say)
 *   next bitmap_blocks blocks    1st bitmap (pages that exist), 2nd bitmap (pages dumped), half each
 *   then                         page_desc[] for every pfn set in the 2nd bitmap, in pfn order, then page data
 */
import { ByteReader, corrupt } from '../core/bytes.js';
import { MemdumpError } from '../core/errors.js';

export const KDUMP_SIGNATURE = 'KDUMP   ';
export const DISK_DUMP_HEADER_SIZE = 464;
export const SUB_HEADER_SIZE = 104;
export const PAGE_DESC_SIZE = 24;
const UTS_LEN = 65;

/** disk_dump_header.status and page_desc.flags bits. */
export const DUMP_DH_COMPRESSED_ZLIB = 0x1;
export const DUMP_DH_COMPRESSED_LZO = 0x2;
export const DUMP_DH_COMPRESSED_SNAPPY = 0x4;
export const DUMP_DH_COMPRESSED_INCOMPLETE = 0x8;
export const DUMP_DH_EXCLUDED_VMEMMAP = 0x10;
export const DUMP_DH_COMPRESSED_ZSTD = 0x20;

/** Pages are at most 256 KiB (real machines use 4, 16 or 64 KiB; 256 KiB exists on some ppc44x/hexagon kernels), and
 * keeping the cap there means a big-endian block size never reads as a plausible little-endian one. */
export const MIN_BLOCK_SIZE = 512;
export const MAX_BLOCK_SIZE = 1 << 18;
/** 2^40 pages: 4 PiB of 4 KiB pages; beyond it a pfn would not stay an exact double. */
export const MAX_MAPNR = 1n << 40n;

export interface Utsname {
  sysname: string;
  nodename: string;
  release: string;
  version: string;
  machine: string;
  domainname: string;
}

export interface DiskDumpHeader {
  signature: string;
  headerVersion: number;
  utsname: Utsname;
  /** Seconds and microseconds since the epoch (struct timeval). */
  timestamp: { sec: bigint; usec: bigint };
  status: number;
  blockSize: number;
  subHdrSize: number;
  bitmapBlocks: number;
  maxMapnr32: number;
  totalRamBlocks: number;
  deviceBlocks: number;
  writtenBlocks: number;
  currentCpu: number;
  nrCpus: number;
}

export interface KdumpSubHeader {
  physBase: bigint;
  dumpLevel: number;
  split: number;
  startPfn: bigint;
  endPfn: bigint;
  offsetVmcoreinfo: bigint;
  sizeVmcoreinfo: bigint;
  offsetNote: bigint;
  sizeNote: bigint;
  offsetEraseinfo: bigint;
  sizeEraseinfo: bigint;
  startPfn64: bigint;
  endPfn64: bigint;
  maxMapnr64: bigint;
}

export function parseDiskDumpHeader(buf: Buffer): DiskDumpHeader {
  const r = new ByteReader(buf, 0n, 'kdump header');
  const signature = r.bytes(0, 8).toString('latin1');
  if (signature !== KDUMP_SIGNATURE) throw corrupt(`kdump signature ${JSON.stringify(signature)}, expected "KDUMP   "`, 0n);
  const uts = (i: number): string => r.cstr(12 + i * UTS_LEN, UTS_LEN);
  // utsname ends at 402; the timeval that follows is 8-byte aligned, so 6 bytes of padding
  const h: DiskDumpHeader = {
    signature,
    headerVersion: r.i32(8),
    utsname: { sysname: uts(0), nodename: uts(1), release: uts(2), version: uts(3), machine: uts(4), domainname: uts(5) },
    timestamp: { sec: r.u64(408), usec: r.u64(416) },
    status: r.u32(424),
    blockSize: r.i32(428),
    subHdrSize: r.i32(432),
    bitmapBlocks: r.u32(436),
    maxMapnr32: r.u32(440),
    totalRamBlocks: r.u32(444),
    deviceBlocks: r.u32(448),
    writtenBlocks: r.u32(452),
    currentCpu: r.u32(456),
    nrCpus: r.i32(460),
  };
  if (h.headerVersion < 0) throw corrupt(`kdump header version ${h.headerVersion}`, 8n);
  const bs = h.blockSize;
  const be = buf.length >= 432 ? buf.readInt32BE(428) : 0;
  if ((bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE) && be >= MIN_BLOCK_SIZE && be <= MAX_BLOCK_SIZE && (be & (be - 1)) === 0) {
    // makedumpfile writes the header in the dumped machine's byte order: s390x and big-endian ppc64
    throw new MemdumpError('E_UNSUPPORTED', `big-endian kdump (block size ${be} read big-endian, machine ${h.utsname.machine || 'unknown'}): memdump reads little-endian dumps only`);
  }
  const bad64 = !plausibleBlockSize(bs) || h.subHdrSize < 0 || h.bitmapBlocks === 0 || h.bitmapBlocks % 2 !== 0;
  if (bad64 && looks32Bit(buf)) {
    // QEMU writes DiskDumpHeader32 for 32-bit guests (ARM, i386): a 4-byte timeval shifts every field after it
    throw new MemdumpError('E_UNSUPPORTED', `32-bit kdump header (block size ${buf.readInt32LE(416)} at offset 416, machine ${h.utsname.machine || 'unknown'}): memdump reads 64-bit kdump headers only`);
  }
  if (!plausibleBlockSize(bs)) {
    throw corrupt(`kdump block size ${bs} is not a power of two between ${MIN_BLOCK_SIZE} and ${MAX_BLOCK_SIZE}`, 428n);
  }
  if (h.subHdrSize < 0) throw corrupt(`kdump sub-header size ${h.subHdrSize} blocks`, 432n);
  if (h.bitmapBlocks === 0 || h.bitmapBlocks % 2 !== 0) throw corrupt(`kdump bitmap of ${h.bitmapBlocks} blocks cannot hold two equal bitmaps`, 436n);
  return h;
}

function plausibleBlockSize(bs: number): boolean {
  return bs >= MIN_BLOCK_SIZE && bs <= MAX_BLOCK_SIZE && (bs & (bs - 1)) === 0;
}

/** DiskDumpHeader32: block_size at 416, sub_hdr_size 420, bitmap_blocks 424, max_mapnr 428, all consistent. */
function looks32Bit(buf: Buffer): boolean {
  if (buf.length < 432) return false;
  const bs = buf.readInt32LE(416);
  const sub = buf.readInt32LE(420);
  const bitmapBlocks = buf.readUInt32LE(424);
  const maxMapnr = buf.readUInt32LE(428);
  return plausibleBlockSize(bs) && sub >= 0 && sub < 1 << 20 && bitmapBlocks > 0 && bitmapBlocks % 2 === 0 && maxMapnr <= (bitmapBlocks * bs * 8) / 2;
}

/** The sub-header grew over versions: fields a version does not have read as zero. */
export function parseSubHeader(buf: Buffer, version: number, offset: bigint): KdumpSubHeader {
  const r = new ByteReader(buf, offset, 'kdump sub-header');
  const v = (min: number, off: number): bigint => (version >= min ? r.u64(off) : 0n);
  return {
    physBase: r.u64(0),
    dumpLevel: r.i32(8),
    split: version >= 2 ? r.i32(12) : 0,
    startPfn: v(2, 16),
    endPfn: v(2, 24),
    offsetVmcoreinfo: v(3, 32),
    sizeVmcoreinfo: v(3, 40),
    offsetNote: v(4, 48),
    sizeNote: v(4, 56),
    offsetEraseinfo: v(5, 64),
    sizeEraseinfo: v(5, 72),
    startPfn64: v(6, 80),
    endPfn64: v(6, 88),
    maxMapnr64: v(6, 96),
  };
}

export interface KdumpLayout {
  blockSize: number;
  /** Pages the bitmaps describe (pfn 0 .. maxMapnr-1). */
  maxMapnr: bigint;
  /** File offsets of the 2nd bitmap and the page_desc array, and one bitmap's length in bytes. */
  bitmap2Offset: bigint;
  bitmapBytes: bigint;
  descOffset: bigint;
  /** Dumped pfns lie in [startPfn, endPfn) (a split dump holds one slice); otherwise 0 .. maxMapnr. */
  startPfn: bigint;
  endPfn: bigint;
}

/** Where everything lies, checked against itself and the file size (the logical size for a flattened file). */
export function layoutOf(h: DiskDumpHeader, sub: KdumpSubHeader | undefined, fileSize: bigint): KdumpLayout {
  const bs = BigInt(h.blockSize);
  const maxMapnr = h.headerVersion >= 6 && sub && sub.maxMapnr64 !== 0n ? sub.maxMapnr64 : BigInt(h.maxMapnr32);
  if (maxMapnr > MAX_MAPNR) throw new MemdumpError('E_TOO_LARGE', `kdump describes ${maxMapnr} pages (limit ${MAX_MAPNR})`);
  const bitmapOffset = (1n + BigInt(h.subHdrSize)) * bs;
  const bitmapBytes = (BigInt(h.bitmapBlocks) * bs) / 2n;
  if (maxMapnr > bitmapBytes * 8n) throw corrupt(`kdump bitmap of ${bitmapBytes} bytes cannot describe ${maxMapnr} pages`, 436n);
  const descOffset = bitmapOffset + 2n * bitmapBytes;
  let startPfn = 0n;
  let endPfn = maxMapnr;
  if (sub && sub.split !== 0) {
    startPfn = h.headerVersion >= 6 && sub.endPfn64 !== 0n ? sub.startPfn64 : sub.startPfn;
    endPfn = h.headerVersion >= 6 && sub.endPfn64 !== 0n ? sub.endPfn64 : sub.endPfn;
    if (startPfn > endPfn || endPfn > maxMapnr) throw corrupt(`kdump split slice ${startPfn}-${endPfn} lies outside ${maxMapnr} pages`, bs + 16n);
  }
  // only the 2nd bitmap's bytes up to the slice end are read: makedumpfile --split writes an empty slice's
  // bitmap unpadded and nothing after it
  const need = bitmapOffset + bitmapBytes + (endPfn + 7n) / 8n;
  if (need > fileSize) throw new MemdumpError('E_TRUNCATED', `kdump 2nd bitmap ends at ${need}, the file holds ${fileSize} bytes`, { details: { need: need.toString(), have: fileSize.toString() } });
  return { blockSize: h.blockSize, maxMapnr, bitmap2Offset: bitmapOffset + bitmapBytes, bitmapBytes, descOffset, startPfn, endPfn };
}
