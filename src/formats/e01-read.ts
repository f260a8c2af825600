/**
 * EWF-E01 reading, part 1: everything decided at open time. Segment file names, section descriptors, the volume,
 * tables, header/header2, hash/digest and error2 sections, and the walk over a whole segment set that turns them
 * into an index (e01.ts does the chunk reads). Layout: libewf's "Expert Witness Compression Format (EWF)" document,
 * checked against ewfacquire 20140813's encase1…encase7, ftk, linen5…7, ewf and smart outputs.
 *
 * Section chain rules (what keeps a hostile file from looping or lying): every descriptor's adler32 is checked;
 * `next` must be this offset (done/next only: the chain ends) or at least one descriptor further, and when the size is
 * set it must equal next − offset (a size that disagrees with next is how "dual" images hide a second image); no section
 * may extend past the end of its file. So each step moves forward by ≥ 76 bytes and a walk is linear in the file size.
 * A table's chunks must lie, ascending, inside its data (the preceding sectors section, or the table section itself in
 * EnCase 1 and SMART layouts), so every chunk's stored size is known from its neighbours and bounded by its file.
 *
 * Strict where bytes or their proof are concerned (descriptors, volume, data, tables, hash, digest, error2: E_CORRUPT);
 * tolerant of one damaged copy where the format keeps two (table → table2, header2 → header2/header), with a note in
 * `problems`.
 */
import { inflateSync } from 'node:zlib';
import { adler32 } from '../core/adler32.js';
import { MemdumpError, hex } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { DIGEST_BODY_SIZE, ERROR2_HEADER_SIZE, EVF_SIGNATURE, FILE_HEADER_SIZE, HASH_BODY_SIZE, SECTION_DESCRIPTOR_SIZE, TABLE_COMPRESSED, TABLE_HEADER_SIZE, VOLUME, VOLUME_BODY_SIZE } from './e01-layout.js';

const LVF_SIGNATURE = Buffer.from('LVF\x09\x0d\x0a\xff\x00', 'latin1');
const EVF2_SIGNATURE = Buffer.from('EVF2\r\n\x81\x00', 'latin1');
const LEF2_SIGNATURE = Buffer.from('LEF2\r\n\x81\x00', 'latin1');
/** SMART (EWF-S01) and plain EWF volume body: u32 1, chunks, sectors/chunk, bytes/sector, u32 sectors, …, adler32 @90. */
const S01_VOLUME_BODY_SIZE = 94;
/** Largest chunk we decode (ewfacquire's maximum: 32768 sectors of 512 bytes). */
export const MAX_CHUNK_SIZE = 16 << 20;
/** Entries read from one table (EnCase writes ≤ 65534); bounds the allocation a count field can cause. */
const MAX_TABLE_ENTRIES_READ = 1 << 22;
const MAX_TABLES = 1 << 20;
/** Read-error runs reported (the checksum still covers them all). */
const MAX_ERROR_RUNS = 1 << 18;
/** Header text: compressed and inflated size limits (EnCase itself caps fields at a few KiB). */
const MAX_HEADER_BYTES = 16 << 20;

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

function corruptAt(path: string, what: string, offset: number, details: Record<string, unknown> = {}): MemdumpError {
  return new MemdumpError('E_CORRUPT', `${path}: ${what} at offset ${hex(offset)}`, { details: { path, offset: hex(offset), ...details } });
}
function truncatedAt(path: string, what: string, offset: number, details: Record<string, unknown> = {}): MemdumpError {
  return new MemdumpError('E_TRUNCATED', `${path}: ${what} at offset ${hex(offset)}`, { details: { path, offset: hex(offset), ...details } });
}

/**
 * Path of segment `n` of the set whose first file is `first`, named as libewf names them: .E01 … .E99, then .EAA …
 * .EZZ, .FAA … .ZZZ (the case and letter of the first file's extension are kept: .e01, .s01). undefined when the
 * first file is not named that way (it can then only be a one-segment set) or n is past the scheme's end.
 */
