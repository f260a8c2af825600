/**
 * Expert Witness (EWF-E01, EnCase style) images: the format entry, open and the media digests. The writer is
 * e01-write.ts; open walks the set with e01-set-index.ts and reads it through E01Image (e01-image.ts). Reads agree byte
 * for byte with `ewfexport -f raw` (checked in test/oracle/ewf-read.test.ts).
 *
 * The media is the stored sectors: sector count × bytes per sector (what ewfexport writes and ewfverify hashes).
 * E01 has no memory map, so the physical runs come from options.sidecarRuns (laid out padded, media offset = address,
 * as e01-write.ts stores them), else FILE.map.json (its run offsets are media offsets), else one run [0, media size).
 *
 * Memory: table entries are kept in memory up to INDEX_BUDGET_CHUNKS entries, then re-read on demand
 * (e01-table-index.ts). Segment files are opened on demand, at most MAX_OPEN_SEGMENTS at once.
 */
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { Hasher } from '../core/hasher.js';
import { type Range, isSortedDisjoint } from '../core/ranges.js';
import { headerFields } from './e01-header-text.js';
import { E01Image } from './e01-image.js';
import { MAX_CHUNK_SIZE, signatureKind } from './e01-read.js';
import { SegmentFiles } from './e01-segment-set.js';
import { variantOf, walkSet } from './e01-set-index.js';
import { Lru } from '../core/lru.js';
import { createE01Writer } from './e01-write.js';
import { loadSidecar } from './sidecar.js';
import type { FormatSpec, ImageNote, MemoryImage, OpenOptions } from './types.js';

export { E01Image };

/** Table entries kept in memory (4 bytes each: 16 MiB, the index of 128 GiB of media at 32 KiB chunks). */
export const INDEX_BUDGET_CHUNKS = 4 << 20;
const MAX_OPEN_SEGMENTS = 32;
const PROGRESS_BYTES = 64n << 20n;
const HASH_BATCH = 1 << 20;
const MEDIA_TYPES: Readonly<Record<number, string>> = { 0x00: 'removable', 0x01: 'fixed', 0x03: 'optical', 0x0e: 'logical', 0x10: 'memory' };

export interface E01OpenOptions extends OpenOptions {
  /** Table entries kept in memory (default INDEX_BUDGET_CHUNKS); others are re-read when needed. */
  readonly indexBudgetChunks?: number;
  readonly maxOpenSegments?: number;
}

