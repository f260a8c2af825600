/**
 * gzip members (RFC 1952) in a window. The magic 1f 8b 08 plus the header checks below occur about once per
 * 2 GiB of random bytes, so every survivor is worth a real inflate.
 */
import { crc32 } from 'node:zlib';
import { plausibleDeflate } from './deflate-check.js';
import { inflateBounded } from './inflate.js';
import { capOf, type DecodeBudget, type Decoded, spend } from './types.js';

const MAGIC = Buffer.from([0x1f, 0x8b, 0x08]);
const FTEXT_FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const FRESERVED = 0xe0;
/** Longest FNAME / FCOMMENT accepted; real ones are a path or a sentence, and the bound keeps the scan cheap. */
const MAX_NAME = 4096;
const MAX_COMMENT = 65536;

/** End of a zero-terminated header string starting at p (index after the NUL), or -1. */
function skipZ(buf: Buffer, p: number, max: number): number {
  const limit = Math.min(buf.length, p + max);
  const z = buf.indexOf(0, p);
  return z < 0 || z >= limit ? -1 : z + 1;
}

/** Offset of the deflate body for a plausible header at `s`, or -1. */
export function gzipBodyOffset(buf: Buffer, s: number): number {
  if (s + 10 > buf.length) return -1;
  const flg = buf[s + 3] as number;
  const xfl = buf[s + 8] as number;
  const os = buf[s + 9] as number;
  if ((flg & FRESERVED) !== 0) return -1;
  // gzip(1), pigz, zlib and Python write XFL 0, 2 or 4; OS is 0..13 or 255 (unknown).
  if (xfl !== 0 && xfl !== 2 && xfl !== 4) return -1;
  if (os > 13 && os !== 255) return -1;
  let p = s + 10;
  if (flg & FEXTRA) {
    if (p + 2 > buf.length) return -1;
    p += 2 + buf.readUInt16LE(p);
  }
  if (flg & FNAME) p = p > buf.length ? -1 : skipZ(buf, p, MAX_NAME);
  if (p >= 0 && flg & FCOMMENT) p = p > buf.length ? -1 : skipZ(buf, p, MAX_COMMENT);
  if (p >= 0 && flg & FTEXT_FHCRC) p += 2;
  return p < 0 || p >= buf.length ? -1 : p;
}

/**
 * Gzip members whose magic lies in [from, to). Each member is decoded on its own (a multi-member file gives one
 * result per member, as bulk_extractor does); trailing garbage after a member is ignored.
 */
export function findGzip(buf: Buffer, from: number, to: number, budget: DecodeBudget): Decoded[] {
  const out: Decoded[] = [];
  let s = Math.max(0, from);
  const stop = Math.min(to, buf.length);
  while (s < stop && capOf(budget) > 0) {
    s = buf.indexOf(MAGIC, s);
    if (s < 0 || s >= stop) break;
    const body = gzipBodyOffset(buf, s);
    const cap = capOf(budget);
    // The JS block check has no false negatives on real streams (zlib.test.ts) and spares node:zlib the junk.
    const r = body < 0 || !plausibleDeflate(buf, body, buf.length, 1) ? undefined : inflateBounded(buf.subarray(body), 'raw', cap, true);
    if (r === undefined || r.data.length === 0) {
      s++;
      continue;
    }
    let end = buf.length;
    let truncated = r.truncated;
    if (r.ended) {
      const t = body + r.consumed;
      if (t + 8 <= buf.length) {
        end = t + 8;
        // A member whose trailer disagrees still gave its data; say the data is suspect.
        if (buf.readUInt32LE(t) !== crc32(r.data) || buf.readUInt32LE(t + 4) !== r.data.length % 0x100000000) truncated = true;
      } else truncated = true;
    }
    spend(budget, r.data.length);
    out.push({ tag: 'GZIP', start: s, end, data: r.data, truncated });
    // Compressed bytes cannot hold another member's plain magic worth reporting: resume after this one.
    s = Math.max(s + 1, r.ended ? end : body + r.consumed);
  }
  return out;
}
