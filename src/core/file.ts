import { close, fstat, open, read } from 'node:fs';
import { fromSystemError, MemdumpError, hex } from './errors.js';

/**
 * Positioned read with a bigint offset. Node 20's FileHandle.read silently ignores a bigint position and
 * reads at the current file position instead; the callback fs.read honours it (checked in file.test.ts).
 */
export function preadAt(fd: number, buf: Buffer, off: number, len: number, pos: bigint): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, off, len, pos as unknown as number, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** Read-only random access to a file with bigint positions (kcore offsets exceed 2^53). */
export class RandomAccessFile {
  private closed = false;
  private constructor(
    readonly path: string,
    readonly fd: number,
    readonly size: bigint,
  ) {}

  static async open(path: string): Promise<RandomAccessFile> {
    const fd = await new Promise<number>((resolve, reject) => open(path, 'r', (e, fd) => (e ? reject(fromSystemError(e, `opening ${path}`)) : resolve(fd))));
    const size = await new Promise<bigint>((resolve, reject) =>
      fstat(fd, { bigint: true }, (e, st) => (e ? reject(fromSystemError(e, `stat ${path}`)) : resolve(st.size))),
    );
    return new RandomAccessFile(path, fd, size);
  }

  /** Read up to `length` bytes at `pos`; shorter only at end of file. */
  async readAt(pos: bigint, length: number, into?: Buffer): Promise<Buffer> {
    const buf = into ?? Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = await preadAt(this.fd, buf, done, length - done, pos + BigInt(done));
      } catch (e) {
        throw fromSystemError(e, `reading ${this.path} at ${hex(pos + BigInt(done))}`);
      }
      if (n === 0) break;
      done += n;
    }
    return done === length ? buf.subarray(0, length) : buf.subarray(0, done);
  }

  /** Exactly `length` bytes or E_TRUNCATED naming the offset. */
  async readExact(pos: bigint, length: number, what: string): Promise<Buffer> {
    const b = await this.readAt(pos, length);
    if (b.length !== length) {
      throw new MemdumpError('E_TRUNCATED', `${this.path}: ${what} at offset ${hex(pos)} needs ${length} bytes, file has ${b.length}`, {
        details: { offset: hex(pos), need: length, have: b.length },
      });
    }
    return b;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => close(this.fd, () => resolve()));
  }
}
