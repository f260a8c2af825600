import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient } from '../../src/sources/qmp-client.js';
import { runCli } from './cli.js';
import { findExecutable } from './qemu-guest.js';

export const qemuBinary = findExecutable('qemu-system-x86_64');

export interface BareGuest {
  sock: string;
  /** A second monitor, connected for the whole test (watches events, acts as "another operator"). */
  watch: QmpClient;
  child: ChildProcess;
  /** A fresh monitor connection (QEMU serves one client at a time: close it before memdump connects). */
  qmp(): Promise<QmpClient>;
  status(): Promise<{ status: string; running: boolean }>;
}

/**
 * A machine with no disk and no kernel: with `paused` it never starts (-S, "prelaunch"); without, the firmware
 * finds nothing to boot and spins, so the guest is genuinely running and its memory changes under it.
 */
export async function startBareGuest(t: { after: (fn: () => void | Promise<void>) => void }, dir: string, o: { memMiB: number; paused: boolean; name?: string; uid?: number; extraArgs?: readonly string[] }): Promise<BareGuest> {
  if (!qemuBinary) throw new Error('qemu-system-x86_64 not installed');
  const sock = join(dir, 'qmp.sock');
  const watchSock = join(dir, 'watch.sock');
  const args = [...(o.paused ? ['-S'] : []), '-m', String(o.memMiB), '-accel', 'tcg', '-nodefaults', '-display', 'none', '-qmp', `unix:${sock},server,nowait`, '-qmp', `unix:${watchSock},server,nowait`];
  if (o.name) args.push('-name', o.name, '-uuid', '5c3a3f0e-6a3b-4d1c-9a7e-0123456789ab');
  if (o.extraArgs) args.push(...o.extraArgs);
  // setpriv execs QEMU in place (no intermediate process), so killing the child kills QEMU
  const child = o.uid === undefined ? spawn(qemuBinary, args, { stdio: 'ignore' }) : spawn('setpriv', [`--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', qemuBinary, ...args], { stdio: 'ignore' });
  let watch: QmpClient | undefined;
  t.after(async () => {
    watch?.close();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  });
  for (let i = 0; !existsSync(sock) || !existsSync(watchSock); i++) {
    if (child.exitCode !== null) throw new Error(`qemu exited with ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const qmp = () => QmpClient.connect(sock);
  watch = await QmpClient.connect(watchSock);
  return {
    sock,
    watch,
    child,
    qmp,
    status() {
      return watch!.execute<{ status: string; running: boolean }>('query-status');
    },
  };
}

/** QEMU's own dump-guest-memory ELF of the guest, written to `file` (the independent reference). */
export async function referenceDump(g: BareGuest, file: string): Promise<void> {
  const c = await g.qmp();
  try {
    await c.execute('dump-guest-memory', { paging: false, protocol: `file:${file}` }, 300_000);
  } finally {
    c.close();
  }
}

/**
 * The pause the second monitor saw after event `afterSeq`: exactly one STOP then one RESUME, and the milliseconds
 * between their QEMU timestamps (what memdump must report as pausedMs), with the RESUME's timestamp in µs.
 */
export function pauseSeen(g: BareGuest, afterSeq: number): { ms: number; resumeUs: number } {
  const evs = g.watch.bufferedEvents().filter((e) => e.seq > afterSeq && (e.event === 'STOP' || e.event === 'RESUME'));
  assert.deepEqual(
    evs.map((e) => e.event),
    ['STOP', 'RESUME'],
  );
  const us = (e: (typeof evs)[number]) => e.timestamp!.seconds * 1e6 + e.timestamp!.microseconds;
  return { ms: Math.round((us(evs[1]!) - us(evs[0]!)) / 1000), resumeUs: us(evs[1]!) };
}

/** QEMU is not wedged after an abandoned dump: none is active, a new `memdump vm` works, the guest runs. */
export async function assertQemuUsable(g: BareGuest, dir: string): Promise<void> {
  const c = await g.qmp();
  try {
    assert.notEqual((await c.execute<{ status: string }>('query-dump')).status, 'active');
  } finally {
    c.close();
  }
  const again = await runCli(['vm', '--qmp', g.sock, '-o', join(dir, 'again.lime'), '-q']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await g.status()).running, true);
}
