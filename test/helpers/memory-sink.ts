import type { OutputSink, Receipt } from '../../src/sinks/types.js';

/** Collects container bytes in memory; optionally fails after `failAfter` bytes (a full disk). */
export class MemorySink implements OutputSink {
  readonly describe = 'memory';
  readonly parts: Buffer[] = [];
  private pos = 0n;
  aborted = false;
  constructor(private readonly failAfter?: bigint) {}
  get position(): bigint {
    return this.pos;
  }
  async write(buf: Buffer): Promise<void> {
    if (this.failAfter !== undefined && this.pos + BigInt(buf.length) > this.failAfter) {
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    }
    this.parts.push(Buffer.from(buf));
    this.pos += BigInt(buf.length);
  }
  async writeZeros(n: bigint): Promise<void> {
    await this.write(Buffer.alloc(Number(n)));
  }
  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
  async finish(): Promise<Receipt> {
    return { path: 'memory', bytes: this.pos, complete: true };
  }
  async abort(): Promise<Receipt> {
    this.aborted = true;
    return { path: 'memory', bytes: this.pos, complete: false };
  }
}

/**
 * A MemorySink that writes segment sets (E01 .E01/.E02…): newSegment() starts a new segment; position keeps
 * counting across all of them, as a file-set sink's does.
 */
export class SegmentedMemorySink extends MemorySink {
  /** Index in `parts` where each segment starts. */
  private readonly starts: number[] = [0];
  async newSegment(): Promise<void> {
    this.starts.push(this.parts.length);
  }
  get segments(): Buffer[] {
    return this.starts.map((s, i) => Buffer.concat(this.parts.slice(s, this.starts[i + 1] ?? this.parts.length)));
  }
  override async finish(): Promise<Receipt> {
    const segments = this.segments.map((b, i) => ({ path: `memory.${i + 1}`, bytes: BigInt(b.length) }));
    return { ...(await super.finish()), segments };
  }
}
