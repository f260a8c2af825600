import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { NT_FPREGSET, NT_PRSTATUS, NT_X86_XSTATE } from '../formats/process-core.js';
import {
  SyscallError,
  pollStop,
  ptraceDetach,
  ptraceGetRegset,
  ptraceGetSiginfo,
  ptraceInterrupt,
  ptraceSeize,
} from './native.js';

/**
 * Stopping a process's threads with ptrace (SEIZE + INTERRUPT) rather than SIGSTOP: if memdump dies for any
 * reason, even SIGKILL, the kernel detaches its tracees and they run on, so a crash can never leave the target
 * stopped. A SIGSTOP freeze would need someone to send SIGCONT.
 */

const SIGTRAP = 5;
const PTRACE_EVENT_STOP = 0x80;
const STOP_TIMEOUT_MS = 3000;

export interface ThreadCapture {
  tid: number;
  /** user_regs_struct, 216 bytes, when ptrace gave it. */
  regs: Buffer | undefined;
  fpregs: Buffer | undefined;
  xstate: Buffer | undefined;
  siginfo: Buffer | undefined;
  /** A signal that arrived while the thread was held: delivered again on release. */
  pendingSignal: number;
  error: string | undefined;
}

export interface FreezeInfo {
  requested: boolean;
  /** Registers came from ptrace for every thread. */
  registers: 'ptrace' | 'partial' | 'none';
  registersError: string | null;
  /** The threads were held for the whole copy. */
  heldForCopy: boolean;
  stoppedMs: number | null;
  threadsSeen: number;
}

export function listTasks(pid: number, procRoot = '/proc'): number[] {
  const tids = readdirSync(`${procRoot}/${pid}/task`)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
  // the thread-group leader first: gdb treats the first NT_PRSTATUS as the current thread
  return [pid, ...tids.filter((t) => t !== pid).sort((a, b) => a - b)].filter((t) => tids.includes(t));
}

export class Freeze {
  readonly threads: ThreadCapture[] = [];
  private readonly attached = new Set<number>();
  private stoppedAt: number | undefined;
  private stoppedMs: number | null = null;
  private error: string | null = null;
  private readonly onExit = () => this.release();

  private constructor(
    readonly pid: number,
    readonly hold: boolean,
  ) {}

  /**
   * Stop every thread and read its registers. With `hold` the threads stay stopped until release();
   * without, they are released as soon as the registers are read. Never throws for a ptrace refusal: the
   * capture then has no registers and says why.
   */
  static async capture(pid: number, hold: boolean): Promise<Freeze> {
    const adopted = adoptions.get(pid);
    if (adopted) return Freeze.fromAdopted(pid, hold, adopted);
    const f = new Freeze(pid, hold);
    process.on('exit', f.onExit);
    try {
      await f.stopAll();
    } catch (e) {
      f.error = e instanceof SyscallError ? describePtraceError(e, pid) : (e as Error).message;
      f.release();
    }
    try {
      for (const tid of listTasks(pid)) if (!f.threads.some((c) => c.tid === tid)) f.threads.push({ tid, regs: undefined, fpregs: undefined, xstate: undefined, siginfo: undefined, pendingSignal: 0, error: undefined });
    } catch {
      // the process is gone; the copy will say so
    }
    for (const t of f.threads) if (!t.regs && !t.error) t.error = f.error ?? 'thread did not stop';
    if (!hold) f.release();
    return f;
  }

  /** Threads someone else (memdump watch) already holds in ptrace-stops: read them, never seize or detach them. */
  private static fromAdopted(pid: number, hold: boolean, a: AdoptedThreads): Freeze {
    const f = new Freeze(pid, hold);
    f.stoppedAt = performance.now();
    for (const t of a.threads) {
      const cap: ThreadCapture = { tid: t.tid, regs: undefined, fpregs: undefined, xstate: undefined, siginfo: undefined, pendingSignal: t.signal, error: undefined };
      f.threads.push(cap);
      f.readRegisters(cap);
      if (!cap.regs && !cap.error) cap.error = 'thread did not stop';
    }
    return f;
  }

