import { Prng } from './prng.js';

const WORDS = 'kernel page table process examiner evidence the of and a to'.split(' ');

/**
 * Seeded memory-like bytes: stretches of random bytes, zeros and text, so a compressing writer meets stored,
 * compressed and all-zero chunks. `stretch` picks each stretch's length from the PRNG (unaligned by default).
 */
export function mixedContent(seed: number, n: number, stretch: (p: Prng) => number = (p) => 1000 + p.int(90_000)): Buffer {
  const p = new Prng(seed);
  const parts: Buffer[] = [];
  for (let len = 0; len < n; ) {
    const k = stretch(p);
    const kind = p.int(3);
    let s = '';
    if (kind === 2) while (s.length < k) s += WORDS[p.int(WORDS.length)]! + ' ';
    parts.push(kind === 0 ? p.bytes(k) : kind === 1 ? Buffer.alloc(k) : Buffer.from(s.slice(0, k), 'latin1'));
    len += k;
  }
  return Buffer.concat(parts).subarray(0, n);
}
