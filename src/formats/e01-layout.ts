/**
 * Expert Witness Compression Format (EWF-E01, EnCase 6 style): byte layout shared by the writer (e01-write.ts)
 * and the reader (e01.ts). Facts from libewf's "Expert Witness Compression Format" document and files written by
 * ewfacquire 20140813 on this machine. All integers little-endian; every checksum is Adler-32.
 */

import { deflateSync } from 'node:zlib';
import { adler32 } from '../core/adler32.js';
import { MemdumpError } from '../core/errors.js';

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

/** ewfinfo shows 0x10 as "memory (RAM)" (checked); ewfacquire 20140813 itself writes 0x01 for `-m memory`. */
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

// ---------------------------------------------------------------------------------------------------------------
// Encoders (used by e01-write.ts). Layouts checked against ewfacquire 20140813 output on this machine.


/** Every segment file starts with these 13 bytes. */
export function encodeFileHeader(segment: number): Buffer {
  if (!Number.isInteger(segment) || segment < 1 || segment > 0xffff) throw new MemdumpError('E_INTERNAL', `E01 segment number ${segment} out of range`);
  const b = Buffer.alloc(FILE_HEADER_SIZE);
  EVF_SIGNATURE.copy(b, 0);
  b[8] = 1;
  b.writeUInt16LE(segment, 9);
  return b;
}

/** `next` is absolute within the segment file; `size` counts this descriptor (0 for done/next, as EnCase writes). */
export function encodeSectionDescriptor(type: SectionType, next: bigint, size: bigint): Buffer {
  const b = Buffer.alloc(SECTION_DESCRIPTOR_SIZE);
  b.write(type, 0, 16, 'latin1');
  b.writeBigUInt64LE(next, 16);
  b.writeBigUInt64LE(size, 24);
  b.writeUInt32LE(adler32(b, 1, 0, 72), 72);
  return b;
}

/** A whole section placed at `offset` of its segment file: descriptor, then body; next points right after it. */
export function encodeSection(type: SectionType, offset: bigint, body: Buffer): Buffer {
  const size = BigInt(SECTION_DESCRIPTOR_SIZE + body.length);
  return Buffer.concat([encodeSectionDescriptor(type, offset + size, size), body]);
}

/** `done` (end of the set) and `next` (end of a segment that is not the last) point at themselves with size 0. */
export function encodeLastSection(type: 'done' | 'next', offset: bigint): Buffer {
  return encodeSectionDescriptor(type, offset, 0n);
}

export interface VolumeFields {
  mediaType: number;
  chunkCount: number;
  sectorCount: bigint;
  mediaFlags: number;
  compressionLevel: number;
  /** 16 bytes identifying the segment set. */
  guid: Buffer;
  sectorsPerChunk?: number;
  bytesPerSector?: number;
}

/** Body of `volume` and of its copy `data` (1052 bytes). */
export function encodeVolumeBody(v: VolumeFields): Buffer {
  if (v.guid.length !== 16) throw new MemdumpError('E_INTERNAL', 'E01 volume GUID must be 16 bytes');
  if (!Number.isInteger(v.chunkCount) || v.chunkCount < 0 || v.chunkCount > 0xffffffff) {
    throw new MemdumpError('E_TOO_LARGE', `E01 holds at most 2^32-1 chunks; this media needs ${v.chunkCount}`);
  }
  const spc = v.sectorsPerChunk ?? SECTORS_PER_CHUNK;
  const b = Buffer.alloc(VOLUME_BODY_SIZE);
  b[VOLUME.mediaType] = v.mediaType;
  b.writeUInt32LE(v.chunkCount, VOLUME.chunkCount);
  b.writeUInt32LE(spc, VOLUME.sectorsPerChunk);
  b.writeUInt32LE(v.bytesPerSector ?? BYTES_PER_SECTOR, VOLUME.bytesPerSector);
  b.writeBigUInt64LE(v.sectorCount, VOLUME.sectorCount);
  b[VOLUME.mediaFlags] = v.mediaFlags;
  b[VOLUME.compressionLevel] = v.compressionLevel;
  // ewfacquire sets the error granularity to the chunk's sector count
  b.writeUInt32LE(spc, VOLUME.errorGranularity);
  v.guid.copy(b, VOLUME.guid);
  b.writeUInt32LE(adler32(b, 1, 0, VOLUME.checksum), VOLUME.checksum);
  return b;
}

