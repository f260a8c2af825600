/**
 * Ethernet MAC addresses: six hex pairs joined by one separator, ':' or '-' (never mixed), exactly 17 characters,
 * or Cisco's three dotted groups of four ("001a.2b3c.4d5e"; see ciscoAt). Unpadded colon forms ("0:1a:2b:3c:4d:5e",
 * as macOS prints them) are not reported: they cannot be told from times and counters.
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

/**
 * Cisco's dotted form "001a.2b3c.4d5e" (IOS "show mac address-table", "show arp"), found from its first dot:
 * three groups of four hex digits, nothing dotted or word-like glued on, a hex letter and a digit among them (a
 * run of 12 decimal digits is a number, and "dead.beef.cafe" a word game), and not all-zeros or broadcast.
 */
function ciscoAt(text: string, a: number): boolean {
  if (text.charCodeAt(a + 4) !== 46 || text.charCodeAt(a + 9) !== 46) return false;
  let letter = false;
  let digit = false;
  for (let i = a; i < a + 14; i++) {
    if (i === a + 4 || i === a + 9) continue;
    const c = text.charCodeAt(i);
    if (!isHex(c)) return false;
    if (c >= 48 && c <= 57) digit = true;
    else letter = true;
  }
  if (!letter || !digit) return false;
  const before = text.charCodeAt(a - 1);
  const after = text.charCodeAt(a + 14);
  if ((cls(before) & C_WORD) !== 0 || before === 46 || before === 58 || before === 45) return false;
  if ((cls(after) & C_WORD) !== 0 || after === 58 || after === 45) return false;
  if (after === 46 && (cls(text.charCodeAt(a + 15)) & C_WORD) !== 0) return false;
  const hex = text.slice(a, a + 14).replace(/\./g, '').toLowerCase();
  return hex !== 'ffffffffffff';
}

function ciscoHits(text: string): number[] {
  const out: number[] = [];
  let pos = 0;
  for (;;) {
    const dot = text.indexOf('.', pos);
    if (dot < 0) return out;
    pos = dot + 1;
    if (dot >= 4 && ciscoAt(text, dot - 4)) {
      out.push(dot - 4);
      pos = dot + 10;
    }
  }
}

export const macScanner: Scanner = {
  name: 'mac',
  kinds: ['mac'],
  description: "Ethernet MAC addresses (six hex pairs, ':' or '-', or Cisco's 001a.2b3c.4d5e), not part of a longer run",
  scan(text, emit) {
    const n = text.length;
    // The two forms never overlap (a dotted MAC holds no ':' or '-'); merge them so hits come in text order.
    const cisco = ciscoHits(text);
    let ci = 0;
    const out = (a: number, e: number): void => {
      while (ci < cisco.length && cisco[ci]! < a) {
        emit('mac', cisco[ci]!, cisco[ci]! + 14);
        ci++;
      }
      emit('mac', a, e);
    };
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
      out(a, e);
    }
    for (; ci < cisco.length; ci++) emit('mac', cisco[ci]!, cisco[ci]! + 14);
  },
};
