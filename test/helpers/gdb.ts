/**
 * gdb as an oracle for process cores, and a byte-level comparison of two ELF cores.
 *
 * gdbCoreView() runs ONE `gdb -nx -batch EXE -c CORE` with many -ex commands, each section introduced by an
 * `echo` of a separator line, and parses what gdb prints for a user: the thread list with LWPs, every
 * thread's registers (`info registers` plus fs_base, gs_base and orig_rax, which gdb puts in the "system"
 * group rather than "general"), `thread apply all bt`, `info sharedlibrary` and `x/s` at given addresses.
 * stdout and stderr are merged (through `sh -c 'exec ... 2>&1'`) so errors stay where they happened.
 *
 * readCoreLoads() / compareCoreMemory() / readCoreBytes() parse ELF64 program headers directly (no code from
 * src/), so a core is checked independently of the writer that produced it.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { findExecutable } from './qemu-guest.js';

const SEP = '@@MEMDUMP-GDB@@';

export interface GdbFrame {
  level: number;
  /** Absent when gdb printed none (frame 0 at the start of a line). */
  pc?: bigint;
  /** Function name as printed, '??' when gdb has no symbol, or e.g. '<signal handler called>'. */
  func: string;
  /** The argument list as printed, without the parentheses. */
  args: string;
  file?: string;
  line?: number;
  /** `from LIB` (no debug info for the frame's object). */
  from?: string;
  raw: string;
}

export interface GdbThread {
  /** gdb's thread number (1 = the core's first NT_PRSTATUS). */
  num: number;
  lwp: number;
  /** Every register gdb printed with a hex value, by name (rax, ..., eflags, cs, ..., fs_base, orig_rax, k0...). */
  regs: Record<string, bigint>;
  /** Registers gdb printed without a value (e.g. `<unavailable>`), with what it printed. */
  unavailable: Record<string, string>;
  frames: GdbFrame[];
  /** Lines of the backtrace gdb did not print as frames (e.g. 'Backtrace stopped: ...'). */
  btNotes: string[];
}

export interface GdbSharedLibrary {
  from?: bigint;
  to?: bigint;
  /** 'Yes', 'Yes (*)' or 'No'. */
  symsRead: string;
  path: string;
}

export interface GdbCoreView {
  /** In gdb's order (thread 1 first). */
  threads: GdbThread[];
  /** The thread gdb selected on loading the core ('*' in `info threads`). */
  currentThread?: number;
  sharedLibraries: GdbSharedLibrary[];
  /** `x/s ADDR` results: the string, or null when gdb could not read memory there. */
  strings: Map<bigint, string | null>;
  /** Everything gdb printed while loading the exe and the core, before the first command. */
  preamble: string;
  /** Every line starting with 'warning:' anywhere in the output. */
  warnings: string[];
  /** gdb's whole (merged) output, for diagnostics. */
  raw: string;
  exitCode: number | null;
}

/** Why gdb cannot be used here, or undefined. */
export function gdbMissing(): string | undefined {
  return findExecutable('gdb') ? undefined : 'gdb not installed';
}

function hexAddr(a: bigint): string {
  return `0x${a.toString(16)}`;
}

/** Run gdb on EXE + CORE with the given -ex commands; stdout and stderr merged in order. */
export function runGdb(exe: string, core: string, commands: readonly string[], opts: { timeoutMs?: number } = {}): Promise<{ out: string; code: number | null }> {
  const gdb = findExecutable('gdb');
  if (!gdb) return Promise.reject(new Error('gdb not found on PATH'));
  const args = [
    '-nx',
    '-batch',
    // -iex: before the files are loaded, so they also govern what gdb prints while loading the core.
    '-iex', 'set debuginfod enabled off',
    '-iex', 'set pagination off',
    '-iex', 'set height 0',
    '-iex', 'set width 0',
    '-iex', 'set confirm off',
    '-iex', 'set print repeats unlimited',
    '-iex', 'set print elements unlimited',
    exe,
    '-c', core,
    ...commands.flatMap((c) => ['-ex', c]),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', 'exec "$0" "$@" 2>&1', gdb, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal) reject(new Error(`gdb killed by ${signal}; output so far:\n${out.slice(-4000)}`));
      else resolve({ out, code });
    });
  });
}

