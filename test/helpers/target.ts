/**
 * A real, multi-threaded target process for `memdump process` / `memdump regions` tests, built from
 * test/helpers/target.c (see the comment at its top for what it plants), plus `gcore` as a reference dumper.
 *
 * The binary is compiled once per source hash into `<repo>/.cache/target/<sha>/target` with
 * `gcc -O0 -g -pthread`. The repository root is found by walking up from this file to memdump's package.json;
 * set MEMDUMP_REPO to override it (e.g. when the tests are compiled to a directory outside the repo).
 *
 * startTarget() resolves only when every thread the target reported is blocked in the `pause` syscall with
 * its known registers loaded (checked in /proc/PID/task/TID/syscall) and /proc/PID/task lists exactly those
 * threads, so a dump taken afterwards sees a process that no longer changes (see target.c).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findExecutable } from './qemu-guest.js';

export const TARGET_GCC_FLAGS: readonly string[] = ['-O0', '-g', '-pthread', '-Wall', '-Wextra'];
/** Registers park() loads: value = REG_BASE + threadIndex * 0x10 + x86 register number. */
export const TARGET_REG_BASE = 0x1200000000000000n;
export const TARGET_KNOWN_REGS: Readonly<Record<string, number>> = {
  rdx: 2,
  rbx: 3,
  rsi: 6,
  rdi: 7,
  r8: 8,
  r9: 9,
  r10: 10,
  r12: 12,
  r13: 13,
  r14: 14,
  r15: 15,
};
/** __NR_pause on x86-64: the syscall every parked thread sits in. */
export const PAUSE_SYSCALL = 34;

export interface TargetMarker {
  addr: bigint;
  text: string;
}

/** The JSON line target.c prints, with addresses as bigint. */
export interface TargetInfo {
  pid: number;
  /** 16 hex digits. */
  magic: string;
  /** readlink(/proc/self/exe) in the target, e.g. '/memfd:implant (deleted)' with --memfd-exec. */
  exe: string;
  /** Main thread first, then workers 1..N. */
  tids: number[];
  heap: bigint;
  data: bigint;
  /** Address of MEMDUMP-STACK-<i>-<magic>, per thread in `tids` order. */
  stacks: bigint[];
  /** 'stack-<i>', 'heap', 'data', and with the options 'rwx', 'memfd'. */
  markers: Record<string, TargetMarker>;
  /** Known register values per thread, in `tids` order: rdx rbx rsi rdi r8 r9 r10 r12..r15 and fs_base. */
  regs: Array<{ tid: number; values: Record<string, bigint> }>;
  /** Bytes of each thread's rseq area the kernel may rewrite on any return to user space; 0 when none. */
  rseqSize: number;
  /** Each thread's rseq area (fs_base + __rseq_offset), in `tids` order; empty when rseqSize is 0. */
  rseq: bigint[];
  /** The machine code copied into the --rwx and --memfd pages (at their first byte). */
  code: Buffer;
  /** --anon-mib: see anonWord(). */
  anon?: { addr: bigint; bytes: number };
  /** --rwx: the rwxp page (code, then the 'rwx' marker) and the r-xp page holding the exe's first page. */
  rwx?: bigint;
  elfHeader?: bigint;
  /** --memfd: the `/memfd:payload (deleted)` page (code, then the 'memfd' marker). */
  memfd?: bigint;
  /** --deleted-exec: the mapping of the unlinked copy of the program (whole file, r-xp). */
  deletedExec?: { addr: bigint; bytes: number; path: string };
  /** --traced: the pid described by this line (== pid) and its tracer (the process the harness started). */
  tracedPid?: number;
  tracerPid?: number;
}

export interface Target {
  /** The process to dump (with --traced: the traced child). */
  pid: number;
  tids: number[];
  info: TargetInfo;
  /** The binary that was started (give it to gdb as the executable). */
  exe: string;
  /** The process the harness spawned (differs from pid with --traced). */
  spawnedPid: number;
  /** Everything the target wrote on stderr so far. */
  stderr(): string;
  /** SIGKILL the target (and its tracer) and wait for the spawned process to exit. Idempotent. */
  kill(): Promise<void>;
}

export interface AfterHook {
  after(fn: () => unknown): void;
}

// ---------------------------------------------------------------------------------------------------------

/** The memdump repository root: $MEMDUMP_REPO, else the nearest ancestor holding memdump's package.json. */
export function repoRoot(): string {
  const env = process.env['MEMDUMP_REPO'];
  if (env) return env;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name === 'memdump') return dir;
      } catch {
        // keep walking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('memdump repository root not found; set MEMDUMP_REPO');
    dir = up;
  }
}

