import { readFile } from 'node:fs/promises';
import { MemdumpError, fromSystemError } from '../core/errors.js';

/**
 * One line of /proc/PID/maps, with the matching /proc/PID/smaps block when it was read.
 * Addresses and offsets are bigint (vsyscall sits at 0xffffffffff600000, above 2^53).
 */
export interface Mapping {
  start: bigint;
  end: bigint;
  /** As printed: 'r-xp', 'rw-s', ... */
  perms: string;
  read: boolean;
  write: boolean;
  exec: boolean;
  /** 's' in perms (MAP_SHARED). */
  shared: boolean;
  /** File offset of the mapping, bytes. */
  offset: bigint;
  /** 'MAJ:MIN' in hex, as printed. */
  dev: string;
  inode: bigint;
  /** Path as printed, with the kernel's octal escapes (\012 for newline) decoded; '' when anonymous. */
  path: string;
  /** The path ends in ' (deleted)'. */
  deleted: boolean;
  /** From smaps: the VmFlags two-letter codes ('rd', 'dd', 'io', 'ht', ...); undefined when smaps was not read. */
  vmFlags?: string[];
  /** From smaps, in bytes. */
  rss?: bigint;
  anonymous?: bigint;
  swap?: bigint;
}

/*
 * Header: `start-end perms offset MAJ:MIN inode`, then (when there is a name) space padding to a fixed column and
 * the name. The kernel writes single spaces between the fixed fields, so a strict pattern catches damaged captures.
 * Hex fields are at most 16 digits: anything longer cannot be a 64-bit address.
 */
const HEADER =
  /^([0-9a-fA-F]{1,16})-([0-9a-fA-F]{1,16}) ([r-])([w-])([x-])([sp]) ([0-9a-fA-F]{1,16}) ([0-9a-fA-F]{1,8}:[0-9a-fA-F]{1,8}) ([0-9]{1,20})(?: +(.*))?$/;
const KEY = /^([A-Za-z][A-Za-z0-9_]*):(.*)$/;
const KB = /^ *([0-9]{1,20}) kB$/;
const KB_FIELDS = { Rss: 'rss', Anonymous: 'anonymous', Swap: 'swap' } as const;
const DELETED = ' (deleted)';
const U64_MAX = (1n << 64n) - 1n;

/** Parse /proc/PID/maps. */
export function parseMaps(text: string): Mapping[] {
  return parse(text, 'maps');
}

/** Parse /proc/PID/smaps: maps lines, each followed by `Key: value` lines ending with `VmFlags:`. */
export function parseSmaps(text: string): Mapping[] {
  return parse(text, 'smaps');
}

function corrupt(what: string, line: number, problem: string, text?: string): MemdumpError {
  const shown = text === undefined ? '' : `: ${JSON.stringify(text.slice(0, 100))}`;
  return new MemdumpError('E_CORRUPT', `${what} line ${line} ${problem}${shown}`, { details: { line } });
}

function parse(text: string, what: 'maps' | 'smaps'): Mapping[] {
  const out: Mapping[] = [];
  const lines = text.split('\n');
  let cur: Mapping | undefined;
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    // captures copied through other systems may carry CRLF; a path really ending in CR is lost (kernel does not escape it)
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim() === '') continue;
    const h = HEADER.exec(line);
    if (h) {
      cur = header(h, what, i + 1, line);
      out.push(cur);
      continue;
    }
    const k = what === 'smaps' ? KEY.exec(line) : null;
    if (!k) throw corrupt(what, i + 1, `is not "start-end perms offset dev inode [path]"${what === 'smaps' ? ' nor "Key: value"' : ''}`, line);
    if (!cur) throw corrupt(what, i + 1, 'has a "Key: value" line before any mapping line', line);
    field(cur, k[1]!, k[2]!, what, i + 1, line);
  }
  return out;
}

function header(h: RegExpExecArray, what: string, n: number, line: string): Mapping {
  const start = BigInt('0x' + h[1]!);
  const end = BigInt('0x' + h[2]!);
  if (end <= start) throw corrupt(what, n, 'ends at or before its start', line);
  const inode = BigInt(h[9]!);
  if (inode > U64_MAX) throw corrupt(what, n, 'has an inode number beyond 64 bits', line);
  // Only newline is escaped (seq_file_path(..., "\n")), and a backslash is not: a name that literally contains
  // "\012" reads back as a newline. The ambiguity is the kernel's.
  const path = (h[10] ?? '').replace(/\\([0-3][0-7]{2})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  return {
    start,
    end,
    perms: h[3]! + h[4]! + h[5]! + h[6]!,
    read: h[3] === 'r',
    write: h[4] === 'w',
    exec: h[5] === 'x',
    shared: h[6] === 's',
    offset: BigInt('0x' + h[7]!),
    dev: h[8]!,
    inode,
    path,
    deleted: path.endsWith(DELETED),
  };
}

function field(m: Mapping, key: string, value: string, what: string, n: number, line: string): void {
  if (key === 'VmFlags') {
    const flags = value.split(' ').filter((f) => f !== '');
    // the kernel prints each flag as exactly two characters ("%c%c ")
    if (flags.some((f) => !/^\S\S$/.test(f))) throw corrupt(what, n, 'has a VmFlags entry that is not two characters', line);
    m.vmFlags = flags;
    return;
  }
  const name = (KB_FIELDS as Record<string, 'rss' | 'anonymous' | 'swap' | undefined>)[key];
  // other keys (Pss, KSM, THPeligible, ProtectionKey, ...) vary by kernel version and are not needed
  if (name === undefined) return;
  const kb = KB.exec(value);
  if (!kb) throw corrupt(what, n, `has a ${key} value that is not "N kB"`, line);
  m[name] = BigInt(kb[1]!) * 1024n;
}

/**
 * Read /proc/PID/smaps, or /proc/PID/maps when smaps cannot be read (kernels without CONFIG_PROC_PAGE_MONITOR);
 * `smaps` says which, because without it VmFlags (dd, io, ht) and anonymous page counts are unknown.
 */
export async function readMappings(pid: number, procRoot = '/proc'): Promise<{ mappings: Mapping[]; smaps: boolean }> {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new MemdumpError('E_USAGE', `not a process id: ${pid}`);
  const dir = `${procRoot}/${pid}`;
  let text: string;
  try {
    text = await readFile(`${dir}/smaps`, 'utf8');
  } catch {
    try {
      text = await readFile(`${dir}/maps`, 'utf8');
    } catch (e) {
      throw fromSystemError(e, `${dir}/maps`);
    }
    return { mappings: parseMaps(text), smaps: false };
  }
  return { mappings: parseSmaps(text), smaps: true };
}

/**
 * Memory with no file behind it worth naming, as gdb's linux-tdep and the kernel's coredump code see it: no path,
 * kernel pseudo names ([heap], [stack], [anon:x], [anon_shmem:x] — the latter carries a shmem inode, so the
 * name decides, not the inode), shmem objects the kernel shows as unlinked (/dev/zero (deleted) for
 * MAP_SHARED|MAP_ANONYMOUS, /memfd:x, /SYSVkey), any deleted file, and private /dev/zero mappings, which the
 * kernel turns into anonymous memory while keeping the file for display.
 */
export function isAnonymousLike(m: Mapping): boolean {
  const p = m.path;
  return p === '' || p.startsWith('[') || m.deleted || p === '/dev/zero' || p.startsWith('/memfd:') || p.startsWith('/SYSV');
}
