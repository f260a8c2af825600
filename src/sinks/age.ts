import { randomBytes } from 'node:crypto';
import { MemdumpError } from '../core/errors.js';
import { type AgeRecipient, CHUNK_SIZE, NONCE_SIZE, TAG_SIZE, encodeHeader, headerSize, newFileKey, payloadKey, sealChunk } from '../crypto/age.js';
import type { OutputSink, Receipt } from './types.js';

/**
 * Exact stored size of an age v1 file of `plaintextBytes` for n X25519 recipients, as AgeEncryptSink writes it
 * (no grease stanzas, no armor): header + payload nonce + one 16-byte tag per 64 KiB chunk, at least one chunk.
 */
export function ageCiphertextSize(plaintextBytes: bigint, recipients: number): bigint {
  if (plaintextBytes < 0n || !Number.isInteger(recipients) || recipients < 1) {
    throw new MemdumpError('E_USAGE', 'ageCiphertextSize: plaintext size must be >= 0 and there must be at least one recipient');
  }
  const chunk = BigInt(CHUNK_SIZE);
  const chunks = plaintextBytes === 0n ? 1n : (plaintextBytes + chunk - 1n) / chunk;
  return BigInt(headerSize(recipients) + NONCE_SIZE) + plaintextBytes + chunks * BigInt(TAG_SIZE);
}

/** Encrypts everything written to it into an age v1 file on `inner`. */
export class AgeEncryptSink implements OutputSink {
  readonly describe: string;
  private readonly key: Buffer;
  // one chunk of plaintext; a full chunk is sealed only when more data arrives, because the final chunk must
  // carry the last flag even when it is full
  private readonly chunk = Buffer.allocUnsafe(CHUNK_SIZE);
  private fill = 0;
  private counter = 0;
  private accepted = 0n;
  private stored = 0n;
  private state: 'open' | 'failed' | 'done' = 'open';

  private constructor(
    private readonly inner: OutputSink,
    key: Buffer,
  ) {
    this.key = key;
    this.describe = `${inner.describe} (age)`;
  }

  static async create(inner: OutputSink, recipients: readonly AgeRecipient[]): Promise<AgeEncryptSink> {
    if (recipients.length === 0) throw new MemdumpError('E_USAGE', 'age encryption needs at least one --recipient');
    const fileKey = newFileKey();
    const nonce = randomBytes(NONCE_SIZE);
    const sink = new AgeEncryptSink(inner, payloadKey(fileKey, nonce));
    await sink.emit(Buffer.concat([encodeHeader(fileKey, recipients), nonce]));
    return sink;
  }

  get position(): bigint {
    return this.accepted;
  }

  get storedBytes(): bigint {
    return this.stored;
  }

  private async emit(b: Buffer): Promise<void> {
    try {
      await this.inner.write(b);
    } catch (e) {
      this.state = 'failed';
      throw e;
    }
    this.stored += BigInt(b.length);
  }

  private check(): void {
    if (this.state !== 'open') throw new MemdumpError('E_WRITE', `age stream on ${this.inner.describe} is ${this.state === 'done' ? 'already finished' : 'broken by an earlier write error'}`);
  }

  private async sealFull(plain: Buffer = this.chunk): Promise<void> {
    const sealed = sealChunk(this.key, this.counter, false, plain);
    this.counter++;
    this.fill = 0;
    await this.emit(sealed);
  }

  async write(buf: Buffer): Promise<void> {
    this.check();
    let off = 0;
    while (off < buf.length) {
      if (this.fill === CHUNK_SIZE) await this.sealFull();
      // a whole chunk with more bytes behind it is sealed straight from the caller's buffer
      if (this.fill === 0 && buf.length - off > CHUNK_SIZE) {
        await this.sealFull(buf.subarray(off, off + CHUNK_SIZE));
        off += CHUNK_SIZE;
        this.accepted += BigInt(CHUNK_SIZE);
        continue;
      }
      const n = Math.min(CHUNK_SIZE - this.fill, buf.length - off);
      buf.copy(this.chunk, this.fill, off, off + n);
      this.fill += n;
      off += n;
      this.accepted += BigInt(n);
    }
  }

  async writeZeros(n: bigint): Promise<void> {
    this.check();
    let left = n;
    while (left > 0n) {
      if (this.fill === CHUNK_SIZE) await this.sealFull();
      const k = Math.min(CHUNK_SIZE - this.fill, Number(left > BigInt(CHUNK_SIZE) ? BigInt(CHUNK_SIZE) : left));
      this.chunk.fill(0, this.fill, this.fill + k);
      this.fill += k;
      left -= BigInt(k);
      this.accepted += BigInt(k);
    }
  }

  async finish(): Promise<Receipt> {
    this.check();
    // empty only when nothing was ever written: the one case where the spec allows an empty final chunk
    await this.emit(sealChunk(this.key, this.counter, true, this.chunk.subarray(0, this.fill)));
    this.counter++;
    this.fill = 0;
    this.state = 'done';
    return this.inner.finish();
  }

  async abort(): Promise<Receipt> {
    // no final chunk: what reached inner cannot decrypt as complete
    this.state = 'failed';
    return this.inner.abort();
  }
}
