import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { type Digest, Hasher } from '../core/hasher.js';
import { elf } from '../formats/elf.js';
import { FileSink } from '../sinks/file.js';
import type { Receipt } from '../sinks/types.js';
import { writeFileExclusive } from '../sinks/exclusive.js';
import { LOG_SUFFIX, REPORT_SUFFIX, buildReport, renderLog, serializeReport } from './report.js';

/**
 * `memdump core-handler`: the kernel's core_pattern pipe handler. The kernel writes the ELF core of a dying
 * process to our stdin and keeps /proc/PID alive until we exit, so the process context is read first. The core
 * is stored unchanged (0600, O_EXCL, .partial until complete) while hashed; a short or non-ELF stream is kept
 * as .partial with an INCOMPLETE report rather than dropped.
 */
const HEAD_MAX = 4 << 20;
const PROC_FILE_MAX = 256 * 1024;

export interface CoreHandlerOptions {
  pid: string;
  /** %e: the executable name (comm), as the kernel gives it. */
  exe: string;
  /** %t: seconds since the epoch. */
  time: string;
  dir: string;
  input: Readable;
  argv: readonly string[];
  procRoot?: string;
  digests?: readonly Digest[];
  windowSize?: bigint;
}

export interface CoreHandlerResult {
  status: 'COMPLETE' | 'INCOMPLETE';
  path: string;
  receipt: Receipt;
  report: string;
  log: string;
  bytes: bigint;
  digests: Partial<Record<Digest, string>>;
  failure: { code: string; message: string } | null;
}

export const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_').slice(0, 64) || 'unknown';

