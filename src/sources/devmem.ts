import { MemdumpError, errnoOf, fromSystemError, hex } from '../core/errors.js';
import { RandomAccessFile, preadAt } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import type { ImageNote } from '../formats/types.js';
import type { PhysicalSource, SourceKind } from './types.js';

/**
 * Character devices addressed by physical offset: /dev/crash (RHEL's crash driver; page-aligned, page-sized
 * reads only), /dev/mem (limited by STRICT_DEVMEM), and a plain image file read as a source (tests, benchmarks).
 */
export class OffsetSource implements PhysicalSource {
  readonly pageSize = 4096;
  readonly notes: ImageNote[] = [];
  private readonly bounce = Buffer.alloc(4096);

  private constructor(
    readonly kind: SourceKind,
    private readonly file: RandomAccessFile,
    readonly ranges: Range[],
    readonly info: Record<string, unknown>,
    private readonly pageSizedOnly: boolean,
  ) {}

  get path(): string {
    return this.file.path;
  }

  static async open(kind: 'crash' | 'mem' | 'file', path: string, ranges: Range[], info: Record<string, unknown> = {}): Promise<OffsetSource> {
    const file = await RandomAccessFile.open(path);
    const src = new OffsetSource(kind, file, ranges, info, kind === 'crash');
    if (kind !== 'file') {
      try {
        await src.probe();
      } catch (e) {
        await file.close();
        throw e;
      }
    }
    return src;
  }

  /** One page from the first RAM range above 1 MiB: STRICT_DEVMEM lets /dev/mem read only the first MiB. */
  private async probe(): Promise<void> {
    const r = this.ranges.find((x) => x.end > 0x100000n) ?? this.ranges[0];
    if (!r) return;
    const at = r.start > 0x100000n ? r.start : 0x100000n < r.end ? 0x100000n : r.start;
    try {
      await this.read(at - (at % 4096n), Buffer.alloc(4096), 4096);
    } catch (e) {
      const errno = errnoOf(e);
      if (this.kind === 'mem' && (errno === 'EPERM' || errno === 'EFAULT')) {
        throw new MemdumpError('E_PERMISSION', `/dev/mem refuses RAM above 1 MiB (${errno}): the kernel is built with STRICT_DEVMEM`, { details: { errno } });
      }
      throw fromSystemError(e, `probing ${this.path} at ${hex(at)}`);
    }
  }

  async read(addr: bigint, buf: Buffer, length: number): Promise<number> {
    if (!this.pageSizedOnly) return preadAt(this.file.fd, buf, 0, length, addr);
    // /dev/crash: whole aligned pages only; copy the wanted part out of a bounce page
    const page = addr - (addr % 4096n);
    const n = await preadAt(this.file.fd, this.bounce, 0, 4096, page);
    const skip = Number(addr - page);
    const take = Math.max(0, Math.min(length, n - skip));
    this.bounce.copy(buf, 0, skip, skip + take);
    return take;
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
