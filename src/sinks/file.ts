import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { MemdumpError, errnoOf, fromSystemError } from '../core/errors.js';
import { assertAbsent, openExclusive } from './exclusive.js';
import type { OutputSink, Receipt } from './types.js';

const PARTIAL = '.partial';


/**
 * Evidence file: written as NAME.partial (0600, O_EXCL|O_NOFOLLOW), fsynced, then published under NAME with
 * link()+unlink() so that a file which appeared at NAME meanwhile is never replaced. Zero runs become sparse
 * holes. On abort the .partial stays, so nothing complete-looking exists.
 */
export class FileSink implements OutputSink {
  private pos = 0;
  private done = false;

  private constructor(
    readonly path: string,
    private readonly fh: fsp.FileHandle,
  ) {}

  static async create(path: string): Promise<FileSink> {
    await assertAbsent(path);
    return new FileSink(path, await openExclusive(path + PARTIAL));
  }

  get describe(): string {
    return this.path;
  }
  get partialPath(): string {
    return this.path + PARTIAL;
  }
  get position(): bigint {
    return BigInt(this.pos);
  }

  async write(buf: Buffer): Promise<void> {
    let off = 0;
    while (off < buf.length) {
      let n: number;
      try {
        ({ bytesWritten: n } = await this.fh.write(buf, off, buf.length - off, this.pos));
      } catch (e) {
        const errno = errnoOf(e);
        if (errno === 'ENOSPC' || errno === 'EDQUOT' || errno === 'EFBIG') {
          throw new MemdumpError('E_NO_SPACE', `no space left writing ${this.partialPath} at offset ${this.pos}`, { details: { errno, offset: this.pos }, cause: e });
        }
        throw new MemdumpError('E_WRITE', `writing ${this.partialPath} at offset ${this.pos}: ${(e as Error).message}`, { details: { errno, offset: this.pos }, cause: e });
      }
      this.pos += n;
      off += n;
    }
  }

  async writeZeros(n: bigint): Promise<void> {
    this.pos += Number(n);
  }

  async finish(): Promise<Receipt> {
    try {
      await this.fh.truncate(this.pos);
      await this.fh.sync();
    } catch (e) {
      throw new MemdumpError(errnoOf(e) === 'ENOSPC' ? 'E_NO_SPACE' : 'E_WRITE', `finishing ${this.partialPath}: ${(e as Error).message}`, { cause: e });
    }
    await this.fh.close();
    this.done = true;
    try {
      await fsp.link(this.partialPath, this.path);
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') {
        throw new MemdumpError('E_DEST_EXISTS', `${this.path} appeared while writing; the evidence is kept as ${this.partialPath}`, { details: { path: this.path } });
      }
      throw fromSystemError(e, `publishing ${this.path}`);
    }
    await fsp.unlink(this.partialPath);
    await syncDir(dirname(this.path));
    return { path: this.path, bytes: BigInt(this.pos), complete: true };
  }

  async abort(): Promise<Receipt> {
    if (!this.done) {
      this.done = true;
      try {
        await this.fh.truncate(this.pos);
        await this.fh.sync();
      } catch {
        // a full disk may refuse even this; the bytes written so far are still in the file
      }
      await this.fh.close().catch(() => undefined);
    }
    return { path: this.path, partialPath: this.partialPath, bytes: BigInt(this.pos), complete: false };
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await fsp.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // some filesystems refuse fsync on directories; the file itself is already durable
  }
}