/** Open a set from its first segment (what e01.open does, with knobs for tests). */
export async function openE01(file: RandomAccessFile, options: E01OpenOptions = {}): Promise<E01Image> {
  const entries = new Lru<Uint32Array>(options.indexBudgetChunks ?? INDEX_BUDGET_CHUNKS);
  const ix = await walkSet(file, (i, e) => entries.offer(i, e, e.length));
  const v = ix.volume;
  const path = file.path;
  if (v.bytesPerSector === 0 || v.sectorsPerChunk === 0) throw new MemdumpError('E_CORRUPT', `${path}: EWF volume has ${v.bytesPerSector} bytes per sector, ${v.sectorsPerChunk} sectors per chunk`);
  const chunkSize = v.bytesPerSector * v.sectorsPerChunk;
  if (chunkSize > MAX_CHUNK_SIZE) throw new MemdumpError('E_UNSUPPORTED', `${path}: EWF chunks of ${chunkSize} bytes (limit ${MAX_CHUNK_SIZE})`);
  const spc = BigInt(v.sectorsPerChunk);
  if (BigInt(v.chunkCount) !== (v.sectorCount + spc - 1n) / spc) {
    throw new MemdumpError('E_CORRUPT', `${path}: EWF volume says ${v.chunkCount} chunks for ${v.sectorCount} sectors of ${v.sectorsPerChunk} per chunk`);
  }
  const mediaBytes = v.sectorCount * BigInt(v.bytesPerSector);
  let runs: readonly Range[];
  let offsets: bigint[];
  let notes: readonly ImageNote[] = [];
  let map: string;
  const side = options.sidecarRuns ? undefined : await loadSidecar(path);
  if (options.sidecarRuns) {
    if (!isSortedDisjoint(options.sidecarRuns)) throw new MemdumpError('E_USAGE', `${path}: the runs given for the E01 are not ascending and disjoint`);
    runs = options.sidecarRuns;
    offsets = runs.map((r) => r.start);
    map = 'given runs (media offset = address)';
  } else if (side) {
    ({ runs, fileOffsets: offsets, notes } = side);
    map = 'sidecar';
  } else {
    runs = mediaBytes > 0n ? [{ start: 0n, end: mediaBytes }] : [];
    offsets = [0n];
    map = 'none (the whole media from address 0)';
  }
  runs.forEach((r, i) => {
    const o = offsets[i];
    if (o === undefined || o + (r.end - r.start) > mediaBytes) {
      throw new MemdumpError('E_CORRUPT', `${path}: run ${hex(r.start)}-${hex(r.end - 1n)} needs media bytes up to ${o === undefined ? '?' : hex(o + (r.end - r.start))}, the E01 holds ${mediaBytes}`);
    }
  });
  const compressedChunks = ix.tables.reduce((n, t) => n + t.compressed, 0);
  const details: Record<string, unknown> = {
    variant: variantOf(ix),
    segments: ix.segments.map((s, i) => {
      const own = ix.tables.filter((t) => t.segment === i);
      return { path: s.path, bytes: s.bytes.toString(), firstChunk: own[0]?.firstChunk ?? null, chunks: own.reduce((n, t) => n + t.count, 0) };
    }),
    mediaType: MEDIA_TYPES[v.mediaType] ?? `unknown (${hex(v.mediaType)})`,
    isPhysical: (v.mediaFlags & 0x02) !== 0,
    bytesPerSector: v.bytesPerSector,
    sectorsPerChunk: v.sectorsPerChunk,
    chunkCount: v.chunkCount,
    compressedChunks,
    sectorCount: v.sectorCount.toString(),
    mediaBytes: mediaBytes.toString(),
    compression: v.compressionLevel === 1 ? 'deflate:fast' : v.compressionLevel === 2 ? 'deflate:best' : v.compressionLevel === 0 ? (compressedChunks > 0 ? 'deflate (level not recorded)' : 'none') : `level ${v.compressionLevel}`,
    errorGranularity: v.errorGranularity,
    setIdentifier: /^0*$/.test(v.guid) ? null : v.guid,
    ...headerFields(ix),
    storedDigests: { md5: ix.md5, sha1: ix.sha1 },
    errorRuns: ix.errorRuns,
    map,
    problems: ix.problems,
  };
  const files = new SegmentFiles(file, ix.segments, options.maxOpenSegments ?? MAX_OPEN_SEGMENTS);
  return new E01Image(files, ix, entries, runs, offsets, notes, details, mediaBytes, chunkSize);
}

/**
 * MD5 and SHA-1 of the whole stored media, read in order (what ewfverify computes), to compare with
 * details.storedDigests. A damaged chunk throws E_CORRUPT.
 */
export async function e01MediaDigests(img: MemoryImage, onProgress?: (done: bigint, total: bigint) => void): Promise<{ md5: string; sha1: string; bytes: bigint }> {
  if (!(img instanceof E01Image)) throw new MemdumpError('E_USAGE', `e01MediaDigests needs an image opened as e01, not ${img.format}`);
  // The digests run in worker threads while this thread reads and inflates; 1 MiB batches keep messages few.
  const hasher = new Hasher({ digests: ['md5', 'sha1'], windowSize: 0n });
  const batch = Buffer.allocUnsafe(Math.max(HASH_BATCH, img.chunkSize));
  try {
    let used = 0;
    let done = 0n;
    let step = 0n;
    for await (const data of img.chunks(0, img.chunkCount)) {
      if (used + data.length > batch.length) {
        await hasher.update(batch.subarray(0, used));
        used = 0;
      }
      used += data.copy(batch, used);
      done += BigInt(data.length);
      if (onProgress && (done - step >= PROGRESS_BYTES || done === img.mediaBytes)) {
        step = done;
        onProgress(done, img.mediaBytes);
      }
    }
    if (used > 0) await hasher.update(batch.subarray(0, used));
    const r = await hasher.digest();
    return { md5: r.digests.md5!, sha1: r.digests.sha1!, bytes: r.length };
  } catch (e) {
    await hasher.close();
    throw e;
  }
}

export const e01: FormatSpec = {
  name: 'e01',
  extension: 'E01',
  description: 'Expert Witness (EnCase 6 E01): zlib chunks with adler32 in segment files .E01, .E02, …; map in FILE.map.json',
  needsSidecarMap: true,
  detect(head) {
    const kind = signatureKind(head);
    // EWF2 and logical files are claimed too, so that open can say why they are not supported.
    if (kind === 'ewf1') return head.length >= 13 && head[8] === 1 && head.readUInt16LE(9) === 1;
    return kind !== undefined;
  },
  open: (file, options) => openE01(file, options),
  createWriter: (out, plan) => createE01Writer(out, plan),
};
