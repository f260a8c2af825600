import { promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { isMemdumpError } from '../core/errors.js';
import { devIdOf, sysDir } from '../sources/block-geometry.js';
import { type Mount, parseMountinfo } from '../sources/device-mounts.js';
import { parseProcSwaps } from '../sources/swaps.js';
import { type DoctorContext, type DoctorResult, fail, ok, warn } from './doctor.js';
import { checkSpace, fmt } from './space.js';

/** acquire's default --max-disk-usage: the doctor warns where acquire would refuse. */
export const DEFAULT_MAX_USAGE = 95;
const REMOTE_FS = new Set(['nfs', 'nfs4', 'cifs', 'smb3', 'smbfs', 'fuse.sshfs', 'sshfs', '9p', 'ceph', 'glusterfs', 'fuse.rclone', 'fuse.s3fs']);
const RAM_FS = new Set(['tmpfs', 'ramfs']);
/** Mounts whose disks are "the disk being investigated": the system itself and where its users write. */
const SYSTEM_MOUNTS = ['/', '/boot', '/home', '/tmp', '/usr', '/var'];
const EXTERNAL = 'write to external or remote storage: a USB disk mounted for the purpose, or stream it (memdump acquire -o - | ssh host "cat > dump")';

export async function storageChecks(ctx: DoctorContext): Promise<DoctorResult[]> {
  const mounts = parseMountinfo((await ctx.read('proc/self/mountinfo')) ?? '');
  return [await space(ctx), await outputDisk(ctx, mounts), await swap(ctx)];
}

export function memTotalBytes(meminfo: string): bigint | undefined {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(meminfo);
  return m ? BigInt(m[1]!) * 1024n : undefined;
}

async function space(ctx: DoctorContext): Promise<DoctorResult> {
  const mem = memTotalBytes((await ctx.read('proc/meminfo')) ?? '');
  if (mem === undefined) return warn('space', 'MemTotal unknown', '/proc/meminfo could not be read, so the size of a dump is unknown', 'check that /proc is mounted');
  try {
    const c = await checkSpace(ctx.outputDir, mem, DEFAULT_MAX_USAGE);
    return ok('space', `${fmt(c.availableBytes)} free at ${ctx.outputDir}; RAM is ${fmt(mem)} (filesystem ${c.usageAfterPercent.toFixed(1)}% full after a raw dump)`);
  } catch (e) {
    if (!isMemdumpError(e)) throw e;
    const summary = `RAM is ${fmt(mem)}; ${ctx.outputDir} cannot take a full dump`;
    if (e.code === 'E_NO_SPACE') return fail('space', summary, e.message, `${EXTERNAL}; or compress (--compress) if the margin is small`);
    return fail('space', `cannot check free space at ${ctx.outputDir}`, e.message, 'create the directory or pick another --output-dir');
  }
}

/** Whole disks under a block device: itself, its parent disk if it is a partition, the slaves of dm/md. */
async function disksOf(root: string, devId: string): Promise<Set<string>> {
  const out = new Set<string>();
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > 4) return;
    const slaves = await fsp.readdir(join(dir, 'slaves')).catch(() => [] as string[]);
    if (slaves.length > 0) {
      for (const s of slaves) {
        const d = await fsp.realpath(join(dir, 'slaves', s)).catch(() => undefined);
        if (d) await walk(d, depth + 1);
      }
      return;
    }
    const isPart = await fsp.access(join(dir, 'partition')).then(() => true, () => false);
    out.add(basename(isPart ? dirname(dir) : dir));
  };
  const dir = await sysDir(root, devId);
  if (dir) await walk(dir, 0);
  return out;
}

/** The mount that holds `path`: same device, longest mount point that prefixes it (bind mounts share devices). */
function mountOf(mounts: readonly Mount[], devId: string, path: string): Mount | undefined {
  const same = mounts.filter((m) => m.devId === devId);
  const prefixed = same.filter((m) => m.mountPoint === '/' || path === m.mountPoint || path.startsWith(m.mountPoint + '/'));
  return (prefixed.length ? prefixed : same).sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0];
}

async function outputDisk(ctx: DoctorContext, mounts: readonly Mount[]): Promise<DoctorResult> {
  let devId: string;
  let real: string;
  try {
    real = await fsp.realpath(ctx.outputDir);
    devId = devIdOf((await fsp.stat(real, { bigint: true })).dev);
  } catch (e) {
    return fail('output-disk', `cannot stat ${ctx.outputDir}`, String((e as Error).message), 'create the directory or pick another --output-dir');
  }
  const where = mountOf(mounts, devId, resolve(real));
  const desc = `${ctx.outputDir} is on ${devId}${where ? ` (${where.fsType} ${where.source} at ${where.mountPoint})` : ''}`;
  if (where && REMOTE_FS.has(where.fsType)) return ok('output-disk', `${desc}: remote storage`);
  if (where && RAM_FS.has(where.fsType)) {
    return warn('output-disk', `${desc}: in RAM`, 'a dump written to tmpfs occupies the very memory being captured, overwriting evidence and risking the OOM killer', EXTERNAL);
  }
  const system = mounts.filter((m) => SYSTEM_MOUNTS.includes(m.mountPoint));
  const rootMount = system.find((m) => m.mountPoint === '/');
  if (rootMount && rootMount.devId === devId) {
    return warn('output-disk', `${desc}: the root filesystem`, 'writing the dump to the disk being investigated overwrites free blocks that may hold deleted evidence, and changes the timestamps and journal an examiner will read', EXTERNAL);
  }
  const mine = await disksOf(ctx.root, devId);
  for (const m of system) {
    const theirs = await disksOf(ctx.root, m.devId);
    const shared = [...mine].find((d) => theirs.has(d));
    if (m.devId === devId || shared) {
      return warn('output-disk', `${desc}: same disk as ${m.mountPoint}${shared ? ` (${shared})` : ''}`, 'writing the dump to the disk being investigated overwrites free blocks that may hold deleted evidence', EXTERNAL);
    }
  }
  if (!rootMount) return warn('output-disk', `${desc}; the root mount is not in /proc/self/mountinfo`, 'cannot tell whether the output is on the disk being investigated', `make sure it is not; ${EXTERNAL}`);
  return ok('output-disk', `${desc}: not a system disk`);
}

async function swap(ctx: DoctorContext): Promise<DoctorResult> {
  const text = await ctx.read('proc/swaps');
  if (text === undefined) return ok('swap', 'no /proc/swaps (kernel without swap)');
  let areas;
  try {
    areas = parseProcSwaps(text);
  } catch (e) {
    return warn('swap', '/proc/swaps could not be parsed', String((e as Error).message), 'list swap with swapon --show');
  }
  if (areas.length === 0) return ok('swap', 'no swap devices: all process memory is in RAM');
  const used = areas.reduce((n, a) => n + a.usedKiB, 0n) * 1024n;
  const list = areas.map((a) => `${a.path} (${a.type}, ${fmt(a.usedKiB * 1024n)} of ${fmt(a.sizeKiB * 1024n)} used)`).join(', ');
  const zram = areas.every((a) => /\/zram\d+$/.test(a.path));
  if (used === 0n) return ok('swap', `${areas.length} swap area(s), none in use: ${list}`);
  if (zram) return ok('swap', `zram only: ${list}`, 'zram swap is compressed RAM, inside a physical dump (still compressed)');
  return warn('swap', `${fmt(used)} paged out to swap: ${list}`, 'pages swapped out are not in a RAM dump; without the swap areas an analysis misses them', 'capture swap too: memdump acquire --include-swap, or memdump swap after the RAM dump');
}
