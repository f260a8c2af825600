/**
 * Ethernet MAC addresses: six hex pairs joined by one separator, ':' or '-' (never mixed), exactly 17 characters.
 * A MAC must be a whole maximal run of [0-9A-Fa-f:-] (give or take separators trailing it as punctuation), so the
 * tail of an IPv6 address ("fe80::aa:bb:cc:dd:ee:ff"), a colon-hex fingerprint or a Fibre Channel WWN (eight
 * pairs) never yields one. All-zeros and broadcast are placeholders, not hardware.
 *
 * Separators are too common in text (dates, options, times) to anchor on, so the scan probes every 17th
 * character instead: every MAC covers one probe, and a probe that is not a MAC character (three in four, in
 * text and random bytes alike) rules out every MAC through it at the cost of one table lookup.
 */
import type { Scanner } from '../types.js';
import { C_HEX, C_WORD, cls } from './net-common.js';

const LEN = 17;
const isHex = (c: number): boolean => (cls(c) & C_HEX) !== 0;
const inRun = (c: number): boolean => (cls(c) & C_HEX) !== 0 || c === 58 || c === 45;

/** text[s, s+17) is six hex pairs with one separator throughout, and not all-zeros or all-ones. */
function shape(text: string, s: number): boolean {
  const sep = text.charCodeAt(s + 2);
  if (sep !== 58 && sep !== 45) return false;
  for (let k = 0; k < 6; k++) {
    const p = s + 3 * k;
    if (!isHex(text.charCodeAt(p)) || !isHex(text.charCodeAt(p + 1))) return false;
    if (k < 5 && text.charCodeAt(p + 2) !== sep) return false;
  }
  const first = text.charCodeAt(s) | 0x20;
  if (first !== 48 && first !== 102) return true; // not '0' or 'f': cannot be a placeholder
  for (let i = s; i < s + LEN; i++) {
    const c = text.charCodeAt(i);
    if (c !== sep && (c | 0x20) !== first) return true;
  }
  return false;
}

export const macScanner: Scanner = {
  name: 'mac',
  kinds: ['mac'],
  description: "Ethernet MAC addresses (six hex pairs, ':' or '-'), not part of a longer colon-hex run",
  scan(text, emit) {
    const n = text.length;
    let p = LEN - 1;
    while (p < n) {
      if (!inRun(text.charCodeAt(p))) {
        p += LEN;
        continue;
      }
      let a = p;
      while (a > 0 && inRun(text.charCodeAt(a - 1))) a--;
      let b = p + 1;
      while (b < n && inRun(text.charCodeAt(b))) b++;
      // text[b] is outside the run; the next MAC starts at b + 1 or later and so covers b + LEN.
      p = b + LEN;
      let e = b;
      while (e > a && (text.charCodeAt(e - 1) === 58 || text.charCodeAt(e - 1) === 45)) e--;
      if (e - a !== LEN || !shape(text, a)) continue;
      // Glued to a word, or to a '.' (a dotted token), or followed by a separator or '.' that a word continues.
      const before = text.charCodeAt(a - 1);
      if ((cls(before) & C_WORD) !== 0 || before === 46) continue;
      const after = text.charCodeAt(e);
      if ((cls(after) & C_WORD) !== 0) continue;
      if ((after === 46 || after === 58 || after === 45) && (cls(text.charCodeAt(e + 1)) & C_WORD) !== 0) continue;
      emit('mac', a, e);
    }
  },
};
