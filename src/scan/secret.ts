import { readFile, stat } from 'node:fs/promises';
import { MemdumpError, fromSystemError } from '../core/errors.js';

/**
 * The needles of the memory-hygiene audit (`memdump scan --find-secret @FILE`; the loop is src/scan/audit.ts): the
 * secrets file, the forms programs leave a secret in, and the search of one buffer for all of them. Nothing here
 * ever prints or logs a secret: errors name line numbers, hits name the secret's index.
 */

export interface SecretForm {
  /** Index in the secrets list. */
  secret: number;
  form: 'exact' | 'utf16le' | 'base64' | 'base64url' | 'hex';
  needle: Buffer;
}

export const MIN_SECRET_BYTES = 6;
export const MAX_SECRETS = 1000;
export const MAX_SECRETS_FILE = 1024 * 1024;

/**
 * Base64 characters that depend only on `s`, whatever bytes surround it, when s starts at byte offset ≡ `align`
 * (mod 3) of the encoded text: a character covers 6 bits of a 3-byte group, so the ones at both ends that also
 * cover a neighbour's bits are dropped.
 */
function stableBase64(s: Buffer, align: number): string {
  const padded = Buffer.concat([Buffer.alloc(align), s, Buffer.alloc(3)]);
  const text = padded.toString('base64');
  let first = -1;
  let last = -1;
  for (let c = 0; c < text.length; c++) {
    const g = 3 * Math.floor(c / 4);
    const j = c % 4;
    const lo = g + Math.floor((6 * j) / 8);
    const hi = g + Math.floor((6 * j + 5) / 8);
    if (lo >= align && hi < align + s.length) {
      if (first < 0) first = c;
      last = c;
    }
  }
  return first < 0 ? '' : text.slice(first, last + 1);
}

/** UTF-16LE as Windows and Java/JS runtimes hold text: of the decoded UTF-8 text, or byte-widened when not UTF-8. */
function utf16(s: Buffer): Buffer {
  const text = s.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(s)) return Buffer.from(text, 'utf16le');
  const out = Buffer.alloc(s.length * 2);
  for (let i = 0; i < s.length; i++) out[2 * i] = s[i]!;
  return out;
}

/**
 * Every needle to look for: exact bytes, UTF-16LE, the stable inner substring of base64 and base64url at each of the
 * three alignments (so a secret inside longer encoded text is found at any offset; a secret broken across lines of
 * wrapped base64 is not), and lower-case hex. A needle identical to one already listed for the same secret (base64url
 * without '+' or '/', alignments that coincide) is listed once.
 */
