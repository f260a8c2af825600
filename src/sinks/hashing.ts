import type { Hasher } from '../core/hasher.js';
import type { ByteSink } from '../formats/types.js';
import type { OutputSink } from './types.js';

/** Tee: every container byte goes to the hasher and then to the sink, so the report's hashes match the file. */
export class HashingSink implements ByteSink {
  /** Present only when the inner sink writes segment sets: a writer tests for it. */
  declare newSegment?: () => Promise<void>;
  constructor(
    private readonly inner: OutputSink,
    private readonly hasher: Hasher,
  ) {
    if (inner.newSegment) this.newSegment = () => inner.newSegment!();
  }
  get position(): bigint {
    return this.inner.position;
  }
  async write(buf: Buffer): Promise<void> {
    if (buf.length === 0) return;
    await this.hasher.update(buf);
    await this.inner.write(buf);
  }
  async writeZeros(n: bigint): Promise<void> {
    if (n === 0n) return;
    await this.hasher.updateZeros(n);
    await this.inner.writeZeros(n);
  }
}