async function readBounded(path: string): Promise<Buffer> {
  const fh = await fs.open(path, 'r');
  try {
    const buf = Buffer.alloc(PROC_FILE_MAX);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0 || (n += bytesRead) === buf.length) break;
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

/** What /proc still shows of the dying process; every item is best effort and says why it is missing. */
export async function procContext(procRoot: string, pid: string): Promise<Record<string, unknown>> {
  const base = join(procRoot, pid);
  const errors: Record<string, string> = {};
  const grab = async <T>(name: string, f: () => Promise<T>): Promise<T | null> => {
    try {
      return await f();
    } catch (e) {
      errors[name] = `${(e as { code?: string }).code ?? 'ERROR'}: ${(e as Error).message}`;
      return null;
    }
  };
  const cmdline = await grab('cmdline', async () => (await readBounded(join(base, 'cmdline'))).toString('latin1').split('\0').filter((x, i, a) => x !== '' || i < a.length - 1));
  const exe = await grab('exe', () => fs.readlink(join(base, 'exe')));
  const status = await grab('status', async () => {
    const out: Record<string, string> = {};
    for (const line of (await readBounded(join(base, 'status'))).toString('latin1').split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
    }
    return out;
  });
  return { cmdline, exe, status, errors };
}

/** Bytes an ELF core needs, from its headers; null when it cannot tell (not ELF64 LE, PN_XNUM, headers past the head). */
export function elfCoreExtent(head: Buffer): { end: bigint | null; problem: string | null } {
  if (head.length < 4 || head.readUInt32BE(0) !== 0x7f454c46) return { end: null, problem: head.length === 0 ? 'no bytes received' : 'input is not an ELF file' };
  if (head.length < 64) return { end: 64n, problem: null };
  if (head[4] !== 2 || head[5] !== 1) return { end: null, problem: 'not a 64-bit little-endian ELF: completeness not checked' };
  const phoff = head.readBigUInt64LE(32);
  const phentsize = head.readUInt16LE(54);
  const phnum = head.readUInt16LE(56);
  if (phnum === 0xffff) return { end: null, problem: 'more than 65534 program headers (PN_XNUM): completeness not checked' };
  if (phentsize < 56 && phnum > 0) return { end: null, problem: `program header size ${phentsize} is too small` };
  const tableEnd = phoff + BigInt(phentsize) * BigInt(phnum);
  let end = tableEnd > 64n ? tableEnd : 64n;
  // gdb's gcore (unlike the kernel) appends section headers after the data
  const shoff = head.readBigUInt64LE(40);
  const shEnd = shoff + BigInt(head.readUInt16LE(58)) * BigInt(head.readUInt16LE(60));
  if (shoff > 0n && shEnd > end) end = shEnd;
  if (tableEnd > BigInt(head.length)) return { end, problem: null }; // the stream ended inside the table
  for (let i = 0; i < phnum; i++) {
    const o = Number(phoff) + i * phentsize;
    const e = head.readBigUInt64LE(o + 8) + head.readBigUInt64LE(o + 32);
    if (e > end) end = e;
  }
  return { end, problem: null };
}

export async function handleCore(o: CoreHandlerOptions): Promise<CoreHandlerResult> {
  if (!/^\d{1,10}$/.test(o.pid)) throw new MemdumpError('E_USAGE', `PID must be a number (the kernel's %P); got ${JSON.stringify(o.pid)}`);
  if (!/^\d{1,20}$/.test(o.time)) throw new MemdumpError('E_USAGE', `TIME must be seconds since the epoch (the kernel's %t); got ${JSON.stringify(o.time)}`);
  // an error before we start reading (the kernel closed the pipe early) must not be an uncaught exception
  let inputError: Error | undefined;
  o.input.on('error', (e: Error) => (inputError ??= e));
  const start = new Date();
  const startMono = performance.now();
  const info = await procContext(o.procRoot ?? '/proc', o.pid);
  // a missing crash directory must not cost the core: the handler runs as root and makes it root-only
  await fs.mkdir(o.dir, { recursive: true, mode: 0o700 }).catch(() => undefined);
  const path = join(o.dir, `${safeName(o.exe)}_${o.pid}_${o.time}.core`);
  const sink = await FileSink.create(path);
  const digests = o.digests ?? ['md5', 'sha1', 'sha256'];
  const hasher = new Hasher({ digests, windowSize: o.windowSize ?? 64n << 20n });
  const head: Buffer[] = [];
  let headLen = 0;
  let failure: { code: string; message: string } | null = null;
  try {
    for await (const chunk of o.input as AsyncIterable<Buffer | string>) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (headLen < HEAD_MAX) {
        const take = b.subarray(0, HEAD_MAX - headLen);
        head.push(Buffer.from(take));
        headLen += take.length;
      }
      await hasher.update(b);
      await sink.write(b);
    }
  } catch (e) {
    // a coded error is ours (disk full, write failed); anything else came from the pipe
    failure = e instanceof MemdumpError ? { code: e.code, message: e.message } : { code: 'E_SOURCE_READ', message: `reading the core from stdin: ${(e as Error).message}` };
  }
  if (!failure && inputError) failure = { code: 'E_SOURCE_READ', message: `reading the core from stdin: ${inputError.message}` };
  const bytes = sink.position;
  const warnings: string[] = [];
  const ext = elfCoreExtent(Buffer.concat(head));
  if (!failure) {
    if (ext.end === null && ext.problem && /not an ELF|no bytes/.test(ext.problem)) failure = { code: bytes === 0n ? 'E_TRUNCATED' : 'E_CORRUPT', message: ext.problem };
    else if (ext.problem) warnings.push(ext.problem);
    else if (ext.end !== null && bytes < ext.end) failure = { code: 'E_TRUNCATED', message: `the core ended after ${bytes} bytes; its ELF headers describe ${ext.end}` };
  }
  let hash;
  try {
    hash = await hasher.digest();
  } catch (e) {
    await hasher.close();
    throw e;
  }
  const receipt = failure ? await sink.abort() : await sink.finish();
  const status = failure ? 'INCOMPLETE' : 'COMPLETE';
  const range = { start: 0n, end: bytes };
  const report = buildReport({
    command: 'core-handler',
    argv: o.argv,
    caseFields: {},
    start,
    startMono,
    source: { kind: 'kernel-core-pipe', path: 'stdin', attempts: [], lockdown: undefined, info: { pid: Number(o.pid), comm: o.exe, time: o.time, timeIso: new Date(Number(o.time) * 1000).toISOString(), expectedBytes: ext.end?.toString() ?? null, proc: info } },
    ram: [],
    acquired: bytes > 0n ? [range] : [],
    format: { ...elf, description: 'process core as the kernel wrote it (ELF ET_CORE), stored unchanged' },
    copy: {
      status,
      ...(failure ? { failure: { ...failure, lastGoodOffset: bytes, lastAddress: undefined } } : {}),
      accounts: [{ range, requested: ext.end !== null && ext.end > bytes ? ext.end : bytes, read: bytes, zeroFilled: 0n, skipped: 0n }],
      errorRuns: [],
      hash,
      receipt,
    },
    contentSha256: null,
    outputs: [{ role: 'evidence', path: receipt.complete ? receipt.path : (receipt.partialPath ?? receipt.path), bytes, complete: receipt.complete, sha256: hash.digests.sha256 ?? null }],
    context: [],
    options: { dir: o.dir, digests: [...digests] },
    warnings,
  });
  const files = { report: path + REPORT_SUFFIX, log: path + LOG_SUFFIX };
  await writeFileExclusive(files.report, serializeReport(report));
  await writeFileExclusive(files.log, renderLog(report) + crashLines(o, info));
  return { status, path: receipt.complete ? receipt.path : (receipt.partialPath ?? receipt.path), receipt, ...files, bytes, digests: hash.digests, failure };
}

/** The generic log has no place for the crashed process; these lines add it (escaped: they come from the target). */
function crashLines(o: CoreHandlerOptions, info: Record<string, unknown>): string {
  const add = (k: string, v: string) => `${k.padEnd(18)} ${escapeControl(v)}\n`;
  const status = (info.status ?? {}) as Record<string, string>;
  let out = add('crashed process', `${o.pid} ${o.exe} at ${new Date(Number(o.time) * 1000).toISOString()}`);
  out += add('  exe', typeof info.exe === 'string' ? info.exe : 'unreadable');
  out += add('  cmdline', Array.isArray(info.cmdline) ? (info.cmdline as string[]).join(' ') : 'unreadable');
  for (const k of ['State', 'Uid', 'Gid', 'PPid']) if (status[k]) out += add(`  ${k}`, status[k]);
  for (const [k, v] of Object.entries((info.errors ?? {}) as Record<string, string>)) out += add(`  ${k}`, `unreadable: ${v}`);
  return out;
}
