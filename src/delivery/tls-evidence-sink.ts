import { createHash } from 'node:crypto';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import type { OutputSink, Receipt } from '../sinks/types.js';
import { CHUNK } from './tls-channel.js';
import type { TlsTarget } from './tls-target.js';

/** The evidence file of a TLS upload; finish() holds the receiver to the byte count and digest that were sent. */
export class TlsEvidenceSink implements OutputSink {
  private pos = 0n;
  private readonly hash = createHash('sha256');
  private done = false;
  private static readonly ZEROS = Buffer.alloc(CHUNK);

  constructor(
    private readonly t: TlsTarget,
    readonly describe: string,
  ) {}

  get position(): bigint {
    return this.pos;
  }

  async write(buf: Buffer): Promise<void> {
    if (this.done) throw new MemdumpError('E_INTERNAL', `${this.describe}: write after finish/abort`);
    this.hash.update(buf);
    this.pos += BigInt(buf.length);
    await this.t.sendData(buf);
  }

  async writeZeros(n: bigint): Promise<void> {
    while (n > 0n) {
      const k = n > BigInt(CHUNK) ? CHUNK : Number(n);
      await this.write(TlsEvidenceSink.ZEROS.subarray(0, k));
      n -= BigInt(k);
    }
  }

  async finish(): Promise<Receipt> {
    this.done = true;
    this.t.throwIfFailed();
    const sha256 = this.hash.digest('hex');
    const res = await this.t.end(this.pos, sha256);
    if (res['status'] !== 'COMPLETE') {
      throw new MemdumpError('E_REMOTE', `the receiver kept the upload as INCOMPLETE: ${escapeControl(String(res['reason'] ?? 'no reason given'))}`, { details: { result: res } });
    }
    // the receiver's own count and digest of what it wrote must be ours: a COMPLETE alone is only its word
    if (res['sha256'] !== sha256 || res['bytes'] !== this.pos.toString()) {
      throw new MemdumpError('E_REMOTE', `the receiver says COMPLETE but reports ${escapeControl(String(res['bytes']))} bytes / SHA-256 ${escapeControl(String(res['sha256']))}, not the ${this.pos} bytes / ${sha256} sent`, { details: { result: res } });
    }
    return { path: this.describe, bytes: this.pos, complete: true };
  }

  async abort(): Promise<Receipt> {
    if (!this.done) {
      this.done = true;
      await this.t.abortUpload('sender aborted the acquisition');
    }
    return { path: this.describe, partialPath: this.describe + '.partial', bytes: this.pos, complete: false };
  }
}
