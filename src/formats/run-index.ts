import { corrupt } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { checkReadLength } from './read-length.js';

interface Entry {
  range: Range;
  fileOffset: bigint;
}

/**
 * Maps physical runs to where each run's bytes start: file offsets for containers that store bytes plainly (LiME,
 * ELF, padded, raw), media offsets (E01) or record positions (AVML) for compressed ones.
 * Enforces what Volatility requires of such files: ascending, non-overlapping runs.
 */
export class RunIndex {
  private readonly entries: Entry[] = [];
  constructor(private readonly what: string) {}

  get count(): number {
    return this.entries.length;
  }

  get runs(): Range[] {
    return this.entries.map((e) => e.range);
  }

  add(range: Range, fileOffset: bigint, headerOffset: bigint): void {
    const last = this.entries[this.entries.length - 1];
    if (last && range.start < last.range.end) {
      throw corrupt(`${this.what} range ${hex(range.start)} overlaps or precedes the previous one (ends ${hex(last.range.end)})`, headerOffset);
    }
    if (range.end > range.start) this.entries.push({ range, fileOffset });
  }

  /** Position of the entry whose run holds addr, or -1. */
  private indexOf(addr: bigint): number {
    let lo = 0;
    let hi = this.entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = this.entries[mid]!;
      if (addr < e.range.start) hi = mid - 1;
      else if (addr >= e.range.end) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  private find(addr: bigint): Entry | undefined {
    return this.entries[this.indexOf(addr)];
  }

  fileOffsetOf(addr: bigint): bigint | undefined {
    const e = this.find(addr);
    return e ? e.fileOffset + (addr - e.range.start) : undefined;
  }

  /** The first physical address whose bytes are stored in file offsets [start, end). */
  firstAddressIn(start: bigint, end: bigint): bigint | undefined {
    for (const e of this.entries) {
      const dataEnd = e.fileOffset + (e.range.end - e.range.start);
      if (e.fileOffset < end && dataEnd > start) return e.range.start + (start > e.fileOffset ? start - e.fileOffset : 0n);
    }
    return undefined;
  }

  /**
   * Fill `length` bytes from physical `addr`, run by run: `part(entry, offset, out, at, n)` copies the n bytes stored
   * at `offset` (the entry's offset plus the distance into its run) into out[at, at + n). A read may span adjacent
   * runs but never a hole (E_CORRUPT). Compressed containers (AVML, E01) supply their own `part`.
   */
  async gather(addr: bigint, length: number, part: (entry: number, offset: bigint, out: Buffer, at: number, n: number) => Promise<void>): Promise<Buffer> {
    checkReadLength(this.what, length);
    // check the whole span lies in runs before allocating: a lying caller must not cost `length` bytes of memory
    for (let a = addr; a < addr + BigInt(length); ) {
      const i = this.indexOf(a);
      if (i < 0) throw new MemdumpError('E_CORRUPT', `${this.what}: address ${hex(a)} is not in any run`, { details: { address: hex(a) } });
      a = this.entries[i]!.range.end;
    }
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const a = addr + BigInt(done);
      const i = this.indexOf(a);
      if (i < 0) throw new MemdumpError('E_CORRUPT', `${this.what}: address ${hex(a)} is not in any run`, { details: { address: hex(a) } });
      const e = this.entries[i]!;
      const avail = e.range.end - a;
      const n = Number(avail < BigInt(length - done) ? avail : BigInt(length - done));
      await part(i, e.fileOffset + (a - e.range.start), out, done, n);
      done += n;
    }
    return out;
  }

  /** Read bytes at a physical address from a container that stores them plainly. */
  read(file: RandomAccessFile, addr: bigint, length: number): Promise<Buffer> {
    return this.gather(addr, length, async (_entry, offset, out, at, n) => {
      (await file.readExact(offset, n, `${this.what} data`)).copy(out, at);
    });
  }
}
