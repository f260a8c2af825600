import { MemdumpError } from '../core/errors.js';
import { type ElfSegment, elfCoreHeader } from './elf.js';
import { encodeNote } from './elf-parse.js';
import type { ByteSink, ContainerWriter, FormatSpec, ImageNote, WritePlan } from './types.js';

/**
 * Notes and layout of an x86-64 Linux process core as the kernel's fs/binfmt_elf.c writes it, so gdb (and
 * anything built on BFD) loads it like a kernel core: per thread NT_PRSTATUS (336 bytes), NT_FPREGSET and
 * NT_X86_XSTATE; once, after the first thread's NT_PRSTATUS, NT_PRPSINFO, NT_SIGINFO, NT_AUXV and NT_FILE.
 */

export const NT_PRSTATUS = 1;
export const NT_FPREGSET = 2;
export const NT_PRPSINFO = 3;
export const NT_AUXV = 6;
export const NT_X86_XSTATE = 0x202;
export const NT_SIGINFO = 0x53494749;
export const NT_FILE = 0x46494c45;
export const PRSTATUS_SIZE = 336;
export const PRPSINFO_SIZE = 136;
const USER_REGS_SIZE = 216;

export interface CoreThread {
  tid: number;
  /** user_regs_struct from PTRACE_GETREGSET NT_PRSTATUS; zeros are written when missing. */
  regs: Buffer | undefined;
  fpregs: Buffer | undefined;
  xstate: Buffer | undefined;
  /** Signal being delivered when the thread stopped (0 for our own interrupt). */
  cursig: number;
  sigpend: bigint;
  sighold: bigint;
  /** Microseconds of CPU time. */
  utimeUs: bigint;
  stimeUs: bigint;
}

export interface CoreProcess {
  pid: number;
  ppid: number;
  pgrp: number;
  sid: number;
  uid: number;
  gid: number;
  /** State letter from /proc/PID/stat ('S', 'R', ...). */
  state: string;
  nice: number;
  flags: bigint;
  comm: string;
  /** Command line with NULs turned into spaces; the kernel keeps the first 80 bytes. */
  psargs: string;
  auxv: Buffer;
  siginfo: Buffer;
  files: readonly { start: bigint; end: bigint; offset: bigint; path: string }[];
  pageSize: bigint;
}

function timeval(b: Buffer, off: number, us: bigint): void {
  b.writeBigInt64LE(us / 1000000n, off);
  b.writeBigInt64LE(us % 1000000n, off + 8);
}

export function prstatus(p: CoreProcess, t: CoreThread): Buffer {
  const b = Buffer.alloc(PRSTATUS_SIZE);
  b.writeInt32LE(t.cursig, 0); // pr_info.si_signo
  b.writeInt16LE(t.cursig, 12);
  b.writeBigUInt64LE(t.sigpend, 16);
  b.writeBigUInt64LE(t.sighold, 24);
  b.writeInt32LE(t.tid, 32);
  b.writeInt32LE(p.ppid, 36);
  b.writeInt32LE(p.pgrp, 40);
  b.writeInt32LE(p.sid, 44);
  timeval(b, 48, t.utimeUs);
  timeval(b, 64, t.stimeUs);
  if (t.regs) t.regs.copy(b, 112, 0, USER_REGS_SIZE);
  b.writeInt32LE(t.fpregs ? 1 : 0, 328);
  return b;
}

const STATES = 'RSDTtXZPI';

export function prpsinfo(p: CoreProcess): Buffer {
  const b = Buffer.alloc(PRPSINFO_SIZE);
  const i = STATES.indexOf(p.state);
  b.writeInt8(i < 0 ? 0 : i, 0);
  b.write(p.state.slice(0, 1) || '.', 1, 'latin1');
  b.writeInt8(p.state === 'Z' ? 1 : 0, 2);
  b.writeInt8(Math.max(-128, Math.min(127, p.nice)), 3);
  b.writeBigUInt64LE(p.flags, 8);
  b.writeUInt32LE(p.uid >>> 0, 16);
  b.writeUInt32LE(p.gid >>> 0, 20);
  b.writeInt32LE(p.pid, 24);
  b.writeInt32LE(p.ppid, 28);
  b.writeInt32LE(p.pgrp, 32);
  b.writeInt32LE(p.sid, 36);
  Buffer.from(p.comm, 'latin1').copy(b, 40, 0, 15);
  Buffer.from(p.psargs, 'latin1').copy(b, 56, 0, 79);
  return b;
}

