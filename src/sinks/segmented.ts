import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MemdumpError, errnoOf } from '../core/errors.js';
import { MAX_SEGMENTS, segmentExtensionOf, segmentNumberOf } from '../formats/e01-layout.js';
import { assertAbsent } from './exclusive.js';
import { PARTIAL, PartialFile, syncDir } from './file.js';
import type { OutputSink, Receipt } from './types.js';

/** How the pieces of a set are named: BASE.<ext(n)> for n = 1, 2, … */
export interface SegmentNaming {
  readonly mode: 'e01' | 'split';
  /** Every piece is BASE + '.' + ext(n). */
  readonly base: string;
  /** The extension of piece n (1-based), or undefined past the last name the scheme has. */
  ext(n: number): string | undefined;
  /** The inverse of ext: which piece an extension names, or undefined if the scheme never produces it. */
  pieceOf(ext: string): number | undefined;
}

/** E01 names stop at ZZZ: libewf refuses a first character past 'Z' (22 letters E…Z × 676 after the 99 digit names). */
export const E01_MAX_SEGMENTS = MAX_SEGMENTS;

/**
 * libewf's EWF-E01 scheme (segmentExtensionOf): E01 … E99, then EAA … EZZ, FAA … ZZZ (segment 100 is EAA). A
 * lowercase first segment (x.e01) continues in lowercase, as libewf's glob expects when it is given x.e01.
 */
export function e01Naming(firstPath: string): SegmentNaming {
  const m = /\.([eE])01$/.exec(firstPath);
  if (!m) throw new MemdumpError('E_USAGE', `an E01 segment set must start with a .E01 file (got ${firstPath})`);
  const letter = m[1]!;
  return {
    mode: 'e01',
    base: firstPath.slice(0, -4),
    ext: (n) => segmentExtensionOf(letter, n),
    pieceOf: (ext) => segmentNumberOf(letter, ext),
  };
}

/** Split raw images as `split -d -a 3 --numeric-suffixes=1`, FTK Imager and dc3dd name them: BASE.001, .002, … (.1000 after .999). */
export function splitNaming(base: string): SegmentNaming {
  return {
    mode: 'split',
    base,
    ext: (n) => (Number.isInteger(n) && n >= 1 ? String(n).padStart(3, '0') : undefined),
    pieceOf(ext) {
      if (!/^[0-9]{3,}$/.test(ext)) return undefined;
      const n = Number(ext);
      return n >= 1 && String(n).padStart(3, '0') === ext ? n : undefined;
    },
  };
}

export function piecePath(naming: SegmentNaming, n: number): string {
  const ext = naming.ext(n);
  if (ext === undefined) {
    throw new MemdumpError('E_UNSUPPORTED', `${naming.base}: no name for piece ${n} (E01 sets end at ${E01_MAX_SEGMENTS} segments); choose a larger --segment-size`, {
      details: { piece: n },
    });
  }
  return `${naming.base}.${ext}`;
}

/**
 * A set of evidence files written as one stream: every piece exactly like FileSink (NAME.partial, 0600,
 * O_EXCL|O_NOFOLLOW, fsynced, published with link()+unlink()). In 'e01' mode the container writer decides where a
 * piece ends (newSegment()); in 'split' mode a piece ends every `splitBytes` bytes and a write across the boundary
 * is divided. `position` counts bytes across all pieces: an E01 writer that needs offsets within its segment file
 * subtracts the position at which it called newSegment(). A finished piece is sealed (fsynced, closed) at once, so
 * open descriptors do not grow with the number of pieces; all are published together by finish().
 */
export class SegmentedFileSink implements OutputSink {
  /** Only in 'e01' mode: a writer tests for it. */
  declare newSegment?: () => Promise<void>;
  private readonly pieces: PartialFile[] = [];
  private sealed = 0;
  private state: 'open' | 'finished' | 'failed' = 'open';

  private constructor(
    readonly naming: SegmentNaming,
    private readonly splitBytes: number,
    first: PartialFile,
  ) {
    this.pieces.push(first);
    if (naming.mode === 'e01') this.newSegment = () => this.next();
  }

  /** E01 segment set starting at `firstPath` (must end in .E01 or .e01). */
  static e01(firstPath: string): Promise<SegmentedFileSink> {
    return SegmentedFileSink.create(e01Naming(firstPath), 0n);
  }

