import type { Range } from '../../src/core/ranges.js';
import type { ImageNote } from '../../src/formats/types.js';
import type { PhysicalSource } from '../../src/sources/types.js';
import type { SparseImage } from '../fixtures/generate.js';

/** A source over an in-memory sparse image. */
export class MemorySource implements PhysicalSource {
  readonly kind = 'file' as const;
  readonly path = 'memory';
  readonly info = {};
  readonly pageSize = 4096;
  constructor(
    private readonly img: SparseImage,
    readonly notes: readonly ImageNote[] = [],
  ) {}
  get ranges(): readonly Range[] {
    return this.img.runs;
  }
  async read(addr: bigint, buf: Buffer, length: number): Promise<number> {
    const i = this.img.runs.findIndex((r) => r.start <= addr && addr < r.end);
    if (i < 0) throw Object.assign(new Error('hole'), { code: 'EFAULT' });
    const r = this.img.runs[i]!;
    const off = Number(addr - r.start);
    const n = Math.min(length, Number(r.end - addr));
    this.img.data[i]!.copy(buf, 0, off, off + n);
    return n;
  }
  async close(): Promise<void> {}
}
