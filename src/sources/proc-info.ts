import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { MemdumpError, errnoOf } from '../core/errors.js';

/**
 * What /proc says about a live process, for the core's notes and the report. Strings from the target are
 * kept as-is here; the report escapes them before they reach a terminal.
 */

/** Clock ticks per second for /proc stat times; 100 on every Linux x86-64 build (USER_HZ). */
const USER_HZ = 100n;

export interface TaskStat {
  tid: number;
  comm: string;
  state: string;
  ppid: number;
  pgrp: number;
  sid: number;
  flags: bigint;
  utimeUs: bigint;
  stimeUs: bigint;
  nice: number;
}

/** /proc/PID/stat: comm may hold spaces and parentheses, so fields are counted from the last ')'. */
export function parseStat(text: string, tid: number): TaskStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new MemdumpError('E_CORRUPT', `unexpected /proc stat line for ${tid}`);
  const f = text.slice(close + 2).trim().split(/\s+/);
  const n = (i: number) => f[i - 3] ?? '0';
  return {
    tid,
    comm: text.slice(open + 1, close),
    state: n(3),
    ppid: Number(n(4)),
    pgrp: Number(n(5)),
    sid: Number(n(6)),
    flags: BigInt(n(9)),
    utimeUs: (BigInt(n(14)) * 1000000n) / USER_HZ,
    stimeUs: (BigInt(n(15)) * 1000000n) / USER_HZ,
    nice: Number(n(19)),
  };
}

/** /proc/PID/status as key → value. */
export function parseStatus(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

export const hexMask = (s: string | undefined): bigint => (s && /^[0-9a-fA-F]+$/.test(s) ? BigInt('0x' + s) : 0n);

export async function readText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

/** The process must exist and be one we can look at; otherwise a clear coded error. */
export async function assertProcess(pid: number, procRoot = '/proc'): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0) throw new MemdumpError('E_USAGE', `"${pid}" is not a process id`);
  try {
    await readFile(`${procRoot}/${pid}/stat`);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === 'ENOENT' || errno === 'ESRCH') throw new MemdumpError('E_NOT_FOUND', `no process ${pid}`);
    throw new MemdumpError('E_PERMISSION', `cannot read /proc/${pid}: ${errno}`);
  }
}

export interface Limit {
  name: string;
  soft: string;
  hard: string;
  units: string;
}

export function parseLimits(text: string): Limit[] {
  const lines = text.split('\n').filter((l) => l.trim());
  return lines.slice(1).map((l) => {
    const m = /^(.{26})\s*(\S+)\s+(\S+)\s*(\S*)/.exec(l);
    return m ? { name: m[1]!.trim(), soft: m[2]!, hard: m[3]!, units: m[4]! } : { name: l.trim(), soft: '', hard: '', units: '' };
  });
}

export interface FdEntry {
  fd: number;
  target: string;
  kind: 'file' | 'socket' | 'pipe' | 'anon' | 'memfd' | 'other';
}

export async function listFds(pid: number, procRoot = '/proc'): Promise<FdEntry[]> {
  const dir = `${procRoot}/${pid}/fd`;
  const names = (await readdir(dir)).map(Number).filter(Number.isInteger).sort((a, b) => a - b);
  const out: FdEntry[] = [];
  for (const fd of names) {
    let target: string;
    try {
      target = await readlink(`${dir}/${fd}`);
    } catch {
      continue; // closed while we looked
    }
    const kind = target.startsWith('socket:')
      ? 'socket'
      : target.startsWith('pipe:')
        ? 'pipe'
        : target.startsWith('anon_inode:')
          ? 'anon'
          : target.startsWith('/memfd:')
            ? 'memfd'
            : target.startsWith('/')
              ? 'file'
              : 'other';
    out.push({ fd, target, kind });
  }
  return out;
}

/** SHA-256 of the executable through /proc/PID/exe, which still works when the file was deleted or is a memfd. */
export async function hashExe(pid: number, procRoot = '/proc'): Promise<{ sha256: string | null; bytes: number; error: string | null }> {
  const h = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(`${procRoot}/${pid}/exe`, { highWaterMark: 1 << 20 })) {
      h.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    return { sha256: h.digest('hex'), bytes, error: null };
  } catch (e) {
    return { sha256: null, bytes, error: `${errnoOf(e)}: ${(e as Error).message}` };
  }
}

/** Read a /proc file, or record why not, for report fields that must not abort the dump. */
export async function tryRead(path: string): Promise<{ text: string | null; error: string | null }> {
  try {
    return { text: await readFile(path, 'utf8'), error: null };
  } catch (e) {
    return { text: null, error: errnoOf(e) };
  }
}

export async function tryReadlink(path: string): Promise<string | null> {
  try {
    return await readlink(path);
  } catch {
    return null;
  }
}