/**
 * Body of `table` and `table2`: header (count, base offset, checksum), the entries, their checksum. Each entry is
 * a chunk's offset relative to `base` (the offset of the preceding sectors section), bit 31 set if compressed.
 */
export function encodeTableBody(base: bigint, entries: Uint32Array): Buffer {
  if (entries.length === 0 || entries.length > MAX_TABLE_ENTRIES) throw new MemdumpError('E_INTERNAL', `E01 table with ${entries.length} entries`);
  const b = Buffer.alloc(TABLE_HEADER_SIZE + 4 * entries.length + 4);
  b.writeUInt32LE(entries.length, 0);
  b.writeBigUInt64LE(base, 8);
  b.writeUInt32LE(adler32(b, 1, 0, 20), 20);
  for (let i = 0; i < entries.length; i++) b.writeUInt32LE(entries[i]!, TABLE_HEADER_SIZE + 4 * i);
  const end = TABLE_HEADER_SIZE + 4 * entries.length;
  b.writeUInt32LE(adler32(b, 1, TABLE_HEADER_SIZE, end), end);
  return b;
}

/** hash body: MD5 of the media, 16 bytes left zero (as ewfacquire does), checksum. */
export function encodeHashBody(md5: Buffer): Buffer {
  if (md5.length !== 16) throw new MemdumpError('E_INTERNAL', 'E01 hash section needs a 16-byte MD5');
  const b = Buffer.alloc(HASH_BODY_SIZE);
  md5.copy(b, 0);
  b.writeUInt32LE(adler32(b, 1, 0, 32), 32);
  return b;
}

/** digest body: MD5, SHA-1, 40 zero bytes, checksum. */
export function encodeDigestBody(md5: Buffer, sha1: Buffer): Buffer {
  if (md5.length !== 16 || sha1.length !== 20) throw new MemdumpError('E_INTERNAL', 'E01 digest section needs MD5 (16 bytes) and SHA-1 (20 bytes)');
  const b = Buffer.alloc(DIGEST_BODY_SIZE);
  md5.copy(b, 0);
  sha1.copy(b, 16);
  b.writeUInt32LE(adler32(b, 1, 0, 76), 76);
  return b;
}

export interface SectorRun {
  firstSector: bigint;
  sectors: bigint;
}

/** error2 body: run count, 512 zero bytes, checksum; then (u32 first sector, u32 count) per run; checksum of the runs. */
export function encodeError2Body(runs: readonly SectorRun[]): Buffer {
  const b = Buffer.alloc(ERROR2_HEADER_SIZE + 8 * runs.length + 4);
  b.writeUInt32LE(runs.length, 0);
  b.writeUInt32LE(adler32(b, 1, 0, 516), 516);
  runs.forEach((r, i) => {
    // error2 has 32-bit sector numbers: runs past 2 TiB of media cannot be recorded, and must not be recorded wrongly
    if (r.firstSector < 0n || r.sectors <= 0n || r.firstSector > 0xffffffffn || r.sectors > 0xffffffffn) {
      throw new MemdumpError('E_UNSUPPORTED', `E01 error2 cannot record sectors ${r.firstSector}+${r.sectors} (32-bit fields)`);
    }
    b.writeUInt32LE(Number(r.firstSector), ERROR2_HEADER_SIZE + 8 * i);
    b.writeUInt32LE(Number(r.sectors), ERROR2_HEADER_SIZE + 8 * i + 4);
  });
  const end = ERROR2_HEADER_SIZE + 8 * runs.length;
  b.writeUInt32LE(adler32(b, 1, ERROR2_HEADER_SIZE, end), end);
  return b;
}

/** The case fields stored in header2 and header. */
export interface HeaderFields {
  description: string;
  caseNumber: string;
  evidenceNumber: string;
  examiner: string;
  notes: string;
  /** Software version ("av"); EnCase itself shows at most 11 characters. */
  version: string;
  /** Acquiring platform ("ov"). */
  os: string;
  acquired: Date;
  system: Date;
}

/** Tabs and line breaks separate the values: a value must not contain them. */
function clean(s: string): string {
  return s.replace(/[\t\r\n]/g, ' ');
}

/**
 * header2 text (EnCase 6, as ewfacquire writes it): 3 categories (main, srce, sub), "\n" line ends; dates are POSIX
 * seconds. The srce/sub rows carry ewfacquire's empty defaults.
 */
