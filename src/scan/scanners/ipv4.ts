/**
 * IPv4 dotted quads. Anchored on '.': each dot opens the maximal run of [0-9.] around it, and only a run that is
 * exactly four valid octets (after dropping dots at its ends that no digit continues) is an address. Judging the
 * whole run, never a window of it, is what keeps "10.0.19045.1234" (a Windows build), "1.2.3.4.5" and
 * "999.1.2.3" from yielding a quad hidden inside them.
 */
import type { Scanner } from '../types.js';
import { C_WORD, cls, isIPv4 } from './net-common.js';

const isDigitOrDot = (c: number): boolean => (c >= 48 && c <= 57) || c === 46;

export const ipv4Scanner: Scanner = {
  name: 'ipv4',
  kinds: ['ipv4'],
  description: 'IPv4 addresses (dotted quads, octets 0-255, not part of a longer dotted number)',
  scan(text, emit) {
    const n = text.length;
    let pos = 0;
    for (;;) {
      const dot = text.indexOf('.', pos);
      if (dot < 0) return;
      let s = dot;
      while (s > 0 && isDigitOrDot(text.charCodeAt(s - 1))) s--;
      let e = dot + 1;
      while (e < n && isDigitOrDot(text.charCodeAt(e))) e++;
      pos = e;
      // The shortest quad is 7 chars; a run this short or without a digit next to the dot is nothing.
      if (e - s < 7) continue;
      // Leading or trailing dots are punctuation (end of a sentence, an ellipsis) once no digit continues them,
      // which maximality of the run guarantees.
      while (s < e && text.charCodeAt(s) === 46) s++;
      while (e > s && text.charCodeAt(e - 1) === 46) e--;
      if (e - s < 7 || e - s > 15) continue;
      // A word character glued on makes it part of an identifier or a version ("v1.2.3.4", "1.2.3.4a").
      if ((cls(text.charCodeAt(s - 1)) & C_WORD) !== 0 || (cls(text.charCodeAt(e)) & C_WORD) !== 0) continue;
      if (isIPv4(text, s, e)) emit('ipv4', s, e);
    }
  },
};
