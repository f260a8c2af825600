import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { MemdumpError, errnoOf, fromSystemError } from '../core/errors.js';

/**
 * What `memdump config … --apply` found before it touched anything, so `--revert` can put back exactly that:
 * content (base64, byte-exact), mode (special bits included), owner, or absence. Paths are host paths ("/etc/…")
 * resolved under --root, so a throw-away tree can stand in for the host in tests.
 */
export const STATE_SCHEMA = 'memdump-config-state/1';
export const STATE_DIR = '/var/lib/memdump';

export type Before = { exists: false } | { exists: true; type: 'file' | 'dir'; content: string | null; mode: number; uid: number; gid: number };

export interface StateEntry {
  kind: 'file' | 'dir' | 'sysctl';
  /** Host path, e.g. /etc/sysctl.d/99-memdump-coredump.conf or /proc/sys/kernel/core_pattern. */
  path: string;
  before: Before;
  /** sha256 of what apply wrote (files), to warn on revert when someone changed it since. */
  afterSha256: string | null;
}

export interface ConfigState {
  schema: typeof STATE_SCHEMA;
  topic: string;
  appliedAt: string;
  argv: string[];
  entries: StateEntry[];
  /** Directories apply created (parents included), removed on revert when empty. */
  createdDirs: string[];
  notes: string[];
}

export const statePath = (topic: string) => `${STATE_DIR}/config-state.${topic}.json`;
export const under = (root: string, path: string) => join(root, path);
export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** lstat that refuses symlinks: config is never written through a link an attacker could have planted. */
export async function lstatOrNull(full: string): Promise<import('node:fs').Stats | null> {
  try {
    const st = await fs.lstat(full);
    if (st.isSymbolicLink()) throw new MemdumpError('E_DEST_SYMLINK', `${full} is a symbolic link; memdump config does not write through links`, { details: { path: full } });
    return st;
  } catch (e) {
    if (e instanceof MemdumpError) throw e;
    if (errnoOf(e) === 'ENOENT') return null;
    if (errnoOf(e) === 'ENOTDIR') throw new MemdumpError('E_USAGE', `a parent of ${full} is not a directory`, { details: { path: full } });
    throw fromSystemError(e, `checking ${full}`);
  }
}

/**
 * Refuse a path whose parents, below the root, include a symbolic link or "..": in a mounted image an absolute
 * link (etc -> /etc, proc -> /proc) would otherwise make config read and write the host's own files.
 */
export async function assertInsideRoot(root: string, path: string): Promise<void> {
  const parts = path.split('/').filter((c) => c !== '');
  if (parts.some((c) => c === '..' || c === '.')) throw new MemdumpError('E_USAGE', `${path}: "." and ".." are not allowed in a configuration path`);
  for (let i = 1; i < parts.length; i++) {
    const dir = join(root, ...parts.slice(0, i));
    let st;
    try {
      st = await fs.lstat(dir);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return; // nothing below exists yet: apply creates real directories
      throw fromSystemError(e, `checking ${dir}`);
    }
    if (st.isSymbolicLink()) throw new MemdumpError('E_DEST_SYMLINK', `${dir} is a symbolic link; memdump config does not read or write through links under --root`, { details: { path: dir } });
  }
}

