/**
 * Small character-class tests and a PEM block reader shared by the secret scanners (ccn, jwt, pem, ssh, cloud,
 * password, history, banner). Everything here works on char codes so the scanners can validate around a rare
 * anchor without allocating substrings for every candidate.
 */
import type { Emit, FeatureKind } from '../types.js';

export const isDigit = (c: number): boolean => c >= 48 && c <= 57;
export const isUpper = (c: number): boolean => c >= 65 && c <= 90;
export const isLower = (c: number): boolean => c >= 97 && c <= 122;
export const isAlnum = (c: number): boolean => isDigit(c) || isUpper(c) || isLower(c);
/** Standard base64 alphabet without padding. */
export const isB64 = (c: number): boolean => isAlnum(c) || c === 43 || c === 47;
/** base64url alphabet (RFC 4648 §5) without padding. */
export const isB64Url = (c: number): boolean => isAlnum(c) || c === 45 || c === 95;
/** '\n', '\r' and the engine's run separator '\0' all end a line. NaN (outside the text) counts as an end too. */
export const isLineEnd = (c: number): boolean => c === 10 || c === 13 || c === 0 || Number.isNaN(c);

/** Index of the first line end ('\n', '\r', '\0') at or after `i`, or text.length; looks at most `cap` chars. */
export function lineEnd(text: string, i: number, cap: number): number {
  const stop = Math.min(text.length, i + cap);
  for (let j = i; j < stop; j++) {
    const c = text.charCodeAt(j);
    if (c === 10 || c === 13 || c === 0) return j;
  }
  return stop;
}

/** True when every char of s[from, to) is printable ASCII or a tab (what a decoded credential must look like). */
export function printableAscii(s: string, from = 0, to = s.length): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 || c > 0x7e) && c !== 9) return false;
  }
  return true;
}

/**
 * Decode standard base64 (with optional '=' padding) only if it is well formed: right length modulo 4, padding
 * only at the end, and no stray bits in the last character — Buffer.from alone silently accepts all of those.
 */
export function strictBase64(s: string): Buffer | undefined {
  let n = s.length;
  if (n === 0 || n % 4 !== 0) return undefined;
  let pad = 0;
  while (pad < 2 && s.charCodeAt(n - 1 - pad) === 61) pad++;
  n -= pad;
  for (let i = 0; i < n; i++) if (!isB64(s.charCodeAt(i))) return undefined;
  const out = Buffer.from(s, 'base64');
  // Non-canonical encodings (unused low bits set) are not what an encoder writes: treat them as noise.
  if (out.toString('base64') !== s) return undefined;
  return out;
}

export interface PemBlock {
  /** End of the END line (exclusive). */
  end: number;
  /** The base64 body with line ends removed. */
  body: string;
  /** Proc-Type/DEK-Info headers were present (the body is then ciphertext, not DER). */
  headers: boolean;
}

/** Longest base64 line accepted inside a PEM block: 64 (RFC 7468), 70 (ssh-keygen), 76 (MIME) and some slack. */
const MAX_PEM_LINE = 128;

/** How the lines of one block end and are indented; fixed by the first line end after BEGIN. */
interface LineStyle {
  /** Line ends are the two characters "\\n" (or "\\r\\n"): the block sits inside a JSON or JS string. */
  escaped: boolean;
  /** Spaces or tabs in front of every following line (a YAML block scalar, an indented config value). */
  indent: number;
}
const MAX_INDENT = 64;

/**
 * Read a PEM-style block whose BEGIN line ("-----BEGIN <label>-----") ends at `afterBegin`. Accepts "\n" or
 * "\r\n" line ends — real ones, or escaped as the two characters backslash-n (a key inside a JSON string:
 * GCP service-account files, Kubernetes and Vault JSON, Terraform state) where "\/" also stands for "/" — and a
 * common indent of spaces or tabs on every line after BEGIN (YAML "key: |" blocks); the first line end after
 * BEGIN fixes both for the whole block. Then optional RFC 1421 headers (Proc-Type, DEK-Info) followed by a blank
 * line, one or more base64 lines and "-----END <label>-----". Anything else ('\0', a foreign line, a change of
 * style, a missing END within `cap` chars) means no block: the caller reports nothing rather than a guess.
 */
