import type { Range } from '../../src/core/ranges.js';
import type { PhysicalSource } from '../../src/sources/types.js';

export interface Faults {
  /** Page numbers (address / pageSize) that always fail with this errno. */
  badPages: Map<bigint, string>;
  /** Probability a read returns fewer bytes than asked (but at least 1). */
  shortReadRate: number;
  /** Probability a read fails once with EINTR before succeeding. */
  eintrRate: number;
  /** Probability a read is delayed (a slow page). */
  slowRate: number;
  slowMs: number;
  /** Reads larger than one page fail when they touch a bad page (as kcore/dev files do). */
}

/** A source over an in-memory map whose reads fail, come up short, get interrupted or stall as asked. */
export class FaultSource implements PhysicalSource {
  readonly kind = 'file' as const;
  readonly path = 'fault-injecting';
  readonly notes = [];
  readonly info = {};
  reads = 0;
  private rnd: () => number;
  constructor(
    readonly ranges: Range[],
    readonly pageSize: number,
    private readonly content: (addr: number) => number,
    private readonly faults: Faults,
    seed: number,
  ) {
    let s = seed >>> 0 || 1;
    this.rnd = () => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s / 0x100000000;
    };
  }
  async read(addr: bigint, buf: Buffer, length: number): Promise<number> {
    this.reads++;
    if (this.faults.slowRate > 0 && this.rnd() < this.faults.slowRate) await new Promise((r) => setTimeout(r, this.faults.slowMs));
    if (this.rnd() < this.faults.eintrRate) throw Object.assign(new Error('interrupted'), { code: 'EINTR' });
    const page = BigInt(this.pageSize);
    let n = length;
    if (length > 1 && this.rnd() < this.faults.shortReadRate) n = 1 + Math.floor(this.rnd() * (length - 1));
    // a read touching a bad page fails if the bad page is its first page, else stops short before it
    for (let p = addr / page; p * page < addr + BigInt(n); p++) {
      const errno = this.faults.badPages.get(p);
      if (errno === undefined) continue;
      const before = Number(p * page - addr);
      if (before <= 0) throw Object.assign(new Error(`bad page ${p}`), { code: errno });
      n = before;
      break;
    }
    const base = Number(addr);
    for (let i = 0; i < n; i++) buf[i] = this.content(base + i);
    return n;
  }
  async close(): Promise<void> {}
}

/** Byte content of address a in fault tests: cheap, address-dependent, never all zero. */
export function patternByte(a: number): number {
  return ((Math.imul(a, 2654435761) + (a >>> 12)) & 0xff) | 1;
}
