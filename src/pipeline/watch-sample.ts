import { readdir } from 'node:fs/promises';
import { parseStat, parseStatus, readText } from '../sources/proc-info.js';

/**
 * The sampling half of `memdump watch`: what /proc says about a process at one moment, and the conditions
 * that fire a dump. CPU is measured over each sampling interval (ticks used between two samples / wall time),
 * never as a lifetime average, so a service that idled for a day and now spins is seen at once.
 */

export type SampleTrigger =
  | { kind: 'cpu-above' | 'cpu-below'; percent: number }
  | { kind: 'rss-above' | 'rss-below'; bytes: bigint }
  | { kind: 'threads-above'; count: number }
  | { kind: 'fds-above'; count: number }
  | { kind: 'timer'; seconds: number };

export interface Sample {
  /** performance.now() when taken. */
  at: number;
  comm: string;
  pgrp: number;
  /** utime + stime of the whole process (all threads). */
  cpuUs: bigint;
  rssBytes: bigint;
  threads: number;
  /** null when /proc/PID/fd is unreadable (another user's process without privileges). */
  fds: number | null;
}

export interface Fired {
  trigger: SampleTrigger;
  /** What was measured, for the log: "cpu 97.5% for 2.0 s". */
  detail: string;
  /** performance.now() of the moment the condition first held in this run. */
  since: number;
}

/** One sample, or undefined when the process is gone. */
export async function sampleProcess(pid: number, procRoot = '/proc'): Promise<Sample | undefined> {
  try {
    const at = performance.now();
    const st = parseStat(await readText(`${procRoot}/${pid}/stat`), pid);
    // a zombie (or a dying task) still has a stat file: it has no memory to dump and must count as gone
    if (st.state === 'Z' || st.state === 'X' || st.state === 'x') return undefined;
    const status = parseStatus(await readText(`${procRoot}/${pid}/status`));
    let fds: number | null = null;
    try {
      fds = (await readdir(`${procRoot}/${pid}/fd`)).length;
    } catch {
      // EACCES: the fd trigger cannot fire for this process
    }
    const rss = /^(\d+)\s*kB$/.exec(status['VmRSS'] ?? '');
    return {
      at,
      comm: st.comm,
      pgrp: st.pgrp,
      cpuUs: st.utimeUs + st.stimeUs,
      rssBytes: rss ? BigInt(rss[1]!) * 1024n : 0n,
      threads: Number(status['Threads'] ?? '0'),
      fds,
    };
  } catch {
    return undefined;
  }
}

/** CPU use between two samples in percent of one CPU (a process on 4 busy cores shows 400). */
export function cpuPercent(prev: Sample, cur: Sample): number {
  const wallUs = (cur.at - prev.at) * 1000;
  if (wallUs <= 0) return 0;
  return (Number(cur.cpuUs - prev.cpuUs) / wallUs) * 100;
}

export const triggerName = (t: SampleTrigger | { kind: 'crash' } | { kind: 'signal' }): string => (t.kind === 'threads-above' ? 'threads' : t.kind === 'fds-above' ? 'fds' : t.kind);

/**
 * Which triggers hold for the interval ending at `cur`, and since when. Each condition must hold on every
 * sample for `forMs` (a CPU condition from the start of its first interval) before it fires; the timer fires
 * `seconds` after `armedAt` whatever the samples say.
 */
export class TriggerState {
  private readonly since = new Map<SampleTrigger, number>();

  constructor(
    private readonly triggers: readonly SampleTrigger[],
    private readonly forMs: number,
    private armedAt: number,
  ) {}

  /** Forget every partial run (after a dump, or once -s has passed). */
  rearm(at: number): void {
    this.since.clear();
    this.armedAt = at;
  }

  update(prev: Sample | undefined, cur: Sample): Fired | undefined {
    for (const t of this.triggers) {
      if (t.kind === 'timer') {
        if (cur.at - this.armedAt >= t.seconds * 1000) return { trigger: t, detail: `timer ${t.seconds} s`, since: this.armedAt };
        continue;
      }
      const m = measure(t, prev, cur);
      if (m === undefined) continue;
      if (!m.holds) {
        this.since.delete(t);
        continue;
      }
      const start = this.since.get(t) ?? (t.kind.startsWith('cpu') && prev ? prev.at : cur.at);
      this.since.set(t, start);
      if (cur.at - start >= this.forMs) return { trigger: t, detail: `${m.text} for ${((cur.at - start) / 1000).toFixed(1)} s`, since: start };
    }
    return undefined;
  }
}

function measure(t: Exclude<SampleTrigger, { kind: 'timer' }>, prev: Sample | undefined, cur: Sample): { holds: boolean; text: string } | undefined {
  switch (t.kind) {
    case 'cpu-above':
    case 'cpu-below': {
      if (!prev) return undefined;
      const p = cpuPercent(prev, cur);
      return { holds: t.kind === 'cpu-above' ? p > t.percent : p < t.percent, text: `cpu ${p.toFixed(1)}%` };
    }
    case 'rss-above':
    case 'rss-below':
      return { holds: t.kind === 'rss-above' ? cur.rssBytes > t.bytes : cur.rssBytes < t.bytes, text: `rss ${cur.rssBytes} bytes` };
    case 'threads-above':
      return { holds: cur.threads > t.count, text: `${cur.threads} threads` };
    case 'fds-above':
      return cur.fds === null ? undefined : { holds: cur.fds > t.count, text: `${cur.fds} open fds` };
  }
}
