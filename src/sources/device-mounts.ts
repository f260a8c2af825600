import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { readText } from './block-geometry.js';

/**
 * Is the source in use: the mounts of a block device, its partitions and holders (dm, md), or of the loop devices
 * backed by a file, from /proc/self/mountinfo and sysfs.
 */

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

/**
 * Where the source at `real` (its resolved path) is mounted, and the major:minor of everything that counts as it:
 * a block device with a sysfs directory `dir` and its partitions and holders; otherwise the loop devices backed by it.
 */
export async function deviceMounts(root: string, real: string, block: boolean, dir: string | undefined): Promise<{ mounts: Mount[]; related: string[] }> {
  const ids = new Set<string>();
  for (const d of block && dir ? [dir] : await loopsBackedBy(root, real)) for (const id of await relatedDevIds(root, d)) ids.add(id);
  const mounts = await findMounts(root, ids, block ? [real] : []);
  return { mounts, related: [...ids] };
}
