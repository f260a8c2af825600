/**
 * EWF-E01 reading, part 1: the sections. File signatures, section descriptors, the volume, tables and error2, each
 * read and checked on its own; e01-set-index.ts walks a whole segment set with them at open time, e01-image.ts reads
 * the chunks. Layout: libewf's "Expert Witness Compression Format (EWF)" document, checked against ewfacquire
 * 20140813's encase1…encase7, ftk, linen5…7, ewf and smart outputs.
 *
 * Section chain rules (what keeps a hostile file from looping or lying): every descriptor's adler32 is checked;
 * `next` must be this offset (done/next only: the chain ends) or at least one descriptor further, and when the size is
 * set it must equal next − offset (a size that disagrees with next is how "dual" images hide a second image); no section
 * may extend past the end of its file. So each step moves forward by ≥ 76 bytes and a walk is linear in the file size.
 * A table's chunks must lie, ascending, inside its data (the preceding sectors section, or the table section itself in
 * EnCase 1 and SMART layouts), so every chunk's stored size is known from its neighbours and bounded by its file.
 */
import { adler32 } from '../core/adler32.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { ERROR2_HEADER_SIZE, EVF_SIGNATURE, SECTION_DESCRIPTOR_SIZE, TABLE_COMPRESSED, TABLE_HEADER_SIZE, VOLUME, VOLUME_BODY_SIZE } from './e01-layout.js';

const LVF_SIGNATURE = Buffer.from('LVF\x09\x0d\x0a\xff\x00', 'latin1');
const EVF2_SIGNATURE = Buffer.from('EVF2\r\n\x81\x00', 'latin1');
const LEF2_SIGNATURE = Buffer.from('LEF2\r\n\x81\x00', 'latin1');
/** SMART (EWF-S01) and plain EWF volume body: u32 1, chunks, sectors/chunk, bytes/sector, u32 sectors, …, adler32 @90. */
const S01_VOLUME_BODY_SIZE = 94;
/** Largest chunk we decode (ewfacquire's maximum: 32768 sectors of 512 bytes). */
export const MAX_CHUNK_SIZE = 16 << 20;
/** Entries read from one table (EnCase writes ≤ 65534); bounds the allocation a count field can cause. */
const MAX_TABLE_ENTRIES_READ = 1 << 22;
/** Read-error runs reported (the checksum still covers them all). */
export const MAX_ERROR_RUNS = 1 << 18;

export type SignatureKind = 'ewf1' | 'lvf' | 'ewf2' | 'lef2';

export function signatureKind(head: Uint8Array): SignatureKind | undefined {
  if (head.length < 8) return undefined;
  const sig = Buffer.from(head.buffer, head.byteOffset, 8);
  if (sig.equals(EVF_SIGNATURE)) return 'ewf1';
  if (sig.equals(LVF_SIGNATURE)) return 'lvf';
  if (sig.equals(EVF2_SIGNATURE)) return 'ewf2';
  if (sig.equals(LEF2_SIGNATURE)) return 'lef2';
  return undefined;
}

export function corruptAt(path: string, what: string, offset: number, details: Record<string, unknown> = {}): MemdumpError {
  return new MemdumpError('E_CORRUPT', `${path}: ${what} at offset ${hex(offset)}`, { details: { path, offset: hex(offset), ...details } });
}
export function truncatedAt(path: string, what: string, offset: number, details: Record<string, unknown> = {}): MemdumpError {
  return new MemdumpError('E_TRUNCATED', `${path}: ${what} at offset ${hex(offset)}`, { details: { path, offset: hex(offset), ...details } });
}

export interface Section {
  readonly type: string;
  readonly offset: number;
  /** Descriptor included; 76 for a done/next that points at itself. */
  readonly size: number;
  readonly next: number;
}

/** Read and check one section descriptor; offsets are JS numbers (file sizes are checked safe at open). */
export async function readSection(file: RandomAccessFile, offset: number): Promise<Section> {
  const fileSize = Number(file.size);
  if (offset + SECTION_DESCRIPTOR_SIZE > fileSize) {
    throw truncatedAt(file.path, 'segment file ends inside a section descriptor (no done or next section)', offset);
  }
  const d = await file.readExact(BigInt(offset), SECTION_DESCRIPTOR_SIZE, 'EWF section descriptor');
  if (adler32(d, 1, 0, 72) !== d.readUInt32LE(72)) throw corruptAt(file.path, 'EWF section descriptor checksum mismatch', offset);
  const z = d.indexOf(0);
  const type = d.subarray(0, z < 0 || z > 16 ? 16 : z).toString('latin1');
  const next64 = d.readBigUInt64LE(16);
  const size64 = d.readBigUInt64LE(24);
  if (next64 > BigInt(fileSize)) throw truncatedAt(file.path, `EWF ${type} section points past the end of the file (next ${hex(next64)})`, offset);
  if (size64 > BigInt(fileSize)) throw truncatedAt(file.path, `EWF ${type} section is larger than the file (${size64} bytes)`, offset);
  const next = Number(next64);
  let size = Number(size64);
  if (next === offset) {
    if (type !== 'done' && type !== 'next') throw corruptAt(file.path, `EWF ${type} section points at itself`, offset);
    return { type, offset, size: SECTION_DESCRIPTOR_SIZE, next };
  }
  if (next < offset + SECTION_DESCRIPTOR_SIZE) throw corruptAt(file.path, `EWF ${type} section's next offset ${hex(next)} does not move forward`, offset);
  if (size === 0) size = next - offset; // Expert Witness 1.35 leaves the size unset
  if (size < SECTION_DESCRIPTOR_SIZE || offset + size !== next) {
    throw corruptAt(file.path, `EWF ${type} section size ${size} disagrees with its next offset ${hex(next)}`, offset);
  }
  return { type, offset, size, next };
}

