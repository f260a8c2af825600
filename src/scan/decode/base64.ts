/**
 * Base64 blocks in a window's text (latin1: one char per byte, so indices are byte offsets). Standard alphabet
 * only: base64url tokens are JWTs and identifiers, which their own scanners read. A block is
 *  - wrapped: two or more lines of one width W (a multiple of 4, 32..MAX_WIDTH; MIME 76, PEM 64) ended by "\n" or
 *    "\r\n", then optionally a last line of at most W chars with its '=' padding; or
 *  - one line: at least BASE64_MIN_CHARS chars including padding, a multiple of 4, with at least two of upper
 *    case, lower case and digits, and not mostly '/' (paths).
 * Either way the block must not touch '-', '_', a '.' before it or a '.' leading on to more text after it
 * (identifiers, JWT segments, hostnames), and padding must be canonical (unused bits zero, as every encoder
 * writes them). A line cut by the end of the text is taken as it is and marked truncated.
 * A last line must end its line (line break, end of text or a non-printable byte), so a word on the line after a
 * full-width line is not taken for the block's tail.
 * A line right after a full line of some width W that would continue that block is never a start: the block
 * belongs to the window holding its first line, so windows that begin inside it do not report its tail again.
 */
import { capOf, type DecodeBudget, type Decoded, spend } from './types.js';

/** Single-line minimum (18 decoded bytes): shorter runs are mostly words and identifiers. */
export const BASE64_MIN_CHARS = 24;
/** Narrowest wrapped line: real encoders wrap at 64 or 76 (a few at 60 or 72); 16-char words would pass. */
const MIN_WIDTH = 32;
const MAX_WIDTH = 1024;
/** Probe stride: at most the shortest segment that can start a block (a wrapped line or a single line). */
const STRIDE = 16;

const ALPHA = 1;
const PAD = 2;
const JOIN = 3;
const CLASS = new Uint8Array(65536);
const VALUE = new Uint8Array(128);
{
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let i = 0; i < 64; i++) {
    CLASS[abc.charCodeAt(i)] = ALPHA;
    VALUE[abc.charCodeAt(i)] = i;
  }
  CLASS[0x3d] = PAD;
  CLASS[0x2d] = JOIN;
  CLASS[0x5f] = JOIN;
}

const cls = (text: string, i: number): number => (i >= 0 && i < text.length ? (CLASS[text.charCodeAt(i)] as number) : 0);

/** Index after the line break at i ("\n" or "\r\n"), or -1. */
function afterBreak(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 10) return i + 1;
  if (c === 13 && text.charCodeAt(i + 1) === 10) return i + 2;
  return -1;
}

/** The char after a block may not glue it to a longer token. */
function cleanEnd(text: string, p: number): boolean {
  const k = cls(text, p);
  if (k !== 0) return false;
  return !(text.charCodeAt(p) === 0x2e && cls(text, p + 1) === ALPHA);
}

/** A line break, the end of the text or a byte that is not printable ASCII. */
function lineEnd(text: string, p: number): boolean {
  if (p >= text.length) return true;
  const c = text.charCodeAt(p);
  return c === 10 || c === 13 || c < 0x20 || c > 0x7e;
}

/** '=' after `e` (at most 2), when the padding is canonical; -1 when the padding is malformed. */
function padAfter(text: string, s: number, e: number): number {
  let p = e;
  while (p < e + 2 && text.charCodeAt(p) === 0x3d) p++;
  const pad = p - e;
  if (pad === 0) return 0;
  if (e <= s) return -1;
  const v = VALUE[text.charCodeAt(e - 1) & 0x7f] as number;
  return (pad === 1 ? v & 3 : v & 15) === 0 ? pad : -1;
}

/**
 * How the line at q continues a wrapped block of width w: a full line (returns its end, before the break, and
 * full = true), a last line (end after padding, full = false), or undefined.
 */
function lineFits(text: string, q: number, hi: number, w: number): { end: number; full: boolean } | undefined {
  let t = q;
  const lim = Math.min(hi, q + w + 1);
  while (t < lim && CLASS[text.charCodeAt(t)] === ALPHA) t++;
  const len = t - q;
  if (len === 0 || len > w) return undefined;
  if (len === w && t < hi && afterBreak(text, t) > 0) return { end: t, full: true };
  const pad = padAfter(text, q, t);
  const cut = t + pad >= text.length;
  if (pad < 0 || len + pad > w || ((len + pad) % 4 !== 0 && !cut) || !lineEnd(text, t + pad)) return undefined;
  return { end: t + pad, full: false };
}

/** True when the line starting at s would be part of a block started by an earlier full line. */
function continues(text: string, s: number, hi: number): boolean {
  let b = s - 1;
  if (text.charCodeAt(b) !== 10) return false;
  if (text.charCodeAt(b - 1) === 13) b--;
  let p = b;
  while (p > 0 && b - p < MAX_WIDTH + 1 && CLASS[text.charCodeAt(p - 1)] === ALPHA) p--;
  const w = b - p;
  if (w < MIN_WIDTH || w > MAX_WIDTH || w % 4 !== 0 || cls(text, p - 1) !== 0) return false;
  if (p > 0 && text.charCodeAt(p - 1) === 0x2e) return false;
  return lineFits(text, s, hi, w) !== undefined;
}