/** Why the target tests cannot run here (missing tool), or undefined. */
export function targetToolsMissing(tools: readonly string[] = ['gcc', 'gdb', 'gcore']): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') return 'needs Linux on x86-64';
  const missing = tools.filter((t) => !findExecutable(t));
  return missing.length > 0 ? `${missing.join(', ')} not installed` : undefined;
}

/** Compile target.c (once per source hash) and return the binary's path. */
export function buildTarget(): string {
  const root = repoRoot();
  const src = path.join(root, 'test', 'helpers', 'target.c');
  const code = readFileSync(src);
  const sha = createHash('sha256').update(code).update('\0' + TARGET_GCC_FLAGS.join(' ')).digest('hex').slice(0, 16);
  const dir = path.join(root, '.cache', 'target', sha);
  const out = path.join(dir, 'target');
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const gcc = findExecutable('gcc');
  if (!gcc) throw new Error('gcc not found on PATH');
  const tmp = `${out}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    execFileSync(gcc, [...TARGET_GCC_FLAGS, '-o', tmp, src], { stdio: ['ignore', 'pipe', 'pipe'] });
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { force: true });
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`gcc failed for ${src}: ${err.message}\n${err.stderr?.toString() ?? ''}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------

interface Spawned {
  child: ChildProcess;
  /** Everything to SIGKILL, the traced child (if any) first. */
  pids: () => Array<number | undefined>;
}
const live = new Set<Spawned>();
let exitHook = false;

function hex(v: unknown, what: string): bigint {
  if (typeof v !== 'string' || !/^0x[0-9a-f]+$/i.test(v)) throw new Error(`target JSON: ${what} is not a hex string: ${String(v)}`);
  return BigInt(v);
}

/** Parse target.c's JSON line. */
export function parseTargetLine(line: string): TargetInfo {
  const j = JSON.parse(line) as Record<string, unknown>;
  const num = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`target JSON: ${what} is not an integer`);
    return v;
  };
  const arr = (v: unknown, what: string): unknown[] => {
    if (!Array.isArray(v)) throw new Error(`target JSON: ${what} is not an array`);
    return v;
  };
  const markers: Record<string, TargetMarker> = {};
  for (const [name, m] of Object.entries((j['markers'] ?? {}) as Record<string, { addr?: unknown; text?: unknown }>)) {
    markers[name] = { addr: hex(m.addr, `markers.${name}.addr`), text: String(m.text) };
  }
  const info: TargetInfo = {
    pid: num(j['pid'], 'pid'),
    magic: String(j['magic']),
    exe: String(j['exe']),
    tids: arr(j['tids'], 'tids').map((t) => num(t, 'tids[]')),
    heap: hex(j['heap'], 'heap'),
    data: hex(j['data'], 'data'),
    stacks: arr(j['stacks'], 'stacks').map((s) => hex(s, 'stacks[]')),
    markers,
    regs: arr(j['regs'], 'regs').map((r) => {
      const { tid, ...rest } = r as Record<string, unknown>;
      const values: Record<string, bigint> = {};
      for (const [k, v] of Object.entries(rest)) values[k] = hex(v, `regs[].${k}`);
      return { tid: num(tid, 'regs[].tid'), values };
    }),
    rseqSize: num(j['rseqSize'], 'rseqSize'),
    rseq: arr(j['rseq'], 'rseq').map((s) => hex(s, 'rseq[]')),
    code: Buffer.from(String(j['code']), 'hex'),
  };
  const anon = j['anon'] as { addr?: unknown; bytes?: unknown } | undefined;
  if (anon) info.anon = { addr: hex(anon.addr, 'anon.addr'), bytes: num(anon.bytes, 'anon.bytes') };
  if (j['rwx'] !== undefined) info.rwx = hex(j['rwx'], 'rwx');
  if (j['elfHeader'] !== undefined) info.elfHeader = hex(j['elfHeader'], 'elfHeader');
  if (j['memfd'] !== undefined) info.memfd = hex(j['memfd'], 'memfd');
  const del = j['deletedExec'] as { addr?: unknown; bytes?: unknown; path?: unknown } | undefined;
  if (del) info.deletedExec = { addr: hex(del.addr, 'deletedExec.addr'), bytes: num(del.bytes, 'deletedExec.bytes'), path: String(del.path) };
  if (j['tracedPid'] !== undefined) info.tracedPid = num(j['tracedPid'], 'tracedPid');
  if (j['tracerPid'] !== undefined) info.tracerPid = num(j['tracerPid'], 'tracerPid');
  return info;
}

/** Thread ids in /proc/PID/task, sorted numerically; [] when the process is gone. */
export async function procTasks(pid: number): Promise<number[]> {
  try {
    return (await fs.readdir(`/proc/${pid}/task`)).map(Number).sort((a, b) => a - b);
  } catch {
    return [];
  }
}

