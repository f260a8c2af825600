/**
 * E01 (EnCase 6 style Expert Witness) writer. The media is the plan's runs laid out padded (offset = address, zeros
 * in holes), stored as whole 512-byte sectors in 32 KiB chunks. Section order follows ewfacquire 20140813:
 *
 *   segment 1:   file header, header2, header2, header, volume, { sectors, table, table2 }…
 *   segment n>1: file header, data (copy of volume), { sectors, table, table2 }…
 *   not last:    … next
 *   last:        … [data if single segment] [error2] digest hash done
 *
 * The sink is append-only, so a sectors section's descriptor (which holds its size) can only be written once its
 * chunks are compressed: one group of at most `groupChunks` compressed chunks is buffered, then written as
 * sectors + table + table2. Chunks are compressed by a worker pool (e01-compress.ts) and placed in submission order
 * through a bounded FIFO; all-zero chunks (holes, zero pages) reuse one precomputed stored chunk. The media bytes
 * (padded, then zero-filled to the last sector) are hashed in order by the parallel Hasher: MD5 and SHA-1 go into
 * the digest/hash sections, SHA-256 (no slot in E01) only into summary().
 */
import { readFileSync } from 'node:fs';
import { type } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MemdumpError, hex } from '../core/errors.js';
import { Hasher, type Digest } from '../core/hasher.js';
import { PACKAGE_ROOT } from '../core/host.js';
import type { Range } from '../core/ranges.js';
import { ChunkPool, encodeChunk, type StoredChunk } from './e01-compress.js';
import {
  BYTES_PER_SECTOR, CHUNK_SIZE, COMPRESSION_LEVEL, DIGEST_BODY_SIZE, ERROR2_HEADER_SIZE, HASH_BODY_SIZE, MAX_SEGMENTS,
  MAX_TABLE_ENTRIES, MEDIA_FLAG_IMAGE, MEDIA_FLAG_PHYSICAL, MEDIA_TYPE, SECTION_DESCRIPTOR_SIZE, SECTORS_PER_CHUNK,
  TABLE_COMPRESSED, TABLE_HEADER_SIZE, VOLUME_BODY_SIZE, encodeDigestBody, encodeError2Body, encodeFileHeader,
  encodeHashBody, encodeHeader2Body, encodeHeaderBody, encodeLastSection, encodeSection, encodeSectionDescriptor,
  encodeTableBody, encodeVolumeBody, header2Text, headerText, segmentExtension, type SectorRun,
} from './e01-layout.js';
import type { ByteSink, ContainerWriter, MediaDescription, WritePlan } from './types.js';

export interface E01WriterOptions {
  /** Compression threads (default: the CPU count); 0 compresses on the calling thread. */
  workers?: number;
  /** Chunks per message to a worker (default 16). */
  batchChunks?: number;
  /** Skip deflate for chunks whose sample does not compress (default true). */
  probe?: boolean;
  /** Chunks per sectors section, i.e. buffered at once (default 1024 = 32 MiB at most). */
  groupChunks?: number;
  /** Chunks submitted and not yet placed (default 4 × workers × batchChunks, at least 64). */
  inFlight?: number;
  /** Software version for the headers (default: package.json's). */
  version?: string;
  /** Segment set GUID (16 bytes; default random, version 4). */
  guid?: Buffer;
  /** Also compute SHA-256 of the media for the report (default true). */
  sha256?: boolean;
  /** Name reported for segment n in summary() (default its extension, "E01"…). */
  segmentName?: (n: number) => string;
}

export interface E01Summary extends Record<string, unknown> {
  segments: { path: string; bytes: string }[];
  mediaType: MediaDescription['type'];
  mediaBytes: string;
  storedBytes: string;
  bytesPerSector: number;
  sectorsPerChunk: number;
  chunks: string;
  /** As ewfacquire names it: none, deflate:fast, deflate:best. */
  compression: string;
  compressedChunks: string;
  mediaDigests: { md5?: string; sha1?: string; sha256?: string };
  errorRuns: { firstSector: string; sectors: string }[];
}