export function segmentPath(first: string, n: number): string | undefined {
  const m = /^(.*\.)([A-Za-z])01$/s.exec(first);
  if (!m || !Number.isInteger(n) || n < 1) return undefined;
  const letter = m[2]!;
  if (n <= 99) return m[1]! + letter + String(n).padStart(2, '0');
  const upper = letter === letter.toUpperCase();
  const a = upper ? 65 : 97;
  let k = n - 100;
  const third = String.fromCharCode(a + (k % 26));
  k = Math.floor(k / 26);
  const second = String.fromCharCode(a + (k % 26));
  k = Math.floor(k / 26);
  const firstCode = letter.charCodeAt(0) + k;
  if (firstCode > (upper ? 90 : 122)) return undefined;
  return m[1]! + String.fromCharCode(firstCode) + second + third;
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
async function body(file: RandomAccessFile, s: Section, max: number): Promise<Buffer> {
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

export interface HeaderText {
  readonly categories: number;
  readonly crlf: boolean;
  /** The main category: identifier → value. */
  readonly values: ReadonlyMap<string, string>;
}

/** Inflate and split a header (latin1, CRLF or LF) or header2 (UTF-16 with BOM, LF) section body. */
export function parseHeaderText(b: Buffer, utf16: boolean): HeaderText {
  const raw = inflateSync(b, { maxOutputLength: MAX_HEADER_BYTES });
  let text: string;
  if (utf16) {
    if (raw.length >= 2 && raw[0] === 0xfe && raw[1] === 0xff) {
      const le = Buffer.from(raw.subarray(2, raw.length & ~1));
      le.swap16();
      text = le.toString('utf16le');
    } else text = raw.subarray(raw[0] === 0xff && raw[1] === 0xfe ? 2 : 0, raw.length & ~1).toString('utf16le');
  } else text = raw.toString('latin1');
  const lines = text.split('\n');
  const crlf = (lines[0] ?? '').endsWith('\r');
  const clean = lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (!/^\d+$/.test(clean[0] ?? '') || clean[1] !== 'main' || clean.length < 4) throw new Error('no main category');
  const keys = clean[2]!.split('\t');
  const vals = clean[3]!.split('\t');
  const values = new Map<string, string>();
  keys.forEach((k, i) => values.set(k, vals[i] ?? ''));
  return { categories: Number(clean[0]), crlf, values };
}

/** header2 and linen dates are POSIX seconds; EnCase/FTK header dates are "Y M D h m s" in the acquirer's local time. */
export function headerDate(v: string | undefined): string | null {
  if (!v) return null;
  if (/^\d{1,12}$/.test(v)) return Number(v) === 0 ? null : new Date(Number(v) * 1000).toISOString().replace('.000Z', 'Z');
  const m = /^(\d{4}) (\d{1,2}) (\d{1,2}) (\d{1,2}) (\d{1,2}) (\d{1,2})$/.exec(v);
  if (!m) return v;
  const p = (i: number) => m[i]!.padStart(2, '0');
  return `${m[1]}-${p(2)}-${p(3)}T${p(4)}:${p(5)}:${p(6)}`; // no zone: the file does not say which
}

function digestHex(b: Buffer): string | null {
  return b.some((x) => x !== 0) ? b.toString('hex') : null;
}

export interface ErrorRun {
  readonly firstSector: string;
  readonly sectors: string;
}

/** Everything open learns from walking the set. */
export interface SetIndex {
  readonly segments: { path: string; bytes: bigint }[];
  readonly volume: Volume;
  readonly tables: TableRef[];
  readonly header: HeaderText | null;
  readonly header2: HeaderText | null;
  readonly md5: string | null;
  readonly sha1: string | null;
  readonly errorRuns: ErrorRun[];
  readonly problems: string[];
  readonly xheader: boolean;
}

/**
 * Walk every segment of the set starting with `first` (segment 1, already open), checking each file header and
 * section chain, and load every table. `offer(i, entries)` may keep table i's entries (the caller's budget).
 */
export async function walkSet(first: RandomAccessFile, offer: (table: number, entries: Uint32Array) => void): Promise<SetIndex> {
  const segments: { path: string; bytes: bigint }[] = [];
  const tables: TableRef[] = [];
  const problems: string[] = [];
  const errorRuns: ErrorRun[] = [];
  let volume: Volume | undefined;
  let header: HeaderText | null = null;
  let header2: HeaderText | null = null;
  let headerSeen = false;
  let md5: string | null = null;
  let sha1: string | null = null;
  let xheader = false;
  let chunks = 0;
  for (let n = 1; ; n++) {
    let file = first;
    if (n > 1) {
      const path = segmentPath(first.path, n);
      const why = path ? `${path} is missing` : `${first.path} is not named .E01, so segment ${n} cannot be found`;
      if (!path) throw new MemdumpError('E_NOT_FOUND', `EWF set ${first.path}: segment ${n} is not there (${why})`, { details: { segment: n } });
      try {
        file = await RandomAccessFile.open(path);
      } catch (e) {
        if (e instanceof MemdumpError && e.code === 'E_NOT_FOUND') {
          throw new MemdumpError('E_NOT_FOUND', `EWF set ${first.path}: segment ${n} (${path}) is missing; the set continues past segment ${n - 1}`, { details: { segment: n, path }, cause: e });
        }
        throw e;
      }
    }
    try {
      if (file.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new MemdumpError('E_TOO_LARGE', `${file.path}: ${file.size} bytes is too large`);
      const head = await file.readAt(0n, FILE_HEADER_SIZE);
      const kind = signatureKind(head);
      if (kind === 'ewf2' || kind === 'lef2') throw new MemdumpError('E_UNSUPPORTED', `${file.path}: EWF2 (Ex01/Lx01) files are not supported; convert with ewfexport -f encase6`);
      if (kind === 'lvf') throw new MemdumpError('E_UNSUPPORTED', `${file.path}: logical evidence files (L01) hold files, not a media image`);
      if (head.length < FILE_HEADER_SIZE) throw truncatedAt(file.path, 'file ends inside the EWF file header', 0);
      if (kind !== 'ewf1' || head[8] !== 1) throw corruptAt(file.path, 'not an EWF segment file (no EVF signature)', 0);
      const number = head.readUInt16LE(9);
      if (number !== n) throw corruptAt(file.path, `EWF file header says segment ${number}, expected segment ${n} of ${first.path}`, 9);
      segments.push({ path: file.path, bytes: file.size });
      const seg = n - 1;
      let sectors: Section | undefined;
      let failed: { err: MemdumpError; region: { dataStart: number; dataEnd: number } | 'inside' } | undefined;
      let skipTable2 = false;
      let end: 'next' | 'done' | undefined;
      for (let at = FILE_HEADER_SIZE; !end; ) {
        const s = await readSection(file, at);
        if (failed && s.type !== 'table2') throw failed.err;
        switch (s.type) {
          case 'header2':
          case 'header': {
            headerSeen = true;
            if (s.size - SECTION_DESCRIPTOR_SIZE > MAX_HEADER_BYTES) throw new MemdumpError('E_TOO_LARGE', `${file.path}: EWF ${s.type} section at ${hex(s.offset)} is ${s.size} bytes`);
            if ((s.type === 'header2' ? header2 : header) !== null) break;
            try {
              const h = parseHeaderText(await body(file, s, MAX_HEADER_BYTES), s.type === 'header2');
              if (s.type === 'header2') header2 = h;
              else header = h;
            } catch (e) {
              if (e instanceof MemdumpError) throw e;
              problems.push(`${file.path}: ${s.type} section at ${hex(s.offset)} unreadable (${(e as Error).message})`);
            }
            break;
          }
          case 'xheader':
            xheader = true;
            break;
          case 'volume':
          case 'disk':
          case 'data': {
            const v = parseVolume(await body(file, s, VOLUME_BODY_SIZE), file.path, s.offset, problems);
            if (!volume) volume = v;
            else if (v.chunkCount !== volume.chunkCount || v.sectorCount !== volume.sectorCount || v.sectorsPerChunk !== volume.sectorsPerChunk || v.bytesPerSector !== volume.bytesPerSector || v.guid !== volume.guid) {
              throw corruptAt(file.path, `EWF ${s.type} section disagrees with the first segment's volume (a segment of another acquisition?)`, s.offset);
            }
            break;
          }
          case 'sectors':
            sectors = s;
            skipTable2 = false;
            break;
          case 'table':
          case 'table2': {
            if (s.type === 'table2' && skipTable2) {
              skipTable2 = false;
              break;
            }
            if (!volume) throw corruptAt(file.path, `EWF ${s.type} section before any volume section`, s.offset);
            const region = failed?.region ?? (sectors ? { dataStart: sectors.offset + SECTION_DESCRIPTOR_SIZE, dataEnd: sectors.offset + sectors.size } : 'inside');
            try {
              const t = await loadTable(file, s, !volume.smart, region);
              if (chunks + t.ref.count > volume.chunkCount) throw corruptAt(file.path, `EWF tables hold more chunks than the volume's ${volume.chunkCount}`, s.offset);
              if (tables.length >= MAX_TABLES) throw new MemdumpError('E_UNSUPPORTED', `${first.path}: more than ${MAX_TABLES} tables`);
              if (failed) problems.push(`${failed.err.message}; its table2 copy was used`);
              tables.push({ ...t.ref, segment: seg, firstChunk: chunks });
              chunks += t.ref.count;
              offer(tables.length - 1, t.entries);
              failed = undefined;
              skipTable2 = s.type === 'table';
              sectors = undefined;
            } catch (e) {
              if (!(e instanceof MemdumpError) || (e.code !== 'E_CORRUPT' && e.code !== 'E_TRUNCATED') || s.type === 'table2') throw e;
              failed = { err: e, region }; // the table2 right after it may be intact
            }
            break;
          }
          case 'hash': {
            const b = await body(file, s, HASH_BODY_SIZE);
            if (b.length < HASH_BODY_SIZE || adler32(b, 1, 0, 32) !== b.readUInt32LE(32)) throw corruptAt(file.path, 'EWF hash section checksum mismatch', s.offset);
            md5 = digestHex(b.subarray(0, 16)) ?? md5;
            break;
          }
          case 'digest': {
            const b = await body(file, s, DIGEST_BODY_SIZE);
            if (b.length < DIGEST_BODY_SIZE || adler32(b, 1, 0, 76) !== b.readUInt32LE(76)) throw corruptAt(file.path, 'EWF digest section checksum mismatch', s.offset);
            md5 = digestHex(b.subarray(0, 16)) ?? md5;
            sha1 = digestHex(b.subarray(16, 36));
            break;
          }
          case 'error2':
            for (const r of await readError2(file, s, problems)) if (errorRuns.length < MAX_ERROR_RUNS) errorRuns.push(r);
            break;
          case 'ltree':
          case 'ltypes':
            throw new MemdumpError('E_UNSUPPORTED', `${file.path}: EWF ${s.type} section: logical evidence (files, not media) is not supported`);
          case 'incomplete':
            problems.push(`${file.path}: "incomplete" section at ${hex(s.offset)} (EnCase remote acquisition that did not finish?)`);
            break;
          case 'next':
          case 'done':
            end = s.type;
            break;
          default:
            break; // session, xhash, map and unknown sections carry nothing we need
        }
        at = s.next;
      }
      if (failed) throw failed.err;
      if (!end) throw truncatedAt(file.path, 'segment file ends without a done or next section', Number(file.size));
      if (n === 1 && !volume) throw corruptAt(file.path, 'no volume section in the first segment', FILE_HEADER_SIZE);
      if (end === 'done') break;
    } finally {
      if (file !== first) await file.close();
    }
  }
  const v = volume!;
  if (chunks !== v.chunkCount) {
    throw new MemdumpError('E_CORRUPT', `EWF set ${first.path}: tables hold ${chunks} chunks, the volume says ${v.chunkCount}`, { details: { chunks, chunkCount: v.chunkCount } });
  }
  if (headerSeen && !header && !header2) throw new MemdumpError('E_CORRUPT', `EWF set ${first.path}: no header or header2 section could be read: ${problems.join('; ')}`);
  return { segments, volume: v, tables, header, header2, md5, sha1, errorRuns, problems, xheader };
}

async function readError2(file: RandomAccessFile, s: Section, problems: string[]): Promise<ErrorRun[]> {
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

/** Which writer produced the set, told apart as ewfinfo does (header2 categories, header line ends, fields). */
export function variantOf(ix: Pick<SetIndex, 'volume' | 'header' | 'header2' | 'xheader' | 'tables'>): string {
  if (ix.volume.smart) return 'ewf-s01';
  if (ix.xheader) return 'ewfx';
  if (ix.header2) return ix.header2.categories === 1 ? 'encase4' : ix.header2.values.has('md') || ix.tables.some((t) => t.base !== 0) ? 'encase6' : 'encase5';
  const h = ix.header;
  if (!h) return 'unknown';
  if (h.categories === 3) return h.values.has('md') ? 'linen6' : 'linen5';
  if (!h.crlf) return 'ftk';
  return h.values.has('av') ? 'encase2' : 'encase1';
}
