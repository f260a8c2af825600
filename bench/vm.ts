/**
 * `memdump vm`: how long the guest stays paused, against what an administrator does without memdump — QEMU's
 * own `dump-guest-memory` to a file (QEMU pauses the guest for it, as `virsh dump --memory-only` does). Both write
 * to /dev/shm. memdump's pause is its report's `source.info.vm.pausedMs` (stop → cont); QEMU's is the wall time
 * of its blocking dump command. With --spool the spool file goes to the same /dev/shm directory, so the pause is
 * pipe → tmpfs plus SHA-256, the rest of the job runs after QEMU resumed the guest. A running guest (firmware spinning, nothing to boot) of BENCH_VM_MIB MiB (1024).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient } from '../src/sources/qmp-client.js';
import { findExecutable } from '../test/helpers/qemu-guest.js';

export interface VmBenchRun {
  name: string;
  pausedMs: number;
  wallSeconds: number;
}

export interface VmBenchResult {
  memMiB: number;
  runs: VmBenchRun[];
}

async function startGuest(dir: string, memMiB: number): Promise<{ child: ChildProcess; sock: string }> {
  const sock = join(dir, 'qmp.sock');
  const child = spawn(findExecutable('qemu-system-x86_64')!, ['-m', String(memMiB), '-accel', 'tcg', '-nodefaults', '-display', 'none', '-qmp', `unix:${sock},server,nowait`], { stdio: 'ignore' });
  while (!existsSync(sock)) await new Promise((r) => setTimeout(r, 50));
  return { child, sock };
}

export async function benchVm(): Promise<VmBenchResult | undefined> {
  if (!findExecutable('qemu-system-x86_64')) return undefined;
  const memMiB = Number(process.env['BENCH_VM_MIB'] ?? 1024);
  const dir = mkdtempSync('/dev/shm/memdump-bench-vm-');
  const cli = new URL('../src/cli/main.js', import.meta.url).pathname;
  const { child, sock } = await startGuest(dir, memMiB);
  const runs: VmBenchRun[] = [];
  try {
    for (let round = 0; round < Number(process.env['BENCH_RUNS'] ?? 2); round++) {
      const ref = join(dir, `qemu-${round}.elf`);
      const qmp = await QmpClient.connect(`unix:${sock}`);
      const t0 = performance.now();
      await qmp.execute('dump-guest-memory', { paging: false, protocol: `file:${ref}` }, 600_000);
      const ms = performance.now() - t0;
      qmp.close();
      runs.push({ name: 'QEMU dump-guest-memory → file (no hashes)', pausedMs: ms, wallSeconds: ms / 1000 });
      rmSync(ref, { force: true });
      for (const [name, extra] of [
        ['memdump vm → LiME (md5+sha1+sha256, windows)', []],
        ['memdump vm → LiME (--digests sha256)', ['--digests', 'sha256']],
        ['memdump vm → LiME (--digests none --hash-window 0)', ['--digests', 'none', '--hash-window', '0']],
        ['memdump vm --spool → LiME (md5+sha1+sha256)', ['--spool', dir]],
      ] as const) {
        const out = join(dir, `vm-${round}-${runs.length}.lime`);
        const w0 = performance.now();
        const r = spawnSync(process.execPath, [cli, 'vm', '--qmp', `unix:${sock}`, '-o', out, '-q', ...extra], { encoding: 'utf8' });
        const wall = (performance.now() - w0) / 1000;
        if (r.status !== 0) throw new Error(`${name}: exit ${r.status}: ${r.stderr}`);
        const report = JSON.parse(readFileSync(out + '.report.json', 'utf8')) as { source: { info: { vm: { pausedMs: number } } } };
        runs.push({ name, pausedMs: report.source.info.vm.pausedMs, wallSeconds: wall });
        rmSync(out, { force: true });
        rmSync(out + '.report.json', { force: true });
        rmSync(out + '.log', { force: true });
      }
    }
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  // best of the rounds per kind
  const best = new Map<string, VmBenchRun>();
  for (const r of runs) if (!best.has(r.name) || best.get(r.name)!.pausedMs > r.pausedMs) best.set(r.name, r);
  return { memMiB, runs: [...best.values()] };
}
