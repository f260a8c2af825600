import { existsSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemdumpError } from '../core/errors.js';
import { parseStat, readText } from '../sources/proc-info.js';
import type { JobResult } from './job.js';
import { type Sample, type SampleTrigger, TriggerState, sampleProcess, triggerName } from './watch-sample.js';
import { watchPtrace } from './watch-ptrace.js';

/**
 * `memdump watch`: wait for a condition in a live process, then take a full `memdump process` core (threads
 * held) with its report. Sampling triggers read /proc every interval; the crash and signal triggers trace the
 * process (watch-ptrace.ts). ProcDump for Linux is the model; CPU is measured per interval, not as a lifetime average.
 */

export type WatchTarget = { kind: 'pid'; pid: number } | { kind: 'name'; name: string } | { kind: 'pgid'; pgid: number };

export interface WatchOptions {
  target: WatchTarget;
  triggers: readonly SampleTrigger[];
  /** A sampling condition must hold this long before it fires (0: on the first sample that shows it). */
  forSeconds: number;
  /** Dump when the process is about to die of a core-dumping signal it has no handler for. */
  crash: boolean;
  /** Dump when the process receives one of these signals (then deliver it). */
  signals: readonly number[];
  count: number;
  /** Pause between dumps; conditions are not evaluated (and signals pass through) meanwhile. */
  spacingSeconds: number;
  intervalSeconds: number;
  outputDir: string;
  procRoot: string;
  /** Writes the core and its report (dumpProcess with the command's options); `why` belongs in the report. */
  dump: (pid: number, output: string, why: { trigger: string; detail: string; triggeredAt: string }) => Promise<JobResult>;
  signal: AbortSignal;
  onEvent: (e: WatchEvent) => void;
}

export interface WatchDump {
  pid: number;
  comm: string;
  trigger: string;
  detail: string;
  /** ISO time the trigger fired (the dump starts right after). */
  triggeredAt: string;
  output: string;
  reportPath: string | undefined;
  status: string;
  exitCode: number;
}

export type WatchEvent = { event: 'waiting'; detail: string } | { event: 'watching'; pids: number[] } | ({ event: 'dump' } & WatchDump) | { event: 'note'; detail: string };

export interface WatchResult {
  dumps: WatchDump[];
  /** Why the watch ended. */
  reason: 'count' | 'exited' | 'interrupted';
}

/** NAME_TRIGGER_YYYYMMDDTHHMMSSZ.PID.core in `dir`, made unique with -2, -3… when two dumps share a second. */
export function dumpName(dir: string, comm: string, trigger: string, pid: number, now = new Date()): string {
  const name = comm.replace(/[^A-Za-z0-9.-]/g, '_') || 'process';
  const ts = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  for (let i = 1; ; i++) {
    const p = path.join(dir, `${name}_${trigger}_${ts}${i > 1 ? `-${i}` : ''}.${pid}.core`);
    if (!existsSync(p) && !existsSync(p + '.partial')) return p;
  }
}

async function commOf(pid: number, procRoot: string): Promise<string | undefined> {
  try {
    return parseStat(await readText(`${procRoot}/${pid}/stat`), pid).comm;
  } catch {
    return undefined;
  }
}

async function allPids(procRoot: string): Promise<number[]> {
  return (await readdir(procRoot)).filter((d) => /^[1-9]\d*$/.test(d)).map(Number).filter((p) => p !== process.pid);
}

/** Processes whose comm (the kernel keeps 15 characters), exe or argv[0] base name is `name`. */
export async function findByName(name: string, procRoot = '/proc'): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await allPids(procRoot)) {
    const comm = await commOf(pid, procRoot);
    if (comm === undefined) continue;
    // the kernel keeps 15 characters of comm: a longer name can only be confirmed by exe or argv[0]
    let hit = name.length <= 15 && comm === name;
    if (!hit) hit = await readlink(`${procRoot}/${pid}/exe`).then((l) => path.basename(l.replace(/ \(deleted\)$/, '')) === name, () => false);
    if (!hit) hit = await readText(`${procRoot}/${pid}/cmdline`).then((c) => path.basename(c.split('\0')[0] ?? '') === name, () => false);
    if (hit) out.push(pid);
  }
  return out.sort((a, b) => a - b);
}

export async function groupMembers(pgid: number, procRoot = '/proc'): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await allPids(procRoot)) {
    try {
      if (parseStat(await readText(`${procRoot}/${pid}/stat`), pid).pgrp === pgid) out.push(pid);
    } catch {
      // exited while we looked
    }
  }
  return out.sort((a, b) => a - b);
}

