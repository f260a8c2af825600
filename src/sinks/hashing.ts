import type { Hasher } from '../core/hasher.js';
import type { ByteSink } from '../formats/types.js';
import type { OutputSink } from './types.js';

/** Tee: every container byte goes to the hasher and then to the sink, so the report's hashes match the file. */
export class HashingSink implements ByteSink {
  constructor(
    private readonly inner: OutputSink,
    private readonly hasher: Hasher,
  ) {}
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