/** First field of /proc/PID/task/TID/syscall: the syscall number, -1 (blocked outside a syscall), 'running', or undefined. */
export async function taskSyscall(pid: number, tid: number): Promise<string | undefined> {
  try {
    return (await fs.readFile(`/proc/${pid}/task/${tid}/syscall`, 'utf8')).trim().split(/\s+/)[0];
  } catch {
    return undefined;
  }
}

/** `State:` and `TracerPid:` of a thread, from /proc/PID/task/TID/status. */
export async function taskStatus(pid: number, tid: number): Promise<{ state: string; tracerPid: number } | undefined> {
  try {
    const s = await fs.readFile(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const state = /^State:\s*(\S+)/m.exec(s)?.[1] ?? '?';
    const tracer = Number(/^TracerPid:\s*(\d+)/m.exec(s)?.[1] ?? NaN);
    return { state, tracerPid: tracer };
  } catch {
    return undefined;
  }
}

/**
 * Whether every thread in `tids` (and no other) exists and sits in the pause syscall. With `untraced`,
 * also that no thread has a tracer and none is stopped (a dumper detached cleanly).
 */
export async function targetParked(pid: number, tids: readonly number[], opts: { untraced?: boolean } = {}): Promise<{ ok: boolean; why: string }> {
  const tasks = await procTasks(pid);
  const want = [...tids].sort((a, b) => a - b);
  if (tasks.join(',') !== want.join(',')) return { ok: false, why: `tasks ${tasks.join(',')} != reported ${want.join(',')}` };
  for (const tid of tids) {
    const sc = await taskSyscall(pid, tid);
    if (sc !== String(PAUSE_SYSCALL)) return { ok: false, why: `thread ${tid} syscall field ${String(sc)}` };
    if (opts.untraced) {
      const st = await taskStatus(pid, tid);
      if (!st) return { ok: false, why: `thread ${tid} has no status` };
      if (st.tracerPid !== 0) return { ok: false, why: `thread ${tid} still traced by ${st.tracerPid}` };
      if (st.state !== 'S') return { ok: false, why: `thread ${tid} in state ${st.state}` };
    }
  }
  return { ok: true, why: '' };
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function killQuietly(pid: number | undefined): void {
  if (pid === undefined || pid <= 0) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Start the target with `args` (target.c options) as a child of this (test) process, wait for its JSON line
 * and for all its threads to be parked. The target is killed by `t.after` (and at process exit) whatever
 * happens. `readyTimeoutMs` bounds the wait for a target that never gets ready (it is a hang guard, not a
 * measurement).
 */
export async function startTarget(t: AfterHook, args: readonly string[] = [], opts: { readyTimeoutMs?: number; exe?: string } = {}): Promise<Target> {
  const exe = opts.exe ?? buildTarget();
  const child: ChildProcess = spawn(exe, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const spawned: Spawned = { child, pids: () => [child.pid] };
  let stderr = '';
  let stdout = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  let killed = false;
  const kill = async (): Promise<void> => {
    if (!killed) {
      killed = true;
      // The traced child first: killing its tracer first would detach and resume it.
      for (const pid of spawned.pids()) killQuietly(pid);
    }
    live.delete(spawned);
    if (child.pid !== undefined) await exited;
  };
  live.add(spawned);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const s of live) for (const pid of s.pids()) killQuietly(pid);
    });
  }
  t.after(kill);

  const timeoutMs = opts.readyTimeoutMs ?? 120_000;
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`target ${args.join(' ')} printed no JSON line in ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => {
      stdout += d;
      const nl = stdout.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(stdout.slice(0, nl));
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`target ${args.join(' ')} exited (${code ?? sig}) before reporting; stderr: ${stderr}`));
    });
  });
  const info = parseTargetLine(line);
  spawned.pids = () => [info.tracedPid, child.pid, info.tracerPid];

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const p = await targetParked(info.pid, info.tids);
    if (p.ok) break;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`target exited while parking; stderr: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`target never parked: ${p.why}`);
    await delay(5);
  }
  return { pid: info.pid, tids: info.tids, info, exe, spawnedPid: child.pid ?? -1, stderr: () => stderr, kill };
}

// ---------------------------------------------------------------------------------------------------------

const MASK64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;

/** The 8-byte word at byte offset 8*j of the --anon-mib region of a target with this magic (little-endian). */
export function anonWord(magic: string | bigint, j: bigint): bigint {
  let z = (BigInt(typeof magic === 'string' ? `0x${magic}` : magic) + (j + 1n) * GOLDEN) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** The 4096 bytes of page `page` of the --anon-mib region. */
export function anonPage(magic: string | bigint, page: bigint): Buffer {
  const b = Buffer.alloc(4096);
  for (let k = 0; k < 512; k++) b.writeBigUInt64LE(anonWord(magic, page * 512n + BigInt(k)), k * 8);
  return b;
}

/** The known register values of thread `index` (0 = main), as park() loads them. */
export function knownRegs(index: number): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const [name, num] of Object.entries(TARGET_KNOWN_REGS)) out[name] = TARGET_REG_BASE + BigInt(index) * 0x10n + BigInt(num);
  return out;
}

