import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(REPO, 'dist/src/cli/main.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export function runCli(args: string[], opts: { cwd?: string; stdin?: Buffer; env?: NodeJS.ProcessEnv; umask?: number; onSpawn?: (pid: number) => void } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const argv = opts.umask !== undefined ? ['-c', `umask ${opts.umask.toString(8)} && exec "$0" "$@"`, process.execPath, CLI, ...args] : [CLI, ...args];
    const child = spawn(opts.umask !== undefined ? '/bin/sh' : process.execPath, argv, { cwd: opts.cwd ?? REPO, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    if (child.pid) opts.onSpawn?.(child.pid);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.end(opts.stdin ?? Buffer.alloc(0));
  });
}

export function tempDir(t: { after: (fn: () => void) => void }, prefix = 'memdump-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}