/** Sectors sections stay below 2 GiB: table entries hold 31-bit offsets. */
const MAX_SECTORS_SECTION = 0x7fffffff;
const tableSection = (entries: number) => SECTION_DESCRIPTOR_SIZE + TABLE_HEADER_SIZE + 4 * entries + 4;
const WRITE_BATCH = 1 << 20;
/** Below this a segment cannot hold its sections plus one uncompressed chunk. */
export const MIN_SEGMENT_BYTES = 64n * 1024n;

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function guidV4(): Buffer {
  const g = randomBytes(16);
  // libewf shows the GUID little-endian (as Windows does): the version nibble is the high one of byte 7
  g[7] = (g[7]! & 0x0f) | 0x40;
  g[8] = (g[8]! & 0x3f) | 0x80;
  return g;
}

class E01Writer implements ContainerWriter {
  private readonly media: MediaDescription;
  private readonly compression: 'none' | 'fast' | 'best';
  private readonly mediaBytes: bigint;
  private readonly storedBytes: bigint;
  private readonly chunkCount: number;
  private readonly volume: Buffer;
  private readonly zeroChunk: StoredChunk;
  private readonly groupChunks: number;
  private readonly segmentBytes: bigint;
  private hasher: Hasher | undefined;
  private pool: ChunkPool | undefined;
  private inFlight = 64;
  // media side
  private pos = 0n;
  private run: Range | undefined;
  private readonly cur = Buffer.alloc(CHUNK_SIZE);
  private fill = 0;
  private readonly fifo: (StoredChunk | Promise<StoredChunk>)[] = [];
  // container side
  private segNo = 1;
  private segPos = 0n;
  private chunksInSegment = 0;
  private readonly segments: bigint[] = [];
  private group: StoredChunk[] = [];
  private groupBytes = 0;
  private compressedChunks = 0n;
  private readonly errorRuns: SectorRun[] = [];
  private digests: Partial<Record<Digest, string>> | undefined;
  private stage: Buffer | undefined;

  constructor(
    private readonly out: ByteSink,
    plan: WritePlan,
    private readonly options: E01WriterOptions,
  ) {
    this.media = plan.media ?? { type: 'memory', caseNumber: null, examiner: null, evidenceNumber: null, notes: null, description: '', acquired: new Date() };
    this.compression = this.media.compression ?? 'fast';
    const last = plan.runs[plan.runs.length - 1];
    this.mediaBytes = last ? last.end : 0n;
    const sectors = (this.mediaBytes + BigInt(BYTES_PER_SECTOR) - 1n) / BigInt(BYTES_PER_SECTOR);
    this.storedBytes = sectors * BigInt(BYTES_PER_SECTOR);
    const chunks = (this.storedBytes + BigInt(CHUNK_SIZE) - 1n) / BigInt(CHUNK_SIZE);
    if (chunks > 0xffffffffn) throw new MemdumpError('E_TOO_LARGE', `E01 holds at most 2^32-1 chunks (128 TiB); media ends at ${hex(this.mediaBytes)}`);
    this.chunkCount = Number(chunks);
    this.volume = encodeVolumeBody({
      mediaType: MEDIA_TYPE[this.media.type],
      chunkCount: this.chunkCount,
      sectorCount: sectors,
      // EnCase expects the physical flag clear for media without a partition table (memory)
      mediaFlags: MEDIA_FLAG_IMAGE | (this.media.type === 'memory' ? 0 : MEDIA_FLAG_PHYSICAL),
      compressionLevel: COMPRESSION_LEVEL[this.compression],
      guid: options.guid ?? guidV4(),
    });
    // zeros compress best at level 9; the chunk is computed once, so its cost does not matter
    this.zeroChunk = encodeChunk(Buffer.alloc(CHUNK_SIZE), { compression: this.compression === 'none' ? 'none' : 'best', probe: false });
    this.groupChunks = Math.min(MAX_TABLE_ENTRIES, Math.max(1, options.groupChunks ?? 1024));
    this.segmentBytes = out.newSegment && this.media.segmentBytes && this.media.segmentBytes > 0n ? this.media.segmentBytes : 0n;
    if (this.segmentBytes > 0n && this.segmentBytes < MIN_SEGMENT_BYTES) {
      throw new MemdumpError('E_USAGE', `E01 segment size ${this.segmentBytes} is too small: at least ${MIN_SEGMENT_BYTES} bytes (one chunk and the sections around it)`);
    }
  }

