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
