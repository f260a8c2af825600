import { promises as fsp } from 'node:fs';
import { MemdumpError, fromSystemError, isMemdumpError } from '../core/errors.js';
import { type Range, rangeToJson } from '../core/ranges.js';
import type { FormatSpec } from '../formats/types.js';
import { withWriterHooks } from '../formats/writer-hooks.js';
import { QmpClient, type QmpObject, closeFd, openPipe } from '../sources/qmp-client.js';
import { PipeReader, QemuDumpSource, STREAM_FATAL, readDumpHeaders } from '../sources/qmp-dump.js';
import type { SourceKind } from '../sources/types.js';
import { type JobOptions, type JobResult, runJob } from './job.js';
import { type SpoolFile, createSpool, jobFromSpool, pumpToSpool } from './vm-spool.js';

/** What the caller decides (output, format, digests, …); the VM side fills in source, map and notes. */
export type VmJobOptions = Omit<JobOptions, 'source' | 'attempts' | 'lockdown' | 'ram' | 'notes' | 'context'>;

/** What memdump knows about the guest before anything is dumped: enough to refuse an output that cannot work. */
export interface VmPlan {
  memoryBytes: bigint;
  /** The guest-physical RAM ranges the dump is expected to hold (QEMU's flat memory map, or an estimate). */
  ranges: Range[];
  mapFrom: 'mtree' | 'estimate';
}

export interface VmQmpOptions {
  /** unix:/path/to/qmp.sock or the path. */
  qmp: string;
  signal: AbortSignal;
  job: VmJobOptions;
  log?: (line: string) => void;
  /** Said whatever the verbosity: the guest is not as it was found, or its state is unknown. */
  warn?: (line: string) => void;
  /** Before dump-guest-memory: refuse early (outputs exist, no space) while the guest has not been touched. */
  precheck?: (plan: VmPlan) => Promise<void>;
  /** How long to wait for QEMU to report the end of the dump (and to resume the guest it paused). */
  settleTimeoutMs?: number;
  /** No byte from QEMU for this long: the dump is abandoned (E_SOURCE_READ). 0 = wait forever. */
  stallTimeoutMs?: number;
  /**
   * Spool mode: QEMU's stream goes raw to a file in this directory (SHA-256 only on the way), the guest resumes as
   * soon as QEMU is done, and the job then runs from the file, checked against that SHA-256 as it is read back.
   */
  spoolDir?: string;
}

export interface VmResult {
  job: JobResult;
  /** The guest is not in the state it was found in, or memdump could not tell: the caller must say so loudly. */
  guestWarning: string | null;
}

// the source kind the report shows
const VM_KIND: SourceKind = 'vm';
/** QEMU reports the guest's resume right after DUMP_COMPLETED; this only bounds a QEMU that never does. */
const RESUME_WAIT_MS = 10_000;

const zeroUuid = /^0{8}-0{4}-0{4}-0{4}-0{12}$/;

/**
 * QEMU/KVM guest over QMP: stream dump-guest-memory through a pipe into the normal pipeline.
 *
 * memdump never sends `stop` or `cont`. QEMU itself pauses a running guest for dump-guest-memory and resumes it
 * when the dump ends — completed, failed, or cut off because our end of the pipe closed — and leaves a guest that
 * was paused before paused. So whatever happens to memdump (SIGKILL, OOM, a dropped ssh session), QEMU's own
 * clean-up restores the guest; memdump only records what happened (STOP/RESUME event times, query-status before
 * and after) and says so loudly when the guest is not as it was found.
 *
 * The pipe's write end goes to QEMU with `getfd` (SCM_RIGHTS on the monitor socket), then `protocol: fd:NAME`:
 * no path exists that anyone could open, replace or race, and it works when QEMU runs as another user.
 */
