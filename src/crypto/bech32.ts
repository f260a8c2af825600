import { MemdumpError } from '../core/errors.js';

/**
 * Bech32 (BIP-173), as age uses it for keys: `hrp 1 data checksum`. Only the original bech32 constant (1), never
 * bech32m: age keys predate BIP-350 and age rejects bech32m checksums.
 */

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATORS = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
/** BIP-173's limit. age itself lifts it for long plugin recipients, which we do not accept anyway. */
export const BECH32_MAX_LENGTH = 90;

const CHAR_VALUE: Int8Array = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < CHARSET.length; i++) t[CHARSET.charCodeAt(i)] = i;
  return t;
})();

function polymod(values: readonly number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = (((chk & 0x1ffffff) << 5) ^ v) >>> 0;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk = (chk ^ (GENERATORS[i] ?? 0)) >>> 0;
  }
  return chk;
}

function hrpExpand(hrp: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) >>> 5);
  out.push(0);
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) & 31);
  return out;
}

function bad(why: string): MemdumpError {
  return new MemdumpError('E_USAGE', `invalid bech32 string: ${why}`);
}

/** Regroup bits; `pad` on the 8→5 direction, strict (no leftover bits beyond padding, which must be zero) on 5→8. */
function convertBits(data: readonly number[], from: number, to: number, pad: boolean): number[] {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const maxv = (1 << to) - 1;
  for (const v of data) {
    acc = ((acc << from) | v) & 0xffffff;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >>> bits) & maxv);
    }
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & maxv);
  } else if (bits >= from || ((acc << (to - bits)) & maxv) !== 0) {
    throw bad('non-zero or excess padding bits');
  }
  return out;
}

/** The 5-bit words of a string, checksum verified (checksum words dropped). */
export function decodeWords(text: string, maxLength = BECH32_MAX_LENGTH): { hrp: string; words: number[] } {
  if (text.length > maxLength) throw bad(`longer than ${maxLength} characters`);
  let lower = false;
  let upper = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 33 || c > 126) throw bad('character outside the printable ASCII range');
    if (c >= 97 && c <= 122) lower = true;
    if (c >= 65 && c <= 90) upper = true;
  }
  if (lower && upper) throw bad('mixed case');
  const s = text.toLowerCase();
  const sep = s.lastIndexOf('1');
  if (sep < 1) throw bad('missing separator or empty human-readable part');
  if (sep + 7 > s.length) throw bad('too short for a checksum');
  const hrp = s.slice(0, sep);
  const words: number[] = [];
  for (let i = sep + 1; i < s.length; i++) {
    const v = CHAR_VALUE[s.charCodeAt(i)] ?? -1;
    if (v < 0) throw bad(`character '${s[i] ?? ''}' is not in the bech32 alphabet`);
    words.push(v);
  }
  if (polymod([...hrpExpand(hrp), ...words]) !== 1) throw bad('checksum mismatch');
  return { hrp, words: words.slice(0, -6) };
}

/** Bytes carried by a bech32 string (the hrp comes back lowercased). */
export function bech32Decode(text: string, maxLength = BECH32_MAX_LENGTH): { hrp: string; data: Buffer } {
  const { hrp, words } = decodeWords(text, maxLength);
  return { hrp, data: Buffer.from(convertBits(words, 5, 8, false)) };
}

/** Lowercase bech32 of 5-bit words under `hrp`. */
export function encodeWords(hrp: string, words: readonly number[], maxLength = BECH32_MAX_LENGTH): string {
  const h = hrp.toLowerCase();
  if (h.length < 1) throw bad('empty human-readable part');
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c < 33 || c > 126) throw bad('human-readable part outside printable ASCII');
  }
  const mod = polymod([...hrpExpand(h), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  let out = h + '1';
  for (const w of words) out += CHARSET[w & 31];
  for (let i = 0; i < 6; i++) out += CHARSET[(mod >>> (5 * (5 - i))) & 31];
  if (out.length > maxLength) throw bad(`encoding would be longer than ${maxLength} characters`);
  return out;
}

/** Lowercase bech32 of `data` under `hrp` (callers upper-case the whole string when the format wants it). */
export function bech32Encode(hrp: string, data: Uint8Array, maxLength = BECH32_MAX_LENGTH): string {
  return encodeWords(hrp, convertBits(Array.from(data), 8, 5, true), maxLength);
}