  private async stopAll(): Promise<void> {
    // threads can be born while we attach: list again until a pass finds none we have not seized
    for (let pass = 0; pass < 50; pass++) {
      const fresh = listTasks(this.pid).filter((t) => !this.threads.some((c) => c.tid === t));
      if (fresh.length === 0) break;
      for (const tid of fresh) {
        const cap: ThreadCapture = { tid, regs: undefined, fpregs: undefined, xstate: undefined, siginfo: undefined, pendingSignal: 0, error: undefined };
        this.threads.push(cap);
        try {
          ptraceSeize(tid);
        } catch (e) {
          if (e instanceof SyscallError && e.code === 'ESRCH') {
            cap.error = 'thread exited';
            continue;
          }
          throw e;
        }
        this.attached.add(tid);
        this.stoppedAt ??= performance.now();
        ptraceInterrupt(tid);
      }
    }
    const deadline = performance.now() + STOP_TIMEOUT_MS;
    const waiting = new Set(this.attached);
    while (waiting.size > 0) {
      for (const tid of [...waiting]) {
        const w = pollStop(tid);
        if (w.kind === 'none') continue;
        waiting.delete(tid);
        const cap = this.threads.find((c) => c.tid === tid)!;
        if (w.kind === 'gone') {
          this.attached.delete(tid);
          cap.error = 'thread exited';
          continue;
        }
        // a signal-delivery stop holds a real signal that must be delivered again when we let go
        if (w.event !== PTRACE_EVENT_STOP && w.signal !== SIGTRAP) cap.pendingSignal = w.signal;
        this.readRegisters(cap);
      }
      if (waiting.size === 0) break;
      if (performance.now() > deadline) {
        for (const tid of waiting) this.threads.find((c) => c.tid === tid)!.error = `did not stop within ${STOP_TIMEOUT_MS} ms (uninterruptible sleep?)`;
        break;
      }
      await sleep(1);
    }
  }

  private readRegisters(cap: ThreadCapture): void {
    try {
      const regs = Buffer.alloc(216);
      if (ptraceGetRegset(cap.tid, NT_PRSTATUS, regs) !== 216) throw new Error('short NT_PRSTATUS regset');
      cap.regs = regs;
      const fp = Buffer.alloc(512);
      if (ptraceGetRegset(cap.tid, NT_FPREGSET, fp) === 512) cap.fpregs = fp;
      const xs = Buffer.alloc(16384);
      const n = ptraceGetRegset(cap.tid, NT_X86_XSTATE, xs);
      if (n > 0) cap.xstate = Buffer.from(xs.subarray(0, n));
      cap.siginfo = ptraceGetSiginfo(cap.tid);
    } catch (e) {
      cap.error = (e as Error).message;
    }
  }

  /** Detach every thread. Idempotent; also runs from process 'exit' so an uncaught error cannot leave it held. */
  release(): void {
    for (const tid of this.attached) {
      const cap = this.threads.find((c) => c.tid === tid);
      try {
        ptraceDetach(tid, cap?.pendingSignal ?? 0);
      } catch {
        // ESRCH: the thread exited, or is not in a ptrace-stop yet; the kernel detaches it when we exit
      }
    }
    this.attached.clear();
    if (this.stoppedAt !== undefined && this.stoppedMs === null) this.stoppedMs = performance.now() - this.stoppedAt;
    process.off('exit', this.onExit);
  }

  info(): FreezeInfo {
    const withRegs = this.threads.filter((t) => t.regs).length;
    const live = this.threads.filter((t) => t.error !== 'thread exited').length;
    return {
      requested: this.hold,
      registers: withRegs === 0 ? 'none' : withRegs === live ? 'ptrace' : 'partial',
      registersError: this.error ?? this.threads.find((t) => t.error && t.error !== 'thread exited')?.error ?? null,
      heldForCopy: this.hold && withRegs > 0,
      stoppedMs: this.stoppedMs === null ? null : Math.round(this.stoppedMs * 10) / 10,
      threadsSeen: this.threads.length,
    };
  }
}

/** Threads of one process that the caller traces and holds stopped; the first is shown first (e.g. the faulting one). */
export interface AdoptedThreads {
  threads: { tid: number; signal: number }[];
}

const adoptions = new Map<number, AdoptedThreads>();

/**
 * For a caller that already traces PID (a tracee cannot be seized twice): until the returned function runs,
 * Freeze.capture(PID) reads registers from these stopped threads and leaves stopping and resuming to the caller.
 * `signal` is the signal each thread's stop carries, written to the core as its current signal.
 */
export function adoptStopped(pid: number, a: AdoptedThreads): () => void {
  adoptions.set(pid, a);
  return () => {
    if (adoptions.get(pid) === a) adoptions.delete(pid);
  };
}

function describePtraceError(e: SyscallError, pid: number): string {
  if (e.code === 'EPERM') {
    let tracer = '';
    try {
      const m = /TracerPid:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m && m[1] !== '0') tracer = ` (it is already traced by pid ${m[1]}: a debugger or tracer holds it)`;
    } catch {
      // status unreadable: say what we know
    }
    return `ptrace refused: ${e.message}${tracer || ' (Yama ptrace_scope, a container seccomp profile, or missing CAP_SYS_PTRACE)'}; registers are missing from this core`;
  }
  return `ptrace failed: ${e.message}; registers are missing from this core`;
}
