import { type BigIntStats, close, constants, fstat, open, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve as resolvePath } from 'node:path';
import { MemdumpError, errnoOf, fromSystemError } from '../core/errors.js';
import { preadAt } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import type { ImageNote } from '../formats/types.js';
import type { PhysicalSource } from './types.js';

/**
 * A block device or a regular file imaged whole (`memdump image`, `memdump swap`). Opened O_RDONLY (never
 * O_RDWR, never O_CREAT). Block devices are read with O_DIRECT by default: a buffered read goes through the
 * page cache in 4 KiB pages, so one bad 512-byte sector would fail (and zero-fill) its seven good neighbours, and
 * swap writes bypass the cache, so a buffered read of an active swap area can return stale cached pages.
 */

export type IoMode = 'auto' | 'direct' | 'buffered';

export interface Mount {
  /** major:minor of the mounted filesystem's device. */
  devId: string;
  mountPoint: string;
  /** Per-mount options (rw/ro of this mount). */
  options: string;
  fsType: string;
  source: string;
  /** Superblock options: a bind mount may be ro while the filesystem (and so the device) is written. */
  superOptions: string;
}

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

/** Octal escapes the kernel writes in /proc/self/mountinfo and /proc/swaps (\040 space, \011, \012, \134). */
export function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** /proc/self/mountinfo: "id parent maj:min root mountpoint options [optional…] - fstype source superoptions". */
export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-', 6);
    if (dash < 0 || dash + 3 >= f.length) continue;
    out.push({
      devId: f[2]!,
      mountPoint: unescapeOctal(f[4]!),
      options: f[5]!,
      fsType: f[dash + 1] ?? '',
      source: unescapeOctal(f[dash + 2] ?? ''),
      superOptions: f[dash + 3] ?? '',
    });
  }
  return out;
}

/** The filesystem on the device can write to it: its superblock is read-write. */
export function isReadWrite(m: Mount): boolean {
  return m.options.split(',').includes('rw') || m.superOptions.split(',').includes('rw');
}

/** glibc's dev_t encoding (what libuv's makedev produces): 12+20-bit major, 20-bit minor. */
export function devIdOf(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n);
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xfff00n);
  return `${major}:${minor}`;
}

const readText = (p: string) => fsp.readFile(p, 'utf8').then((t) => t.trim()).catch(() => undefined);

/** sysfs directory of a block device (resolved, so that ".." is its parent disk for a partition). */
async function sysDir(root: string, devId: string): Promise<string | undefined> {
  return fsp.realpath(join(root, 'sys/dev/block', devId)).catch(() => undefined);
}

/** The device itself, its partitions and whatever sits on top (dm, md): any of these mounted means in use. */
async function relatedDevIds(root: string, dir: string, depth = 0): Promise<string[]> {
  const ids: string[] = [];
  const own = await readText(join(dir, 'dev'));
  if (own) ids.push(own);
  if (depth > 3) return ids;
  const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (e.isDirectory() && (await readText(join(dir, e.name, 'partition')))) ids.push(...(await relatedDevIds(root, join(dir, e.name), depth + 1)));
  }
  for (const h of await fsp.readdir(join(dir, 'holders')).catch(() => [])) {
    const hd = await fsp.realpath(join(dir, 'holders', h)).catch(() => undefined);
    if (hd) ids.push(...(await relatedDevIds(root, hd, depth + 1)));
  }
  return [...new Set(ids)];
}

/** Loop devices whose backing file is `file` (so that a mounted loop image counts as the file being in use). */
async function loopsBackedBy(root: string, file: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await fsp.readdir(join(root, 'sys/block')).catch(() => [])) {
    if (!name.startsWith('loop')) continue;
    const back = await readText(join(root, 'sys/block', name, 'loop/backing_file'));
    if (back && (back === file || back === file + ' (deleted)')) {
      const dir = await fsp.realpath(join(root, 'sys/block', name)).catch(() => undefined);
      if (dir) out.push(dir);
    }
  }
  return out;
}

