/**
 * URLs with a network scheme (http, https, ftp, ftps, ws, wss), anchored on "://". The host must be a dotted
 * name with a letters-only TLD ('_' allowed in its labels, as Docker and Kubernetes service names have it), "localhost", a valid IPv4 address or a bracketed IPv6 address; an optional
 * user-info part and a port (1–65535) may surround it. The path, query and fragment run over URL characters and
 * then lose trailing punctuation that prose and markup put after a link: . , ; : ! ? ' and a ')' or ']' that
 * does not close one opened inside the URL. '"', '<', '>', spaces and '\0' already end it.
 */
import { isIPv6 } from 'node:net';
import type { Scanner } from '../types.js';
import { C_ALPHA, C_LABEL, C_URL, C_WORD, cls, hostLabels, isIPv4 } from './net-common.js';

const SCHEMES = ['http', 'https', 'ftp', 'ftps', 'ws', 'wss'];

/** Is text[s, sep) a scheme (any case)? Compared in place: a slice per "://" was most of the cost of a run of them. */
function isScheme(text: string, s: number, sep: number): boolean {
  next: for (const scheme of SCHEMES) {
    if (scheme.length !== sep - s) continue;
    for (let i = 0; i < scheme.length; i++) if ((text.charCodeAt(s + i) | 0x20) !== scheme.charCodeAt(i)) continue next;
    return true;
  }
  return false;
}
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
    while (e < stop && ((cls(text.charCodeAt(e)) & C_LABEL) !== 0 || text.charCodeAt(e) === 46 || text.charCodeAt(e) === 95)) e++;
    // A trailing dot is the DNS root or a sentence end; neither belongs to the host.
    let he = e;
    while (he > h && text.charCodeAt(he - 1) === 46) he--;
    const local = he - h === 9 && text.slice(h, he).toLowerCase() === 'localhost';
    if (!local && !isIPv4(text, h, he) && hostLabels(text, h, he, { knownTld: false, underscore: true }) === 0) return -1;
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

/** URL characters plus '{' and '}': URI templates ("/repos/{owner}/{repo}") are URLs in every API client. */
const inUrl = (c: number): boolean => (cls(c) & C_URL) !== 0 || c === 123 || c === 125;

/**
 * End of a URL stored as a DER string in a certificate (CRL distribution point, CPS, OCSP): the tag byte before it
 * is not printable, so its run starts with the length byte, and the next DER element ('0' SEQUENCE, '1' SET)
 * follows with no separator ("#http://crl.securetrust.com/STCA.crl0..."). When the character before the scheme
 * opens its run and, read as a length, ends the URL exactly before a '0' or '1', the URL ends there.
 */
function derCap(text: string, s: number, e: number): number {
  if (s < 1 || (s >= 2 && text.charCodeAt(s - 2) !== 0)) return e;
  const len = text.charCodeAt(s - 1);
  if (len >= e - s || len < 12) return e;
  const next = text.charCodeAt(s + len);
  return next === 48 || next === 49 ? s + len : e;
}

function trimTail(text: string, s: number, e: number): number {
  // Bracket balance is counted once and updated as closers are dropped: recounting per trailing ')' made a path
  // of thousands of them quadratic.
  let paren = 0;
  let square = 0;
  let curly = 0;
  for (let i = s; i < e; i++) {
    const x = text.charCodeAt(i);
    if (x === 40) paren++;
    else if (x === 41) paren--;
    else if (x === 91) square++;
    else if (x === 93) square--;
    else if (x === 123) curly++;
    else if (x === 125) curly--;
  }
  for (;;) {
    const c = text.charCodeAt(e - 1);
    if (c === 46 || c === 44 || c === 59 || c === 58 || c === 33 || c === 63 || c === 39) {
      e--;
      continue;
    }
    if (c === 41 && paren < 0) paren++;
    else if (c === 93 && square < 0) square++;
    else if (c === 125 && curly < 0) curly++;
    else return e;
    e--;
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
      // One exception: a DER length byte that is a letter or digit, alone before the scheme at the start of its
      // run ("Lhttp://..."); then the URL must end where that length says (derCap).
      let glued = false;
      if (!isScheme(text, s, sep) && s + 1 < sep && (s === 0 || text.charCodeAt(s - 1) === 0)) {
        s++;
        glued = true;
      }
      const before = text.charCodeAt(s - 1);
      if (!glued && (before >= 48 && before <= 57) && (s === 1 || text.charCodeAt(s - 2) === 0)) glued = true;
      else if (!glued && ((cls(before) & C_ALPHA) !== 0 || (before >= 48 && before <= 57) || before === 43 || before === 45 || before === 46)) continue;
      if (!isScheme(text, s, sep)) continue;
      const stop = Math.min(n, sep + 3 + MAX_URL);
      // The authority (user-info, host, port) first, and the path only once the host is valid: walking the path
      // of every "://" before rejecting its host rewalked the same bytes for each of them. The authority ends at
      // the first '/', so it never reaches the next "://".
      let h = sep + 3;
      let ae = h;
      for (; ae < stop; ae++) {
        const c = text.charCodeAt(ae);
        if (c === 47 || c === 63 || c === 35 || !inUrl(c)) break;
        // user-info ends at the last '@' before the path.
        if (c === 64) h = ae + 1;
      }
      const he = hostEnd(text, h, ae);
      if (he < 0) continue;
      let e = he;
      const c = text.charCodeAt(he);
      if (he < stop && (c === 47 || c === 63 || c === 35)) {
        while (e < stop && inUrl(text.charCodeAt(e))) e++;
        e = trimTail(text, he, e);
      }
      const capped = derCap(text, s, e);
      if (glued && capped === e) continue;
      e = capped;
      pos = e;
      emit('url', s, e);
    }
  },
};
