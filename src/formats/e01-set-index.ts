/**
 * EWF-E01 reading, part 2: everything decided at open time. The walk over a whole segment set (each file header and
 * section chain, read with e01-read.ts) that turns its sections into an index: segments, volume, tables, header texts,
 * stored digests and error runs (e01-image.ts does the chunk reads).
 *
 * Strict where bytes or their proof are concerned (descriptors, volume, data, tables, hash, digest, error2: E_CORRUPT);
 * tolerant of one damaged copy where the format keeps two (table → table2, header2 → header2/header), with a note in
 * `problems`.
 */
import { adler32 } from '../core/adler32.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { DIGEST_BODY_SIZE, FILE_HEADER_SIZE, HASH_BODY_SIZE, SECTION_DESCRIPTOR_SIZE, VOLUME_BODY_SIZE } from './e01-layout.js';
import { type HeaderText, MAX_HEADER_BYTES, parseHeaderText } from './e01-header-text.js';
import { type ErrorRun, MAX_ERROR_RUNS, type Section, type TableRef, type Volume, body, corruptAt, loadTable, parseVolume, readError2, readSection, signatureKind, truncatedAt } from './e01-read.js';
import { openSegmentFile } from './e01-segment-set.js';

const MAX_TABLES = 1 << 20;

function digestHex(b: Buffer): string | null {
  return b.some((x) => x !== 0) ? b.toString('hex') : null;
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
    const file = n === 1 ? first : await openSegmentFile(first, n);
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
