import { setTimeout as sleep } from 'node:timers/promises';
import { MemdumpError } from '../core/errors.js';
import { adoptStopped, listTasks } from '../sources/freeze.js';
import {
  PTRACE_O_TRACECLONE,
  SyscallError,
  nativeAvailable,
  pollAnyStop,
  ptraceCont,
  ptraceDetach,
  ptraceInterrupt,
  ptraceListen,
  ptraceSeizeOptions,
} from '../sources/native.js';
import { hexMask, parseStatus, readText } from '../sources/proc-info.js';
import { type WatchDump, type WatchOptions, type WatchResult, takeDump } from './watch.js';

/**
 * The crash and signal triggers: the watcher traces every thread (PTRACE_SEIZE, new threads through
 * PTRACE_O_TRACECLONE), so the kernel stops a thread before it acts on any signal. A watched signal (or a
 * core-dumping signal with no handler, with --exit-on-crash) is held while every other thread is stopped and
 * the core is written — the faulting thread's registers show the fault — and then delivered as it would have
 * been. Every other signal is delivered untouched. Limits: one tracer at a time (gdb or strace cannot attach
 * during the watch, and a process already traced cannot be watched); Yama ptrace_scope may forbid the attach;
 * SIGKILL is never seen; all requests come from this (the main JS) thread, as ptrace requires.
 */

const SIGTRAP = 5;
const SIGSTOP = 19;
const JOB_STOPS = new Set([SIGSTOP, 20, 21, 22]);
const PTRACE_EVENT_STOP = 0x80;
/** Signals whose default action dumps core: a process with no handler for them dies. */
export const CRASH_SIGNALS: ReadonlySet<number> = new Set([3, 4, 5, 6, 7, 8, 11, 24, 25, 31]);
const STOP_TIMEOUT_MS = 3000;

/**
 * Whether the process catches or ignores `sig` (SigCgt | SigIgn): then it does not die of it. A tracer is told of
 * ignored signals too, so SigCgt alone would take `kill -QUIT` of a process ignoring SIGQUIT for a crash. For a
 * synchronous fault the kernel has already reset an ignored action to the default when the tracer sees it.
 */
