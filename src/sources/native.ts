import { MemdumpError } from '../core/errors.js';
import { loadLibc } from './libc.js';

/**
 * The few libc calls Node has no API for: ptrace, waitpid and process_vm_readv, through koffi (prebuilt
 * binaries, no compiler at install). Every call here is synchronous on the calling thread: ptrace requires all
 * requests for a tracee to come from the thread that attached it, and the main JS thread is the one thread we
 * control. Loaded lazily so commands that never touch a process do not load the native module.
 */

export const PTRACE_CONT = 7;
export const PTRACE_DETACH = 17;
export const PTRACE_SETOPTIONS = 0x4200;
export const PTRACE_LISTEN = 0x4208;
/** Auto-attach threads the tracee creates (they start with a PTRACE_EVENT_STOP). */
export const PTRACE_O_TRACECLONE = 8;
export const PTRACE_EVENT_CLONE = 3;
export const PTRACE_GETSIGINFO = 0x4202;
export const PTRACE_GETREGSET = 0x4204;
export const PTRACE_SEIZE = 0x4206;
export const PTRACE_INTERRUPT = 0x4207;
const WNOHANG = 1;
const __WALL = 0x40000000;

export const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 10: 'ECHILD', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT', 22: 'EINVAL', 38: 'ENOSYS' };

interface Bindings {
  errno(): number;
  ptrace(req: number, pid: number, addr: number, data: Buffer): number;
  ptraceN(req: number, pid: number, addr: number, data: number): number;
  ptraceIov(req: number, pid: number, addr: number, iov: { base: Buffer; len: number }): number;
  waitpid(pid: number, status: number[], options: number): number;
  pvr(pid: number, local: { base: Buffer; len: number }[], ln: number, remote: { base: bigint; len: number }[], rn: number, flags: number): number | bigint;
  address(b: Buffer): bigint;
}

let bindings: Bindings | undefined;

function load(): Bindings {
  if (bindings) return bindings;
  const { koffi, libc, address } = loadLibc('process dumps need');
  koffi.struct('memdump_iovec', { base: 'void *', len: 'size_t' });
  // a remote iovec holds an address in another process: an integer, never dereferenced here
  koffi.struct('memdump_riovec', { base: 'uint64_t', len: 'size_t' });
  bindings = {
    errno: () => koffi.errno(),
    ptrace: libc.func('long ptrace(long req, int pid, uintptr_t addr, void *data)') as Bindings['ptrace'],
    ptraceN: libc.func('long ptrace(long req, int pid, uintptr_t addr, uintptr_t data)') as Bindings['ptraceN'],
    ptraceIov: libc.func('long ptrace(long req, int pid, uintptr_t addr, _Inout_ memdump_iovec *data)') as Bindings['ptraceIov'],
    waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)') as Bindings['waitpid'],
    pvr: libc.func(
      'long process_vm_readv(int pid, const memdump_iovec *local, unsigned long liovcnt, const memdump_riovec *remote, unsigned long riovcnt, unsigned long flags)',
    ) as Bindings['pvr'],
    address,
  };
  return bindings;
}