  private async emit(buf: Buffer): Promise<void> {
    await this.out.write(buf);
    this.segPos += BigInt(buf.length);
  }

  async begin(): Promise<void> {
    this.hasher = new Hasher({ digests: this.options.sha256 === false ? ['md5', 'sha1'] : ['md5', 'sha1', 'sha256'], windowSize: 0n });
    this.pool = new ChunkPool({
      compression: this.compression,
      probe: this.options.probe ?? true,
      ...(this.options.workers !== undefined ? { workers: this.options.workers } : {}),
      ...(this.options.batchChunks !== undefined ? { batchChunks: this.options.batchChunks } : {}),
    });
    this.inFlight = this.options.inFlight ?? Math.max(64, 4 * this.pool.workers * (this.options.batchChunks ?? 16));
    const m = this.media;
    const fields = {
      description: m.description,
      caseNumber: m.caseNumber ?? '',
      evidenceNumber: m.evidenceNumber ?? '',
      examiner: m.examiner ?? '',
      notes: m.notes ?? '',
      version: `memdump ${this.options.version ?? packageVersion()}`,
      os: type(),
      acquired: m.acquired,
      system: m.acquired,
    };
    const header2 = encodeHeader2Body(header2Text(fields));
    await this.emit(encodeFileHeader(1));
    await this.emit(encodeSection('header2', this.segPos, header2));
    await this.emit(encodeSection('header2', this.segPos, header2));
    await this.emit(encodeSection('header', this.segPos, encodeHeaderBody(headerText(fields))));
    await this.emit(encodeSection('volume', this.segPos, this.volume));
  }

  async beginRange(r: Range): Promise<void> {
    if (this.run || r.start < this.pos || r.end <= r.start || r.end > this.mediaBytes) {
      throw new MemdumpError('E_INTERNAL', `E01 writer: range ${hex(r.start)}-${hex(r.end)} out of order (at ${hex(this.pos)})`);
    }
    await this.zeros(r.start - this.pos);
    this.run = r;
  }

  async data(chunk: Buffer): Promise<void> {
    if (!this.run || BigInt(chunk.length) > this.run.end - this.pos) throw new MemdumpError('E_INTERNAL', `E01 writer: ${chunk.length} bytes outside the current range`);
    await this.hasher!.update(chunk);
    this.pos += BigInt(chunk.length);
    let off = 0;
    while (off < chunk.length) {
      if (this.fill === 0 && chunk.length - off >= CHUNK_SIZE) {
        await this.push(chunk.subarray(off, off + CHUNK_SIZE));
        off += CHUNK_SIZE;
        continue;
      }
      const k = Math.min(CHUNK_SIZE - this.fill, chunk.length - off);
      chunk.copy(this.cur, this.fill, off, off + k);
      this.fill += k;
      off += k;
      if (this.fill === CHUNK_SIZE) await this.pushCur();
    }
  }

  async endRange(): Promise<void> {
    if (!this.run || this.pos !== this.run.end) throw new MemdumpError('E_INTERNAL', `E01 writer: range ended at ${hex(this.pos)}, expected ${hex(this.run?.end ?? 0n)}`);
    this.run = undefined;
  }

  badBytes(addr: bigint, length: number): void {
    if (length <= 0) return;
    const S = BigInt(BYTES_PER_SECTOR);
    const first = addr / S;
    const end = (addr + BigInt(length) + S - 1n) / S;
    const runs = this.errorRuns;
    const last = runs[runs.length - 1];
    if (last && first <= last.firstSector + last.sectors && first >= last.firstSector) {
      const e = end > last.firstSector + last.sectors ? end : last.firstSector + last.sectors;
      last.sectors = e - last.firstSector;
      return;
    }
    runs.push({ firstSector: first, sectors: end - first });
    if (last && first < last.firstSector) {
      // out of order: sort and coalesce (never happens with the read policy, which reports in address order)
      runs.sort((a, b) => (a.firstSector < b.firstSector ? -1 : a.firstSector > b.firstSector ? 1 : 0));
      const merged: SectorRun[] = [];
      for (const r of runs) {
        const m = merged[merged.length - 1];
        if (m && r.firstSector <= m.firstSector + m.sectors) {
          const e = r.firstSector + r.sectors;
          if (e > m.firstSector + m.sectors) m.sectors = e - m.firstSector;
        } else merged.push({ ...r });
      }
      runs.splice(0, runs.length, ...merged);
    }
  }