/** A section's body (after the descriptor), at most `max` bytes of it. */
export async function body(file: RandomAccessFile, s: Section, max: number): Promise<Buffer> {
  const n = Math.min(s.size - SECTION_DESCRIPTOR_SIZE, max);
  return file.readExact(BigInt(s.offset + SECTION_DESCRIPTOR_SIZE), n, `EWF ${s.type} section`);
}

export interface Volume {
  readonly smart: boolean;
  readonly mediaType: number;
  readonly chunkCount: number;
  readonly sectorsPerChunk: number;
  readonly bytesPerSector: number;
  readonly sectorCount: bigint;
  readonly mediaFlags: number;
  readonly compressionLevel: number;
  readonly errorGranularity: number;
  /** Segment file set identifier (EnCase 5+), hex; all zeros before. */
  readonly guid: string;
}

export function parseVolume(b: Buffer, path: string, at: number, problems: string[]): Volume {
  const smart = b.length < VOLUME_BODY_SIZE;
  const sumAt = smart ? S01_VOLUME_BODY_SIZE - 4 : VOLUME.checksum;
  if (b.length < S01_VOLUME_BODY_SIZE || (smart && b.length !== S01_VOLUME_BODY_SIZE)) throw corruptAt(path, `EWF volume section has ${b.length} bytes (1052 or 94 expected)`, at);
  const stored = b.readUInt32LE(sumAt);
  if (adler32(b, 1, 0, sumAt) !== stored) {
    // Logicube Talon / Forensic Dossier leave it 0 (libewf's document); anything else is damage.
    if (stored !== 0) throw corruptAt(path, 'EWF volume checksum mismatch', at);
    problems.push(`${path}: volume section at ${hex(at)} has no checksum (0)`);
  }
  return {
    smart,
    mediaType: smart ? 0x00 : b[VOLUME.mediaType]!, // S01 has no field; ewfinfo calls it removable
    chunkCount: b.readUInt32LE(VOLUME.chunkCount),
    sectorsPerChunk: b.readUInt32LE(VOLUME.sectorsPerChunk),
    bytesPerSector: b.readUInt32LE(VOLUME.bytesPerSector),
    sectorCount: smart ? BigInt(b.readUInt32LE(VOLUME.sectorCount)) : b.readBigUInt64LE(VOLUME.sectorCount),
    mediaFlags: smart ? 0 : b[VOLUME.mediaFlags]!,
    compressionLevel: smart ? 0 : b[VOLUME.compressionLevel]!,
    errorGranularity: smart ? 0 : b.readUInt32LE(VOLUME.errorGranularity),
    guid: smart ? '' : b.subarray(VOLUME.guid, VOLUME.guid + 16).toString('hex'),
  };
}

/** Where one table's chunks are: enough to reload its entries later and to size every chunk. */
export interface TableRef {
  readonly segment: number;
  /** Descriptor offset of the table (or table2) section whose entries were good at open. */
  readonly offset: number;
  readonly firstChunk: number;
  readonly count: number;
  readonly base: number;
  /** File range holding this table's chunks (a sectors section body, or the tail of an EnCase 1/SMART table). */
  readonly dataStart: number;
  readonly dataEnd: number;
  readonly footer: boolean;
  /** From this entry on, offsets are EnCase 6.7.1's overflowed 32-bit values of uncompressed chunks (count if none). */
  readonly overflowAt: number;
  readonly compressed: number;
}

/**
 * Read a table (or table2) section's header and entries, check both checksums and that the chunk offsets ascend
 * inside [dataStart, dataEnd). `expect` (on reload) must match what open saw.
 */