// ---------------------------------------------------------------------------------------------------------

/**
 * `gcore -o PREFIX PID`: gdb attaches, writes PREFIX.PID and detaches. Returns the core's path. Rejects
 * when gcore fails (e.g. the process is already traced), with gcore's output in the message.
 */
export function gcore(pid: number, outPrefix: string, opts: { timeoutMs?: number } = {}): Promise<string> {
  const bin = findExecutable('gcore');
  if (!bin) return Promise.reject(new Error('gcore not found on PATH'));
  const out = `${outPrefix}.${pid}`;
  return new Promise((resolve, reject) => {
    execFile(bin, ['-o', outPrefix, String(pid)], { timeout: opts.timeoutMs ?? 300_000, maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`gcore -o ${outPrefix} ${pid} failed: ${err.message}\n${stdout}\n${stderr}`));
        return;
      }
      if (!existsSync(out)) {
        reject(new Error(`gcore -o ${outPrefix} ${pid} wrote no ${out}\n${stdout}\n${stderr}`));
        return;
      }
      resolve(out);
    });
  });
}

/** /proc/PID/maps lines as {start, end, perms, path}; for building exclusion lists. */
export function readMaps(pid: number): Array<{ start: bigint; end: bigint; perms: string; path: string }> {
  const text = readFileSync(`/proc/${pid}/maps`, 'utf8');
  const out: Array<{ start: bigint; end: bigint; perms: string; path: string }> = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)\s+\S+\s+\S+\s+\S+\s*(.*)$/.exec(line);
    if (!m) continue;
    out.push({ start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), perms: m[3] ?? '', path: m[4] ?? '' });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------

/** A `target --behave` process (see behave() in target.c): it changes at a known moment, for `memdump watch`. */
export interface BehavingTarget {
  pid: number;
  exe: string;
  /** CLOCK_REALTIME ms of the first line. */
  startedAt: number;
  /** Every {"event","t"} line so far. */
  events(): Array<{ event: string; t: number }>;
  /** Resolves with the event's time once it has been printed (rejects if the target exits first). */
  waitEvent(name: string, timeoutMs?: number): Promise<number>;
  /** How the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  kill(): Promise<void>;
}

/**
 * Start `target --behave MODE DELAY_MS [N] [--comm NAME]` as a child of the test and wait for its first line.
 * `group`: in a process group of its own (pgid = pid).
 */
export async function startBehaving(t: AfterHook, mode: string, delayMs: number, n?: number, opts: { comm?: string; group?: boolean } = {}): Promise<BehavingTarget> {
  const exe = buildTarget();
  const args = ['--behave', mode, String(delayMs), ...(n === undefined ? [] : [String(n)]), ...(opts.comm ? ['--comm', opts.comm] : [])];
  const child: ChildProcess = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.group === true });
  const spawned: Spawned = { child, pids: () => [child.pid] };
  live.add(spawned);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const s of live) for (const pid of s.pids()) killQuietly(pid);
    });
  }
  let stderr = '';
  let buf = '';
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => (stderr += d));
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      for (const w of waiters.splice(0)) w();
      resolve({ code, signal });
    });
  });
  const kill = async (): Promise<void> => {
    killQuietly(child.pid);
    live.delete(spawned);
    await exited;
  };
  t.after(kill);
  const until = async (pred: () => boolean, what: string, timeoutMs: number): Promise<void> => {
    const end = Date.now() + timeoutMs;
    while (!pred()) {
      if (done) throw new Error(`target --behave ${mode} exited before ${what}; stderr: ${stderr}`);
      if (Date.now() > end) throw new Error(`target --behave ${mode}: no ${what} within ${timeoutMs} ms (a hang guard)`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
  };
  await until(() => lines.length > 0, 'first line', 60_000);
  const first = lines[0]!;
  const events = () => lines.filter((l) => typeof l['event'] === 'string').map((l) => ({ event: String(l['event']), t: Number(l['t']) }));
  return {
    pid: Number(first['pid']),
    exe,
    startedAt: Number(first['t']),
    events,
    waitEvent: async (name, timeoutMs = 120_000) => {
      await until(() => events().some((e) => e.event === name), `event ${name}`, timeoutMs);
      return events().find((e) => e.event === name)!.t;
    },
    exited,
    stderr: () => stderr,
    kill,
  };
}