/** The process(es) to watch now; with --name, waits (polling every interval) until one appears. */
async function resolveTarget(o: WatchOptions): Promise<number[] | undefined> {
  const t = o.target;
  if (t.kind === 'pid') {
    if ((await commOf(t.pid, o.procRoot)) === undefined) throw new MemdumpError('E_NOT_FOUND', `no process ${t.pid}`);
    return [t.pid];
  }
  if (t.kind === 'pgid') {
    const m = await groupMembers(t.pgid, o.procRoot);
    if (m.length === 0) throw new MemdumpError('E_NOT_FOUND', `no process in group ${t.pgid}`);
    return m;
  }
  o.onEvent({ event: 'waiting', detail: `waiting for a process named ${t.name}` });
  for (;;) {
    const m = await findByName(t.name, o.procRoot);
    if (m.length > 0) return [m[0]!];
    if (o.signal.aborted) return undefined;
    await sleep(o.intervalSeconds * 1000, undefined, { signal: o.signal }).catch(() => undefined);
  }
}

/** Take one dump and report it. */
export async function takeDump(o: WatchOptions, pid: number, trigger: string, detail: string, firedAt: Date): Promise<WatchDump> {
  const comm = (await commOf(pid, o.procRoot)) ?? 'process';
  const output = dumpName(o.outputDir, comm, trigger, pid, firedAt);
  const r = await o.dump(pid, output, { trigger, detail, triggeredAt: firedAt.toISOString() });
  const d: WatchDump = { pid, comm, trigger, detail, triggeredAt: firedAt.toISOString(), output, reportPath: r.reportPath, status: r.report.status, exitCode: r.exitCode };
  o.onEvent({ event: 'dump', ...d });
  return d;
}

export async function watch(o: WatchOptions): Promise<WatchResult> {
  if (o.count < 1) throw new MemdumpError('E_USAGE', '-n must be at least 1');
  const ptrace = o.crash || o.signals.length > 0;
  if (!ptrace && o.triggers.length === 0) throw new MemdumpError('E_USAGE', 'no trigger: give --cpu-above, --rss-above, --timer, --exit-on-crash, --signal …');
  if (ptrace && o.triggers.length > 0) throw new MemdumpError('E_USAGE', '--exit-on-crash and --signal cannot be combined with sampling triggers (the process is traced; run two watches)');
  const pids = await resolveTarget(o);
  if (!pids) return { dumps: [], reason: 'interrupted' };
  if (ptrace) {
    if (pids.length !== 1) throw new MemdumpError('E_USAGE', '--exit-on-crash and --signal watch one process: use --pid or --name');
    return watchPtrace(o, pids[0]!);
  }
  return watchSampling(o, pids);
}

async function watchSampling(o: WatchOptions, initial: number[]): Promise<WatchResult> {
  const dumps: WatchDump[] = [];
  const state = new Map<number, { trig: TriggerState; prev: Sample | undefined }>();
  const start = performance.now();
  let members = initial;
  o.onEvent({ event: 'watching', pids: members });
  let pauseUntil = 0;
  while (!o.signal.aborted) {
    if (o.target.kind === 'pgid') members = await groupMembers(o.target.pgid, o.procRoot);
    let alive = 0;
    for (const pid of members) {
      const cur = await sampleProcess(pid, o.procRoot);
      if (!cur) {
        state.delete(pid);
        continue;
      }
      alive++;
      let s = state.get(pid);
      if (!s) state.set(pid, (s = { trig: new TriggerState(o.triggers, o.forSeconds * 1000, start), prev: undefined }));
      const fired = cur.at >= pauseUntil ? s.trig.update(s.prev, cur) : undefined;
      s.prev = cur;
      if (!fired) continue;
      try {
        dumps.push(await takeDump(o, pid, triggerName(fired.trigger), fired.detail, new Date()));
      } catch (e) {
        // a process that exited between the sample and the dump is no reason to stop watching the others
        if ((await sampleProcess(pid, o.procRoot)) !== undefined || o.signal.aborted) throw e;
        o.onEvent({ event: 'note', detail: `process ${pid} exited before it could be dumped: ${(e as Error).message}` });
        continue;
      }
      if (dumps.length >= o.count) return { dumps, reason: 'count' };
      const now = performance.now();
      pauseUntil = now + o.spacingSeconds * 1000;
      // every process starts a new run after the pause: a condition must be seen again, in full
      for (const v of state.values()) {
        v.trig.rearm(pauseUntil);
        v.prev = undefined;
      }
    }
    if (alive === 0) return { dumps, reason: 'exited' };
    await sleep(o.intervalSeconds * 1000, undefined, { signal: o.signal }).catch(() => undefined);
  }
  return { dumps, reason: 'interrupted' };
}