export function header2Text(f: HeaderFields): string {
  const secs = (d: Date) => String(Math.floor(d.getTime() / 1000));
  const main = [f.description, f.caseNumber, f.evidenceNumber, f.examiner, f.notes, '', '', f.version, f.os, secs(f.acquired), secs(f.system), '0', ''].map(clean);
  return (
    '3\nmain\na\tc\tn\te\tt\tmd\tsn\tav\tov\tm\tu\tp\tdc\n' +
    main.join('\t') +
    '\n\nsrce\n0\t1\np\tn\tid\tev\ttb\tlo\tpo\tah\tgu\taq\n0\t0\n\t\t\t\t\t-1\t-1\t\t\t\n\n' +
    'sub\n0\t1\np\tn\tid\tnu\tco\tgu\n0\t0\n\t\t\t\t1\t\n\n'
  );
}

/** header text (EnCase 4–7): 1 category, "\r\n" line ends, dates as "YYYY M D h m s" in local time, ASCII only. */
export function headerText(f: HeaderFields): string {
  const date = (d: Date) => [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()].join(' ');
  const ascii = (s: string) => clean(s).replace(/[^\x20-\x7e]/g, '?');
  const main = [f.caseNumber, f.evidenceNumber, f.description, f.examiner, f.notes, f.version, f.os, date(f.acquired), date(f.system), '0'].map(ascii);
  return '1\r\nmain\r\nc\tn\ta\te\tt\tav\tov\tm\tu\tp\r\n' + main.join('\t') + '\r\n\r\n';
}

/** header2 body: zlib stream of the text in UTF-16LE with a byte order mark. */
export function encodeHeader2Body(text: string): Buffer {
  return deflateSync(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
}

/** header body: zlib stream of the ASCII text. */
export function encodeHeaderBody(text: string): Buffer {
  return deflateSync(Buffer.from(text, 'latin1'));
}

/**
 * libewf's extension for segment n of a set whose first file is `<letter>01` (E01, e01, S01, …): the letter and
 * 01…99, then the letter and AA…ZZ, then the next letters up to Z (segment 100 is EAA; the last is ZZZ). The
 * letter's case is kept. undefined for n < 1 or past Z. The writer, the segment-set sink and the reader all name
 * segments through this one function.
 */
export function segmentExtensionOf(letter: string, n: number): string | undefined {
  if (!Number.isInteger(n) || n < 1) return undefined;
  if (n <= 99) return letter + String(n).padStart(2, '0');
  const { a, last } = alphabet(letter);
  const k = n - 100;
  const firstCode = letter.charCodeAt(0) + Math.floor(k / 676);
  if (firstCode > last) return undefined;
  return String.fromCharCode(firstCode, a + (Math.floor(k / 26) % 26), a + (k % 26));
}

/** The inverse of segmentExtensionOf: which segment `ext` names, or undefined if the scheme never produces it. */
export function segmentNumberOf(letter: string, ext: string): number | undefined {
  if (ext.length !== 3) return undefined;
  if (ext[0] === letter && /^[0-9]{2}$/.test(ext.slice(1))) {
    const n = Number(ext.slice(1));
    return n >= 1 ? n : undefined;
  }
  const { a, last } = alphabet(letter);
  const [c0, c1, c2] = [0, 1, 2].map((i) => ext.charCodeAt(i)) as [number, number, number];
  const first = c0 - letter.charCodeAt(0);
  if (first < 0 || c0 > last || c1 < a || c1 > a + 25 || c2 < a || c2 > a + 25) return undefined;
  return 100 + first * 676 + (c1 - a) * 26 + (c2 - a);
}

function alphabet(letter: string): { a: number; last: number } {
  const upper = letter === letter.toUpperCase();
  return upper ? { a: 65, last: 90 } : { a: 97, last: 122 };
}

/** Segment file extension for segment n of an uppercase .E01 set: E01…E99, then EAA…EAZ, EBA…ZZZ. */
export function segmentExtension(n: number): string {
  if (!Number.isInteger(n) || n < 1) throw new MemdumpError('E_INTERNAL', `E01 segment number ${n}`);
  const ext = segmentExtensionOf('E', n);
  if (ext === undefined) throw new MemdumpError('E_TOO_LARGE', `E01 segment ${n} is past .ZZZ: choose a larger segment size`);
  return ext;
}

/** Highest segment number with a name (…ZZZ). */
export const MAX_SEGMENTS = 99 + 22 * 676;