  async end(): Promise<void> {
    if (this.run || this.pos !== this.mediaBytes) throw new MemdumpError('E_INTERNAL', `E01 writer: ended at ${hex(this.pos)} of ${hex(this.mediaBytes)}`);
    await this.zeros(this.storedBytes - this.pos);
    if (this.fill > 0) await this.push(this.cur.subarray(0, this.fill));
    this.fill = 0;
    this.pool!.flush();
    while (this.fifo.length > 0) await this.placeNext();
    await this.flushGroup();
    this.digests = (await this.hasher!.digest()).digests;
    await this.pool!.close();
    if (this.segNo === 1) await this.emit(encodeSection('data', this.segPos, this.volume));
    if (this.errorRuns.length > 0) await this.emit(encodeSection('error2', this.segPos, encodeError2Body(this.errorRuns)));
    const md5 = Buffer.from(this.digests.md5!, 'hex');
    await this.emit(encodeSection('digest', this.segPos, encodeDigestBody(md5, Buffer.from(this.digests.sha1!, 'hex'))));
    await this.emit(encodeSection('hash', this.segPos, encodeHashBody(md5)));
    await this.emit(encodeLastSection('done', this.segPos));
    this.segments.push(this.segPos);
  }

  /** Stop the worker threads after a failed copy (end() does it after a complete one). */
  async abort(): Promise<void> {
    await Promise.allSettled([this.pool?.close(), this.hasher?.close()]);
  }

  summary(): E01Summary {
    const name = this.options.segmentName ?? segmentExtension;
    return {
      segments: this.segments.map((bytes, i) => ({ path: name(i + 1), bytes: String(bytes) })),
      mediaType: this.media.type,
      mediaBytes: String(this.mediaBytes),
      storedBytes: String(this.storedBytes),
      bytesPerSector: BYTES_PER_SECTOR,
      sectorsPerChunk: SECTORS_PER_CHUNK,
      chunks: String(this.chunkCount),
      compression: this.compression === 'none' ? 'none' : `deflate:${this.compression}`,
      compressedChunks: String(this.compressedChunks),
      mediaDigests: { ...this.digests },
      errorRuns: this.errorRuns.map((r) => ({ firstSector: String(r.firstSector), sectors: String(r.sectors) })),
    };
  }

  // ----- media side: bytes → chunks → FIFO

  private async zeros(n: bigint): Promise<void> {
    if (n <= 0n) return;
    await this.hasher!.updateZeros(n);
    this.pos += n;
    while (n > 0n) {
      if (this.fill > 0 || n < BigInt(CHUNK_SIZE)) {
        const k = Math.min(CHUNK_SIZE - this.fill, Number(n < BigInt(CHUNK_SIZE) ? n : BigInt(CHUNK_SIZE)));
        this.cur.fill(0, this.fill, this.fill + k);
        this.fill += k;
        n -= BigInt(k);
        if (this.fill === CHUNK_SIZE) await this.pushCur();
      } else {
        await this.enqueue(this.zeroChunk);
        n -= BigInt(CHUNK_SIZE);
      }
    }
  }

  private async pushCur(): Promise<void> {
    this.fill = 0;
    await this.push(this.cur);
  }

  /** One chunk of media (copied before this returns). */
  private async push(chunk: Buffer): Promise<void> {
    const zero = chunk.length === CHUNK_SIZE && chunk.equals(this.zeroChunkRaw());
    await this.enqueue(zero ? this.zeroChunk : this.pool!.compress(chunk));
  }

  private zeroRaw: Buffer | undefined;
  private zeroChunkRaw(): Buffer {
    this.zeroRaw ??= Buffer.alloc(CHUNK_SIZE);
    return this.zeroRaw;
  }

  private async enqueue(c: StoredChunk | Promise<StoredChunk>): Promise<void> {
    this.fifo.push(c);
    while (this.fifo.length > this.inFlight) await this.placeNext();
  }

