/**
 * The secret audit's two real target processes (test/helpers/secret-keeper.c and secret-wiper.c), used by
 * src/scan/audit.test.ts and test/cli/scan-secret.test.ts: compiled with
 * gcc into a temporary directory at test time, started with the secret written to their stdin pipe (never argv,
 * environment or a file), and killed by `t.after`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findExecutable } from './qemu-guest.js';
import { repoRoot, type AfterHook } from './target.js';

export type SecretProgram = 'secret-keeper' | 'secret-wiper';

/** Where each copy of the secret was (keeper: still is; wiper: was, now zeros). */
export interface SecretProgramInfo {
  n: number;
  stack: bigint;
  heap: bigint;
  utf16: bigint;
  base64: bigint;
  base64Len: number;
  hex: bigint;
}

export interface RunningSecretProgram {
  pid: number;
  info: SecretProgramInfo;
  kill(): Promise<void>;
}

/** Why these tests cannot run here, or undefined. */
export function secretProgramsMissing(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  return findExecutable('gcc') ? undefined : 'gcc not installed';
}

/** Compile both programs into a fresh temporary directory, removed by `t.after`. */
export function buildSecretPrograms(t: AfterHook): Record<SecretProgram, string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'memdump-secret-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const gcc = findExecutable('gcc');
  if (!gcc) throw new Error('gcc not found on PATH');
  const out = {} as Record<SecretProgram, string>;
  for (const name of ['secret-keeper', 'secret-wiper'] as const) {
    const src = path.join(repoRoot(), 'test', 'helpers', `${name}.c`);
    const exe = path.join(dir, name);
    try {
      execFileSync(gcc, ['-O0', '-g', '-Wall', '-Wextra', '-Werror', '-o', exe, src], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(`gcc failed for ${src}: ${err.message}\n${err.stderr?.toString() ?? ''}`);
    }
    out[name] = exe;
  }
  return out;
}

/** Start `exe`, write `secret` to its stdin and close it, and wait for its JSON line and "ready". */
export async function startSecretProgram(t: AfterHook, exe: string, secret: Buffer, readyTimeoutMs = 60_000): Promise<RunningSecretProgram> {
  const child = spawn(exe, [], { stdio: ['pipe', 'pipe', 'pipe'], env: {} });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  t.after(kill);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr += d));
  child.stdin.end(secret);
  const lines = await new Promise<string[]>((resolve, reject) => {
    let out = '';
    // a hang guard, not a measurement
    const timer = setTimeout(() => reject(new Error(`${exe} not ready in ${readyTimeoutMs} ms; stderr: ${stderr}`)), readyTimeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      if (out.includes('\nready\n')) {
        clearTimeout(timer);
        resolve(out.split('\n'));
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${exe} exited (${code ?? sig}) before "ready"; stderr: ${stderr}`));
    });
  });
  const j = JSON.parse(lines[0]!) as Record<string, unknown>;
  const addr = (k: string): bigint => BigInt(String(j[k]));
  return {
    pid: child.pid!,
    info: { n: Number(j['n']), stack: addr('stack'), heap: addr('heap'), utf16: addr('utf16'), base64: addr('base64'), base64Len: Number(j['base64Len']), hex: addr('hex') },
    kill,
  };
}