async function survives(pid: number, sig: number, procRoot: string): Promise<boolean> {
  try {
    const st = parseStatus(await readText(`${procRoot}/${pid}/status`));
    const mask = hexMask(st['SigCgt']) | hexMask(st['SigIgn']);
    return ((mask >> BigInt(sig - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}

class Tracer {
  /** tid → the signal to deliver when it is next resumed, for threads in a ptrace-stop; running threads are absent. */
  readonly stopped = new Map<number, number>();
  readonly traced = new Set<number>();

  constructor(readonly pid: number) {}

  async attach(): Promise<void> {
    for (let pass = 0; pass < 50; pass++) {
      const fresh = listTasks(this.pid).filter((t) => !this.traced.has(t));
      if (fresh.length === 0) return;
      for (const tid of fresh) {
        try {
          ptraceSeizeOptions(tid, PTRACE_O_TRACECLONE);
          this.traced.add(tid);
        } catch (e) {
          if (e instanceof SyscallError && e.code === 'ESRCH') continue;
          await this.detachAll();
          const why = e instanceof SyscallError && e.code === 'EPERM' ? ' (already traced by a debugger, Yama ptrace_scope, or missing CAP_SYS_PTRACE)' : '';
          throw new MemdumpError('E_PERMISSION', `cannot trace process ${this.pid}: ${(e as Error).message}${why}`);
        }
      }
    }
  }

  resume(tid: number, sig: number): void {
    this.stopped.delete(tid);
    try {
      ptraceCont(tid, sig);
    } catch {
      // ESRCH: the thread was killed meanwhile
    }
  }

  /** Handle a stop that is not a trigger: the tracee goes on exactly as it would untraced. */
  passThrough(tid: number, signal: number, event: number): void {
    if (event === PTRACE_EVENT_STOP && JOB_STOPS.has(signal)) {
      // a group-stop: stay stopped, as job control wants, but traced
      this.stopped.delete(tid);
      try {
        ptraceListen(tid);
      } catch {
        // gone
      }
      return;
    }
    // an event stop (PTRACE_EVENT_CLONE, an interrupt, a new thread's first stop) holds no signal
    this.resume(tid, event === 0 ? signal : 0);
  }

  /** Bring every traced thread into a ptrace-stop, remembering signals that arrive meanwhile. */
  async stopAll(): Promise<void> {
    const waiting = new Set<number>();
    for (const tid of this.traced) {
      if (this.stopped.has(tid)) continue;
      try {
        ptraceInterrupt(tid);
        waiting.add(tid);
      } catch {
        this.traced.delete(tid);
      }
    }
    const deadline = performance.now() + STOP_TIMEOUT_MS;
    while (waiting.size > 0 && performance.now() < deadline) {
      const w = pollAnyStop();
      if (w.kind === 'none') {
        await sleep(1);
        continue;
      }
      if (w.kind === 'nochild') break;
      if (w.kind === 'exited') {
        this.traced.delete(w.tid);
        waiting.delete(w.tid);
        continue;
      }
      this.traced.add(w.tid);
      waiting.delete(w.tid);
      this.stopped.set(w.tid, w.event === 0 ? w.signal : 0);
    }
  }

  /** Let every thread go untraced, delivering what each stop held. */
  async detachAll(): Promise<void> {
    await this.stopAll();
    for (const tid of this.traced) {
      try {
        ptraceDetach(tid, this.stopped.get(tid) ?? 0);
      } catch {
        // ESRCH: exited, or never stopped (uninterruptible); the kernel detaches it when we exit
      }
    }
    this.traced.clear();
    this.stopped.clear();
  }

  resumeAll(): void {
    for (const [tid, sig] of [...this.stopped]) this.resume(tid, sig);
  }
}

export async function watchPtrace(o: WatchOptions, pid: number): Promise<WatchResult> {
  nativeAvailable();
  const t = new Tracer(pid);
  await t.attach();
  // said only now: a caller may start what it wants caught as soon as it reads this
  o.onEvent({ event: 'watching', pids: [pid] });
  const onExit = () => {
    for (const tid of t.traced) {
      try {
        ptraceDetach(tid, t.stopped.get(tid) ?? 0);
      } catch {
        // not stopped: the kernel detaches it as we exit
      }
    }
  };
  process.on('exit', onExit);
  const dumps: WatchDump[] = [];
  let pauseUntil = 0;
  const watched = new Set(o.signals);
  try {
    while (!o.signal.aborted) {
      const w = pollAnyStop();
      if (w.kind === 'none') {
        await sleep(2);
        continue;
      }
      if (w.kind === 'nochild') return { dumps, reason: 'exited' };
      if (w.kind === 'exited') {
        t.traced.delete(w.tid);
        t.stopped.delete(w.tid);
        if (w.tid === pid || t.traced.size === 0) {
          o.onEvent({ event: 'note', detail: `process ${pid} ended (${w.signal !== null ? `signal ${w.signal}` : `exit ${w.code}`})` });
          return { dumps, reason: 'exited' };
        }
        continue;
      }
      t.traced.add(w.tid);
      t.stopped.set(w.tid, w.event === 0 ? w.signal : 0);
      const sig = w.signal;
      let trigger: string | undefined;
      if (w.event === 0 && sig !== SIGSTOP && performance.now() >= pauseUntil) {
        if (watched.has(sig)) trigger = 'signal';
        else if (o.crash && CRASH_SIGNALS.has(sig) && !(await survives(pid, sig, o.procRoot))) trigger = 'crash';
      }
      if (!trigger) {
        t.passThrough(w.tid, sig, w.event);
        continue;
      }
      const firedAt = new Date();
      await t.stopAll();
      // the thread that received the signal first: gdb shows it as the current thread
      const order = [w.tid, ...[...t.stopped.keys()].filter((x) => x !== w.tid)];
      const undo = adoptStopped(pid, { threads: order.map((tid) => ({ tid, signal: t.stopped.get(tid) ?? 0 })) });
      try {
        dumps.push(await takeDump(o, pid, trigger, `signal ${sig} in thread ${w.tid}${trigger === 'crash' ? ' (no handler: the process dies of it)' : ''}`, firedAt));
      } finally {
        undo();
      }
      if (dumps.length >= o.count || trigger === 'crash') {
        await t.detachAll();
        return { dumps, reason: trigger === 'crash' ? 'exited' : 'count' };
      }
      pauseUntil = performance.now() + o.spacingSeconds * 1000;
      t.resumeAll();
    }
    await t.detachAll();
    return { dumps, reason: 'interrupted' };
  } finally {
    process.off('exit', onExit);
    if (t.traced.size > 0) await t.detachAll();
  }
}
