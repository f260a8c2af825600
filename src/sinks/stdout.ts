import { MemdumpError } from '../core/errors.js';
import { zeroBlock } from '../core/hasher.js';
import type { OutputSink, Receipt } from './types.js';

/** `-o -`: container bytes to standard output with backpressure; the report goes elsewhere. */
export class StdoutSink implements OutputSink {
  readonly describe = '-';
  private pos = 0n;
  private error: Error | undefined;

  constructor(private readonly stream: NodeJS.WritableStream = process.stdout) {
    stream.on('error', (e: Error) => (this.error = e));
  }

  get position(): bigint {
    return this.pos;
  }

  async write(buf: Buffer): Promise<void> {
    if (this.error) throw new MemdumpError('E_WRITE', `standard output failed: ${this.error.message}`, { cause: this.error });
    this.pos += BigInt(buf.length);
    if (!this.stream.write(buf)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.stream.off('drain', done);
          this.stream.off('error', done);
          resolve();
        };
        this.stream.on('drain', done);
        this.stream.on('error', done);
      });
    }
  }

  async writeZeros(n: bigint): Promise<void> {
    const z = zeroBlock();
    while (n > 0n) {
      const k = n < BigInt(z.length) ? Number(n) : z.length;
      await this.write(Buffer.from(z.subarray(0, k)));
      n -= BigInt(k);
    }
  }

  async finish(): Promise<Receipt> {
    await new Promise<void>((resolve) => this.stream.write(Buffer.alloc(0), () => resolve()));
    if (this.error) throw new MemdumpError('E_WRITE', `standard output failed: ${this.error.message}`, { cause: this.error });
    return { path: '-', bytes: this.pos, complete: true };
  }

  async abort(): Promise<Receipt> {
    return { path: '-', bytes: this.pos, complete: false };
  }
}
