import { type BigIntStats, close, constants, fstat, open, promises as fsp } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { MemdumpError, errnoOf, fromSystemError } from '../core/errors.js';
import { preadAt } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import type { ImageNote } from '../formats/types.js';
import { blockGeometry, devIdOf, nativeCalls, sysDir } from './block-geometry.js';
import { type Mount, deviceMounts } from './device-mounts.js';
import type { PhysicalSource } from './types.js';

/**
 * A block device or a regular file imaged whole (`memdump image`, `memdump swap`). Opened O_RDONLY (never
 * O_RDWR, never O_CREAT). Block devices are read with O_DIRECT by default: a buffered read goes through the
 * page cache in 4 KiB pages, so one bad 512-byte sector would fail (and zero-fill) its seven good neighbours, and
 * swap writes bypass the cache, so a buffered read of an active swap area can return stale cached pages.
 */

// geometry and mount detection live beside this file; swaps.ts, the image job and the tests import them from here

export type IoMode = 'auto' | 'direct' | 'buffered';

export interface DeviceFacts {
  path: string;
  type: 'block' | 'file';
  bytes: bigint;
  /** Logical sector size: the unit of reads and of the bad-sector list (512 for files). */
  sectorSize: number;
  /** "major:minor" of a block device; of the filesystem holding a file. */
  devId: string;
  removable: boolean;
  model: string | null;
  serial: string | null;
  /** Where this device, one of its partitions or holders, or a loop device backed by this file is mounted. */
  mounts: Mount[];
  /** major:minor of the device, its partitions and holders (for a file: of the loop devices backed by it). */
  related: string[];
  /** 'direct' or 'buffered', and why. */
  io: string;
}

const MEM_ALIGN = 4096;
export const DIRECT_BOUNCE = 8 << 20;

export interface DeviceOpenOptions {
  /** Root of the /proc and /sys trees (tests); '/' on a live host. */
  root?: string;
  /** auto: O_DIRECT for block devices, buffered for files; direct: also for files (swap files). */
  io?: IoMode;
}

export class DeviceSource implements PhysicalSource {
  readonly kind = 'device' as const;
  readonly notes: ImageNote[] = [];
  readonly ranges: Range[];
  readonly pageSize: number;
  readonly info: Record<string, unknown>;
  private bounce: Buffer | undefined;
  private align: bigint;

  private constructor(
    readonly path: string,
    private fd: number,
    readonly facts: DeviceFacts,
    direct: Buffer | undefined,
  ) {
    this.pageSize = facts.sectorSize;
    this.ranges = facts.bytes > 0n ? [{ start: 0n, end: facts.bytes }] : [];
    this.bounce = direct;
    // offsets and lengths of O_DIRECT reads: the logical sector of a device; a page for a file (its filesystem decides)
    this.align = BigInt(facts.type === 'block' ? facts.sectorSize : MEM_ALIGN);
    this.info = { device: facts.type, bytes: facts.bytes.toString(), sectorSize: facts.sectorSize, devId: facts.devId, io: facts.io, model: facts.model, serial: facts.serial };
  }

  static async open(path: string, o: DeviceOpenOptions = {}): Promise<DeviceSource> {
    const root = o.root ?? '/';
    // stat before open: opening a FIFO read-only would block, a character device (/dev/mem) is not a disk
    let st;
    try {
      st = await fsp.stat(path, { bigint: true });
    } catch (e) {
      throw fromSystemError(e, `stat ${path}`);
    }
    if (!st.isFile() && !st.isBlockDevice()) {
      throw new MemdumpError('E_UNSUPPORTED', `${path} is neither a block device nor a regular file; image reads disks, partitions and files`, { details: { path } });
    }
    const block = st.isBlockDevice();
    const dir = await sysDir(root, devIdOf(block ? st.rdev : st.dev));
    const fd = await openRead(path, block ? 0 : constants.O_NOATIME);
    if (!(await sameFile(fd, st))) {
      await closeFd(fd);
      throw new MemdumpError('E_SOURCE_READ', `${path} was replaced between stat and open; refusing to continue`);
    }
    let src: DeviceSource;
    try {
      src = await DeviceSource.describe(path, root, o, st, fd, dir);
    } catch (e) {
      await closeFd(fd);
      throw e;
    }
    try {
      if (src.bounce && src.facts.bytes > 0n) await src.probeDirect();
    } catch (e) {
      await src.close();
      throw e;
    }
    return src;
  }

