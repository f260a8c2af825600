import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, REPO, runCli, tempDir } from './cli.js';

/** `memdump receive` run as a child with --json: its events, and a promise per number of uploads seen. */
export interface Served {
  child: ChildProcess;
  port: number;
  events: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
  /** Resolves once `n` upload events have been printed. */
  uploads: (n: number) => Promise<Record<string, unknown>[]>;
  /** SIGTERM (the receiver's orderly shutdown), resolved once it has exited; a no-op if it already has. */
  stop: () => Promise<void>;
}

export function serve(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [CLI, '--json', 'receive', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Record<string, unknown>[] = [];
  let err = '';
  let buf = '';
  const waiters: (() => void)[] = [];
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const ev = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        events.push(ev);
        if (ev['event'] === 'listening') {
          resolve({
            child,
            port: ev['port'] as number,
            events,
            stderr: () => err,
            exited,
            stop,
            uploads: (n) =>
              new Promise((res) => {
                const check = () => {
                  const ups = events.filter((e) => e['event'] === 'upload');
                  if (ups.length >= n) res(ups);
                  else waiters.push(check);
                };
                check();
              }),
          });
        }
        for (const w of waiters.splice(0)) w();
      }
    });
    void exited.then((code) => reject(new Error(`receiver exited ${code}: ${err}`)));
  });
}

export function relOf(path: string): string {
  return path.replace(/^tls:\/\/[^/]+\//, '');
}

/** `receive --init STATE --hosts 127.0.0.1` then one token for `caseLabel`: what an analyst does before serving. */
export async function initCollector(state: string, caseLabel: string, expires: string): Promise<{ pin: string; token: string }> {
  const init = await runCli(['receive', '--init', state, '--hosts', '127.0.0.1']);
  assert.equal(init.code, 0, init.stderr);
  const tok = await runCli(['receive', '--state', state, '--issue-token', '--case', caseLabel, '--expires', expires]);
  assert.equal(tok.code, 0, tok.stderr);
  return { pin: init.stdout.toString().trim(), token: tok.stdout.toString().trim() };
}

/** Peak resident set of a live process, from /proc/PID/status (the kernel's own high-water mark, not a sample). */
export function vmHwmKiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, 'VmHWM in /proc/PID/status');
  return Number(m[1]);
}

/**
 * The client side a fleet deploys: a tar.gz laid out like memdump-bundle.tar.gz
 * (memdump/{package.json,dist/src,node_modules}), node_modules a link to this build's.
 */
export function makeBundle(dir: string): string {
  const stage = join(dir, 'bundle-stage');
  mkdirSync(join(stage, 'memdump/dist'), { recursive: true });
  execFileSync('cp', ['-a', join(REPO, 'dist/src'), join(stage, 'memdump/dist/src')]);
  execFileSync('cp', [join(REPO, 'package.json'), join(stage, 'memdump/package.json')]);
  execFileSync('ln', ['-s', realpathSync(join(REPO, 'node_modules')), join(stage, 'memdump/node_modules')]);
  const bundle = join(dir, 'memdump-bundle.tar.gz');
  execFileSync('tar', ['-czf', bundle, '-C', stage, 'memdump']);
  return bundle;
}

/**
 * A running collector for one case: `receive --init`, a token in a 0600 file, `receive` on 127.0.0.1:0 (stopped
 * after the test), and the sender's `--to … --pin … --token-file …` arguments.
 */
export async function startCollector(t: { after: (fn: () => void | Promise<void>) => void }, caseLabel = 'IR-42', extra: string[] = []) {
  const base = tempDir(t, 'memdump-deliver-');
  const state = join(base, 'state');
  const evidence = join(base, 'evidence');
  const { pin, token } = await initCollector(state, caseLabel, '1h');
  const tokenFile = join(base, `${caseLabel.replace(/\W+/g, '_')}.token`);
  writeFileSync(tokenFile, token + '\n', { mode: 0o600 });
  const srv = await serve(['--state', state, '--dir', evidence, '--listen', '127.0.0.1:0', ...extra]);
  t.after(() => srv.stop());
  const to = ['--to', `tls://127.0.0.1:${srv.port}`, '--pin', pin, '--token-file', tokenFile];
  return { base, state, evidence, pin, tokenFile, srv, to };
}