function singleLineOk(text: string, s: number, e: number): boolean {
  let upper = 0;
  let lower = 0;
  let digit = 0;
  let slash = 0;
  for (let i = s; i < e; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) upper = 1;
    else if (c >= 0x61 && c <= 0x7a) lower = 1;
    else if (c >= 0x30 && c <= 0x39) digit = 1;
    else if (c === 0x2f) slash++;
  }
  return upper + lower + digit >= 2 && !(slash >= 3 && slash * 12 > e - s);
}

/** The block starting at segment [s, e) (maximal run of alphabet chars), as [s, end), or -1. */
function blockAt(text: string, s: number, e: number, hi: number): number {
  const before = s > 0 ? text.charCodeAt(s - 1) : -1;
  // A segment that starts after another alphabet char is the tail of a longer one (a window began inside it).
  // '=' before is allowed: key=value forms ("AccountKey=", "payload=H4sI…") are where base64 lives.
  const k = cls(text, s - 1);
  if (k === ALPHA || k === JOIN || before === 0x2e) return -1;
  const w = e - s;
  if (w >= MIN_WIDTH && w <= MAX_WIDTH && w % 4 === 0 && e < hi && afterBreak(text, e) > 0) {
    if (continues(text, s, hi)) return -1;
    let end = e;
    let lines = 1;
    let q = afterBreak(text, e);
    while (q > 0 && q < hi) {
      const f = lineFits(text, q, hi, w);
      if (f === undefined) break;
      end = f.end;
      lines++;
      if (!f.full) break;
      q = afterBreak(text, f.end);
    }
    if (lines >= 2) return end;
  } else if (continues(text, s, hi)) return -1;
  const pad = padAfter(text, s, e);
  if (pad < 0) return -1;
  const total = w + pad;
  // A line cut by the end of the window cannot be held to its length; the engine's overlap decides how often.
  const cut = e + pad >= text.length;
  if (total < BASE64_MIN_CHARS || (!cut && (total % 4 !== 0 || !cleanEnd(text, e + pad))) || !singleLineOk(text, s, e)) return -1;
  return e + pad;
}

/**
 * Every segment worth a look is at least STRIDE chars long, so it covers a multiple of STRIDE: probing only those
 * positions and widening from a hit costs ~1/16 of a char-by-char pass, whose branch on random data mispredicts
 * once in four chars (~130 ms per 16 MiB here).
 */
function scanSpan(text: string, lo: number, hi: number, from: number, to: number, budget: DecodeBudget, out: Decoded[]): void {
  for (let p = Math.ceil(lo / STRIDE) * STRIDE; p < hi; p += STRIDE) {
    if (CLASS[text.charCodeAt(p)] !== ALPHA) continue;
    let s = p;
    while (s > 0 && CLASS[text.charCodeAt(s - 1)] === ALPHA) s--;
    let e = p + 1;
    while (e < hi && CLASS[text.charCodeAt(e)] === ALPHA) e++;
    if (s >= to) return;
    let next = e;
    if (s >= from && e - s >= STRIDE) {
      const end = blockAt(text, s, e, hi);
      if (end >= 0) {
        const cap = capOf(budget);
        if (cap <= 0) return;
        // 4 chars give 3 bytes; line breaks inside the slice only make it decode to less.
        const chars = end - s;
        const limit = Math.floor(cap / 3) * 4;
        const data = Buffer.from(text.slice(s, s + Math.min(chars, limit)), 'base64');
        spend(budget, data.length);
        out.push({ tag: 'BASE64', start: s, end, data, truncated: chars > limit || end >= text.length });
        next = end;
      }
    }
    p = Math.ceil(next / STRIDE) * STRIDE - STRIDE;
  }
}

/** Blocks starting in [from, to) of `text`. */
export function findBase64(text: string, from: number, to: number, budget: DecodeBudget): Decoded[] {
  const out: Decoded[] = [];
  scanSpan(text, Math.max(0, from), text.length, from, to, budget, out);
  return out;
}

/**
 * The same, looking only inside printable runs (start, end pairs into `text`, ascending, as the engine extracts
 * them with /[\x20-\x7e\t\n\r]{6,}/g): a block never contains other bytes, so random data costs nothing.
 */
export function findBase64InRuns(text: string, runs: Int32Array, from: number, to: number, budget: DecodeBudget): Decoded[] {
  const out: Decoded[] = [];
  for (let k = 0; k + 1 < runs.length; k += 2) {
    const rs = runs[k] as number;
    const re = runs[k + 1] as number;
    // No block is shorter than BASE64_MIN_CHARS, and a block never leaves its run: most runs in binary data go.
    if (re <= from || re - rs < BASE64_MIN_CHARS) continue;
    if (rs >= to || capOf(budget) <= 0) break;
    scanSpan(text, Math.max(rs, from), Math.min(re, text.length), from, to, budget, out);
  }
  return out;
}