/** Split gdb output into sections by separator lines `SEP name arg`. */
function sections(out: string): { preamble: string; list: Array<{ name: string; arg: string; body: string[] }> } {
  const lines = out.split('\n');
  const pre: string[] = [];
  const list: Array<{ name: string; arg: string; body: string[] }> = [];
  for (const line of lines) {
    if (line.startsWith(SEP)) {
      const [, name = '', arg = ''] = line.split(' ');
      list.push({ name, arg, body: [] });
    } else if (list.length === 0) pre.push(line);
    else list[list.length - 1]?.body.push(line);
  }
  return { preamble: pre.join('\n'), list };
}

/** `Thread N (... LWP M ...):` headers of `thread apply all`, splitting the body per thread. */
function perThread(body: string[]): Map<number, { lwp: number; lines: string[] }> {
  const out = new Map<number, { lwp: number; lines: string[] }>();
  let cur: { lwp: number; lines: string[] } | undefined;
  for (const line of body) {
    const h = /^Thread (\d+) \((.*)\):$/.exec(line);
    if (h) {
      const id = h[2] ?? '';
      const lwp = Number(/LWP (\d+)/.exec(id)?.[1] ?? /process (\d+)/.exec(id)?.[1] ?? NaN);
      cur = { lwp, lines: [] };
      out.set(Number(h[1]), cur);
    } else cur?.lines.push(line);
  }
  return out;
}

function parseRegs(lines: string[], regs: Record<string, bigint>, unavailable: Record<string, string>): void {
  for (const line of lines) {
    const m = /^([a-z][a-z0-9_]*)\s+(\S+)/.exec(line);
    if (!m) continue;
    const [, name = '', val = ''] = m;
    if (/^0x[0-9a-f]+$/i.test(val)) regs[name] = BigInt(val);
    else if (val.startsWith('<')) unavailable[name] = line.slice(name.length).trim();
  }
}

/** One `bt` line: `#N  [0xPC in ]FUNC (ARGS)[ at FILE:LINE][ from LIB]`. */
export function parseFrame(line: string): GdbFrame | undefined {
  const m = /^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(.*)$/.exec(line);
  if (!m) return undefined;
  const frame: GdbFrame = { level: Number(m[1]), func: '', args: '', raw: line };
  if (m[2]) frame.pc = BigInt(m[2]);
  let rest = m[3] ?? '';
  const from = / from (\S+)$/.exec(rest);
  if (from) {
    frame.from = from[1] ?? '';
    rest = rest.slice(0, from.index);
  }
  const at = / at (\S+):(\d+)$/.exec(rest);
  if (at) {
    frame.file = at[1] ?? '';
    frame.line = Number(at[2]);
    rest = rest.slice(0, at.index);
  }
  if (rest.startsWith('<')) {
    frame.func = rest;
    return frame;
  }
  const paren = rest.indexOf(' (');
  if (paren < 0) frame.func = rest;
  else {
    frame.func = rest.slice(0, paren);
    frame.args = rest.slice(paren + 2).replace(/\)$/, '');
  }
  return frame;
}

/** The value of an `x/s` line: `0xADDR[ <sym>]:\t"..."` → the string; `<error: ...>` → null. */
export function parseXs(lines: string[]): string | null {
  for (const line of lines) {
    const m = /^0x[0-9a-f]+(?: <[^>]*>)?:\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[1] ?? '';
    if (!v.startsWith('"')) return null;
    return unquoteC(v);
  }
  return null;
}

