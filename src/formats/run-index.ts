import { corrupt } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';

interface Entry {
  range: Range;
  fileOffset: bigint;
}

/**
 * Maps physical runs to file offsets for containers that store bytes uncompressed (LiME, ELF, padded, raw).
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

  private find(addr: bigint): Entry | undefined {
    let lo = 0;
    let hi = this.entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = this.entries[mid]!;
      if (addr < e.range.start) hi = mid - 1;
      else if (addr >= e.range.end) lo = mid + 1;
      else return e;
    }
    return undefined;
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

  /** Read bytes at a physical address; a read may span adjacent runs but never a hole. */
  async read(file: RandomAccessFile, addr: bigint, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const a = addr + BigInt(done);
      const e = this.find(a);
      if (!e) throw new MemdumpError('E_CORRUPT', `${this.what}: address ${hex(a)} is not in any run`, { details: { address: hex(a) } });
      const avail = e.range.end - a;
      const n = Number(avail < BigInt(length - done) ? avail : BigInt(length - done));
      const got = await file.readExact(e.fileOffset + (a - e.range.start), n, `${this.what} data`);
      got.copy(out, done);
      done += n;
    }
    return out;
  }
}
