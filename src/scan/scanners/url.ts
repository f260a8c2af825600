/**
 * URLs with a network scheme (http, https, ftp, ftps, ws, wss), anchored on "://". The host must be a dotted
 * name with a letters-only TLD, "localhost", a valid IPv4 address or a bracketed IPv6 address; an optional
 * user-info part and a port (1–65535) may surround it. The path, query and fragment run over URL characters and
 * then lose trailing punctuation that prose and markup put after a link: . , ; : ! ? ' and a ')' or ']' that
 * does not close one opened inside the URL. '"', '<', '>', spaces and '\0' already end it.
 */
import { isIPv6 } from 'node:net';
import type { Scanner } from '../types.js';
import { C_ALPHA, C_LABEL, C_URL, C_WORD, cls, hostLabels, isIPv4 } from './net-common.js';

const SCHEMES = new Set(['http', 'https', 'ftp', 'ftps', 'ws', 'wss']);
/** Long enough for any real URL a scanner should report, short enough to stay inside the engine's look-ahead. */
const MAX_URL = 4096;

/** End of the host[:port] starting at h, or -1 if it is not a valid host. */
function hostEnd(text: string, h: number, stop: number): number {
  let e: number;
  if (text.charCodeAt(h) === 91) {
    const close = text.indexOf(']', h);
    if (close < 0 || close > stop || close - h > 46 || !isIPv6(text.slice(h + 1, close))) return -1;
    e = close + 1;
  } else {
    e = h;
    while (e < stop && ((cls(text.charCodeAt(e)) & C_LABEL) !== 0 || text.charCodeAt(e) === 46)) e++;
    // A trailing dot is the DNS root or a sentence end; neither belongs to the host.
    let he = e;
    while (he > h && text.charCodeAt(he - 1) === 46) he--;
    const local = he - h === 9 && text.slice(h, he).toLowerCase() === 'localhost';
    if (!local && !isIPv4(text, h, he) && hostLabels(text, h, he, { knownTld: false }) === 0) return -1;
    if (he !== e) return he;
  }
  if (text.charCodeAt(e) === 58) {
    let p = e + 1;
    let port = 0;
    while (p < stop && p - e <= 5) {
      const c = text.charCodeAt(p);
      if (c < 48 || c > 57) break;
      port = port * 10 + (c - 48);
      p++;
    }
    // An empty, zero or oversized port: the URL ends before the colon (prose like "see http://a.com: it...").
    if (p > e + 1 && port >= 1 && port <= 65535 && (p >= stop || (cls(text.charCodeAt(p)) & C_WORD) === 0)) e = p;
  }
  return e;
}

function trimTail(text: string, s: number, e: number): number {
  for (;;) {
    const c = text.charCodeAt(e - 1);
    if (c === 46 || c === 44 || c === 59 || c === 58 || c === 33 || c === 63 || c === 39) {
      e--;
      continue;
    }
    if (c === 41 || c === 93) {
      const open = c === 41 ? 40 : 91;
      let depth = 0;
      for (let i = s; i < e; i++) {
        const x = text.charCodeAt(i);
        if (x === open) depth++;
        else if (x === c) depth--;
      }
      if (depth < 0) {
        e--;
        continue;
      }
    }
    return e;
  }
}

export const urlScanner: Scanner = {
  name: 'url',
  kinds: ['url'],
  description: 'URLs (http, https, ftp, ftps, ws, wss) with a valid host',
  scan(text, emit) {
    const n = text.length;
    let pos = 0;
    for (;;) {
      const sep = text.indexOf('://', pos);
      if (sep < 0) return;
      pos = sep + 3;
      let s = sep;
      while (s > 0 && sep - s < 6 && (cls(text.charCodeAt(s - 1)) & C_ALPHA) !== 0) s--;
      // "xhttp://", "git+https://" or "view-source:http://" glue the scheme to something else: the scheme must be
      // a whole word (what precedes it is not a letter, digit or scheme character).
      const before = text.charCodeAt(s - 1);
      if ((cls(before) & C_ALPHA) !== 0 || (before >= 48 && before <= 57) || before === 43 || before === 45 || before === 46) continue;
      if (!SCHEMES.has(text.slice(s, sep).toLowerCase())) continue;
      const stop = Math.min(n, sep + 3 + MAX_URL);
      let e = sep + 3;
      while (e < stop && (cls(text.charCodeAt(e)) & C_URL) !== 0) e++;
      // user-info ends at the last '@' before the path.
      let h = sep + 3;
      for (let i = h; i < e; i++) {
        const c = text.charCodeAt(i);
        if (c === 47 || c === 63 || c === 35) break;
        if (c === 64) h = i + 1;
      }
      const he = hostEnd(text, h, e);
      if (he < 0) continue;
      const c = text.charCodeAt(he);
      if (he < e && (c === 47 || c === 63 || c === 35)) e = trimTail(text, he, e);
      else e = he;
      pos = e;
      emit('url', s, e);
    }
  },
};