/** NT_FILE: count, page size, {start, end, file offset in pages} × count, then the NUL-terminated paths. */
export function ntFile(p: CoreProcess): Buffer {
  const head = Buffer.alloc(16 + 24 * p.files.length);
  head.writeBigUInt64LE(BigInt(p.files.length), 0);
  head.writeBigUInt64LE(p.pageSize, 8);
  p.files.forEach((f, i) => {
    head.writeBigUInt64LE(f.start, 16 + 24 * i);
    head.writeBigUInt64LE(f.end, 24 + 24 * i);
    head.writeBigUInt64LE(f.offset / p.pageSize, 32 + 24 * i);
  });
  return Buffer.concat([head, ...p.files.map((f) => Buffer.from(f.path + '\0', 'utf8'))]);
}

export function coreNotes(p: CoreProcess, threads: readonly CoreThread[]): ImageNote[] {
  if (threads.length === 0) throw new MemdumpError('E_INTERNAL', 'a process core needs at least one thread');
  const notes: ImageNote[] = [];
  threads.forEach((t, i) => {
    notes.push({ name: 'CORE', type: NT_PRSTATUS, desc: prstatus(p, t) });
    if (i === 0) {
      notes.push({ name: 'CORE', type: NT_PRPSINFO, desc: prpsinfo(p) });
      notes.push({ name: 'CORE', type: NT_SIGINFO, desc: p.siginfo });
      notes.push({ name: 'CORE', type: NT_AUXV, desc: p.auxv });
      if (p.files.length > 0) notes.push({ name: 'CORE', type: NT_FILE, desc: ntFile(p) });
    }
    if (t.fpregs) notes.push({ name: 'CORE', type: NT_FPREGSET, desc: t.fpregs });
    if (t.xstate) notes.push({ name: 'LINUX', type: NT_X86_XSTATE, desc: padXstate(t.xstate) });
  });
  return notes;
}

/** End offsets of the XSAVE components in the standard (non-compacted) layout, by XCR0 bit. */
const XSAVE_END: readonly [number, number][] = [
  [2, 832], // AVX
  [3, 1024], // MPX bounds registers
  [4, 1088], // MPX BNDCSR
  [5, 1152], // AVX-512 opmask
  [6, 1664], // AVX-512 ZMM_Hi256
  [7, 2688], // AVX-512 Hi16_ZMM
  [9, 2696], // PKRU
];

/**
 * The kernel's ptrace XSAVE image can be shorter than the standard layout for the XCR0 it reports (here 2432
 * bytes for XCR0 0xe7); gdb sizes the section from XCR0 (stored at byte 464) and rejects a shorter one as "too
 * small". gcore pads with zeros to that size, and so do we: the bytes beyond the kernel's image are not state.
 */
export function padXstate(x: Buffer): Buffer {
  if (x.length < 472) return x;
  const xcr0 = x.readBigUInt64LE(464);
  let size = 576;
  for (const [bit, end] of XSAVE_END) if (xcr0 & (1n << BigInt(bit))) size = Math.max(size, end);
  return size > x.length ? Buffer.concat([x, Buffer.alloc(size - x.length)]) : x;
}

export function permsToFlags(perms: string): number {
  return (perms[0] === 'r' ? 4 : 0) | (perms[1] === 'w' ? 2 : 0) | (perms[2] === 'x' ? 1 : 0);
}

/**
 * The container for one process core. `segments` lists every mapping in address order (filesz 0 for the
 * ones not dumped, as the kernel does); the copy's plan holds only the dumped ranges, in the same order.
 */
export function processCoreFormat(segments: readonly ElfSegment[], notes: readonly ImageNote[]): FormatSpec {
  const noteBytes = Buffer.concat(notes.map(encodeNote));
  return {
    name: 'elf',
    extension: 'core',
    description: 'ELF process core (ET_CORE, x86-64 Linux layout, gdb-loadable)',
    needsSidecarMap: false,
    detect: () => false,
    open: () => Promise.reject(new MemdumpError('E_INTERNAL', 'process cores are read through the elf format')),
    createWriter(out: ByteSink, plan: WritePlan): ContainerWriter {
      const dumped = segments.filter((s) => s.filesz > 0n);
      if (dumped.length !== plan.runs.length || dumped.some((s, i) => s.vaddr !== plan.runs[i]!.start || s.vaddr + s.filesz !== plan.runs[i]!.end)) {
        throw new MemdumpError('E_INTERNAL', 'process core segments and the copy plan disagree');
      }
      return {
        begin: () => out.write(elfCoreHeader(segments, noteBytes).header),
        async beginRange() {},
        data: (chunk) => out.write(chunk),
        async endRange() {},
        async end() {},
      };
    },
  };
}
