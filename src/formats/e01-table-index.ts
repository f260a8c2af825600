/**
 * Where an E01 chunk's stored bytes are: media chunk → table (binary search) → entry → offset in a segment file. A
 * chunk's stored size is the distance to the next entry, or to the end of its table's data for the last entry.
 *
 * Memory: table entries are kept raw (a Uint32Array, 4 bytes per chunk) up to the caller's budget of entries; beyond
 * that tables are re-read (and re-checked) on demand, least recently used first out.
 */
import { TABLE_COMPRESSED } from './e01-layout.js';
import { loadTable, readSection, type TableRef } from './e01-read.js';
import type { SegmentFiles } from './e01-segment-set.js';
import type { SetIndex } from './e01-set-index.js';
import type { Lru } from '../core/lru.js';

/** Stored chunk bytes fetched with one read when chunks are streamed. */
const SPAN_BYTES = 2 << 20;

/** One chunk's stored bytes: where in its segment file, how many, and whether they are deflated. */
export interface StoredRef {
  readonly c: number;
  readonly at: number;
  readonly size: number;
  readonly compressed: boolean;
}

/** Consecutive chunks stored back to back in one segment file, read at once. */
export interface Span {
  readonly segment: number;
  readonly at: number;
  readonly size: number;
  readonly chunks: StoredRef[];
}

export class TableIndex {
  constructor(
    private readonly files: SegmentFiles,
    private readonly ix: SetIndex,
    private readonly entries: Lru<Uint32Array>,
  ) {}

  private tableOf(c: number): number {
    const t = this.ix.tables;
    let lo = 0;
    let hi = t.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (t[mid]!.firstChunk <= c) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private async entriesOf(ti: number): Promise<Uint32Array> {
    const hit = this.entries.get(ti);
    if (hit) return hit;
    const ref = this.ix.tables[ti]!;
    const e = await this.files.with(ref.segment, async (f) => {
      const s = await readSection(f, ref.offset);
      return (await loadTable(f, s, ref.footer, { dataStart: ref.dataStart, dataEnd: ref.dataEnd }, ref)).entries;
    });
    this.entries.put(ti, e, e.length);
    return e;
  }

  /**
   * Chunks [c, …) of one table whose stored bytes are one read of at most SPAN_BYTES (at least chunk c). The last
   * chunk's stored size is not checked here: the caller must before reading it.
   */
  async span(c: number, to: number): Promise<Span> {
    const ti = this.tableOf(c);
    const ref = this.ix.tables[ti]!;
    const entries = await this.entriesOf(ti);
    const stop = Math.min(to, ref.firstChunk + ref.count);
    const at = entryOffset(ref, entries, c - ref.firstChunk);
    const chunks: StoredRef[] = [];
    let pos = at;
    for (let k = c; k < stop; k++) {
      const i = k - ref.firstChunk;
      const end = i + 1 < ref.count ? entryOffset(ref, entries, i + 1) : ref.dataEnd;
      if (chunks.length > 0 && end - at > SPAN_BYTES) break;
      chunks.push({ c: k, at: pos, size: end - pos, compressed: i < ref.overflowAt && (entries[i]! & TABLE_COMPRESSED) !== 0 });
      pos = end;
    }
    return { segment: ref.segment, at, size: pos - at, chunks };
  }

  /** Path of the segment file that holds chunk c. */
  pathOf(c: number): string {
    return this.ix.segments[this.ix.tables[this.tableOf(c)]!.segment]!.path;
  }

  clear(): void {
    this.entries.clear();
  }
}

function entryOffset(ref: TableRef, entries: Uint32Array, i: number): number {
  const e = entries[i]!;
  return ref.base + (i >= ref.overflowAt ? e : e & 0x7fffffff);
}
