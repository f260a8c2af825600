/**
 * The container side of the E01 writer (e01-write.ts): stored chunks → groups → sections → segment files. Section
 * order follows ewfacquire 20140813:
 *
 *   segment 1:   file header, header2, header2, header, volume, { sectors, table, table2 }…
 *   segment n>1: file header, data (copy of volume), { sectors, table, table2 }…
 *   not last:    … next
 *   last:        … [data if single segment] [error2] digest hash done
 *
 * The sink is append-only, so a sectors section's descriptor (which holds its size) can only be written once its
 * chunks are compressed: one group of at most `groupChunks` compressed chunks is buffered, then written as
 * sectors + table + table2. A new segment is started before a chunk whose group, tables and the last segment's
 * trailer would no longer fit the segment size.
 */
import { readFileSync } from 'node:fs';
import { type } from 'node:os';
import { join } from 'node:path';
import { MemdumpError } from '../core/errors.js';
import { PACKAGE_ROOT } from '../core/host.js';
import type { StoredChunk } from './e01-compress.js';
import {
  BYTES_PER_SECTOR, DIGEST_BODY_SIZE, ERROR2_HEADER_SIZE, HASH_BODY_SIZE, MAX_SEGMENTS, SECTION_DESCRIPTOR_SIZE,
  TABLE_COMPRESSED, TABLE_HEADER_SIZE, VOLUME_BODY_SIZE, encodeDigestBody, encodeError2Body, encodeFileHeader,
  encodeHashBody, encodeHeader2Body, encodeHeaderBody, encodeLastSection, encodeSection, encodeSectionDescriptor,
  encodeTableBody, header2Text, headerText, type SectorRun,
} from './e01-layout.js';
import type { ByteSink, MediaDescription } from './types.js';

/** Sectors sections stay below 2 GiB: table entries hold 31-bit offsets. */
const MAX_SECTORS_SECTION = 0x7fffffff;
const tableSection = (entries: number) => SECTION_DESCRIPTOR_SIZE + TABLE_HEADER_SIZE + 4 * entries + 4;
const WRITE_BATCH = 1 << 20;

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export class SectionWriter {
  /** Bytes of each finished segment file. */
  readonly segments: bigint[] = [];
  /** Chunks whose data and table have reached the sink: what a reader of a .partial set can find. */
  chunksWritten = 0;
  /** Read-error runs in sectors, ascending and merged (the error2 section). */
  readonly errorRuns: SectorRun[] = [];
  private segNo = 1;
  private segPos = 0n;
  private chunksInSegment = 0;
  private group: StoredChunk[] = [];
  private groupBytes = 0;
  private compressed = 0n;
  private stage: Buffer | undefined;

  constructor(
    private readonly out: ByteSink,
    /** The volume section body (encodeVolumeBody), repeated as each data section. */
    private readonly volume: Buffer,
    private readonly groupChunks: number,
    /** 0 for one segment file; otherwise out.newSegment() is called to start the next. */
    private readonly segmentBytes: bigint,
    /** Given each chunk once its bytes are written (the compression pool reuses their buffers). */
    private readonly release: (c: StoredChunk) => void,
  ) {}

  get compressedChunks(): bigint {
    return this.compressed;
  }

  private async emit(buf: Buffer): Promise<void> {
    await this.out.write(buf);
    this.segPos += BigInt(buf.length);
  }

  /** The first segment's file header, header2 (twice), header and volume sections. */
  async writeHead(m: MediaDescription, version: string | undefined): Promise<void> {
    const fields = {
      description: m.description,
      caseNumber: m.caseNumber ?? '',
      evidenceNumber: m.evidenceNumber ?? '',
      examiner: m.examiner ?? '',
      notes: m.notes ?? '',
      version: `memdump ${version ?? packageVersion()}`,
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

  /** Record media bytes [addr, addr + length) as unreadable: whole sectors, merged into errorRuns. */
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

  /** After the last flushGroup(): the last segment's trailer, [data] [error2] digest hash done. */
  async writeTail(md5: Buffer, sha1: Buffer): Promise<void> {
    if (this.segNo === 1) await this.emit(encodeSection('data', this.segPos, this.volume));
    if (this.errorRuns.length > 0) await this.emit(encodeSection('error2', this.segPos, encodeError2Body(this.errorRuns)));
    await this.emit(encodeSection('digest', this.segPos, encodeDigestBody(md5, sha1)));
    await this.emit(encodeSection('hash', this.segPos, encodeHashBody(md5)));
    await this.emit(encodeLastSection('done', this.segPos));
    this.segments.push(this.segPos);
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

  /** The next chunk of the media, in order. */
  async place(c: StoredChunk): Promise<void> {
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
    if (c.compressed) this.compressed++;
  }

  /** Write the buffered group as sectors + table + table2. */
  async flushGroup(): Promise<void> {
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
    const placed = this.group.length;
    for (const c of this.group) this.release(c);
    this.group = [];
    this.groupBytes = 0;
    const table = encodeTableBody(base, entries);
    await this.emit(encodeSection('table', this.segPos, table));
    await this.emit(encodeSection('table2', this.segPos, table));
    this.chunksWritten += placed;
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
