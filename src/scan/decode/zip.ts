/**
 * Zip members found by their local file headers (APPNOTE 4.3.7), not through the central directory: in memory
 * and in carved data the directory is usually elsewhere or gone. Stored (0) and deflated (8) members; sizes from
 * the local header, from a Zip64 extra field (0x0001), or, when general-purpose bit 3 defers them to a data
 * descriptor, from the deflate stream's own end (deflate) or a matching descriptor signature (stored).
 * Encrypted members (bit 0) and other methods are skipped.
 */
import { plausibleDeflate } from './deflate-check.js';
import { inflateBounded } from './inflate.js';
import { capOf, type DecodeBudget, type Decoded, spend } from './types.js';

const LOCAL = Buffer.from('PK\x03\x04', 'latin1');
const DESCRIPTOR = Buffer.from('PK\x07\x08', 'latin1');
const HEADER = 30;
const FLAG_ENCRYPTED = 0x0001;
const FLAG_DESCRIPTOR = 0x0008;
/** Highest "version needed to extract" in APPNOTE 6.3 is 63. */
const MAX_VERSION = 63;
const U32_MAX = 0xffffffff;

interface Local {
  flags: number;
  method: number;
  /** Compressed size, or -1 when unknown (data descriptor). */
  csize: number;
  dataStart: number;
}

/** Zip64 compressed size from the extra field, or -1. Fields appear only for header sizes that are 0xffffffff. */
function zip64Csize(buf: Buffer, p: number, end: number, usizeMax: boolean): number {
  while (p + 4 <= end) {
    const id = buf.readUInt16LE(p);
    const len = buf.readUInt16LE(p + 2);
    const at = p + 4 + (usizeMax ? 8 : 0);
    if (id === 0x0001 && at + 8 <= Math.min(end, p + 4 + len)) {
      const v = buf.readBigUInt64LE(at);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : -1;
    }
    p += 4 + len;
  }
  return -1;
}

export function parseLocalHeader(buf: Buffer, s: number): Local | undefined {
  if (s + HEADER > buf.length) return undefined;
  const version = buf.readUInt16LE(s + 4) & 0xff;
  const flags = buf.readUInt16LE(s + 6);
  const method = buf.readUInt16LE(s + 8);
  if (version > MAX_VERSION || (method !== 0 && method !== 8) || flags & FLAG_ENCRYPTED) return undefined;
  const nameLen = buf.readUInt16LE(s + 26);
  const extraLen = buf.readUInt16LE(s + 28);
  const dataStart = s + HEADER + nameLen + extraLen;
  if (dataStart > buf.length) return undefined;
  let csize = buf.readUInt32LE(s + 18);
  const usize = buf.readUInt32LE(s + 22);
  if (flags & FLAG_DESCRIPTOR) csize = -1;
  else if (csize === U32_MAX) csize = zip64Csize(buf, s + HEADER + nameLen, dataStart, usize === U32_MAX);
  else if (method === 0 && csize !== usize) return undefined;
  if (csize < 0 && method === 0 && !(flags & FLAG_DESCRIPTOR)) return undefined;
  return { flags, method, csize, dataStart };
}

/** Length of a data descriptor at p for a member of `csize` bytes (signature optional, Zip64 or not), or 0. */
function descriptorLength(buf: Buffer, p: number, csize: number): number {
  const sig = p + 4 <= buf.length && buf.readUInt32LE(p) === 0x08074b50 ? 4 : 0;
  // Zip64 first: a 32-bit descriptor read as 64 bits only matches when the uncompressed size is 0.
  if (p + sig + 20 <= buf.length && buf.readBigUInt64LE(p + sig + 4) === BigInt(csize)) return sig + 20;
  if (p + sig + 12 <= buf.length && buf.readUInt32LE(p + sig + 4) === csize % 0x100000000) return sig + 12;
  return 0;
}

/** A stored member with a data descriptor: its data ends at the first signed descriptor whose size matches. */
function storedWithDescriptor(buf: Buffer, ds: number, cap: number): number {
  for (let p = buf.indexOf(DESCRIPTOR, ds); p >= 0 && p - ds <= cap; p = buf.indexOf(DESCRIPTOR, p + 1)) {
    if (descriptorLength(buf, p, p - ds) > 0) return p - ds;
  }
  return -1;
}

function member(buf: Buffer, s: number, h: Local, cap: number): Decoded | undefined {
  const ds = h.dataStart;
  if (h.method === 0) {
    const size = h.csize >= 0 ? h.csize : storedWithDescriptor(buf, ds, cap);
    if (size <= 0) return undefined;
    const avail = Math.min(size, buf.length - ds);
    const n = Math.min(avail, cap);
    let end = ds + size;
    if (h.flags & FLAG_DESCRIPTOR) end += descriptorLength(buf, end, size);
    return { tag: 'ZIP', start: s, end: Math.min(end, buf.length), data: buf.subarray(ds, ds + n), truncated: n < size, verbatimAt: ds };
  }
  const known = h.csize >= 0;
  const input = buf.subarray(ds, known ? Math.min(buf.length, ds + h.csize) : buf.length);
  if (!plausibleDeflate(buf, ds, ds + input.length, 1)) return undefined;
  const r = inflateBounded(input, 'raw', cap, true);
  if (r === undefined || r.data.length === 0) return undefined;
  let end: number;
  if (known) end = Math.min(buf.length, ds + h.csize);
  else if (r.ended) end = ds + r.consumed + descriptorLength(buf, ds + r.consumed, r.consumed);
  else end = buf.length;
  return { tag: 'ZIP', start: s, end, data: r.data, truncated: r.truncated };
}

/** One result per member whose local file header starts in [from, to); `start` is that header's offset. */
export function findZip(buf: Buffer, from: number, to: number, budget: DecodeBudget): Decoded[] {
  const out: Decoded[] = [];
  const stop = Math.min(to, buf.length);
  let s = Math.max(0, from);
  while (s < stop && capOf(budget) > 0) {
    s = buf.indexOf(LOCAL, s);
    if (s < 0 || s >= stop) break;
    const h = parseLocalHeader(buf, s);
    const d = h === undefined ? undefined : member(buf, s, h, capOf(budget));
    if (d === undefined) {
      s++;
      continue;
    }
    spend(budget, d.data.length);
    out.push(d);
    // A stored member may hold a whole zip: its inner headers belong to the decoded data, so resume after the
    // member. A member cut with no known end resumes after its header instead of giving up the rest of the window.
    s = d.truncated && d.end === buf.length ? s + HEADER : Math.max(s + 1, d.end);
  }
  return out;
}
