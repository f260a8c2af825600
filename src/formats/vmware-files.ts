/**
 * Finding a VMware checkpoint's companion files on disk: X.vmem beside X.vmss / X.vmsn and back.
 *
 * Names match without regard to case, because VMs are copied between case-insensitive stores (Windows hosts,
 * VMFS) and case-sensitive ones, where G.VMEM beside g.vmss is common. A companion that exists but is no regular
 * file (a directory, a symlink loop, a dangling symlink) is reported as such rather than as missing, so that the
 * caller can refuse it by name instead of silently falling back to a guess.
 */
import { lstat, opendir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';

/** A companion path as found on disk: a regular file, or something else in its place (and what). */
export type Probe = { readonly path: string; readonly file: true } | { readonly path: string; readonly file: false; readonly problem: string };

/** What lies at `path`, following symlinks; undefined when nothing does. */
export async function probe(path: string): Promise<Probe | undefined> {
  let l;
  try {
    l = await lstat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    return { path, file: false, problem: `cannot be examined (${code ?? String(e)})` };
  }
  if (l.isFile()) return { path, file: true };
  if (l.isDirectory()) return { path, file: false, problem: 'is a directory' };
  if (!l.isSymbolicLink()) return { path, file: false, problem: 'is not a regular file' };
  try {
    const s = await stat(path);
    if (s.isFile()) return { path, file: true };
    return { path, file: false, problem: s.isDirectory() ? 'is a symlink to a directory' : 'is a symlink to something other than a regular file' };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { path, file: false, problem: 'is a symlink loop' };
    if (code === 'ENOENT' || code === 'ENOTDIR') return { path, file: false, problem: 'is a dangling symlink' };
    return { path, file: false, problem: `is a symlink that cannot be followed (${code ?? String(e)})` };
  }
}

/**
 * What lies beside `path` under its stem with each of `exts`, in that order. Names match without regard to case
 * (a VM copied from Windows or VMFS keeps G.VMEM beside g.vmss); for each extension the spelling with the case of
 * `path`'s own extension comes first, then other spellings in name order.
 */
export async function siblings(path: string, exts: readonly string[]): Promise<Probe[]> {
  const ext = extname(path);
  const dir = dirname(path);
  const stem = basename(path, ext);
  const upper = ext.length > 1 && ext === ext.toUpperCase();
  const wanted = new Map(exts.map((e) => [`${stem}.${e}`.toLowerCase(), [] as string[]]));
  try {
    // streamed, keeping only matching names: a directory of many files costs no memory
    const d = await opendir(dir);
    for await (const ent of d) wanted.get(ent.name.toLowerCase())?.push(ent.name);
  } catch {
    // an unreadable directory: try the likely spellings directly
  }
  const out: Probe[] = [];
  for (const e of exts) {
    const preferred = `${stem}.${upper ? e.toUpperCase() : e}`;
    const names = [...new Set([preferred, ...(wanted.get(`${stem}.${e}`.toLowerCase()) ?? []).sort()])];
    for (const n of names) {
      const p = await probe(join(dir, n));
      if (p) out.push(p);
    }
  }
  return out;
}

export function isVmemPath(path: string): boolean {
  return extname(path).toLowerCase() === '.vmem';
}

export function notAFile(p: Probe & { file: false }, role: string): MemdumpError {
  return new MemdumpError('E_NOT_FOUND', `${escapeControl(p.path)} ${p.problem}, not ${role}: put the real file there (or move this aside)`, {
    details: { path: escapeControl(p.path), problem: p.problem },
  });
}
