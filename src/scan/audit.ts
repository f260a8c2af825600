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

/**
 * Whether [a, b) touches a zero-filled span (readWindow's [start, end) pairs). A needle ending in NUL bytes (UTF-16)
 * would otherwise "match" into a page that was never read.
 */
function touchesZeroed(zeroed: readonly number[], a: number, b: number): boolean {
  for (let i = 0; i < zeroed.length; i += 2) if (a < (zeroed[i + 1] as number) && (zeroed[i] as number) < b) return true;
  return false;
}

export async function auditSecrets(input: ScanInput, forms: SecretForm[], o: AuditOptions = {}): Promise<AuditResult> {
  const chunk = o.chunk ?? CHUNK;
  if (!Number.isSafeInteger(chunk) || chunk < 1) throw new MemdumpError('E_USAGE', `audit chunk must be a positive integer, got ${chunk}`);
  const longest = forms.reduce((n, f) => Math.max(n, f.needle.length), 1);
  const res: AuditResult = { hits: [], bytesScanned: 0n, unreadable: [], unreadableBytes: 0n, interrupted: false };
  const total = input.regions.reduce((n, r) => n + (r.end - r.start), 0n);
  let buf = Buffer.alloc(0);
  for (const w of windows(input.regions, chunk, longest)) {
    if (o.signal?.aborted) {
      res.interrupted = true;
      break;
    }
    if (buf.length < w.length) buf = Buffer.alloc(w.length);
    const view = buf.subarray(0, w.length);
    const zeroed = await readWindow(input, w, view, res);
    for (const h of findSecrets(view, w.ownFrom, w.ownTo, forms)) {
      if (zeroed.length > 0 && touchesZeroed(zeroed, h.offset, h.offset + h.form.needle.length)) continue;
      res.hits.push({ secret: h.form.secret, form: h.form.form, address: formatAddress(w.start + BigInt(h.offset), input.addressing), region: w.region.label });
    }
    res.bytesScanned += BigInt(w.ownTo - w.ownFrom);
    o.onProgress?.(res.bytesScanned, total);
  }
  return res;
}
