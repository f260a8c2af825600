/**
 * IPv6 addresses, full and compressed, with an embedded IPv4 tail allowed. Anchored on ':': each colon opens the
 * maximal run of [0-9A-Fa-f:.] around it and the whole run must be one address (node:net's isIPv6 is the final
 * word), so a run is judged once and a window of a longer colon-hex string never becomes an address.
 *
 * Colons are everywhere in text (times, headers, "std::"), so shape rules cut what isIPv6 alone would accept:
 *  - a compressed form needs three explicit groups, or two with five hex digits between them ("fe80::1"), or is
 *    the loopback "::1": "a::b" and "::" occur by chance in random bytes every few hundred KiB;
 *  - a full form whose eight groups all have exactly two digits is a colon-hex byte string (Fibre Channel WWN,
 *    a fingerprint), not an address;
 *  - a letter, digit or '_' glued to either end makes it part of a word ("Base::Derived" never starts a run);
 *  - a run after a lone ':' is a field of a colon-separated record ("user:x:1000:1000::/home"), and decimal
 *    groups before a trailing "::" are numbers ("10:20:30::");
 *  - but a short network with its prefix length is an address ("fe80::/64", "2000::/3"), and so is "[::]".
 */
import { isIPv6 } from 'node:net';
import type { Scanner } from '../types.js';
import { C_HEX, C_WORD, cls } from './net-common.js';

const inRun = (c: number): boolean => (cls(c) & C_HEX) !== 0 || c === 58 || c === 46;

/** Length of a "/len" prefix length (0–128) at text[i], or 0. */
function prefixAt(text: string, i: number): number {
  if (text.charCodeAt(i) !== 47) return 0;
  let j = i + 1;
  let v = 0;
  while (j < i + 5 && text.charCodeAt(j) >= 48 && text.charCodeAt(j) <= 57) v = v * 10 + text.charCodeAt(j++) - 48;
  if (j === i + 1 || j > i + 4 || v > 128 || (cls(text.charCodeAt(j)) & C_WORD) !== 0) return 0;
  return j - i;
}

/** Whether an address isIPv6 accepts also has the shape of a real one (see the top of the file). */
function plausible(a: string, prefix: boolean): boolean {
  if (a === '::1') return true;
  const groups = a.split(':').filter((g) => g !== '');
  if (!a.includes('::')) {
    if (groups.length === 8 && groups.every((g) => g.length === 2)) return false;
    return true;
  }
  // "10:20:30::", "1000:1000::" (uid:gid of a passwd line): decimal numbers before a trailing "::".
  if (!prefix && a.endsWith('::') && groups.every((g) => /^[0-9]+$/.test(g))) return false;
  if (groups.length >= 3) return true;
  if (groups.length === 2) return groups[0]!.length + groups[1]!.length >= 5 || prefix;
  // "fe80::/64", "fc00::/7", "2000::/3": a network written with its prefix length.
  return groups.length === 1 && prefix && a.endsWith('::');
}

export const ipv6Scanner: Scanner = {
  name: 'ipv6',
  kinds: ['ipv6'],
  description: 'IPv6 addresses (full, compressed, IPv4-mapped), validated',
  scan(text, emit) {
    const n = text.length;
    let pos = 0;
    for (;;) {
      const colon = text.indexOf(':', pos);
      if (colon < 0) return;
      pos = colon + 1;
      // An address's colons sit between hex digits or colons; others (headers, labels, "key: value") are
      // skipped here, and the run through any address is still found from its first interior colon.
      const l = text.charCodeAt(colon - 1);
      const r = text.charCodeAt(colon + 1);
      // "[::]" (any address, "listen [::]:80") is the one address too short for the shape rules but
      // unambiguous in brackets.
      if (l === 91 && r === 58 && text.charCodeAt(colon + 2) === 93) {
        emit('ipv6', colon, colon + 2);
        pos = colon + 2;
        continue;
      }
      if (!(l === 58 || (cls(l) & C_HEX) !== 0) || !(r === 58 || (cls(r) & C_HEX) !== 0)) continue;
      let s = colon;
      while (s > 0 && inRun(text.charCodeAt(s - 1))) s--;
      let e = colon + 1;
      while (e < n && inRun(text.charCodeAt(e))) e++;
      pos = e;
      // Sentence dots and a lone separating colon at either end are punctuation, "::" is part of the address.
      while (e > s && text.charCodeAt(e - 1) === 46) e--;
      while (s < e && text.charCodeAt(s) === 46) s++;
      if (e - s >= 2 && text.charCodeAt(e - 1) === 58 && text.charCodeAt(e - 2) !== 58) e--;
      // A lone colon before the run is a field separator ("user:x:1000:1000::/home"): what follows is a
      // field, not an address.
      if (e - s >= 2 && text.charCodeAt(s) === 58 && text.charCodeAt(s + 1) !== 58) continue;
      if (e - s < 3 || e - s > 45) continue;
      if ((cls(text.charCodeAt(s - 1)) & C_WORD) !== 0 || (cls(text.charCodeAt(e)) & C_WORD) !== 0) continue;
      // Cheap shape gate before allocating: a full form has 7 colons (6 with an IPv4 tail), else it has "::".
      let colons = 0;
      let double = false;
      let dot = false;
      for (let i = s; i < e; i++) {
        const c = text.charCodeAt(i);
        if (c === 58) {
          colons++;
          if (text.charCodeAt(i + 1) === 58) double = true;
        } else if (c === 46) dot = true;
      }
      if (!double && colons !== 7 && !(colons === 6 && dot)) continue;
      const a = text.slice(s, e);
      if (isIPv6(a) && plausible(a, prefixAt(text, e) > 0)) emit('ipv6', s, e);
    }
  },
};
