import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { MemdumpError } from '../core/errors.js';
import { loadLibc } from './libc.js';

/**
 * Size, logical sector size and identity of a block device: from sysfs (/sys/dev/block/MAJ:MIN), or by ioctl on
 * the open descriptor where there is no sysfs (a container).
 */

/** glibc's dev_t encoding (what libuv's makedev produces): 12+20-bit major, 20-bit minor. */
export function devIdOf(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n);
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xfff00n);
  return `${major}:${minor}`;
}

/** A sysfs attribute, trimmed; undefined when it is missing or unreadable. */
export const readText = (p: string) => fsp.readFile(p, 'utf8').then((t) => t.trim()).catch(() => undefined);

/** sysfs directory of a block device (resolved, so that ".." is its parent disk for a partition). */
export async function sysDir(root: string, devId: string): Promise<string | undefined> {
  return fsp.realpath(join(root, 'sys/dev/block', devId)).catch(() => undefined);
}

interface Native {
  address(b: Buffer): bigint;
  ioctlU64(fd: number, req: number, out: number[]): number;
  ioctlInt(fd: number, req: number, out: number[]): number;
}
let native: Native | null | undefined;
/** Buffer addresses (O_DIRECT needs aligned memory) and block ioctls, through koffi; null where it cannot load. */
export function nativeCalls(): Native | null {
  if (native !== undefined) return native;
  try {
    const { libc, address } = loadLibc('O_DIRECT buffers need');
    native = {
      address,
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

export interface BlockGeometry {
  bytes: bigint;
  /** Logical sector size: the unit of reads and of the bad-sector list. */
  sectorSize: number;
  removable: boolean;
  model: string | null;
  serial: string | null;
}

/** Geometry of the block device open as `fd` (`dir`: its sysfs directory, if any); E_UNSUPPORTED when neither sysfs nor the driver gives its size. */
export async function blockGeometry(path: string, root: string, devId: string, dir: string | undefined, fd: number): Promise<BlockGeometry> {
  const sectors = dir ? await readText(join(dir, 'size')) : undefined;
  if (!dir || !(sectors && /^\d+$/.test(sectors))) {
    // no sysfs (a container): ask the driver
    const geo = ioctlGeometry(fd);
    if (!geo) {
      throw new MemdumpError('E_UNSUPPORTED', `${path}: neither ${join(root, 'sys/dev/block', devId)}/size nor BLKGETSIZE64 gives the device size`);
    }
    return { bytes: geo.bytes, sectorSize: geo.sectorSize, removable: false, model: null, serial: null };
  }
  const isPart = (await readText(join(dir, 'partition'))) !== undefined;
  const disk = isPart ? join(dir, '..') : dir;
  return {
    bytes: BigInt(sectors) * 512n,
    sectorSize: Number((await readText(join(disk, 'queue/logical_block_size'))) ?? 512) || 512,
    removable: (await readText(join(disk, 'removable'))) === '1',
    model: (await readText(join(disk, 'device/model'))) ?? null,
    serial: (await readText(join(disk, 'device/serial'))) ?? (await readText(join(disk, 'serial'))) ?? null,
  };
}
