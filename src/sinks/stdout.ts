import { MemdumpError } from '../core/errors.js';
import { zeroPieces } from '../core/hasher.js';
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
    // wait for the write itself, not only for 'drain': the caller reuses buf as soon as this resolves
    const err = await new Promise<Error | null | undefined>((resolve) => this.stream.write(buf, resolve));
    if (err) throw new MemdumpError('E_WRITE', `standard output failed: ${err.message}`, { cause: err });
  }

  async writeZeros(n: bigint): Promise<void> {
    for (const z of zeroPieces(n)) await this.write(z);
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