export async function loadTable(
  file: RandomAccessFile,
  s: Section,
  footer: boolean,
  region: { dataStart: number; dataEnd: number } | 'inside',
  expect?: { count: number; base: number },
): Promise<{ entries: Uint32Array; ref: Omit<TableRef, 'segment' | 'firstChunk'> }> {
  const path = file.path;
  const bodySize = s.size - SECTION_DESCRIPTOR_SIZE;
  if (bodySize < TABLE_HEADER_SIZE) throw corruptAt(path, `EWF ${s.type} section too small for its header`, s.offset);
  const h = await body(file, s, TABLE_HEADER_SIZE);
  if (adler32(h, 1, 0, 20) !== h.readUInt32LE(20)) throw corruptAt(path, `EWF ${s.type} header checksum mismatch`, s.offset);
  const count = h.readUInt32LE(0);
  const base64 = h.readBigUInt64LE(8);
  if (count === 0) throw corruptAt(path, `EWF ${s.type} has no entries`, s.offset);
  if (count > MAX_TABLE_ENTRIES_READ) throw new MemdumpError('E_UNSUPPORTED', `${path}: EWF ${s.type} at ${hex(s.offset)} has ${count} entries (limit ${MAX_TABLE_ENTRIES_READ})`);
  const listBytes = count * 4 + (footer ? 4 : 0);
  if (TABLE_HEADER_SIZE + listBytes > bodySize) throw corruptAt(path, `EWF ${s.type} claims ${count} entries, its section holds fewer`, s.offset);
  if (base64 >= file.size) throw corruptAt(path, `EWF ${s.type} base offset ${hex(base64)} is outside the file`, s.offset);
  const base = Number(base64);
  if (expect && (expect.count !== count || expect.base !== base)) throw corruptAt(path, `EWF ${s.type} changed since the image was opened`, s.offset);
  const listAt = s.offset + SECTION_DESCRIPTOR_SIZE + TABLE_HEADER_SIZE;
  const raw = await file.readExact(BigInt(listAt), listBytes, `EWF ${s.type} entries`);
  if (footer && adler32(raw, 1, 0, count * 4) !== raw.readUInt32LE(count * 4)) throw corruptAt(path, `EWF ${s.type} entries checksum mismatch`, s.offset);
  const { dataStart, dataEnd } = region === 'inside' ? { dataStart: listAt + listBytes, dataEnd: s.offset + s.size } : region;
  const entries = new Uint32Array(count);
  let overflowAt = count;
  let compressed = 0;
  let prev = -1;
  for (let i = 0; i < count; i++) {
    const e = raw.readUInt32LE(i * 4);
    entries[i] = e;
    let rel = e & 0x7fffffff;
    if (overflowAt === count && i > 0 && base + rel <= prev && base + e > prev) overflowAt = i; // sectors data passed 2 GiB
    if (i >= overflowAt) rel = e;
    else if (e & TABLE_COMPRESSED) compressed++;
    const at = base + rel;
    if (at <= prev || at < dataStart || at >= dataEnd) {
      throw corruptAt(path, `EWF ${s.type} entry ${i} (chunk data at ${hex(at)}) is not ascending inside its data ${hex(dataStart)}-${hex(dataEnd)}`, s.offset, { entry: i });
    }
    prev = at;
  }
  return { entries, ref: { offset: s.offset, count, base, dataStart, dataEnd, footer, overflowAt, compressed } };
}

export interface ErrorRun {
  readonly firstSector: string;
  readonly sectors: string;
}

/** An error2 section's read-error runs, checksums enforced; past MAX_ERROR_RUNS only a note in `problems`. */
export async function readError2(file: RandomAccessFile, s: Section, problems: string[]): Promise<ErrorRun[]> {
  const size = s.size - SECTION_DESCRIPTOR_SIZE;
  if (size < ERROR2_HEADER_SIZE) throw corruptAt(file.path, 'EWF error2 section too small', s.offset);
  const h = await body(file, s, ERROR2_HEADER_SIZE);
  if (adler32(h, 1, 0, 516) !== h.readUInt32LE(516)) throw corruptAt(file.path, 'EWF error2 header checksum mismatch', s.offset);
  const count = h.readUInt32LE(0);
  if (count === 0) return [];
  if (ERROR2_HEADER_SIZE + count * 8 + 4 > size) throw corruptAt(file.path, `EWF error2 claims ${count} runs, its section holds fewer`, s.offset);
  const list = await file.readExact(BigInt(s.offset + SECTION_DESCRIPTOR_SIZE + ERROR2_HEADER_SIZE), count * 8 + 4, 'EWF error2 entries');
  if (adler32(list, 1, 0, count * 8) !== list.readUInt32LE(count * 8)) throw corruptAt(file.path, 'EWF error2 entries checksum mismatch', s.offset);
  const runs: ErrorRun[] = [];
  if (count > MAX_ERROR_RUNS) problems.push(`${file.path}: error2 section at ${hex(s.offset)} lists ${count} read-error runs; the first ${MAX_ERROR_RUNS} are reported`);
  for (let i = 0; i < Math.min(count, MAX_ERROR_RUNS); i++) runs.push({ firstSector: String(list.readUInt32LE(i * 8)), sectors: String(list.readUInt32LE(i * 8 + 4)) });
  return runs;
}
