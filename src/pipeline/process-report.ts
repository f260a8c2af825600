import { readFile } from 'node:fs/promises';
import type { ProcessReport } from '../core/report-schema.js';
import type { CoreSelection } from '../sources/core-filter.js';
import { hashExe, listFds, parseLimits, parseStat, tryRead, tryReadlink } from '../sources/proc-info.js';
import type { ProcessSnapshot } from './process-dump.js';

const h = (v: bigint) => '0x' + v.toString(16);
const ids = (s: string | undefined) => (s ?? '').split(/\s+/).filter(Boolean).map(Number);

/**
 * The report's `process` section: who the process is (cmdline, exe and its SHA-256, cwd, credentials,
 * limits), its threads, every mapping with its smaps flags and what was dumped of it, open descriptors, and the
 * environment only when asked (it often holds secrets). Gathered after the threads were let go: nothing here
 * needs them stopped, and the exe hash can take a while.
 */
export async function gatherProcessReport(
  pid: number,
  procRoot: string,
  snap: ProcessSnapshot,
  readMethod: string,
  selection: readonly CoreSelection[],
  o: { environ: boolean },
): Promise<ProcessReport> {
  const base = `${procRoot}/${pid}`;
  const exePath = await tryReadlink(`${base}/exe`);
  const exe = await hashExe(pid, procRoot);
  const cmdline = await readFile(`${base}/cmdline`).catch(() => Buffer.alloc(0));
  const limits = await tryRead(`${base}/limits`);
  let fds: ProcessReport['fds'] = null;
  let fdsError: string | null = null;
  try {
    fds = await listFds(pid, procRoot);
  } catch (e) {
    fdsError = (e as Error).message;
  }
  let environ: string[] | null = null;
  if (o.environ) {
    const env = await readFile(`${base}/environ`).catch(() => undefined);
    environ = env ? env.toString('utf8').split('\0').filter(Boolean) : null;
  }
  const fi = snap.freeze.info();
  const byStart = new Map(selection.map((c) => [c.mapping.start, c]));
  const threads: ProcessReport['threads'] = [];
  for (const t of snap.freeze.threads) {
    let name = '';
    let state = '?';
    const st = await tryRead(`${base}/task/${t.tid}/stat`);
    if (st.text) {
      const s = parseStat(st.text, t.tid);
      name = s.comm;
      state = s.state;
    } else if (t.error === 'thread exited') state = 'exited';
    threads.push({ tid: t.tid, name, state, registers: t.regs !== undefined, error: t.error ?? null, pendingSignal: t.pendingSignal });
  }
  return {
    pid,
    comm: snap.stat.comm,
    exe: { path: exePath, sha256: exe.sha256, bytes: exe.bytes, error: exe.error },
    cmdline: cmdline.toString('utf8').replace(/\0$/, '').split('\0'),
    cwd: await tryReadlink(`${base}/cwd`),
    root: await tryReadlink(`${base}/root`),
    credentials: { uid: ids(snap.status['Uid']), gid: ids(snap.status['Gid']), groups: ids(snap.status['Groups']) },
    status: snap.status,
    limits: limits.text ? parseLimits(limits.text) : [],
    coredumpFilter: { value: h(BigInt(snap.filter.value)), source: snap.filter.source },
    freeze: {
      ...fi,
      consistency: fi.heldForCopy
        ? 'all threads were stopped for the whole copy: the image is a consistent snapshot'
        : 'the process ran while its memory was copied: regions may be from different moments',
    },
    threads,
    readMethod,
    mappings: snap.mappings.map((m) => {
      const c = byStart.get(m.start);
      return {
        start: h(m.start),
        end: h(m.end),
        perms: m.perms,
        offset: h(m.offset),
        dev: m.dev,
        inode: m.inode.toString(),
        path: m.path,
        vmFlags: m.vmFlags ?? null,
        rss: m.rss === undefined ? null : m.rss.toString(),
        anonymous: m.anonymous === undefined ? null : m.anonymous.toString(),
        dumped: (c?.dumpBytes ?? 0n).toString(),
        reason: c?.reason ?? 'not selected',
      };
    }),
    fds,
    fdsError,
    environ,
  };
}
