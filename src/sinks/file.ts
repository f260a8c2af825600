import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MemdumpError, errnoOf, fromSystemError } from '../core/errors.js';
import { assertAbsent, openExclusive } from './exclusive.js';
import type { OutputSink, Receipt } from './types.js';

export const PARTIAL = '.partial';

/**
 * One evidence file in the making: NAME.partial (0600, O_EXCL|O_NOFOLLOW), written at explicit offsets so zero
 * runs can stay sparse holes, then sealed (truncated to its length, fsynced, closed) and published under NAME
 * with link()+unlink() so that a file which appeared at NAME meanwhile is never replaced. FileSink is one of
 * these; SegmentedFileSink is a list of them.
 */
export class PartialFile {
  private pos = 0;
  private fh: FileHandle | undefined;
  private published = false;

  private constructor(
    readonly path: string,
    fh: FileHandle,
  ) {
    this.fh = fh;
  }

  static async create(path: string): Promise<PartialFile> {
    await assertAbsent(path);
    return new PartialFile(path, await openExclusive(path + PARTIAL));
  }

  get partialPath(): string {
    return this.path + PARTIAL;
  }
  /** Bytes in this file so far (holes included). */
  get size(): number {
    return this.pos;
  }
  get isPublished(): boolean {
    return this.published;
  }
  /** Where the bytes are now: NAME once published, NAME.partial before. */
  get currentPath(): string {
    return this.published ? this.path : this.partialPath;
  }

  async write(buf: Buffer, start = 0, end = buf.length): Promise<void> {
    const fh = this.open();
    let off = start;
    while (off < end) {
      let n: number;
      try {
        ({ bytesWritten: n } = await fh.write(buf, off, end - off, this.pos));
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

  /** n zero bytes as a hole: seal() sets the length, so a hole at the end is still part of the file. */
  skip(n: number): void {
    this.open();
    this.pos += n;
  }

  /** Truncate to the length written, fsync, close. After this only publish() or nothing. */
  async seal(): Promise<void> {
    const fh = this.open();
    try {
      await fh.truncate(this.pos);
      await fh.sync();
    } catch (e) {
      throw new MemdumpError(errnoOf(e) === 'ENOSPC' ? 'E_NO_SPACE' : 'E_WRITE', `finishing ${this.partialPath}: ${(e as Error).message}`, { cause: e });
    }
    this.fh = undefined;
    await fh.close();
  }

  /** NAME.partial → NAME without ever replacing a NAME that exists. The directory is not synced here. */
  async publish(): Promise<void> {
    try {
      await fs.link(this.partialPath, this.path);
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') {
        throw new MemdumpError('E_DEST_EXISTS', `${this.path} appeared while writing; the evidence is kept as ${this.partialPath}`, { details: { path: this.path } });
      }
      throw fromSystemError(e, `publishing ${this.path}`);
    }
    this.published = true;
    await fs.unlink(this.partialPath);
  }

  /** Best effort on the way out of a failure: the .partial keeps whatever was written. Idempotent. */
  async abandon(): Promise<void> {
    const fh = this.fh;
    if (!fh) return;
    this.fh = undefined;
    try {
      await fh.truncate(this.pos);
      await fh.sync();
    } catch {
      // a full disk may refuse even this; the bytes written so far are still in the file
    }
    await fh.close().catch(() => undefined);
  }

  private open(): FileHandle {
    if (!this.fh) throw new MemdumpError('E_INTERNAL', `${this.partialPath} is already closed`);
    return this.fh;
  }
}

/**
 * Evidence file: written as NAME.partial (0600, O_EXCL|O_NOFOLLOW), fsynced, then published under NAME with
 * link()+unlink() so that a file which appeared at NAME meanwhile is never replaced. Zero runs become sparse
 * holes. On abort the .partial stays, so nothing complete-looking exists.
 */
export class FileSink implements OutputSink {
  private done = false;

  private constructor(private readonly file: PartialFile) {}

  static async create(path: string): Promise<FileSink> {
    return new FileSink(await PartialFile.create(path));
  }

  get path(): string {
    return this.file.path;
  }
  get describe(): string {
    return this.file.path;
  }
  get partialPath(): string {
    return this.file.partialPath;
  }
  get position(): bigint {
    return BigInt(this.file.size);
  }

  write(buf: Buffer): Promise<void> {
    return this.file.write(buf);
  }

  async writeZeros(n: bigint): Promise<void> {
    this.file.skip(Number(n));
  }

  async finish(): Promise<Receipt> {
    await this.file.seal();
    this.done = true;
    await this.file.publish();
    await syncDir(dirname(this.path));
    return { path: this.path, bytes: this.position, complete: true };
  }

  async abort(): Promise<Receipt> {
    if (!this.done) {
      this.done = true;
      await this.file.abandon();
    }
    return { path: this.path, partialPath: this.partialPath, bytes: this.position, complete: false };
  }
}

export async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await fs.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // some filesystems refuse fsync on directories; the file itself is already durable
  }
}