/** gdb's C string literal (first one in `s`) → string; octal and the usual escapes. */
function unquoteC(s: string): string {
  let out = '';
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (c === '"') break;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = s[++i] ?? '';
    const oct = /^[0-7]{1,3}/.exec(s.slice(i));
    if (oct) {
      out += String.fromCharCode(parseInt(oct[0], 8));
      i += oct[0].length - 1;
      continue;
    }
    out += ({ n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', e: '\x1b' } as Record<string, string>)[n] ?? n;
  }
  return out;
}

export interface GdbCoreViewOptions {
  /** Addresses to read with `x/s`. */
  addresses?: readonly bigint[];
  timeoutMs?: number;
}

/** Load EXE + CORE in gdb once and return what it shows. */
export async function gdbCoreView(exe: string, core: string, opts: GdbCoreViewOptions = {}): Promise<GdbCoreView> {
  const echo = (name: string, arg = ''): string => `echo \\n${SEP} ${name} ${arg}\\n`;
  const cmds: string[] = [
    echo('threads'),
    'info threads',
    echo('regs'),
    'thread apply all -ascending info registers',
    echo('sysregs'),
    'thread apply all -ascending info registers fs_base gs_base orig_rax',
    echo('bt'),
    'thread apply all -ascending bt',
    echo('solib'),
    'info sharedlibrary',
  ];
  for (const a of opts.addresses ?? []) cmds.push(echo('xs', hexAddr(a)), `x/s ${hexAddr(a)}`);
  cmds.push(echo('end'));
  const { out, code } = await runGdb(exe, core, cmds, opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
  const { preamble, list } = sections(out);
  if (!list.some((s) => s.name === 'end')) throw new Error(`gdb did not run all commands (exit ${code}):\n${out.slice(-4000)}`);

  const threads = new Map<number, GdbThread>();
  const thread = (num: number, lwp: number): GdbThread => {
    let th = threads.get(num);
    if (!th) {
      th = { num, lwp, regs: {}, unavailable: {}, frames: [], btNotes: [] };
      threads.set(num, th);
    }
    return th;
  };
  const view: GdbCoreView = { threads: [], sharedLibraries: [], strings: new Map(), preamble, warnings: [], raw: out, exitCode: code };
  for (const s of list) {
    switch (s.name) {
      case 'threads':
        for (const line of s.body) {
          const m = /^(\*)?\s+(\d+)\s+(.*)$/.exec(line);
          if (!m) continue;
          const id = m[3] ?? '';
          const lwp = Number(/LWP (\d+)/.exec(id)?.[1] ?? /process (\d+)/.exec(id)?.[1] ?? NaN);
          thread(Number(m[2]), lwp);
          if (m[1]) view.currentThread = Number(m[2]);
        }
        break;
      case 'regs':
      case 'sysregs':
        for (const [num, { lwp, lines }] of perThread(s.body)) {
          const th = thread(num, lwp);
          parseRegs(lines, th.regs, th.unavailable);
        }
        break;
      case 'bt':
        for (const [num, { lwp, lines }] of perThread(s.body)) {
          const th = thread(num, lwp);
          for (const line of lines) {
            if (line.trim() === '') continue;
            const f = parseFrame(line);
            if (f) th.frames.push(f);
            else th.btNotes.push(line);
          }
        }
        break;
      case 'solib':
        for (const line of s.body) {
          const m = /^(?:(0x[0-9a-f]+)\s+(0x[0-9a-f]+)|\s*)\s+(Yes \(\*\)|Yes|No)\s+(\S.*)$/.exec(line);
          if (!m) continue;
          const lib: GdbSharedLibrary = { symsRead: m[3] ?? '', path: (m[4] ?? '').trim() };
          if (m[1]) lib.from = BigInt(m[1]);
          if (m[2]) lib.to = BigInt(m[2]);
          view.sharedLibraries.push(lib);
        }
        break;
      case 'xs':
        view.strings.set(BigInt(s.arg), parseXs(s.body));
        break;
      default:
        break;
    }
  }
  view.threads = [...threads.values()].sort((a, b) => a.num - b.num);
  view.warnings = out.split('\n').filter((l) => /^warning:/i.test(l));
  return view;
}

// ---------------------------------------------------------------------------------------------------------
// registers

/**
 * Registers that describe a thread's user state completely and that gdb shows for any x86-64 Linux core
 * (from NT_PRSTATUS): the general registers, rip, eflags, the segment selectors, fs_base/gs_base and
 * orig_rax. Not here: k0-k7 (AVX-512 masks), x87/SSE/AVX state — they come from NT_FPREGSET/NT_X86_XSTATE,
 * which a dumper may or may not write, and gdb only lists them when the core describes them.
 */
export const CORE_GP_REGS: readonly string[] = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'rsp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
  'rip', 'eflags', 'cs', 'ss', 'ds', 'es', 'fs', 'gs', 'fs_base', 'gs_base', 'orig_rax',
];

export interface RegisterDifference {
  lwp: number;
  reg: string;
  a?: bigint;
  b?: bigint;
}

/** Per LWP (present in both views), every register of `regs` whose value differs or is missing in one. */
export function compareRegisters(a: GdbCoreView, b: GdbCoreView, regs: readonly string[] = CORE_GP_REGS): RegisterDifference[] {
  const diffs: RegisterDifference[] = [];
  const byLwp = new Map(b.threads.map((t) => [t.lwp, t]));
  for (const ta of a.threads) {
    const tb = byLwp.get(ta.lwp);
    if (!tb) continue;
    for (const reg of regs) {
      const va = ta.regs[reg];
      const vb = tb.regs[reg];
      if (va !== vb || va === undefined) {
        const d: RegisterDifference = { lwp: ta.lwp, reg };
        if (va !== undefined) d.a = va;
        if (vb !== undefined) d.b = vb;
        diffs.push(d);
      }
    }
  }
  return diffs;
}

// ---------------------------------------------------------------------------------------------------------
// ELF cores

export interface CoreLoad {
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
  offset: bigint;
  /** PF_X=1, PF_W=2, PF_R=4 */
  flags: number;
}

/** Half-open [start, end). */
export interface AddrRange {
  start: bigint;
  end: bigint;
}

const PT_LOAD = 1;

/** PT_LOAD program headers of an ELF64 little-endian file, in file order. */
export async function readCoreLoads(core: string): Promise<CoreLoad[]> {
  const fh = await fs.open(core, 'r');
  try {
    const eh = Buffer.alloc(64);
    const { bytesRead } = await fh.read(eh, 0, 64, 0);
    if (bytesRead < 64 || eh.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${core}: not an ELF file`);
    if (eh[4] !== 2 || eh[5] !== 1) throw new Error(`${core}: not ELF64 little-endian`);
    const phoff = eh.readBigUInt64LE(32);
    const phentsize = eh.readUInt16LE(54);
    let phnum = eh.readUInt16LE(56);
    if (phentsize < 56) throw new Error(`${core}: e_phentsize ${phentsize}`);
    if (phnum === 0xffff) {
      // PN_XNUM: the real count is in section header 0's sh_info.
      const shoff = eh.readBigUInt64LE(40);
      const sh = Buffer.alloc(64);
      await fh.read(sh, 0, 64, Number(shoff));
      phnum = sh.readUInt32LE(44);
    }
    const ph = Buffer.alloc(phentsize * phnum);
    const r = await fh.read(ph, 0, ph.length, Number(phoff));
    if (r.bytesRead !== ph.length) throw new Error(`${core}: program headers truncated`);
    const out: CoreLoad[] = [];
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      if (ph.readUInt32LE(o) !== PT_LOAD) continue;
      out.push({
        flags: ph.readUInt32LE(o + 4),
        offset: ph.readBigUInt64LE(o + 8),
        vaddr: ph.readBigUInt64LE(o + 16),
        filesz: ph.readBigUInt64LE(o + 32),
        memsz: ph.readBigUInt64LE(o + 40),
      });
    }
    return out;
  } finally {
    await fh.close();
  }
}

/** Address ranges whose bytes the core holds (PT_LOAD [vaddr, vaddr+filesz)), sorted and merged. */
export function coreCoverage(loads: readonly CoreLoad[]): AddrRange[] {
  return normalizeRanges(loads.filter((l) => l.filesz > 0n).map((l) => ({ start: l.vaddr, end: l.vaddr + l.filesz })));
}

export function normalizeRanges(rs: readonly AddrRange[]): AddrRange[] {
  const sorted = rs.filter((r) => r.end > r.start).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: AddrRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) {
      if (r.end > last.end) last.end = r.end;
    } else out.push({ ...r });
  }
  return out;
}

export function intersectRanges(a: readonly AddrRange[], b: readonly AddrRange[]): AddrRange[] {
  const na = normalizeRanges(a);
  const nb = normalizeRanges(b);
  const out: AddrRange[] = [];
  let i = 0;
  let j = 0;
  while (i < na.length && j < nb.length) {
    const x = na[i] as AddrRange;
    const y = nb[j] as AddrRange;
    const s = x.start > y.start ? x.start : y.start;
    const e = x.end < y.end ? x.end : y.end;
    if (s < e) out.push({ start: s, end: e });
    if (x.end < y.end) i++;
    else j++;
  }
  return out;
}

export function subtractRanges(a: readonly AddrRange[], b: readonly AddrRange[]): AddrRange[] {
  const nb = normalizeRanges(b);
  const out: AddrRange[] = [];
  for (const r of normalizeRanges(a)) {
    let cur = r.start;
    for (const x of nb) {
      if (x.end <= cur || x.start >= r.end) continue;
      if (x.start > cur) out.push({ start: cur, end: x.start });
      if (x.end > cur) cur = x.end;
    }
    if (cur < r.end) out.push({ start: cur, end: r.end });
  }
  return out;
}

export function rangeBytes(rs: readonly AddrRange[]): bigint {
  return rs.reduce((n, r) => n + (r.end - r.start), 0n);
}

export function formatRanges(rs: readonly AddrRange[], max = 20): string {
  const s = rs.slice(0, max).map((r) => `${hexAddr(r.start)}-${hexAddr(r.end)}`);
  if (rs.length > max) s.push(`... ${rs.length - max} more`);
  return s.join(', ');
}

/** Where in the file the byte at `addr` lives, for a core's loads; undefined when not held. */
function fileOffset(loads: readonly CoreLoad[], addr: bigint): { offset: bigint; avail: bigint } | undefined {
  for (const l of loads) {
    if (addr >= l.vaddr && addr < l.vaddr + l.filesz) return { offset: l.offset + (addr - l.vaddr), avail: l.vaddr + l.filesz - addr };
  }
  return undefined;
}

async function readAt(fh: fs.FileHandle, buf: Buffer, len: number, pos: bigint): Promise<void> {
  let done = 0;
  while (done < len) {
    // Numbers, not bigint: FileHandle.read ignores a bigint position in Node 20.
    const { bytesRead } = await fh.read(buf, done, len - done, Number(pos) + done);
    if (bytesRead === 0) throw new Error(`short read at file offset ${Number(pos) + done}`);
    done += bytesRead;
  }
}

/** `len` bytes at virtual address `addr` from a core, or undefined if any of them is not in a PT_LOAD's file part. */
export async function readCoreBytes(core: string, addr: bigint, len: number, loads?: readonly CoreLoad[]): Promise<Buffer | undefined> {
  const ls = loads ?? (await readCoreLoads(core));
  const fh = await fs.open(core, 'r');
  try {
    const out = Buffer.alloc(len);
    let done = 0;
    while (done < len) {
      const at = fileOffset(ls, addr + BigInt(done));
      if (!at) return undefined;
      const n = Math.min(len - done, Number(at.avail));
      await readAt(fh, out.subarray(done), n, at.offset);
      done += n;
    }
    return out;
  } finally {
    await fh.close();
  }
}

export interface CoreMemoryComparison {
  /** Bytes held by both cores and compared (after exclusions). */
  comparedBytes: bigint;
  /** Pages (4 KiB, merged) where both cores hold bytes that differ. */
  mismatches: AddrRange[];
  /** Bytes held by both but left out because they are in `exclude`. */
  excludedBytes: bigint;
  /** Held by one core only. */
  onlyInA: AddrRange[];
  onlyInB: AddrRange[];
}

/**
 * Compare two cores byte for byte wherever both hold bytes for the same virtual address, except in
 * `exclude`. Reads 1 MiB at a time, so cores of any size work.
 */
export async function compareCoreMemory(a: string, b: string, opts: { exclude?: readonly AddrRange[]; chunk?: number } = {}): Promise<CoreMemoryComparison> {
  const [la, lb] = await Promise.all([readCoreLoads(a), readCoreLoads(b)]);
  const ca = coreCoverage(la);
  const cb = coreCoverage(lb);
  const both = intersectRanges(ca, cb);
  const toCompare = subtractRanges(both, opts.exclude ?? []);
  const result: CoreMemoryComparison = {
    comparedBytes: rangeBytes(toCompare),
    mismatches: [],
    excludedBytes: rangeBytes(both) - rangeBytes(toCompare),
    onlyInA: subtractRanges(ca, cb),
    onlyInB: subtractRanges(cb, ca),
  };
  const chunk = opts.chunk ?? 1 << 20;
  const fa = await fs.open(a, 'r');
  const fb = await fs.open(b, 'r');
  const bufA = Buffer.alloc(chunk);
  const bufB = Buffer.alloc(chunk);
  const bad: AddrRange[] = [];
  try {
    for (const r of toCompare) {
      for (let addr = r.start; addr < r.end; ) {
        const oa = fileOffset(la, addr);
        const ob = fileOffset(lb, addr);
        if (!oa || !ob) throw new Error(`internal: ${hexAddr(addr)} not held by both cores`);
        let n = r.end - addr;
        if (oa.avail < n) n = oa.avail;
        if (ob.avail < n) n = ob.avail;
        if (n > BigInt(chunk)) n = BigInt(chunk);
        const len = Number(n);
        await readAt(fa, bufA, len, oa.offset);
        await readAt(fb, bufB, len, ob.offset);
        if (!bufA.subarray(0, len).equals(bufB.subarray(0, len))) {
          // Page granularity: report each differing 4 KiB page (clipped to this range).
          for (let p = addr & ~0xfffn; p < addr + n; p += 0x1000n) {
            const s = p < addr ? addr : p;
            const e = p + 0x1000n > addr + n ? addr + n : p + 0x1000n;
            const i0 = Number(s - addr);
            const i1 = Number(e - addr);
            if (!bufA.subarray(i0, i1).equals(bufB.subarray(i0, i1))) bad.push({ start: s, end: e });
          }
        }
        addr += n;
      }
    }
  } finally {
    await fa.close();
    await fb.close();
  }
  result.mismatches = normalizeRanges(bad);
  return result;
}

/** The first differing bytes in a range of two cores, as 'addr: a != b' lines (for failure messages). */
export async function describeMismatch(a: string, b: string, r: AddrRange, max = 8): Promise<string> {
  const len = Number(r.end - r.start > 0x1000n ? 0x1000n : r.end - r.start);
  const [ba, bb] = await Promise.all([readCoreBytes(a, r.start, len), readCoreBytes(b, r.start, len)]);
  if (!ba || !bb) return `${hexAddr(r.start)}: not readable from both cores`;
  const lines: string[] = [];
  for (let i = 0; i < len && lines.length < max; i += 8) {
    const x = ba.subarray(i, i + 8);
    const y = bb.subarray(i, i + 8);
    if (!x.equals(y)) lines.push(`${hexAddr(r.start + BigInt(i))}: ${x.toString('hex')} != ${y.toString('hex')}`);
  }
  return lines.join('\n');
}
