import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MemdumpError, errnoOf, fromSystemError } from '../core/errors.js';

/**
 * Upload tokens. A token is shown once, at issue time: `mdt_<id>_<secret>`. The file keeps only its SHA-256,
 * so a stolen tokens file does not let anyone upload. Each token binds one case and expires; revocation keeps
 * the entry (marked) so a record's token id can still be traced to who issued it for what.
 */
export interface TokenEntry {
  id: string;
  sha256: string;
  case: string;
  created: string;
  expires: string;
  revoked?: string;
  note?: string;
}

interface TokenFile {
  version: 1;
  tokens: TokenEntry[];
}

const TOKEN = /^mdt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const MAX_FILE = 4 << 20;

export type TokenCheck = { ok: true; entry: TokenEntry } | { ok: false; reason: 'malformed' | 'unknown' | 'expired' | 'revoked'; id?: string };

function sha256hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

export async function readTokens(path: string): Promise<TokenEntry[]> {
  let text: string;
  try {
    const fh = await fsp.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = await fh.stat();
      if (st.size > MAX_FILE) throw new MemdumpError('E_TOO_LARGE', `${path}: tokens file is over ${MAX_FILE} bytes`);
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw fromSystemError(e, `reading tokens file ${path}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new MemdumpError('E_CORRUPT', `${path}: tokens file is not JSON`);
  }
  const f = v as Partial<TokenFile>;
  if (!f || f.version !== 1 || !Array.isArray(f.tokens)) throw new MemdumpError('E_CORRUPT', `${path}: not a memdump tokens file (version 1)`);
  for (const t of f.tokens) {
    if (!t || typeof t.id !== 'string' || typeof t.sha256 !== 'string' || typeof t.case !== 'string' || typeof t.expires !== 'string') {
      throw new MemdumpError('E_CORRUPT', `${path}: malformed token entry`);
    }
  }
  return f.tokens;
}

/** Write-to-temp (0600, exclusive) + fsync + rename: a crash leaves the old file or the new one, never half of one. */
export async function writeTokens(path: string, tokens: TokenEntry[]): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const data = JSON.stringify({ version: 1, tokens } satisfies TokenFile, null, 2) + '\n';
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY, 0o600);
  } catch (e) {
    throw fromSystemError(e, `creating ${tmp}`);
  }
  try {
    await fh.chmod(0o600);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fsp.unlink(tmp).catch(() => undefined);
    throw fromSystemError(e, `writing tokens file ${path}`);
  }
  const dfh = await fsp.open(dirname(path), 'r').catch(() => undefined);
  await dfh?.sync().catch(() => undefined);
  await dfh?.close();
}

const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 60_000;

/**
 * Issue and revoke read, change and rewrite the whole file; two of them at once would each write their own
 * view and one change would be lost (a "revoked" token that still works). PATH.lock, created O_EXCL, serialises
 * them across processes. A lock older than LOCK_STALE_MS is taken to be left by a crashed process and removed;
 * holders finish in milliseconds, so that cannot steal a live lock.
 */
export async function withTokensLock<R>(path: string, fn: () => Promise<R>): Promise<R> {
  const lock = path + '.lock';
  const start = Date.now();
  let delay = 2;
  for (;;) {
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(lock, constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY, 0o600);
    } catch (e) {
      if (errnoOf(e) !== 'EEXIST') throw fromSystemError(e, `locking tokens file ${lock}`);
    }
    if (fh) {
      try {
        await fh.writeFile(`${process.pid} ${new Date().toISOString()}\n`).catch(() => undefined);
        await fh.close();
        return await fn();
      } finally {
        await fsp.unlink(lock).catch(() => undefined);
      }
    }
    const st = await fsp.lstat(lock).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) {
      await fsp.unlink(lock).catch(() => undefined);
      continue;
    }
    if (Date.now() - start > LOCK_WAIT_MS) throw new MemdumpError('E_LIMIT', `tokens file ${path} is locked by another memdump (${lock}); remove it if no memdump is running`);
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 100);
  }
}

/** Appends a new token and returns it in clear text: the only time it exists outside the sender's hands. */
export async function issueToken(path: string, opts: { case: string; ttlMs: number; note?: string; now?: Date }): Promise<{ token: string; entry: TokenEntry }> {
  if (!(opts.ttlMs > 0)) throw new MemdumpError('E_USAGE', 'token lifetime must be positive');
  const now = opts.now ?? new Date();
  return withTokensLock(path, () => issueLocked(path, opts, now));
}

async function issueLocked(path: string, opts: { case: string; ttlMs: number; note?: string }, now: Date): Promise<{ token: string; entry: TokenEntry }> {
  const tokens = await readTokens(path);
  const id = randomBytes(8).toString('hex');
  const token = `mdt_${id}_${randomBytes(32).toString('base64url')}`;
  const entry: TokenEntry = {
    id,
    sha256: sha256hex(token),
    case: opts.case,
    created: now.toISOString(),
    expires: new Date(now.getTime() + opts.ttlMs).toISOString(),
    ...(opts.note !== undefined ? { note: opts.note } : {}),
  };
  tokens.push(entry);
  await writeTokens(path, tokens);
  return { token, entry };
}

export async function revokeToken(path: string, id: string, now = new Date()): Promise<TokenEntry> {
  return withTokensLock(path, () => revokeLocked(path, id, now));
}

async function revokeLocked(path: string, id: string, now: Date): Promise<TokenEntry> {
  const tokens = await readTokens(path);
  const entry = tokens.find((t) => t.id === id);
  if (!entry) throw new MemdumpError('E_NOT_FOUND', `no token with id ${id} in ${path}`);
  entry.revoked ??= now.toISOString();
  await writeTokens(path, tokens);
  return entry;
}

const DUMMY = Buffer.alloc(32);

/** Looks the token up by id, then compares SHA-256 digests in constant time (an unknown id costs the same). */
export function checkToken(tokens: readonly TokenEntry[], token: string, now = new Date()): TokenCheck {
  const m = TOKEN.exec(token);
  if (!m) return { ok: false, reason: 'malformed' };
  const id = m[1]!;
  const got = createHash('sha256').update(token, 'utf8').digest();
  const entry = tokens.find((t) => t.id === id);
  const want = entry && /^[0-9a-f]{64}$/.test(entry.sha256) ? Buffer.from(entry.sha256, 'hex') : DUMMY;
  const equal = timingSafeEqual(got, want);
  if (!entry || !equal) return { ok: false, reason: 'unknown', id };
  if (entry.revoked) return { ok: false, reason: 'revoked', id };
  const exp = Date.parse(entry.expires);
  if (!Number.isFinite(exp) || exp <= now.getTime()) return { ok: false, reason: 'expired', id };
  return { ok: true, entry };
}

const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "120s", "2h", "30m", "7d", "500ms", "90" (seconds) → milliseconds. */
export function parseDuration(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(s.trim());
  if (!m) throw new MemdumpError('E_USAGE', `${what}: "${s}" is not a duration (examples: 120s, 30m, 2h, 7d)`);
  const v = Number(m[1]) * UNIT[m[2] ?? 's']!;
  if (!Number.isFinite(v) || v <= 0 || v > 3650 * 86_400_000) throw new MemdumpError('E_USAGE', `${what}: "${s}" is out of range`);
  return Math.round(v);
}
