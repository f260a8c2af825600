import type { Range } from '../../src/core/ranges.js';
import type { DeviceFacts } from '../../src/sources/device.js';
import type { PhysicalSource } from '../../src/sources/types.js';

/**
 * A disk with bad sectors, where the kernel tools to make one (device-mapper's error target) are missing: reads
 * behave as a block device's do with O_DIRECT: a read that reaches a bad sector returns the bytes before it, or
 * fails with the errno when the bad sector is the first one asked for. Flaky sectors fail a given number of times
 * and then read (a marginal sector that a retry recovers). `generation` changes the content (verify tests).
 */
export class SectorFaultSource implements PhysicalSource {
  readonly kind = 'device' as const;
  readonly notes = [];
  readonly info: Record<string, unknown> = { device: 'fault-injecting' };
  readonly ranges: Range[];
  /** Sector number → errno: always fails. */
  readonly bad = new Map<bigint, string>();
  /** Sector number → remaining failures (EIO) before it reads. */
  readonly flaky = new Map<bigint, number>();
  /** Every failed read: the sector it failed on. */
  readonly failures: bigint[] = [];
  generation = 0;
  reads = 0;

  constructor(
    readonly path: string,
    readonly size: bigint,
    readonly pageSize = 512,
  ) {
    this.ranges = size > 0n ? [{ start: 0n, end: size }] : [];
  }

  /** Content of byte a in the current generation: address-dependent, never all zero. */
  byte(a: bigint): number {
    const x = Number(a & 0xffffffffn);
    return ((Math.imul(x ^ (this.generation * 0x9e3779b1), 2654435761) >>> 24) & 0xff) | 1;
  }

  expected(start = 0n, end = this.size): Buffer {
    const b = Buffer.alloc(Number(end - start));
    for (let i = 0; i < b.length; i++) b[i] = this.byte(start + BigInt(i));
    return b;
  }

  async read(addr: bigint, buf: Buffer, length: number): Promise<number> {
    this.reads++;
    const ss = BigInt(this.pageSize);
    let n = Number(addr + BigInt(length) > this.size ? this.size - addr : BigInt(length));
    if (n <= 0) return 0;
    for (let s = addr / ss; s * ss < addr + BigInt(n); s++) {
      const errno = this.bad.get(s) ?? ((this.flaky.get(s) ?? 0) > 0 ? 'EIO' : undefined);
      if (errno === undefined) continue;
      const before = s * ss - addr;
      if (before <= 0n) {
        const left = this.flaky.get(s);
        if (left !== undefined && !this.bad.has(s)) this.flaky.set(s, left - 1);
        this.failures.push(s);
        throw Object.assign(new Error(`sector ${s}: ${errno}`), { code: errno });
      }
      n = Number(before);
      break;
    }
    for (let i = 0; i < n; i++) buf[i] = this.byte(addr + BigInt(i));
    return n;
  }

  async close(): Promise<void> {}

  facts(over: Partial<DeviceFacts> = {}): DeviceFacts {
    return {
      path: this.path,
      type: 'block',
      bytes: this.size,
      sectorSize: this.pageSize,
      devId: '0:0',
      removable: false,
      model: 'fault-injecting test disk',
      serial: null,
      mounts: [],
      related: [],
      io: 'direct (simulated)',
      ...over,
    };
  }
}