  // ----- container side: FIFO → groups → sections → segments

  private async placeNext(): Promise<void> {
    let c = this.fifo.shift()!;
    if (c instanceof Promise) {
      this.pool!.sendFor(c);
      c = await c;
    }
    await this.place(c);
  }

  /** Bytes the end of the last segment needs: [data] [error2] digest hash done (more than a `next`). */
  private trailerBytes(): number {
    const d = SECTION_DESCRIPTOR_SIZE;
    return (
      (this.segNo === 1 ? d + VOLUME_BODY_SIZE : 0) +
      (this.errorRuns.length > 0 ? d + ERROR2_HEADER_SIZE + 8 * this.errorRuns.length + 4 : 0) +
      d + DIGEST_BODY_SIZE + d + HASH_BODY_SIZE + d
    );
  }

  private async place(c: StoredChunk): Promise<void> {
    const n = c.bytes.length;
    if (this.group.length >= this.groupChunks || SECTION_DESCRIPTOR_SIZE + this.groupBytes + n > MAX_SECTORS_SECTION) await this.flushGroup();
    if (this.segmentBytes > 0n && this.chunksInSegment > 0) {
      const projected = this.segPos + BigInt(SECTION_DESCRIPTOR_SIZE + this.groupBytes + n + 2 * tableSection(this.group.length + 1) + this.trailerBytes());
      if (projected > this.segmentBytes) {
        await this.flushGroup();
        await this.nextSegment();
      }
    }
    this.group.push(c);
    this.groupBytes += n;
    this.chunksInSegment++;
    if (c.compressed) this.compressedChunks++;
  }

  private async flushGroup(): Promise<void> {
    if (this.group.length === 0) return;
    const base = this.segPos;
    const entries = new Uint32Array(this.group.length);
    let off = SECTION_DESCRIPTOR_SIZE;
    this.group.forEach((c, i) => {
      entries[i] = (off | (c.compressed ? TABLE_COMPRESSED : 0)) >>> 0;
      off += c.bytes.length;
    });
    const size = BigInt(SECTION_DESCRIPTOR_SIZE + this.groupBytes);
    await this.emit(encodeSectionDescriptor('sectors', base + size, size));
    // fewer, larger writes through one reused staging buffer (the sink copies what it keeps before write() resolves)
    this.stage ??= Buffer.allocUnsafe(WRITE_BATCH);
    let fill = 0;
    for (const c of this.group) {
      if (fill + c.bytes.length > WRITE_BATCH) {
        await this.emit(this.stage.subarray(0, fill));
        fill = 0;
      }
      this.stage.set(c.bytes, fill);
      fill += c.bytes.length;
    }
    if (fill > 0) await this.emit(this.stage.subarray(0, fill));
    for (const c of this.group) this.pool!.release(c);
    this.group = [];
    this.groupBytes = 0;
    const table = encodeTableBody(base, entries);
    await this.emit(encodeSection('table', this.segPos, table));
    await this.emit(encodeSection('table2', this.segPos, table));
  }

  private async nextSegment(): Promise<void> {
    if (this.segNo >= MAX_SEGMENTS) throw new MemdumpError('E_TOO_LARGE', `E01 needs more than ${MAX_SEGMENTS} segment files: choose a larger segment size`);
    await this.emit(encodeLastSection('next', this.segPos));
    this.segments.push(this.segPos);
    await this.out.newSegment!();
    this.segNo++;
    this.segPos = 0n;
    this.chunksInSegment = 0;
    await this.emit(encodeFileHeader(this.segNo));
    await this.emit(encodeSection('data', this.segPos, this.volume));
  }
}

export interface E01ContainerWriter extends ContainerWriter {
  badBytes(addr: bigint, length: number): void;
  /** After end(): what was written (the report's `e01` object). */
  summary(): E01Summary;
  /** Stop the worker threads after a failed copy (end() does it after a complete one). */
  abort(): Promise<void>;
}

/** E01 writer for `plan` into `out`; segment files when plan.media.segmentBytes > 0 and the sink has newSegment(). */
export function createE01Writer(out: ByteSink, plan: WritePlan, options: E01WriterOptions = {}): E01ContainerWriter {
  return new E01Writer(out, plan, options);
}