export async function acquireVmQmp(o: VmQmpOptions): Promise<VmResult> {
  const log = o.log ?? (() => undefined);
  const warn = o.warn ?? log;
  const settleMs = o.settleTimeoutMs ?? 60_000;
  let qmp = await QmpClient.connect(o.qmp);
  const vm: Record<string, unknown> = { hypervisor: 'qemu', via: 'qmp', socket: qmp.path, pausedBy: 'qemu' };
  let reader: PipeReader | undefined;
  let dumpStarted = false;
  let mark = 0;
  let runningBefore = false;
  let guestWarning: string | null = null;
  let settled: Promise<void> | undefined;
  let spool: SpoolFile | undefined;
  let spoolRemoved = false;
  let spoolWhy = 'memdump stopped before the evidence was complete';

  /**
   * Once a dump runs: end it (unless it ended by itself), then record QEMU's verdict, the guest's pause and its
   * state now. Idempotent; never throws.
   */
  const settle = (complete: boolean): Promise<void> => {
    if (!dumpStarted) return Promise.resolve();
    if (!complete) reader?.destroy(new MemdumpError('E_INTERRUPTED', 'the VM dump was abandoned'));
    return (settled ??= (async () => {
      const ended = await dumpOutcome();
      vm['dump'] = ended;
      await guestAfter(ended.status !== 'active');
    })().catch((e: unknown) => {
      guestWarning ??= `could not confirm the guest's state after the dump: ${(e as Error).message}`;
      vm['guestWarning'] = guestWarning;
    }));
  };

  /** A monitor that still answers: ours, or a new connection if QEMU dropped ours; null when QEMU is gone. */
  const monitor = async (): Promise<QmpClient | null> => {
    if (!qmp.closed) return qmp;
    try {
      const fresh = await QmpClient.connect(o.qmp, { timeoutMs: 5_000 });
      vm['reconnected'] = true;
      qmp = fresh;
      return fresh;
    } catch (e) {
      if (isMemdumpError(e) && e.code === 'E_NOT_FOUND') {
        vm['qemuExited'] = true;
        return null;
      }
      throw e;
    }
  };
  /** One command after the dump started, on a new connection if the old one drops under it; null: QEMU is gone. */
  const ask = async (command: string): Promise<QmpObject | null> => {
    for (let attempt = 0; ; attempt++) {
      const m = await monitor();
      if (!m) return null;
      try {
        return await m.execute<QmpObject>(command);
      } catch (e) {
        if (!m.closed || attempt >= 2) throw e;
      }
    }
  };

  const dumpOutcome = async (): Promise<{ status: string; error: string | null; completed: string | null; total: string | null; from: string }> => {
    const deadline = performance.now() + settleMs;
    const ev = await qmp.waitEvent('DUMP_COMPLETED', settleMs, undefined, mark);
    if (ev) {
      const r = (ev.data['result'] ?? {}) as QmpObject;
      return { status: String(r['status'] ?? 'unknown'), error: typeof ev.data['error'] === 'string' ? ev.data['error'] : null, completed: str(r['completed']), total: str(r['total']), from: 'DUMP_COMPLETED' };
    }
    // the event was lost with the connection (or never came): ask, on a new connection if need be
    for (;;) {
      const q = await ask('query-dump');
      if (!q) return { status: 'unknown', error: 'QEMU exited', completed: null, total: null, from: 'none' };
      if (q['status'] !== 'active' || performance.now() > deadline) {
        return { status: String(q['status'] ?? 'unknown'), error: q['status'] === 'active' ? `still active after ${settleMs} ms` : null, completed: str(q['completed']), total: str(q['total']), from: 'query-dump' };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  /** STOP/RESUME QEMU sent for our dump, and the guest's run state now, against what it was before. */
  const guestAfter = async (dumpOver: boolean): Promise<void> => {
    let stopSeen: boolean | undefined;
    if (runningBefore && dumpOver && !qmp.closed) {
      const stop = await qmp.waitEvent('STOP', 0, undefined, mark);
      stopSeen = stop !== undefined;
      const resume = await qmp.waitEvent('RESUME', RESUME_WAIT_MS, undefined, mark);
      if (stop?.timestamp && resume?.timestamp) {
        const us = (t: { seconds: number; microseconds: number }) => t.seconds * 1e6 + t.microseconds;
        vm['pausedMs'] = Math.max(0, Math.round((us(resume.timestamp) - us(stop.timestamp)) / 1000));
        vm['pausedMsFrom'] = 'QEMU STOP and RESUME event timestamps';
      }
      vm['resumeEventSeen'] = resume !== undefined;
    }
    const st = await ask('query-status');
    if (!st) {
      vm['statusAfter'] = 'QEMU exited';
      vm['runningAfter'] = null;
      guestWarning = runningBefore ? 'QEMU exited during the dump: the guest is gone' : 'QEMU exited during the dump';
      vm['guestWarning'] = guestWarning;
      return;
    }
    const runningAfter = st['running'] === true;
    vm['statusAfter'] = String(st['status'] ?? 'unknown');
    vm['runningAfter'] = runningAfter;
    vm['resumed'] = runningBefore && runningAfter;
    if (runningBefore && !runningAfter) {
      // no STOP after our command: QEMU found the guest already paused (another client, between our query and the dump)
      const why = !dumpOver ? ' (QEMU has not finished the dump)' : stopSeen === false ? ' (QEMU did not pause it for the dump: it was paused by someone else before the dump began)' : '';
      guestWarning = `the guest was running before the dump and is now ${String(vm['statusAfter'])}${why}; resume it by hand (QMP "cont" / virsh resume) once you know why`;
    }
    else if (!runningBefore && runningAfter) guestWarning = `the guest was ${String(vm['statusBefore'])} before the dump and is now running (another client resumed it?)`;
    if (guestWarning) vm['guestWarning'] = guestWarning;
  };

  /** Checked as the container is finished: thrown there, the copy ends INCOMPLETE with this very message. */
  const verdict = (): void => {
    const d = vm['dump'] as { status: string; error: string | null } | undefined;
    if (d?.status !== 'completed') throw new MemdumpError('E_SOURCE_READ', `QEMU reports the dump ${d?.status ?? 'unknown'}${d?.error ? `: ${d.error}` : ''}`, { details: { dump: d ?? null } });
  };

  const onAbort = () => {
    log('stopping the VM dump; QEMU resumes the guest if it paused it');
    void settle(false);
  };
  o.signal.addEventListener('abort', onAbort, { once: true });
  let fdName: string | undefined;
  try {
    const status = await qmp.execute<QmpObject>('query-status');
    runningBefore = status['running'] === true;
    const name = await qmp.execute<QmpObject>('query-name').catch(() => ({}) as QmpObject);
    const uuid = await qmp.execute<QmpObject>('query-uuid').catch(() => ({}) as QmpObject);
    const version = await qmp.execute<QmpObject>('query-version');
    const mem = await qmp.execute<QmpObject>('query-memory-size-summary');
    const cap = await qmp.execute<QmpObject>('query-dump-guest-memory-capability');
    const prior = await qmp.execute<QmpObject>('query-dump').catch(() => ({}) as QmpObject);
    const q = (version['qemu'] ?? {}) as { major?: number; minor?: number; micro?: number };
    const memoryBytes = sizeOf(mem['base-memory']) + sizeOf(mem['plugged-memory']);
    Object.assign(vm, {
      name: typeof name['name'] === 'string' ? name['name'] : null,
      // QEMU answers all zeros when the machine was started without -uuid: no identity, not a real UUID
      uuid: typeof uuid['UUID'] === 'string' && !zeroUuid.test(uuid['UUID']) ? uuid['UUID'] : null,
      qemuVersion: `${q.major ?? '?'}.${q.minor ?? '?'}.${q.micro ?? '?'}${version['package'] ? ` ${String(version['package']).trim()}` : ''}`,
      memoryBytes: memoryBytes.toString(),
      statusBefore: String(status['status'] ?? 'unknown'),
      runningBefore,
      runningAfter: null,
      statusAfter: null,
      resumed: false,
      pausedMs: null,
    });
    const formats = Array.isArray(cap['formats']) ? cap['formats'] : [];
    if (!formats.includes('elf')) throw new MemdumpError('E_UNSUPPORTED', `this QEMU cannot write ELF memory dumps (it offers: ${formats.join(', ') || 'none'})`);
    if (prior['status'] === 'active') throw new MemdumpError('E_SOURCE_READ', 'QEMU is already writing a memory dump; wait for it to finish');
    const plan = await planOf(qmp, memoryBytes);
    await o.precheck?.(plan);
    // created before the guest is touched: a directory that refuses the file costs no pause
    if (o.spoolDir !== undefined) spool = await createSpool(o.spoolDir);

    const pipe = openPipe();
    try {
      // spooling: a larger bound, so QEMU never waits on a disk write that is briefly slower than the pipe
      reader = PipeReader.fromFd(pipe.readFd, { stallMs: o.stallTimeoutMs ?? 60_000, ...(spool ? { highWater: 32 << 20 } : {}) });
    } catch (e) {
      closeFd(pipe.readFd);
      closeFd(pipe.writeFd);
      throw fromSystemError(e, 'reading the dump pipe');
    }
    try {
      fdName = `memdump-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
      await qmp.sendFd(fdName, pipe.writeFd);
    } finally {
      // QEMU holds its own copy now (or none): ours would keep the reader from ever seeing end-of-file
      closeFd(pipe.writeFd);
    }
    if (o.signal.aborted) throw new MemdumpError('E_INTERRUPTED', 'interrupted before the dump started');
    mark = qmp.lastEventSeq;
    try {
      await qmp.execute('dump-guest-memory', { paging: false, detach: true, protocol: `fd:${fdName}` });
    } catch (e) {
      const desc = isMemdumpError(e) ? String(e.details['qmpDesc'] ?? e.message) : String(e);
      throw new MemdumpError('E_SOURCE_READ', `dump-guest-memory failed: ${desc}`, { cause: e });
    }
    dumpStarted = true;
    fdName = undefined; // QEMU took it out of its table
    log(runningBefore ? 'QEMU paused the guest for the dump' : `the guest is ${String(vm['statusBefore'])} and stays so`);
    if (o.signal.aborted) throw new MemdumpError('E_INTERRUPTED', 'interrupted as the dump started');
    if (spool) {
      const sp = spool;
      const facts = await pumpToSpool(reader, sp);
      await sp.fh.close();
      await settle(true);
      verdict();
      // the monitor is free for the operator while the container is built from the spool
      qmp.close();
      log(`spooled ${facts.bytes} bytes to ${sp.path} (SHA-256 ${facts.sha256}); ${runningBefore ? 'the guest is resumed; ' : ''}building the evidence from the spool`);
      const built = await jobFromSpool({ spool: sp.path, facts, vm, kind: VM_KIND, sourcePath: `qmp:${qmp.path}`, job: o.job, signal: o.signal, warn });
      spoolRemoved = built.removed;
      spoolWhy = built.keptWhy;
      const job = built.job;
      return { job, guestWarning };
    }
    const headers = await readDumpHeaders(reader);
    vm['memoryMap'] = headers.loads.map((l) => ({ ...rangeToJson(l), streamOffset: `0x${l.offset.toString(16)}` }));
    vm['elfMachine'] = headers.machine;
    vm['notes'] = headers.notes.length;
    if (headers.shortLoads > 0) vm['shortLoads'] = headers.shortLoads;

    const source = new QemuDumpSource({ path: `qmp:${qmp.path}`, kind: VM_KIND, reader, headers, info: { vm }, atEnd: () => settle(true) });
    const job = await runJob({
      ...o.job,
      source,
      attempts: [{ source: VM_KIND, path: `qmp:${qmp.path}`, ok: true }],
      lockdown: undefined,
      ram: source.ranges,
      notes: source.notes,
      context: undefined,
      format: holdUntilSettled(o.job.format, () => settle(false), verdict),
      policy: { ...o.job.policy, fatal: STREAM_FATAL, signal: o.signal },
    });
    await settle(false);
    return { job, guestWarning };
  } catch (e) {
    await settle(false);
    if (spool) {
      spoolWhy = isMemdumpError(e) ? `${e.code}: ${e.message}` : String(e);
      if (isMemdumpError(e)) e.details['spool'] = spool.path;
    }
    if (guestWarning && isMemdumpError(e)) {
      e.details['guestWarning'] = guestWarning;
      // the guest's state outranks the job's own failure: exit 5, the message says both
      throw new MemdumpError('E_SOURCE_READ', `${guestWarning}; and the dump failed: ${e.code}: ${e.message}`, { cause: e, details: { ...e.details, guestWarning, failureCode: e.code } });
    }
    if (guestWarning) throw new MemdumpError('E_SOURCE_READ', `${guestWarning}; and the dump failed: ${(e as Error).message}`, { cause: e, details: { guestWarning } });
    throw e;
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    reader?.destroy(new MemdumpError('E_INTERRUPTED', 'closed'));
    if (fdName && !qmp.closed) await qmp.execute('closefd', { fdname: fdName }, 5_000).catch(() => undefined);
    qmp.close();
    if (guestWarning) warn(`WARNING: ${guestWarning}`);
    if (spool && !spoolRemoved) {
      await spool.fh.close().catch(() => undefined);
      // nothing of the guest reached an unstarted spool; anything else is kept: it may be the only copy
      if (!dumpStarted) await fsp.unlink(spool.path).catch(() => undefined);
      else warn(`the spool ${spool.path} is KEPT (${spoolWhy}): it holds the guest's memory as QEMU wrote it (ELF); memdump convert it, then delete it`);
    }
  }
}

function str(v: unknown): string | null {
  return v == null ? null : String(v);
}

function sizeOf(v: unknown): bigint {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : 0n;
}

/**
 * The RAM ranges QEMU will dump, from `info mtree -f` (the flat view of the system address space: RAM and ROM
 * blocks are what dump-guest-memory writes). If the monitor will not tell, an upper estimate: x86 machines
 * split RAM above 2 GiB (q35) or 3 GiB (pc) around the PCI hole, so the highest address is at most RAM + 2 GiB.
 */
async function planOf(qmp: QmpClient, memoryBytes: bigint): Promise<VmPlan> {
  const text = await qmp.execute<unknown>('human-monitor-command', { 'command-line': 'info mtree -f' }).catch(() => null);
  const ranges = typeof text === 'string' ? parseMtreeRam(text) : [];
  if (ranges.length > 0) return { memoryBytes, ranges, mapFrom: 'mtree' };
  const low = 2n << 30n;
  const est = memoryBytes <= low ? [{ start: 0n, end: memoryBytes }] : [{ start: 0n, end: low }, { start: 4n << 30n, end: (4n << 30n) + memoryBytes - low + (2n << 30n) }];
  return { memoryBytes, ranges: est, mapFrom: 'estimate' };
}

/** RAM/ROM ranges of the flat view that serves address space "memory", merged and sorted. Bounded by the text. */
export function parseMtreeRam(text: string): Range[] {
  const out: { start: bigint; end: bigint }[] = [];
  let inMemory = false;
  let inView = false;
  for (const line of text.split('\n').slice(0, 100_000)) {
    if (/^FlatView #/.test(line)) {
      inView = true;
      inMemory = false;
      continue;
    }
    if (inView && /^\s*AS "memory"/.test(line)) inMemory = true;
    if (!inMemory) continue;
    const m = /^\s*([0-9a-f]{1,16})-([0-9a-f]{1,16}) \(prio -?\d+, (ram|rom)\)/.exec(line);
    if (!m) continue;
    const start = BigInt('0x' + m[1]);
    const end = BigInt('0x' + m[2]) + 1n;
    if (end <= start) continue;
    const last = out[out.length - 1];
    if (last && last.end === start) last.end = end;
    else out.push({ start, end });
  }
  return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

/**
 * The container is neither finished nor abandoned before the guest's state is settled, so the report (built
 * right after) records whether and when the guest was resumed; and it is not finished at all unless QEMU
 * confirmed the dump.
 */
function holdUntilSettled(format: FormatSpec, settle: () => Promise<void>, verdict: () => void): FormatSpec {
  return withWriterHooks(format, {
    beforeEnd: async () => {
      await settle().catch(() => undefined);
      verdict();
    },
    beforeAbort: settle,
  });
}
