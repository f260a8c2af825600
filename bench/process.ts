/**
 * memdump process vs gcore on the same parked target with BENCH_PROCESS_MIB (default 2048) MiB of touched
 * anonymous memory, to a file in /dev/shm and to /dev/null. gcore attaches with ptrace for its whole run, so
 * its stop time is its wall time; memdump reports its own (process.freeze.stoppedMs).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../test/helpers/cli.js';
import { startTarget } from '../test/helpers/target.js';

export interface ProcessRun {
  name: string;
  seconds: number;
  stoppedMs: number | null;
  peakRssMiB: number | null;
}

function timed(cmd: string, args: string[], stdoutTo?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const fd = stdoutTo ? openSync(stdoutTo, 'w') : undefined;
    const t0 = performance.now();
    const c = spawn(cmd, args, { stdio: ['ignore', fd ?? 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    c.on('close', (code) => {
      if (fd !== undefined) closeSync(fd);
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-500)}`));
      else resolve((performance.now() - t0) / 1000);
    });
  });
}

export async function benchProcess(): Promise<{ mib: number; runs: ProcessRun[] } | undefined> {
  if (spawnSync('sh', ['-c', 'command -v gcore && command -v gcc'], { stdio: 'ignore' }).status !== 0) return undefined;
  const mib = Number(process.env['BENCH_PROCESS_MIB'] ?? 2048);
  const cleanups: (() => unknown)[] = [];
  const dir = mkdtempSync('/dev/shm/memdump-bench-process-');
  try {
    const target = await startTarget({ after: (fn) => cleanups.push(fn) }, ['--threads', '4', '--anon-mib', String(mib)], { readyTimeoutMs: 600000 });
    const pid = String(target.pid);
    const runs: ProcessRun[] = [];
    const report = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as { process?: { freeze: { stoppedMs: number | null } }; resources: { peakRssBytes: string } };
    const memdump = async (name: string, extra: string[], toNull: boolean) => {
      const out = join(dir, 'm.core');
      const rep = toNull ? join(dir, 'null.report.json') : out + '.report.json';
      const args = [CLI, 'process', pid, '-q', ...extra, ...(toNull ? ['-o', '-', '--report', rep] : ['-o', out])];
      const seconds = await timed(process.execPath, args, toNull ? '/dev/null' : undefined);
      const r = report(rep);
      runs.push({ name, seconds, stoppedMs: r.process?.freeze.stoppedMs ?? null, peakRssMiB: Number(r.resources.peakRssBytes) / 2 ** 20 });
      for (const f of [out, out + '.report.json', out + '.log', rep]) if (existsSync(f)) rmSync(f);
    };
    const gcoreRun = async (name: string, toNull: boolean) => {
      const seconds = toNull
        ? await timed('gdb', ['-nx', '-batch', '-p', pid, '-ex', 'gcore /dev/null'])
        : await timed('gcore', ['-o', join(dir, 'g'), pid]);
      runs.push({ name, seconds, stoppedMs: seconds * 1000, peakRssMiB: null });
      rmSync(join(dir, `g.${pid}`), { force: true });
    };
    await gcoreRun('gcore → file', false);
    await memdump('memdump process → file (md5+sha1+sha256)', [], false);
    await memdump('memdump process → file (--digests sha256)', ['--digests', 'sha256', '--hash-window', '0'], false);
    await gcoreRun('gdb gcore → /dev/null', true);
    await memdump('memdump process → /dev/null (md5+sha1+sha256)', [], true);
    await memdump('memdump process → /dev/null (--digests none)', ['--digests', 'none', '--hash-window', '0'], true);
    return { mib, runs };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    rmSync(dir, { recursive: true, force: true });
  }
}
