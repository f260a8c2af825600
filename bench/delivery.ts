/**
 * Loopback delivery of a 4 GiB image through TLS with hashing on both sides: `memdump acquire --to tls://` into
 * `memdump receive`, against the same bytes sent by `nc` (plain TCP, no hashing: the ceiling) and by `socat`
 * over TLS 1.3 with `sha256sum` on both ends (what `cat file | openssl s_client` style transfers amount to; the
 * openssl s_client binary itself reads stdin as commands and stops on a 'Q' line in binary data). Everything
 * lives in /dev/shm; the receiver's peak RSS is read from /proc/PID/status (VmHWM) after the transfer.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { CLI } from '../test/helpers/cli.js';
import { makeImage } from './pipeline.js';

export interface DeliveryRow {
  name: string;
  seconds: number;
  /** Receiver peak RSS (memdump receive only). */
  receiverRssMiB: number | null;
  senderRssMiB: number | null;
}

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

function waitPort(port: number, ms = 10000): Promise<void> {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve()));
      s.once('error', () => (Date.now() > until ? reject(new Error(`port ${port} never opened`)) : setTimeout(attempt, 50)));
    };
    attempt();
  });
}

function exited(p: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.once('exit', (c) => resolve(c))));
}

function vmHwmMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

let nextPort = 19400 + (process.pid % 500);

/** Receiver first, then the timed sender; the time ends when both have finished. */
async function pair(receiver: string[], sender: string[]): Promise<number> {
  const rx = spawn('bash', ['-c', receiver.join(' ')], { stdio: ['ignore', 'ignore', 'inherit'] });
  await new Promise((r) => setTimeout(r, 300));
  const t0 = performance.now();
  const tx = spawnSync('bash', ['-c', sender.join(' ')], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (tx.status !== 0) throw new Error(`sender failed: ${sender.join(' ')}`);
  await exited(rx);
  return (performance.now() - t0) / 1000;
}

export async function benchDelivery(bytes = Number(process.env.BENCH_DELIVERY_BYTES ?? 4 * 2 ** 30), runs = Number(process.env.BENCH_RUNS ?? 2)): Promise<{ bytes: number; rows: DeliveryRow[]; missing: string[] }> {
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'memdump-bench-delivery-'));
  const rows: DeliveryRow[] = [];
  const keep = (row: DeliveryRow) => {
    const old = rows.find((r) => r.name === row.name);
    if (!old) rows.push(row);
    else if (row.seconds < old.seconds) Object.assign(old, row);
  };
  const missing = ['nc', 'socat', 'sha256sum'].filter((c) => !have(c));
  try {
    const img = join(dir, 'image.raw');
    makeImage(img, bytes);
    execFileSync('cat', [img], { stdio: ['ignore', 'ignore', 'ignore'] });
    const state = join(dir, 'state');
    execFileSync(process.execPath, [CLI, 'receive', '--init', state, '--hosts', '127.0.0.1'], { stdio: 'ignore' });
    const pin = readFileSync(join(state, 'pin.txt'), 'utf8').trim();
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, execFileSync(process.execPath, [CLI, 'receive', '--issue-token', '--state', state, '--case', 'bench', '--expires', '2h']).toString().trim(), { mode: 0o600 });
    // socat wants key and certificate in one file
    writeFileSync(join(dir, 'socat.pem'), readFileSync(join(state, 'server.key'), 'utf8') + readFileSync(join(state, 'server.crt'), 'utf8'), { mode: 0o600 });

    for (let i = 0; i < runs; i++) {
      for (const digests of ['md5,sha1,sha256', 'sha256']) {
        const port = nextPort++;
        const evidence = join(dir, `evidence${i}${digests.length}`);
        const rx = spawn(process.execPath, [CLI, 'receive', '--state', state, '--dir', evidence, '--listen', `127.0.0.1:${port}`, '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
        let lines = '';
        rx.stdout!.on('data', (d: Buffer) => (lines += d.toString()));
        await waitPort(port);
        const t0 = performance.now();
        const tx = spawnSync(process.execPath, [CLI, 'acquire', '--source', 'file', '--input', img, '--no-context', '-q', '--to', `tls://127.0.0.1:${port}`, '--pin', pin, '--token-file', tokenFile, '--digests', digests, '--report', join(dir, `r${i}${digests.length}.json`)], { stdio: ['ignore', 'ignore', 'inherit'] });
        const seconds = (performance.now() - t0) / 1000;
        const rss = vmHwmMiB(rx.pid!);
        rx.kill('SIGTERM');
        await exited(rx);
        if (tx.status !== 0) throw new Error(`memdump acquire --to tls:// failed (exit ${tx.status})`);
        if (!/COMPLETE/.test(lines)) throw new Error(`the receiver did not record a COMPLETE upload: ${lines}`);
        const report = JSON.parse(readFileSync(join(dir, `r${i}${digests.length}.json`), 'utf8'));
        keep({ name: `memdump acquire --to tls:// → receive (${digests})`, seconds, receiverRssMiB: rss, senderRssMiB: Number(report.resources.peakRssBytes) / 2 ** 20 });
        rmSync(evidence, { recursive: true, force: true });
      }
      if (have('nc')) {
        const port = nextPort++;
        const out = join(dir, 'nc.out');
        keep({ name: 'nc (plain TCP, no TLS, no hashing)', seconds: await pair([`nc -l 127.0.0.1 ${port} > ${out}`], [`sleep 0; nc -N 127.0.0.1 ${port} < ${img}`]), receiverRssMiB: null, senderRssMiB: null });
        rmSync(out, { force: true });
      }
      if (have('socat')) {
        const port = nextPort++;
        const out = join(dir, 'socat.out');
        const rx = [`socat -u OPENSSL-LISTEN:${port},bind=127.0.0.1,cert=${join(dir, 'socat.pem')},verify=0,openssl-min-proto-version=TLS1.3 STDOUT | tee ${out} | sha256sum > /dev/null`];
        const tx = [`tee >(sha256sum > /dev/null) < ${img} | socat -u STDIN OPENSSL:127.0.0.1:${port},verify=0`];
        keep({ name: 'socat TLS 1.3 + sha256sum on both sides', seconds: await pair(rx, tx), receiverRssMiB: null, senderRssMiB: null });
        rmSync(out, { force: true });
      }
    }
    return { bytes, rows, missing };
  } finally {
    for (const f of readdirSync(dir)) rmSync(join(dir, f), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