async function findMounts(root: string, ids: ReadonlySet<string>, paths: string[]): Promise<Mount[]> {
  const text = await fsp.readFile(join(root, 'proc/self/mountinfo'), 'utf8').catch(() => '');
  return parseMountinfo(text).filter((m) => ids.has(m.devId) || paths.includes(m.source));
}

interface Native {
  address(b: Buffer): bigint;
  ioctlU64(fd: number, req: number, out: number[]): number;
  ioctlInt(fd: number, req: number, out: number[]): number;
}
let native: Native | null | undefined;
/** Buffer addresses (O_DIRECT needs aligned memory) and block ioctls, through koffi; null where it cannot load. */
function nativeCalls(): Native | null {
  if (native !== undefined) return native;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const libc = koffi.load('libc.so.6');
    native = {
      address: (b) => BigInt(koffi.address(b) as unknown as bigint),
      ioctlU64: libc.func('int ioctl(int fd, unsigned long req, _Out_ uint64_t *out)') as Native['ioctlU64'],
      ioctlInt: libc.func('int ioctl(int fd, unsigned long req, _Out_ int *out)') as Native['ioctlInt'],
    };
  } catch {
    native = null;
  }
  return native;
}

/** linux/fs.h: BLKGETSIZE64 = _IOR(0x12, 114, size_t), BLKSSZGET = _IO(0x12, 104). */
const BLKGETSIZE64 = 0x80081272;
const BLKSSZGET = 0x1268;

/** Size and logical sector size of an open block device by ioctl, for hosts without sysfs (fs.stat says 0). */
export function ioctlGeometry(fd: number): { bytes: bigint; sectorSize: number } | undefined {
  const n = nativeCalls();
  if (!n) return undefined;
  const size = [0];
  const ss = [0];
  if (n.ioctlU64(fd, BLKGETSIZE64, size) !== 0 || n.ioctlInt(fd, BLKSSZGET, ss) !== 0) return undefined;
  return { bytes: BigInt(size[0]!), sectorSize: ss[0]! };
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
    let bytes = st.size;
    let sectorSize = 512;
    let removable = false;
    let model: string | null = null;
    let serial: string | null = null;
    const sectors = block && dir ? await readText(join(dir, 'size')) : undefined;
    if (block && !(sectors && /^\d+$/.test(sectors))) {
      // no sysfs (a container): ask the driver
      const geo = ioctlGeometry(fd);
      if (!geo) {
        throw new MemdumpError('E_UNSUPPORTED', `${path}: neither ${join(root, 'sys/dev/block', devId)}/size nor BLKGETSIZE64 gives the device size`);
      }
      bytes = geo.bytes;
      sectorSize = geo.sectorSize;
    } else if (block && dir) {
      bytes = BigInt(sectors!) * 512n;
      const isPart = (await readText(join(dir, 'partition'))) !== undefined;
      const disk = isPart ? join(dir, '..') : dir;
      sectorSize = Number((await readText(join(disk, 'queue/logical_block_size'))) ?? 512) || 512;
      removable = (await readText(join(disk, 'removable'))) === '1';
      model = (await readText(join(disk, 'device/model'))) ?? null;
      serial = (await readText(join(disk, 'device/serial'))) ?? (await readText(join(disk, 'serial'))) ?? null;
    }
    const ids = new Set<string>();
    for (const d of block && dir ? [dir] : await loopsBackedBy(root, real)) for (const id of await relatedDevIds(root, d)) ids.add(id);
    const mounts = await findMounts(root, ids, block ? [real] : []);

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
    const facts: DeviceFacts = { path: block ? path : resolvePath(path), type: block ? 'block' : 'file', bytes, sectorSize, devId, removable, model, serial, mounts, related: [...ids], io };
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
