import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeControl } from '../core/escape.js';
import { hostChecks } from './doctor-host.js';
import { activityChecks } from './doctor-activity.js';
import { coreChecks } from './doctor-cores.js';
import { storageChecks } from './doctor-storage.js';

/**
 * `memdump doctor`: what will work on this host and what to do otherwise. Every check reads through `root` so
 * that fixture trees stand in for /proc, /sys, /dev and /etc; nothing here changes the host.
 */

export type DoctorStatus = 'OK' | 'WARN' | 'FAIL';

export interface DoctorResult {
  id: string;
  status: DoctorStatus;
  /** One line: what was found. */
  summary: string;
  /** Why that matters for an acquisition (empty when there is nothing to explain). */
  reason: string;
  /** What to do about it (empty when nothing needs doing). */
  fix: string;
}

export interface DoctorOptions {
  /** Root of the /proc, /sys, /dev and /etc trees; '/' on a live host. */
  root: string;
  /** Where a dump would be written: free space and which device it sits on. */
  outputDir: string;
  /** Effective uid of the would-be acquirer; defaults to this process's (tests inject it). */
  euid?: number;
  /** Logical CPUs; defaults to the "processor" lines of ROOT/proc/cpuinfo. */
  cpuCount?: number;
}

/** Everything a check needs; built once so that each check stays a small pure-ish function. */
export interface DoctorContext {
  root: string;
  outputDir: string;
  euid: number;
  live: boolean;
  /** A file under root, trimmed; undefined when missing or unreadable. */
  read(rel: string): Promise<string | undefined>;
}

export const ok = (id: string, summary: string, reason = '', fix = ''): DoctorResult => ({ id, status: 'OK', summary, reason, fix });
export const warn = (id: string, summary: string, reason: string, fix: string): DoctorResult => ({ id, status: 'WARN', summary, reason, fix });
export const fail = (id: string, summary: string, reason: string, fix: string): DoctorResult => ({ id, status: 'FAIL', summary, reason, fix });

/** Files that could be large or hostile (a fixture, a mounted image) are read only up to this many bytes. */
const READ_CAP = 1 << 20;

/**
 * Read at most `cap` bytes of a regular file (or a /proc-style file). A FIFO or device node planted in a fixture or
 * a mounted image must not hang the report or fill memory: opened non-blocking, refused unless regular.
 */
export async function readCapped(path: string, cap: number): Promise<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    if (!(await fh.stat()).isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EINVAL' });
    // most files read here are a few bytes: grow in 4 KiB steps rather than allocate the cap for each
    const parts: Buffer[] = [];
    for (let got = 0; got < cap; ) {
      const buf = Buffer.alloc(Math.min(4096, cap - got));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      parts.push(buf.subarray(0, bytesRead));
      got += bytesRead;
    }
    return Buffer.concat(parts);
  } finally {
    await fh.close();
  }
}

export function makeContext(o: DoctorOptions): DoctorContext {
  const root = o.root;
  return {
    root,
    outputDir: o.outputDir,
    euid: o.euid ?? process.geteuid?.() ?? -1,
    live: root === '/' || root === '',
    read: async (rel) => {
      try {
        return (await readCapped(join(root, rel), READ_CAP)).toString('utf8').trim();
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * Run every check. A check that throws unexpectedly becomes a WARN line of its own: the report must come out
 * whole on a strange host, since that is exactly when a responder needs it.
 */
export async function runDoctor(o: DoctorOptions): Promise<DoctorResult[]> {
  const ctx = makeContext(o);
  const groups: [string, (c: DoctorContext, o: DoctorOptions) => Promise<DoctorResult[]>][] = [
    ['host', hostChecks],
    ['storage', storageChecks],
    ['cores', coreChecks],
    ['activity', activityChecks],
  ];
  const out: DoctorResult[] = [];
  for (const [name, fn] of groups) {
    try {
      out.push(...(await fn(ctx, o)));
    } catch (e) {
      out.push(warn(`${name}-error`, `the ${name} checks failed unexpectedly`, String((e as Error)?.message ?? e), 'report this as a memdump bug, with the output of --json'));
    }
  }
  return out;
}

/** Aligned text: one line per check, then indented "why" and "fix" lines for anything not OK. */
export function formatDoctor(results: readonly DoctorResult[]): string {
  const w = Math.max(...results.map((r) => r.id.length), 2);
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${r.status.padEnd(4)}  ${r.id.padEnd(w)}  ${escapeControl(r.summary)}`);
    const pad = ' '.repeat(6 + w + 2);
    if (r.status !== 'OK' && r.reason) lines.push(`${pad}why: ${escapeControl(r.reason)}`);
    if (r.fix) lines.push(`${pad}fix: ${escapeControl(r.fix)}`);
  }
  const n = (s: DoctorStatus) => results.filter((r) => r.status === s).length;
  lines.push('', `${n('OK')} OK, ${n('WARN')} WARN, ${n('FAIL')} FAIL`);
  return lines.join('\n') + '\n';
}