export function readPemBlock(text: string, afterBegin: number, label: string, cap: number): PemBlock | undefined {
  const limit = Math.min(text.length, afterBegin + cap);
  const style: LineStyle = { escaped: false, indent: 0 };
  let e0 = eolAt(text, afterBegin, false);
  if (e0 < 0) {
    e0 = eolAt(text, afterBegin, true);
    if (e0 < 0) return undefined;
    style.escaped = true;
  }
  let n = 0;
  while (n < MAX_INDENT && (text.charCodeAt(e0 + n) === 32 || text.charCodeAt(e0 + n) === 9)) n++;
  style.indent = n;
  const indent = text.slice(e0, e0 + n);
  let i = e0 + n;
  let headers = false;
  if (text.startsWith('Proc-Type:', i)) {
    // Header lines up to a blank line; continuation lines (leading space) are allowed by RFC 1421.
    for (;;) {
      const e = styledLineEnd(text, i, MAX_PEM_LINE * 2, style.escaped);
      if (e >= limit) return undefined;
      const next = eol(text, e, style, indent);
      if (next < 0) return undefined;
      if (e === i) {
        i = next;
        break;
      }
      i = next;
    }
    headers = true;
  }
  const endLine = `-----END ${label}-----`;
  const parts: string[] = [];
  for (;;) {
    if (i >= limit) return undefined;
    if (text.charCodeAt(i) === 45 /* - */) {
      if (!text.startsWith(endLine, i) || parts.length === 0) return undefined;
      const end = i + endLine.length;
      if (end > limit) return undefined;
      return { end, body: parts.join(''), headers };
    }
    let j = i;
    const stop = Math.min(limit, i + MAX_PEM_LINE * (style.escaped ? 2 : 1));
    let line = '';
    if (style.escaped) {
      // JSON may escape '/' as "\/" (PHP's json_encode does).
      for (;;) {
        const c = text.charCodeAt(j);
        if (j < stop && isB64(c)) j++;
        else if (j + 1 < stop && c === 92 && text.charCodeAt(j + 1) === 47) j += 2;
        else break;
      }
      line = text.slice(i, j).replaceAll('\\/', '/');
    } else {
      while (j < stop && isB64(text.charCodeAt(j))) j++;
    }
    const b = j;
    while (j < stop && text.charCodeAt(j) === 61) j++;
    if (j === i) return undefined;
    const next = eol(text, j, style, indent);
    if (next < 0) return undefined;
    parts.push(style.escaped ? line + text.slice(b, j) : text.slice(i, j));
    i = next;
  }
}

/** Position after a "\n" or "\r\n" at i (escaped: the characters backslash-n, backslash-r backslash-n), or -1. */
function eolAt(text: string, i: number, escaped: boolean): number {
  if (escaped) {
    if (text.charCodeAt(i) !== 92) return -1;
    const c = text.charCodeAt(i + 1);
    if (c === 110) return i + 2;
    if (c === 114 && text.charCodeAt(i + 2) === 92 && text.charCodeAt(i + 3) === 110) return i + 4;
    return -1;
  }
  const c = text.charCodeAt(i);
  if (c === 10) return i + 1;
  if (c === 13 && text.charCodeAt(i + 1) === 10) return i + 2;
  return -1;
}

/** Position after a line end in the block's style and its indent, or -1. */
function eol(text: string, i: number, style: LineStyle, indent: string): number {
  const e = eolAt(text, i, style.escaped);
  if (e < 0) return -1;
  if (style.indent === 0) return e;
  return text.startsWith(indent, e) ? e + style.indent : -1;
}

/** Like lineEnd, but an escaped line end's backslash ends the line too. */
function styledLineEnd(text: string, i: number, cap: number, escaped: boolean): number {
  if (!escaped) return lineEnd(text, i, cap);
  const stop = Math.min(text.length, i + cap);
  for (let j = i; j < stop; j++) {
    const c = text.charCodeAt(j);
    if (c === 10 || c === 13 || c === 0 || c === 92) return j;
  }
  return stop;
}

/**
 * A DER SEQUENCE that exactly fills `b` (tag 0x30, definite length). PKCS#1, SEC1, PKCS#8 and X.509 bodies all
 * are one; a random base64 blob almost never is.
 */
export function isDerSequence(b: Buffer): boolean {
  return derSequenceEnd(b, 0) === b.length;
}

/** End of the DER SEQUENCE (tag 0x30, definite length) starting at `at`, or -1. Never past the buffer. */
export function derSequenceEnd(b: Buffer, at: number): number {
  if (b.length < at + 2 || b[at] !== 0x30) return -1;
  const l0 = b[at + 1] ?? 0;
  if (l0 < 0x80) return at + 2 + l0 <= b.length ? at + 2 + l0 : -1;
  const n = l0 & 0x7f;
  if (n === 0 || n > 4 || b.length < at + 2 + n) return -1;
  let len = 0;
  for (let k = 0; k < n; k++) len = len * 256 + (b[at + 2 + k] ?? 0);
  const end = at + 2 + n + len;
  return end <= b.length ? end : -1;
}

export interface Hit {
  kind: FeatureKind;
  start: number;
  end: number;
}

/** Scanners that make one pass per anchor collect their hits and emit them in text order, as one pass would. */
export function emitInOrder(hits: Hit[], emit: Emit): void {
  hits.sort((a, b) => a.start - b.start || a.end - b.end);
  for (const h of hits) emit(h.kind, h.start, h.end);
}
