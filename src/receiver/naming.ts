import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { MemdumpError, errnoOf, fromSystemError } from '../core/errors.js';

/**
 * Names on the receiver are the receiver's own: DIR/<case>/<host>-<UTC yyyymmddTHHMMSSZ>-<random>.<ext>. The
 * sender's strings only contribute sanitised labels, so no input can name a path outside DIR/<case>.
 */
export const MAX_LABEL = 64;

/** Keeps [A-Za-z0-9._-], maps everything else to '_', drops leading dots, bounds the length. Never '', '.', '..'. */
export function sanitizeLabel(s: unknown, fallback = 'unknown'): string {
  const raw = typeof s === 'string' ? s : '';
  // Array.from splits by code point, so one astral character becomes one '_' rather than two
  let out = Array.from(raw.slice(0, MAX_LABEL * 4))
    .map((c) => (/^[A-Za-z0-9._-]$/.test(c) ? c : '_'))
    .join('');
  out = out.replace(/^\.+/, '').slice(0, MAX_LABEL);
  if (out === '' || /^\.*$/.test(out) || /^_+$/.test(out)) return fallback;
  return out;
}

const FORMAT_EXT: Readonly<Record<string, string>> = {
  lime: 'lime',
  padded: 'padded',
  raw: 'raw',
  elf: 'elf',
  avml: 'avml',
  e01: 'E01',
};
const LAYER_EXT: Readonly<Record<string, string>> = { gzip: 'gz', gz: 'gz', zstd: 'zst', zst: 'zst', age: 'age' };
const MAX_LAYERS = 4;

/** Extension from a whitelist: unknown formats become 'bin', unknown or too many layers are refused. */
export function extensionFor(format: unknown, layers: unknown): string {
  const base = typeof format === 'string' ? FORMAT_EXT[format.toLowerCase()] ?? 'bin' : 'bin';
  const ls = Array.isArray(layers) ? layers : [];
  if (ls.length > MAX_LAYERS) throw new MemdumpError('E_UNSUPPORTED', `more than ${MAX_LAYERS} transport layers`);
  const parts = [base];
  for (const l of ls) {
    const e = typeof l === 'string' ? LAYER_EXT[l.toLowerCase()] : undefined;
    if (!e) throw new MemdumpError('E_UNSUPPORTED', `unknown transport layer ${JSON.stringify(String(l)).slice(0, 40)}`);
    parts.push(e);
  }
  return parts.join('.');
}

export function utcStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

export function evidenceName(host: unknown, format: unknown, layers: unknown, now = new Date()): string {
  return `${sanitizeLabel(host, 'host')}-${utcStamp(now)}-${randomBytes(4).toString('hex')}.${extensionFor(format, layers)}`;
}

/**
 * DIR/<case>, created 0700 if absent. An existing entry must be a real directory (lstat: a symlink planted
 * there is refused), so writes never leave DIR.
 */
export async function caseDirectory(root: string, caseLabel: string): Promise<string> {
  const label = sanitizeLabel(caseLabel, 'nocase');
  const dir = join(root, label);
  try {
    await fsp.mkdir(dir, { mode: 0o700 });
  } catch (e) {
    if (errnoOf(e) !== 'EEXIST') throw fromSystemError(e, `creating ${dir}`);
  }
  const st = await fsp.lstat(dir).catch((e: unknown) => {
    throw fromSystemError(e, `checking ${dir}`);
  });
  if (st.isSymbolicLink() || !st.isDirectory()) throw new MemdumpError('E_DEST_SYMLINK', `${dir} is not a plain directory; refusing to write through it`, { details: { path: dir } });
  // O_DIRECTORY|O_NOFOLLOW re-checks on the opened object, closing the lstat/use race for the directory itself
  const fh = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch((e: unknown) => {
    throw new MemdumpError('E_DEST_SYMLINK', `${dir} could not be opened as a directory: ${(e as Error).message}`);
  });
  await fh.close();
  return dir;
}