  /** BASE.001, BASE.002, … of `splitBytes` bytes each (the last may be shorter). */
  static split(base: string, splitBytes: bigint): Promise<SegmentedFileSink> {
    if (splitBytes < 1n || splitBytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new MemdumpError('E_USAGE', `split size ${splitBytes} is out of range`);
    return SegmentedFileSink.create(splitNaming(base), splitBytes);
  }

  static async create(naming: SegmentNaming, splitBytes: bigint): Promise<SegmentedFileSink> {
    await assertNoPieceExists(naming);
    return new SegmentedFileSink(naming, Number(splitBytes), await PartialFile.create(piecePath(naming, 1)));
  }

  get describe(): string {
    return this.pieces[0]!.path;
  }
  get position(): bigint {
    return BigInt(this.sealed + this.current.size);
  }
  /** Pieces so far, in order, with where their bytes are now. */
  get segments(): { path: string; bytes: bigint }[] {
    return this.pieces.map((p) => ({ path: p.currentPath, bytes: BigInt(p.size) }));
  }

  async write(buf: Buffer): Promise<void> {
    if (this.naming.mode === 'e01') return this.current.write(buf);
    let off = 0;
    while (off < buf.length) {
      const room = this.splitBytes - this.current.size;
      if (room === 0) {
        await this.next();
        continue;
      }
      const n = Math.min(room, buf.length - off);
      await this.current.write(buf, off, off + n);
      off += n;
    }
  }

  async writeZeros(n: bigint): Promise<void> {
    let left = Number(n);
    if (this.naming.mode === 'e01') return this.current.skip(left);
    while (left > 0) {
      const room = this.splitBytes - this.current.size;
      if (room === 0) {
        await this.next();
        continue;
      }
      const k = Math.min(room, left);
      this.current.skip(k);
      left -= k;
    }
  }

  async finish(): Promise<Receipt> {
    this.assertOpen();
    this.state = 'failed';
    await this.current.seal();
    for (let i = 0; i < this.pieces.length; i++) {
      try {
        await this.pieces[i]!.publish();
      } catch (e) {
        const err = e instanceof MemdumpError ? e : new MemdumpError('E_WRITE', String(e));
        const kept = this.pieces.slice(i).map((p) => p.partialPath);
        throw new MemdumpError(err.code, `${err.message}; ${i} of ${this.pieces.length} pieces were published, ${kept.length} stay .partial (${kept[0]}${kept.length > 1 ? ' …' : ''})`, {
          details: { ...err.details, piece: i + 1, published: this.pieces.slice(0, i).map((p) => p.path), partial: kept },
          cause: e,
        });
      }
    }
    this.state = 'finished';
    await syncDir(dirname(this.naming.base));
    return { path: this.pieces[0]!.path, bytes: this.position, complete: true, segments: this.segments };
  }

  async abort(): Promise<Receipt> {
    if (this.state === 'open') this.state = 'failed';
    await this.current.abandon();
    const first = this.pieces[0]!;
    return { path: first.path, partialPath: first.currentPath, bytes: this.position, complete: false, segments: this.segments };
  }

  private get current(): PartialFile {
    return this.pieces[this.pieces.length - 1]!;
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new MemdumpError('E_INTERNAL', `${this.describe}: the segment set is already ${this.state === 'finished' ? 'finished' : 'closed after a failure'}`);
  }

  /** Seal the current piece and start the next; a name that exists now (file or symlink) stops the set. */
  private async next(): Promise<void> {
    this.assertOpen();
    const path = piecePath(this.naming, this.pieces.length + 1);
    const cur = this.current;
    await cur.seal();
    this.sealed += cur.size;
    this.pieces.push(await PartialFile.create(path));
  }
}

/**
 * Refuse before the first byte when any name the set could use (or its .partial) is taken: a set that collides
 * halfway would leave evidence split between two acquisitions. One readdir covers every possible name.
 */
async function assertNoPieceExists(naming: SegmentNaming): Promise<void> {
  const dir = dirname(naming.base);
  const prefix = basename(naming.base) + '.';
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch (e) {
    // an unlistable (write-only) directory: the first name is still checked, the others when they are opened
    if (errnoOf(e) === 'ENOENT') throw new MemdumpError('E_NOT_FOUND', `${dir} does not exist`, { details: { path: dir } });
    entries = [];
  }
  for (const name of entries.sort()) {
    if (!name.startsWith(prefix)) continue;
    let ext = name.slice(prefix.length);
    if (ext.endsWith(PARTIAL)) ext = ext.slice(0, -PARTIAL.length);
    const n = naming.pieceOf(ext);
    if (n !== undefined) {
      await assertAbsent(join(dir, name));
    }
  }
}
