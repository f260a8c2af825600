import { hostname } from 'node:os';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { fmt } from '../pipeline/space.js';

export interface GlobalOptions {
  json?: boolean;
  quiet?: boolean;
}

const SIZE = /^(\d+)(?:\s*([KMGT])(?:i?B)?|\s*B)?(?:\/s)?$/i;
const MULT: Record<string, bigint> = { K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n };

/** "64M", "1GiB", "512K", "100MB/s", "4096" → bytes (binary units, as dd and dc3dd read them). */
export function parseSize(s: string, what: string): bigint {
  const m = SIZE.exec(s.trim());
  if (!m) throw new MemdumpError('E_USAGE', `${what}: "${s}" is not a size (examples: 4096, 64M, 1G, 50M/s)`);
  return BigInt(m[1]!) * (m[2] ? MULT[m[2].toUpperCase()]! : 1n);
}

/** A whole number from 0 to `max` (counts, depths, worker numbers). */
export function parseCount(s: string, what: string, max: number): number {
  if (!/^\d+$/.test(s.trim()) || Number(s) > max) throw new MemdumpError('E_USAGE', `${what}: "${s}" must be a whole number from 0 to ${max}`);
  return Number(s);
}

export function parsePercent(s: string, what: string): number {
  const v = Number(s.replace(/%$/, ''));
  if (!Number.isFinite(v) || v <= 0 || v > 100) throw new MemdumpError('E_USAGE', `${what}: "${s}" must be a percentage in (0, 100]`);
  return v;
}

/** HOSTNAME_YYYYMMDDTHHMMSSZ, as investigators' playbooks name dumps. */
export function defaultName(ext: string, now = new Date()): string {
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'host';
  const ts = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${host}_${ts}.${ext}`;
}

/** Progress on stderr: a rewritten line on a TTY, JSON lines with --json, nothing with --quiet. */
export function progressReporter(g: GlobalOptions, label: string): ((done: bigint, total: bigint) => void) | undefined {
  if (g.quiet) return undefined;
  const tty = process.stderr.isTTY === true;
  if (!tty && !g.json) return undefined;
  const start = performance.now();
  let last = 0;
  return (done, total) => {
    const now = performance.now();
    if (now - last < (g.json ? 1000 : 200) && done !== total) return;
    last = now;
    const secs = (now - start) / 1000;
    const rate = secs > 0 ? Number(done) / secs : 0;
    const eta = rate > 0 ? Number(total - done) / rate : 0;
    if (g.json) {
      process.stderr.write(JSON.stringify({ event: 'progress', label, done: done.toString(), total: total.toString(), bytesPerSecond: Math.round(rate), etaSeconds: Math.round(eta) }) + '\n');
    } else {
      const pct = total > 0n ? Number((done * 1000n) / total) / 10 : 100;
      process.stderr.write(`\r${label}: ${fmt(done)} / ${fmt(total)} (${pct.toFixed(1)}%)  ${fmt(BigInt(Math.round(rate)))}/s  ETA ${Math.round(eta)}s   ${done === total ? '\n' : ''}`);
    }
  };
}

export function say(g: GlobalOptions, text: string): void {
  if (!g.quiet) process.stderr.write(escapeControl(text).replace(/\\x0a/g, '\n') + '\n');
}

/** Abort on SIGINT/SIGTERM so the pipeline can stop cleanly and still write an INCOMPLETE report. */
export function abortOnSignals(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const handler = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(sig === 'SIGINT' ? 130 : 143);
    process.stderr.write(`\nmemdump: ${sig} received; stopping, keeping the .partial file and writing an INCOMPLETE report\n`);
    ac.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
