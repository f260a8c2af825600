/**
 * The memory-hygiene audit behind `memdump scan --find-secret @FILE`: does this process (or dump) still hold these
 * known secrets, in any of the forms a program leaves them in? One pass over the input with the same windows as a
 * feature scan. findSecrets runs one memmem pass (Buffer.indexOf) per needle up to 32 needles, and one pass with a
 * prefix index above that; the index is cached per forms array, so every window gets the same array. A hit is owned
 * by the window holding its first byte, so a secret that crosses a window boundary is reported once.
 */
import { MemdumpError } from '../core/errors.js';
import type { ScanInput } from './input.js';
import { readWindow, windows, type Unreadable } from './run.js';
import { findSecrets, type SecretForm } from './secret.js';
import { formatAddress } from './format.js';

export interface SecretHit {
  secret: number;
  form: SecretForm['form'];
  address: string;
  region: string;
}

export interface AuditResult {
  hits: SecretHit[];
  bytesScanned: bigint;
  unreadable: Unreadable[];
  unreadableBytes: bigint;
  interrupted: boolean;
}

export interface AuditOptions {
  signal?: AbortSignal;
  onProgress?: (done: bigint, total: bigint) => void;
  /** Bytes each window owns; small values exist for tests that put needles across many window boundaries. */
  chunk?: number;
}

export const CHUNK = 16 * 1024 * 1024;

/** One read attempt, window-relative; readWindow tries the whole window, then page by page, zero-filling failures. */
type Attempt = [from: number, to: number, ok: boolean];

/**
 * Whether any byte of [a, b) was zero-filled: its last read attempt failed. A needle ending in NUL bytes (UTF-16)
 * would otherwise "match" into a page that was never read, and readWindow records only the owned part of a window,
 * not the overlap a hit may run into.
 */
function touchesFailedRead(attempts: readonly Attempt[], a: number, b: number): boolean {
  let rest: [number, number][] = [[a, b]];
  for (let i = attempts.length - 1; i >= 0 && rest.length > 0; i--) {
    const [s, e, ok] = attempts[i]!;
    const next: [number, number][] = [];
    for (const [x, y] of rest) {
      if (y <= s || e <= x) next.push([x, y]);
      else if (!ok) return true;
      else {
        if (x < s) next.push([x, s]);
        if (e < y) next.push([e, y]);
      }
    }
    rest = next;
  }
  return false;
}

export async function auditSecrets(input: ScanInput, forms: SecretForm[], o: AuditOptions = {}): Promise<AuditResult> {
  const chunk = o.chunk ?? CHUNK;
  if (!Number.isSafeInteger(chunk) || chunk < 1) throw new MemdumpError('E_USAGE', `audit chunk must be a positive integer, got ${chunk}`);
  const longest = forms.reduce((n, f) => Math.max(n, f.needle.length), 1);
  const res: AuditResult = { hits: [], bytesScanned: 0n, unreadable: [], unreadableBytes: 0n, interrupted: false };
  const total = input.regions.reduce((n, r) => n + (r.end - r.start), 0n);
  // record the read attempts of the current window, to drop hits on zero-filled bytes
  let base = 0n;
  let attempts: Attempt[] = [];
  let failed = false;
  let exited = false;
  const tracked: ScanInput = {
    description: input.description,
    addressing: input.addressing,
    regions: input.regions,
    close: () => input.close(),
    async read(addr, b, length) {
      const from = Number(addr - base);
      try {
        await input.read(addr, b, length);
        attempts.push([from, from + length, true]);
      } catch (e) {
        attempts.push([from, from + length, false]);
        failed = true;
        if ((e as { code?: unknown }).code === 'ESRCH') exited = true;
        throw e;
      }
    },
  };
  let buf = Buffer.alloc(0);
  for (const w of windows(input.regions, chunk, longest)) {
    if (o.signal?.aborted) {
      res.interrupted = true;
      break;
    }
    if (buf.length < w.length) buf = Buffer.alloc(w.length);
    const view = buf.subarray(0, w.length);
    base = w.start;
    attempts = [];
    failed = false;
    await readWindow(tracked, w, view, res);
    // a process that exited reads as all zeros: "no secret held" would be a lie
    if (exited) throw new MemdumpError('E_NOT_FOUND', 'the process exited during the audit');
    for (const h of findSecrets(view, w.ownFrom, w.ownTo, forms)) {
      if (failed && touchesFailedRead(attempts, h.offset, h.offset + h.form.needle.length)) continue;
      res.hits.push({ secret: h.form.secret, form: h.form.form, address: formatAddress(w.start + BigInt(h.offset), input.addressing), region: w.region.label });
    }
    res.bytesScanned += BigInt(w.ownTo - w.ownFrom);
    o.onProgress?.(res.bytesScanned, total);
  }
  return res;
}