export class SyscallError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: ${ERRNO_NAMES[errno] ?? 'errno ' + errno}`);
  }
  get code(): string {
    return ERRNO_NAMES[this.errno] ?? `ERRNO_${this.errno}`;
  }
}

function check(call: string, r: number | bigint): number {
  const n = Number(r);
  if (n === -1) throw new SyscallError(call, load().errno());
  return n;
}

export function ptraceSeize(tid: number): void {
  check(`PTRACE_SEIZE ${tid}`, load().ptraceN(PTRACE_SEIZE, tid, 0, 0));
}

export function ptraceInterrupt(tid: number): void {
  check(`PTRACE_INTERRUPT ${tid}`, load().ptraceN(PTRACE_INTERRUPT, tid, 0, 0));
}

/** Detach and let the thread run; `signal` re-delivers a signal that arrived while it was held. */
export function ptraceDetach(tid: number, signal = 0): void {
  check(`PTRACE_DETACH ${tid}`, load().ptraceN(PTRACE_DETACH, tid, 0, signal));
}

/** PTRACE_GETREGSET into `buf`; returns the number of bytes the kernel filled. */
export function ptraceGetRegset(tid: number, type: number, buf: Buffer): number {
  const iov = { base: buf, len: buf.length };
  check(`PTRACE_GETREGSET ${tid} type 0x${type.toString(16)}`, load().ptraceIov(PTRACE_GETREGSET, tid, type, iov));
  return iov.len;
}

export function ptraceGetSiginfo(tid: number): Buffer {
  const b = Buffer.alloc(128);
  check(`PTRACE_GETSIGINFO ${tid}`, load().ptrace(PTRACE_GETSIGINFO, tid, 0, b));
  return b;
}

export type WaitResult = { kind: 'none' } | { kind: 'stopped'; signal: number; event: number } | { kind: 'gone' };

/** Non-blocking waitpid(tid, __WALL): a thread stuck in uninterruptible sleep must not hang the dump. */
export function pollStop(tid: number): WaitResult {
  const st = [0];
  const r = load().waitpid(tid, st, __WALL | WNOHANG);
  if (r === 0) return { kind: 'none' };
  if (r === -1) {
    const e = load().errno();
    if (e === 10 || e === 3) return { kind: 'gone' };
    throw new SyscallError(`waitpid ${tid}`, e);
  }
  const s = st[0]!;
  if ((s & 0xff) === 0x7f) return { kind: 'stopped', signal: (s >> 8) & 0xff, event: (s >> 16) & 0xff };
  return { kind: 'gone' };
}

/**
 * process_vm_readv of one remote range into `buf`. Returns the bytes read: fewer than asked when a page in the
 * middle faults. Throws SyscallError (EFAULT when the first page is unreadable, EPERM/ESRCH...).
 */
export function processVmRead(pid: number, addr: bigint, buf: Buffer, length: number): number {
  return check(`process_vm_readv ${pid} at 0x${addr.toString(16)}`, load().pvr(pid, [{ base: buf, len: length }], 1, [{ base: addr, len: length }], 1, 0));
}

/** PTRACE_SEIZE with options (e.g. PTRACE_O_TRACECLONE), for a watcher that keeps the process traced. */
export function ptraceSeizeOptions(tid: number, options: number): void {
  check(`PTRACE_SEIZE ${tid}`, load().ptraceN(PTRACE_SEIZE, tid, 0, options));
}

/** Resume a stopped tracee; `signal` is delivered (0 suppresses the signal it stopped for). */
export function ptraceCont(tid: number, signal = 0): void {
  check(`PTRACE_CONT ${tid}`, load().ptraceN(PTRACE_CONT, tid, 0, signal));
}

/** Leave a SEIZEd tracee in its group-stop (job control keeps working) while still tracing it. */
export function ptraceListen(tid: number): void {
  check(`PTRACE_LISTEN ${tid}`, load().ptraceN(PTRACE_LISTEN, tid, 0, 0));
}

export type AnyWaitResult =
  | { kind: 'none' }
  | { kind: 'stopped'; tid: number; signal: number; event: number }
  | { kind: 'exited'; tid: number; code: number | null; signal: number | null }
  | { kind: 'nochild' };

/**
 * Non-blocking waitpid(-1, __WALL): the next state change of any tracee (threads a tracee creates are
 * auto-attached, so the watcher learns their ids here). Only for a process whose other children do not matter.
 */
export function pollAnyStop(): AnyWaitResult {
  const st = [0];
  const r = load().waitpid(-1, st, __WALL | WNOHANG);
  if (r === 0) return { kind: 'none' };
  if (r === -1) {
    const e = load().errno();
    if (e === 10) return { kind: 'nochild' };
    if (e === 4) return { kind: 'none' };
    throw new SyscallError('waitpid -1', e);
  }
  const s = st[0]!;
  if ((s & 0xff) === 0x7f) return { kind: 'stopped', tid: r, signal: (s >> 8) & 0xff, event: (s >> 16) & 0xff };
  if ((s & 0x7f) === 0) return { kind: 'exited', tid: r, code: (s >> 8) & 0xff, signal: null };
  return { kind: 'exited', tid: r, code: null, signal: s & 0x7f };
}

/** Load the bindings now so a missing native module is reported before any work starts. */
export function nativeAvailable(): void {
  load();
}