export async function snapshot(root: string, path: string): Promise<Before> {
  await assertInsideRoot(root, path);
  const full = under(root, path);
  const st = await lstatOrNull(full);
  if (!st) return { exists: false };
  const common = { exists: true as const, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  if (st.isDirectory()) return { ...common, type: 'dir', content: null };
  // a FIFO or device would block or never end a read
  if (!st.isFile()) throw new MemdumpError('E_USAGE', `${full} is not a regular file or directory; memdump config leaves it alone`, { details: { path: full } });
  try {
    return { ...common, type: 'file', content: (await fs.readFile(full)).toString('base64') };
  } catch (e) {
    throw fromSystemError(e, `reading ${full}`);
  }
}

/** Replace a file's bytes without a moment where it is absent or half-written (temp file + rename). */
export async function writeAtomic(full: string, data: Buffer | string, mode: number): Promise<void> {
  const tmp = `${full}.memdump-tmp-${process.pid}`;
  try {
    await fs.writeFile(tmp, data, { mode, flag: 'wx' });
    await fs.chmod(tmp, mode);
    await fs.rename(tmp, full);
  } catch (e) {
    await fs.unlink(tmp).catch(() => undefined);
    throw fromSystemError(e, `writing ${full}`);
  }
}

/** A /proc/sys file is written in place (it cannot be renamed over); a stand-in file under --root likewise. */
export async function writeSysctl(root: string, path: string, data: Buffer | string): Promise<void> {
  try {
    await fs.writeFile(under(root, path), data);
  } catch (e) {
    throw fromSystemError(e, `writing ${path}`);
  }
}

async function chownIfNeeded(full: string, uid: number, gid: number): Promise<void> {
  const st = await fs.lstat(full);
  if (st.uid !== uid || st.gid !== gid) await fs.chown(full, uid, gid);
}

/** Put one entry back as it was. Returns warnings (a drifted file, a directory that is no longer empty). */
export async function restore(root: string, e: StateEntry): Promise<string[]> {
  const full = under(root, e.path);
  const warnings: string[] = [];
  const b = e.before;
  try {
    if (e.kind === 'sysctl') {
      if (b.exists && b.content !== null) await writeSysctl(root, e.path, Buffer.from(b.content, 'base64'));
      return warnings;
    }
    const st = await lstatOrNull(full);
    if (e.kind === 'file' && st?.isFile() && e.afterSha256 && sha256(await fs.readFile(full)) !== e.afterSha256) {
      warnings.push(`${e.path} was changed after memdump wrote it; those changes are replaced by the original`);
    }
    if (!b.exists) {
      if (e.kind === 'dir') {
        if (st) await fs.rmdir(full).catch(() => warnings.push(`${e.path} is not empty (cores were written there?); left in place`));
      } else if (st) await fs.unlink(full);
      return warnings;
    }
    if (b.type === 'file') await writeAtomic(full, Buffer.from(b.content ?? '', 'base64'), b.mode);
    else if (!st) await fs.mkdir(full);
    await fs.chmod(full, b.mode);
    await chownIfNeeded(full, b.uid, b.gid);
  } catch (err) {
    if (err instanceof MemdumpError) throw err;
    throw fromSystemError(err, `restoring ${e.path}`);
  }
  return warnings;
}

/** The directories mkdir -p would create for `path` (host paths, outermost first). */
export async function missingDirs(root: string, path: string): Promise<string[]> {
  const out: string[] = [];
  for (let d = path; d !== '/' && d !== '.'; d = dirname(d)) {
    const st = await lstatOrNull(under(root, d));
    if (st) {
      if (!st.isDirectory()) throw new MemdumpError('E_USAGE', `${under(root, d)} exists and is not a directory`);
      break;
    }
    out.unshift(d);
  }
  return out;
}

export async function readState(root: string, topic: string): Promise<ConfigState | null> {
  const full = under(root, statePath(topic));
  let text: string;
  try {
    text = await fs.readFile(full, 'utf8');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return null;
    throw fromSystemError(e, `reading ${full}`);
  }
  let s: ConfigState;
  try {
    s = JSON.parse(text) as ConfigState;
  } catch (e) {
    throw new MemdumpError('E_CORRUPT', `${full} is not JSON (${(e as Error).message}); fix or remove it by hand`);
  }
  if (s?.schema !== STATE_SCHEMA || s.topic !== topic || !Array.isArray(s.entries) || !Array.isArray(s.createdDirs)) {
    throw new MemdumpError('E_CORRUPT', `${full} is not a memdump config state for "${topic}"`);
  }
  return s;
}

export async function writeState(root: string, s: ConfigState): Promise<void> {
  await writeAtomic(under(root, statePath(s.topic)), JSON.stringify(s, null, 2) + '\n', 0o600);
}

export async function removeState(root: string, topic: string): Promise<void> {
  await fs.unlink(under(root, statePath(topic)));
}
