import { createHash, type Hash } from 'node:crypto';
import { zeroPieces } from '../core/hasher.js';
import type { OutputSink, Receipt } from './types.js';

/**
 * The last wrapper before the destination: SHA-256 and length of the bytes actually stored or sent, after
 * compression and encryption. The report's main hashes cover the container (what an analyst opens after
 * decrypting); this one is what `memdump verify` can check on the ciphertext the receiver holds.
 */
export class StoredDigestSink implements OutputSink {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0n;
  private digestHex: string | undefined;

  constructor(private readonly inner: OutputSink) {}

  get describe(): string {
    return this.inner.describe;
  }
  get position(): bigint {
    return this.bytes;
  }
  async write(buf: Buffer): Promise<void> {
    if (buf.length === 0) return;
    this.hash.update(buf);
    this.bytes += BigInt(buf.length);
    await this.inner.write(buf);
  }
  async writeZeros(n: bigint): Promise<void> {
    // a layer above this one never asks for a hole; keep the contract for any sink
    for (const z of zeroPieces(n)) await this.write(z);
  }
  async finish(): Promise<Receipt> {
    const r = await this.inner.finish();
    this.digestHex = this.hash.digest('hex');
    return r;
  }
  async abort(): Promise<Receipt> {
    const r = await this.inner.abort();
    this.digestHex = this.hash.digest('hex');
    return r;
  }
  /** After finish() or abort(): what the destination holds. */
  stored(): { bytes: bigint; sha256: string | null } {
    return { bytes: this.bytes, sha256: this.digestHex ?? null };
  }
}
