import { constants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { MemdumpError } from '../core/errors.js';
import { devIdOf } from './block-geometry.js';
import { unescapeOctal } from './device-mounts.js';

/** One line of /proc/swaps. Sizes are KiB, as the kernel prints them. */
export interface SwapEntry {
  path: string;
  /** The kernel appended " (deleted)": the file is gone from the namespace; its blocks are still swap. */
  deleted: boolean;
  type: string;
  sizeKiB: bigint;
  usedKiB: bigint;
  priority: number;
}

const DELETED = ' (deleted)';

/**
 * /proc/swaps: a header line, then "Filename Type Size Used Priority" separated by blanks. The kernel escapes
 * blank, tab, newline and backslash in the file name as \ooo (seq_file_path), so splitting on blanks is safe;
 * the " (deleted)" suffix of a removed file is escaped the same way ("\040(deleted)").
 */
export function parseProcSwaps(text: string): SwapEntry[] {
  const out: SwapEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/[ \t]+/);
    if (f.length < 5 || f[0] === 'Filename') continue;
    const [name, type, size, used, prio] = f as [string, string, string, string, string];
    if (!/^\d+$/.test(size) || !/^\d+$/.test(used) || !/^-?\d+$/.test(prio)) {
      throw new MemdumpError('E_CORRUPT', `/proc/swaps: unexpected line "${line.slice(0, 200)}"`);
    }
    let path = unescapeOctal(name);
    const deleted = path.endsWith(DELETED);
    if (deleted) path = path.slice(0, -DELETED.length);
    out.push({ path, deleted, type, sizeKiB: BigInt(size), usedKiB: BigInt(used), priority: Number(prio) });
  }
  return out;
}

