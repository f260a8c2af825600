/**
 * zlib streams (RFC 1950) in a window. Only CMF 0x78 (deflate, 32 KiB window: what zlib, node, Python, Java and
 * PNG/PDF writers use) with FDICT clear; that leaves four two-byte headers, found with native indexOf. Such a
 * header occurs ~1000 times per 16 MiB of random bytes, so the first deflate block is checked in JS
 * (deflate-check.ts) and a stream must end with a good Adler-32 or run into the window end; corrupt streams give
 * nothing, because salvaging a prefix would turn random bytes into "decoded" garbage.
 */
import { plausibleDeflate } from './deflate-check.js';
import { inflateBounded } from './inflate.js';
import { capOf, type DecodeBudget, type Decoded, spend } from './types.js';

/** FLG for FLEVEL 0..3 with CMF 0x78, FDICT 0: (0x78 * 256 + FLG) % 31 == 0. */
const HEADERS = [0x01, 0x5e, 0x9c, 0xda].map((f) => Buffer.from([0x78, f]));
/** Below this a decoded stream is more likely chance than data, and too short to hold a feature anyway. */
export const ZLIB_MIN_OUTPUT = 16;
/** Candidates are found in batches so the four header searches stay native and in order. */
const BATCH = 1 << 20;

function candidates(buf: Buffer, from: number, to: number): number[] {
  const at: number[] = [];
  for (const h of HEADERS) {
    for (let p = buf.indexOf(h, from); p >= 0 && p < to; p = buf.indexOf(h, p + 1)) at.push(p);
  }
  return at.sort((a, b) => a - b);
}

export function findZlib(buf: Buffer, from: number, to: number, budget: DecodeBudget): Decoded[] {
  const out: Decoded[] = [];
  const stop = Math.min(to, buf.length);
  let resume = Math.max(0, from);
  for (let lo = resume; lo < stop && capOf(budget) > 0; lo += BATCH) {
    const hi = Math.min(stop, lo + BATCH);
    for (const s of candidates(buf, lo, hi)) {
      if (s < resume) continue;
      const cap = capOf(budget);
      if (cap <= 0) break;
      if (!plausibleDeflate(buf, s + 2, buf.length)) continue;
      const r = inflateBounded(buf.subarray(s), 'zlib', cap, false);
      if (r === undefined) continue;
      if (r.data.length < Math.min(ZLIB_MIN_OUTPUT, cap)) continue;
      const end = r.ended ? s + r.consumed : buf.length;
      spend(budget, r.data.length);
      out.push({ tag: 'ZLIB', start: s, end, data: r.data, truncated: r.truncated });
      resume = r.ended ? end : s + 1;
    }
  }
  return out;
}
