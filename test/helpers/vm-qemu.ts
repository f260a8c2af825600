import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient } from '../../src/sources/qmp-client.js';
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
export async function startBareGuest(t: { after: (fn: () => void | Promise<void>) => void }, dir: string, o: { memMiB: number; paused: boolean; name?: string; uid?: number }): Promise<BareGuest> {
  if (!qemuBinary) throw new Error('qemu-system-x86_64 not installed');
  const sock = join(dir, 'qmp.sock');
  const watchSock = join(dir, 'watch.sock');
  const args = [...(o.paused ? ['-S'] : []), '-m', String(o.memMiB), '-accel', 'tcg', '-nodefaults', '-display', 'none', '-qmp', `unix:${sock},server,nowait`, '-qmp', `unix:${watchSock},server,nowait`];
  if (o.name) args.push('-name', o.name, '-uuid', '5c3a3f0e-6a3b-4d1c-9a7e-0123456789ab');
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