/** The inverse of the kernel's escaping (tests and the listing). */
export function escapeSwapPath(path: string): string {
  return path.replace(/[ \t\n\\]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
}

export const SWAP_MAGICS = ['SWAPSPACE2', 'SWAP-SPACE'] as const;
/** Signatures that replace the swap magic while the area holds a hibernation image (kernel swsusp, uswsusp, …). */
export const HIBERNATION_MAGICS = ['S1SUSPEND', 'S2SUSPEND', 'ULSUSPEND', 'LINHIB0001'] as const;
/** The magic sits in the last 10 bytes of the first page, whatever the page size of the host that wrote it. */
export const SWAP_PAGE_SIZES = [4096, 8192, 16384, 65536] as const;
export const SWAP_HEAD_BYTES = 65536;

export interface SwapHeader {
  magic: string;
  pageSize: number;
  hibernation: boolean;
  /** swap_header.info (SWAPSPACE2 only): version 1, last usable page, UUID and label. */
  version: number | null;
  lastPage: number | null;
  uuid: string | null;
  label: string | null;
}

/** Read a swap signature from the first bytes of a device or file; undefined when there is none. */
export function parseSwapHeader(head: Buffer): SwapHeader | undefined {
  for (const pageSize of SWAP_PAGE_SIZES) {
    if (head.length < pageSize) break;
    const sig = head.subarray(pageSize - 10, pageSize).toString('latin1').replace(/\0+$/, '');
    const hibernation = (HIBERNATION_MAGICS as readonly string[]).includes(sig);
    if (!(SWAP_MAGICS as readonly string[]).includes(sig) && !hibernation) continue;
    const h: SwapHeader = { magic: sig, pageSize, hibernation, version: null, lastPage: null, uuid: null, label: null };
    if (sig === 'SWAPSPACE2' && head.length >= 1024 + 44) {
      // bootbits[1024], u32 version, u32 last_page, u32 nr_badpages, uuid[16], volume[16] (host byte order: LE here)
      h.version = head.readUInt32LE(1024);
      h.lastPage = head.readUInt32LE(1028);
      const u = head.subarray(1036, 1052).toString('hex');
      h.uuid = /^0+$/.test(u) ? null : `${u.slice(0, 8)}-${u.slice(8, 12)}-${u.slice(12, 16)}-${u.slice(16, 20)}-${u.slice(20)}`;
      const vol = head.subarray(1052, 1068);
      const end = vol.indexOf(0);
      const label = vol.subarray(0, end < 0 ? 16 : end).toString('utf8');
      h.label = label === '' ? null : label;
    }
    return h;
  }
  return undefined;
}

/** A swap area to acquire, and why it was chosen. */
export interface SwapArea {
  path: string;
  /** Its /proc/swaps line; null for an inactive area found by `--all`. */
  active: SwapEntry | null;
  found: string;
  header: SwapHeader | null;
  /** Why it cannot be imaged (a deleted swap file has no path to open); undefined when it can. */
  unavailable?: string;
}

export interface FindSwapOptions {
  /** Root of /proc, /sys, /etc, /dev (tests); '/' on a live host. */
  root?: string;
  /** Also inactive areas: swap or hibernation signatures on block devices, swap entries in /etc/fstab. */
  all?: boolean;
}

async function readHead(path: string): Promise<Buffer | undefined> {
  let fh: fsp.FileHandle | undefined;
  try {
    // O_NONBLOCK: an empty removable drive answers at once instead of waiting for media
    fh = await fsp.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const b = Buffer.alloc(SWAP_HEAD_BYTES);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    return b.subarray(0, bytesRead);
  } catch {
    return undefined;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

async function rdevOf(path: string): Promise<string | undefined> {
  const st = await fsp.stat(path, { bigint: true }).catch(() => undefined);
  if (!st) return undefined;
  return st.isBlockDevice() ? 'b' + devIdOf(st.rdev) : `f${st.dev}:${st.ino}`;
}

/** fstab "UUID=…", "LABEL=…", "PARTUUID=…", "PARTLABEL=…" or a path. */
function fstabPath(root: string, spec: string): string {
  const m = /^(UUID|LABEL|PARTUUID|PARTLABEL)=(.*)$/.exec(spec);
  if (!m) return unescapeOctal(spec);
  const dir = { UUID: 'by-uuid', LABEL: 'by-label', PARTUUID: 'by-partuuid', PARTLABEL: 'by-partlabel' }[m[1] as 'UUID'];
  return join(root, 'dev/disk', dir, unescapeOctal(m[2]!.replace(/^"(.*)"$/, '$1')));
}

/**
 * Active swap areas from /proc/swaps; with `all`, also every block device (whole disk or partition) carrying a
 * swap or hibernation signature and every swap entry of /etc/fstab that is not active: an inactive swap
 * partition still holds pages from before it was switched off, and a hibernation image holds a whole RAM image.
 */
export async function findSwapAreas(o: FindSwapOptions = {}): Promise<SwapArea[]> {
  const root = o.root ?? '/';
  const text = await fsp.readFile(join(root, 'proc/swaps'), 'utf8').catch((e: unknown) => {
    throw new MemdumpError('E_NOT_FOUND', `cannot read ${join(root, 'proc/swaps')}: ${(e as Error).message}`);
  });
  const areas: SwapArea[] = [];
  const seen = new Set<string>();
  for (const s of parseProcSwaps(text)) {
    let path = s.path;
    let unavailable: string | undefined;
    if (s.deleted) {
      // a file may really be named "x (deleted)"; only when that name does not exist is the file gone
      if (await fsp.lstat(path + DELETED).then(() => true, () => false)) path += DELETED;
      else unavailable = 'deleted swap file: no path to open it by (image the filesystem\'s device instead)';
    }
    const id = unavailable ? undefined : await rdevOf(path);
    if (id) seen.add(id);
    const head = unavailable ? undefined : await readHead(path);
    areas.push({ path, active: s, found: '/proc/swaps', header: (head && parseSwapHeader(head)) ?? null, ...(unavailable ? { unavailable } : {}) });
  }
  if (!o.all) return areas;

  for (const name of (await fsp.readdir(join(root, 'sys/class/block')).catch(() => [])).sort()) {
    // floppy drives can stall for seconds per open; optical drives never hold swap
    if (/^(fd|sr)\d/.test(name)) continue;
    const size = await fsp.readFile(join(root, 'sys/class/block', name, 'size'), 'utf8').catch(() => '0');
    if (BigInt(size.trim() || '0') === 0n) continue;
    const path = join(root, 'dev', name);
    const id = await rdevOf(path);
    if (!id || seen.has(id)) continue;
    const head = await readHead(path);
    const header = head ? parseSwapHeader(head) : undefined;
    if (!header) continue;
    seen.add(id);
    areas.push({ path, active: null, found: `${header.hibernation ? 'hibernation' : 'swap'} signature ${header.magic} (inactive)`, header });
  }

  const fstab = await fsp.readFile(join(root, 'etc/fstab'), 'utf8').catch(() => '');
  for (const line of fstab.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || f[0]!.startsWith('#') || f[2] !== 'swap') continue;
    const path = fstabPath(root, f[0]!);
    const real = await fsp.realpath(path).catch(() => undefined);
    const id = real ? await rdevOf(real) : undefined;
    if (id && seen.has(id)) continue;
    if (id) seen.add(id);
    const head = real ? await readHead(real) : undefined;
    areas.push({
      path: real ?? path,
      active: null,
      found: `/etc/fstab (${f[0]}, inactive)`,
      header: (head && parseSwapHeader(head)) ?? null,
      ...(real ? {} : { unavailable: `${path} does not exist` }),
    });
  }
  return areas;
}