  /** Facts about the opened source, and the O_DIRECT descriptor when wanted; closes `fd` only when nothing can fail any more. */
  private static async describe(path: string, root: string, o: DeviceOpenOptions, st: BigIntStats, fd: number, dir: string | undefined): Promise<DeviceSource> {
    const block = st.isBlockDevice();
    const real = await fsp.realpath(path).catch(() => path);
    const devId = devIdOf(block ? st.rdev : st.dev);
    const { bytes, sectorSize, removable, model, serial } = block ? await blockGeometry(path, root, devId, dir, fd) : { bytes: st.size, sectorSize: 512, removable: false, model: null, serial: null };
    const { mounts, related } = await deviceMounts(root, real, block, dir);

    const wantDirect = o.io === 'direct' || ((o.io ?? 'auto') === 'auto' && block);
    let io = 'buffered (regular file: the page cache is coherent with it)';
    let bounce: Buffer | undefined;
    if (o.io === 'buffered') io = 'buffered (--io buffered)';
    if (wantDirect) {
      const addr = nativeCalls()?.address;
      if (!addr) io = 'buffered (O_DIRECT needs aligned memory and the koffi module could not be loaded)';
      else {
        let dfd: number | undefined;
        try {
          dfd = await openRead(path, constants.O_DIRECT | (block ? 0 : constants.O_NOATIME));
        } catch (e) {
          io = `buffered (O_DIRECT refused: ${errnoOf(e)})`;
        }
        if (dfd !== undefined) {
          if (!(await sameFile(dfd, st))) {
            await closeFd(dfd);
            throw new MemdumpError('E_SOURCE_READ', `${path} changed between two opens; refusing to continue`);
          }
          const raw = Buffer.allocUnsafeSlow(DIRECT_BOUNCE + MEM_ALIGN);
          const skip = Number((BigInt(MEM_ALIGN) - (addr(raw) % BigInt(MEM_ALIGN))) % BigInt(MEM_ALIGN));
          bounce = raw.subarray(skip, skip + DIRECT_BOUNCE);
          io = 'direct (O_DIRECT: no page cache, sector-exact errors)';
          await closeFd(fd);
          fd = dfd;
        }
      }
    }
    const facts: DeviceFacts = { path: block ? path : resolvePath(path), type: block ? 'block' : 'file', bytes, sectorSize, devId, removable, model, serial, mounts, related, io };
    return new DeviceSource(path, fd, facts, bounce);
  }

  /** Some filesystems accept O_DIRECT at open and refuse it at read (EINVAL): fall back to buffered reads. */
  private async probeDirect(): Promise<void> {
    try {
      await this.read(0n, Buffer.allocUnsafe(this.facts.sectorSize), Math.min(this.facts.sectorSize, Number(this.facts.bytes)));
    } catch (e) {
      if (errnoOf(e) !== 'EINVAL') return;
      const fd = await openRead(this.path, 0);
      await closeFd(this.fd);
      this.fd = fd;
      this.bounce = undefined;
      this.facts.io = 'buffered (O_DIRECT reads refused: EINVAL)';
      this.info.io = this.facts.io;
    }
  }

  async read(addr: bigint, buf: Buffer, length: number): Promise<number> {
    if (!this.bounce) return preadAt(this.fd, buf, 0, length, addr);
    // O_DIRECT: read the aligned blocks that cover the request into the aligned bounce buffer, copy the part asked for
    const a0 = addr - (addr % this.align);
    let end = addr + BigInt(length);
    end = end % this.align === 0n ? end : end + this.align - (end % this.align);
    const want = Number(end - a0 < BigInt(this.bounce.length) ? end - a0 : BigInt(this.bounce.length));
    const n = await preadAt(this.fd, this.bounce, 0, want, a0);
    const skip = Number(addr - a0);
    const take = Math.max(0, Math.min(length, n - skip));
    this.bounce.copy(buf, 0, skip, skip + take);
    return take;
  }

  close(): Promise<void> {
    return closeFd(this.fd);
  }
}

function openRead(path: string, extra: number): Promise<number> {
  return new Promise((resolve, reject) =>
    open(path, constants.O_RDONLY | extra, (e, fd) => {
      if (!e) return resolve(fd);
      // O_NOATIME is only for the file's owner (or CAP_FOWNER): retry without it rather than fail
      if (errnoOf(e) === 'EPERM' && extra & constants.O_NOATIME) return resolve(openRead(path, extra & ~constants.O_NOATIME));
      reject(extra & constants.O_DIRECT ? e : fromSystemError(e, `opening ${path} read-only`));
    }),
  );
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => close(fd, () => resolve()));
}

function fstatBig(fd: number): Promise<BigIntStats> {
  return new Promise((resolve, reject) => fstat(fd, { bigint: true }, (e, st) => (e ? reject(e) : resolve(st))));
}

async function sameFile(a: number, b: number | BigIntStats): Promise<boolean> {
  const x = await fstatBig(a);
  const y = typeof b === 'number' ? await fstatBig(b) : b;
  return x.dev === y.dev && x.ino === y.ino && x.rdev === y.rdev;
}