export function secretForms(secrets: Buffer[]): SecretForm[] {
  const out: SecretForm[] = [];
  secrets.forEach((s, i) => {
    const seen = new Set<string>();
    const add = (form: SecretForm['form'], needle: Buffer): void => {
      if (needle.length === 0) return;
      const key = needle.toString('latin1');
      if (seen.has(key)) return;
      seen.add(key);
      out.push({ secret: i, form, needle });
    };
    add('exact', Buffer.from(s));
    add('utf16le', utf16(s));
    const b64 = [0, 1, 2].map((a) => stableBase64(s, a));
    for (const t of b64) add('base64', Buffer.from(t, 'latin1'));
    for (const t of b64) add('base64url', Buffer.from(t.replace(/\+/g, '-').replace(/\//g, '_'), 'latin1'));
    add('hex', Buffer.from(s.toString('hex'), 'latin1'));
  });
  return out;
}

/** One secret per line (LF or CRLF), bytes kept exactly (spaces included); empty lines ignored. */
export async function readSecretsFile(path: string): Promise<Buffer[]> {
  let size: bigint;
  try {
    size = (await stat(path, { bigint: true })).size;
  } catch (e) {
    throw fromSystemError(e, `secrets file ${path}`);
  }
  if (size > BigInt(MAX_SECRETS_FILE)) throw new MemdumpError('E_USAGE', `secrets file ${path} is larger than ${MAX_SECRETS_FILE >> 20} MiB`);
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    throw fromSystemError(e, `reading secrets file ${path}`);
  }
  // stat and read race with a growing file: check again what was actually read
  if (data.length > MAX_SECRETS_FILE) throw new MemdumpError('E_USAGE', `secrets file ${path} is larger than ${MAX_SECRETS_FILE >> 20} MiB`);
  const out: Buffer[] = [];
  let line = 0;
  for (let start = 0; start <= data.length; ) {
    let nl = data.indexOf(0x0a, start);
    if (nl < 0) nl = data.length;
    line++;
    let end = nl;
    if (end > start && data[end - 1] === 0x0d) end--;
    if (end > start) {
      if (end - start < MIN_SECRET_BYTES) {
        throw new MemdumpError('E_USAGE', `secrets file ${path} line ${line}: a secret must be at least ${MIN_SECRET_BYTES} bytes (shorter ones match everywhere)`, {
          details: { line },
        });
      }
      if (out.length === MAX_SECRETS) throw new MemdumpError('E_USAGE', `secrets file ${path}: more than ${MAX_SECRETS} secrets`);
      out.push(Buffer.from(data.subarray(start, end)));
    }
    start = nl + 1;
  }
  if (out.length === 0) throw new MemdumpError('E_USAGE', `secrets file ${path} holds no secret`);
  return out;
}

/** Above this many needles one JS pass with a prefix filter (~150 MiB/s) beats one memmem pass per needle (~5 GB/s each). */
const INDEX_FROM = 32;

interface NeedleIndex {
  forms: readonly SecretForm[];
  /** A bit per 24-bit prefix that starts some needle of ≥ 4 bytes. */
  bits: Uint8Array;
  /** First 4 bytes (little-endian) → the forms (by index) that start with them. */
  byPrefix: Map<number, number[]>;
  /** Needles shorter than 4 bytes: searched with indexOf. */
  short: number[];
}

// the engine calls findSecrets once per window with the same list: keep the index of the last list seen
let lastIndex: NeedleIndex | undefined;

function indexFor(forms: readonly SecretForm[]): NeedleIndex {
  const c = lastIndex;
  if (c && c.forms.length === forms.length && c.forms.every((f, i) => f === forms[i])) return c;
  const idx: NeedleIndex = { forms: [...forms], bits: new Uint8Array(1 << 21), byPrefix: new Map(), short: [] };
  forms.forEach((f, k) => {
    const n = f.needle;
    if (n.length === 0) return;
    if (n.length < 4) {
      idx.short.push(k);
      return;
    }
    const h = (n[0]! << 16) | (n[1]! << 8) | n[2]!;
    idx.bits[h >>> 3]! |= 1 << (h & 7);
    const key = n.readUInt32LE(0);
    const list = idx.byPrefix.get(key);
    if (list) list.push(k);
    else idx.byPrefix.set(key, [k]);
  });
  lastIndex = idx;
  return idx;
}

/** Needle starts in [from, to), the whole needle inside buf; sorted by offset, then by the order of `forms`. */
export function findSecrets(buf: Buffer, from: number, to: number, forms: SecretForm[]): { form: SecretForm; offset: number }[] {
  from = Math.max(0, from);
  to = Math.min(buf.length, to);
  if (to <= from) return [];
  const hits: { offset: number; k: number }[] = [];
  const byIndexOf = (k: number): void => {
    const needle = forms[k]!.needle;
    if (needle.length === 0) return;
    for (let at = buf.indexOf(needle, from); at >= 0 && at < to; at = buf.indexOf(needle, at + 1)) hits.push({ offset: at, k });
  };
  if (forms.length <= INDEX_FROM) {
    // Buffer.indexOf is memmem: several GB/s per needle
    for (let k = 0; k < forms.length; k++) byIndexOf(k);
  } else {
    const idx = indexFor(forms);
    for (const k of idx.short) byIndexOf(k);
    const bits = idx.bits;
    const stop = Math.min(to, buf.length - 3);
    let h = from + 1 < buf.length ? (buf[from]! << 8) | buf[from + 1]! : 0;
    for (let i = from; i < stop; i++) {
      h = ((h << 8) | buf[i + 2]!) & 0xffffff;
      if ((bits[h >>> 3]! & (1 << (h & 7))) === 0) continue;
      const list = idx.byPrefix.get(buf.readUInt32LE(i));
      if (!list) continue;
      for (const k of list) {
        const n = forms[k]!.needle;
        if (i + n.length <= buf.length && buf.compare(n, 0, n.length, i, i + n.length) === 0) hits.push({ offset: i, k });
      }
    }
  }
  hits.sort((a, b) => a.offset - b.offset || a.k - b.k);
  return hits.map(({ offset, k }) => ({ form: forms[k]!, offset }));
}
