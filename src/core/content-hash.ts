import { createHash } from 'node:crypto';
import { type Range, normalize } from './ranges.js';

/**
 * Content hash over (address, bytes): SHA-256 over, for each maximal run of adjacent ranges, its start and
 * length (u64 LE each) followed by its bytes. It does not depend on the container (record sizes, headers,
 * compression), so it must stay the same through any chain of conversions.
 */
export class ContentHasher {
  private readonly h = createHash('sha256');
  private readonly merged: Range[];
  private cursor = -1n;
  private runEnd = -1n;

  constructor(runs: readonly Range[]) {
    this.merged = normalize(runs);
  }

  update(addr: bigint, chunk: Buffer): void {
    if (addr !== this.cursor || this.cursor === this.runEnd) {
      const run = this.merged.find((r) => r.start <= addr && addr < r.end);
      if (!run) throw new RangeError(`content hash: address 0x${addr.toString(16)} outside the map`);
      const hdr = Buffer.alloc(16);
      hdr.writeBigUInt64LE(addr, 0);
      hdr.writeBigUInt64LE(run.end - addr, 8);
      this.h.update(hdr);
      this.runEnd = run.end;
    }
    this.h.update(chunk);
    this.cursor = addr + BigInt(chunk.length);
  }

  digest(): string {
    return this.h.digest('hex');
  }
}
