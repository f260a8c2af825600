/**
 * Expert Witness Compression Format (EWF-E01, EnCase 6 style): byte layout shared by the writer (e01-write.ts)
 * and the reader (e01.ts). Facts from libewf's "Expert Witness Compression Format" document and files written by
 * ewfacquire 20140813 on this machine. All integers little-endian; every checksum is Adler-32.
 */

/** "EVF\x09\x0d\x0a\xff\x00": the start of every segment file. */
export const EVF_SIGNATURE = Buffer.from([0x45, 0x56, 0x46, 0x09, 0x0d, 0x0a, 0xff, 0x00]);
/** signature[8], u8 1, u16 segment number, u16 0. */
export const FILE_HEADER_SIZE = 13;
/** type[16] NUL-padded, u64 next (absolute offset in this segment file), u64 size (incl. this descriptor), 40 zero, u32 adler32 of the first 72 bytes. */
export const SECTION_DESCRIPTOR_SIZE = 76;

export const SECTION_TYPES = ['header2', 'header', 'volume', 'disk', 'data', 'sectors', 'table', 'table2', 'next', 'done', 'digest', 'hash', 'error2', 'ltree', 'session'] as const;
export type SectionType = (typeof SECTION_TYPES)[number];

/** EWF-E01 volume (and its copy, data) body: 1052 bytes, adler32 of the first 1048 at 1048. */
export const VOLUME_BODY_SIZE = 1052;
export const VOLUME = {
  mediaType: 0,
  chunkCount: 4,
  sectorsPerChunk: 8,
  bytesPerSector: 12,
  sectorCount: 16, // u64
  mediaFlags: 36,
  compressionLevel: 52,
  errorGranularity: 56,
  guid: 64, // 16 bytes
  checksum: 1048,
} as const;

export const MEDIA_TYPE = { removable: 0x00, fixed: 0x01, optical: 0x03, logical: 0x0e, memory: 0x10 } as const;
/** media flags: bit 0 = image file (always set by EnCase), bit 1 = physical device. */
export const MEDIA_FLAG_IMAGE = 0x01;
export const MEDIA_FLAG_PHYSICAL = 0x02;
/** volume compression level byte: 0 none, 1 good (fast), 2 best. */
export const COMPRESSION_LEVEL = { none: 0, fast: 1, best: 2 } as const;

export const BYTES_PER_SECTOR = 512;
export const SECTORS_PER_CHUNK = 64;
export const CHUNK_SIZE = BYTES_PER_SECTOR * SECTORS_PER_CHUNK;

/** table / table2 body: u32 entry count, 4 pad, u64 base offset, 4 pad, u32 adler32 of those 20 bytes; then entries, then adler32 of the entries. */
export const TABLE_HEADER_SIZE = 24;
/** Entry bit 31: the chunk is zlib-compressed; bits 0–30: offset relative to the table's base offset. */
export const TABLE_COMPRESSED = 0x80000000;
/** libewf rejects more entries than this in one EnCase 6 table. */
export const MAX_TABLE_ENTRIES = 65534;

/** hash body: MD5[16], 16 unknown, u32 adler32 of the first 32 (36 bytes in all). */
export const HASH_BODY_SIZE = 36;
/** digest body: MD5[16], SHA-1[20], 40 padding, u32 adler32 of the first 76 (80 bytes in all). */
export const DIGEST_BODY_SIZE = 80;
/** error2 body: u32 count, 512 pad, u32 adler32; then per run u32 first sector, u32 sector count; then adler32 of the runs. */
export const ERROR2_HEADER_SIZE = 520;
