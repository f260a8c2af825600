/**
 * Distinguished Encoding Rules (X.690) — just enough to write X.509 certificates (RFC 5280) and to read back the
 * few fields we need from one (subject, SubjectPublicKeyInfo, extensions). Node can parse certificates but not
 * build them, and it does not expose raw subject bytes or extension values.
 *
 * The writer produces canonical DER only: minimal lengths, minimal INTEGERs, sorted SET OF. The reader is strict
 * in the same way (it rejects indefinite and non-minimal lengths), checks every length against the buffer before
 * slicing, and throws only coded errors, because it also reads certificates a peer sent us.
 */
import { corrupt, truncated } from '../core/bytes.js';
import { MemdumpError } from '../core/errors.js';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------- writer

export function encodeLength(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new MemdumpError('E_USAGE', `DER length ${n} is not a byte count`);
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with a single-octet identifier (every tag X.509 needs has a number below 31). */
export function tlv(tag: number, content: Buffer): Buffer {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xff || (tag & 0x1f) === 0x1f) {
    throw new MemdumpError('E_USAGE', `DER tag ${tag} needs the high-tag-number form, which this encoder does not write`);
  }
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export function sequence(...items: readonly Buffer[]): Buffer {
  return tlv(TAG.SEQUENCE, Buffer.concat(items));
}

/** SET OF: DER orders the element encodings as octet strings (X.690 11.6), so equal input sets encode equally. */
export function setOf(...items: readonly Buffer[]): Buffer {
  return tlv(TAG.SET, Buffer.concat([...items].sort(Buffer.compare)));
}

export function boolean(v: boolean): Buffer {
  return tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00]));
}

export function nullValue(): Buffer {
  return tlv(TAG.NULL, Buffer.alloc(0));
}

/** Two's complement, minimal: no leading 0x00 unless the next bit is set, no leading 0xff unless it is clear. */
export function integer(v: bigint): Buffer {
  const out: number[] = [];
  let x = v;
  for (;;) {
    const byte = Number(BigInt.asUintN(8, x));
    out.unshift(byte);
    x >>= 8n;
    const signBit = (byte & 0x80) !== 0;
    if ((x === 0n && !signBit) || (x === -1n && signBit)) break;
  }
  return tlv(TAG.INTEGER, Buffer.from(out));
}

/** A non-negative INTEGER from big-endian magnitude bytes (serial numbers come from randomBytes). */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.length === 0 ? Buffer.from([0]) : magnitude.subarray(i);
  return tlv(TAG.INTEGER, (m[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : Buffer.from(m));
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.');
  if (parts.length < 2 || parts.some((p) => !/^(0|[1-9][0-9]*)$/.test(p))) {
    throw new MemdumpError('E_USAGE', `not an object identifier: ${JSON.stringify(dotted)}`);
  }
  const arcs = parts.map((p) => BigInt(p));
  const [a, b] = arcs as [bigint, bigint];
  if (a > 2n || (a < 2n && b > 39n)) throw new MemdumpError('E_USAGE', `object identifier ${dotted} has an impossible first arc`);
  const out: number[] = [];
  for (const arc of [a * 40n + b, ...arcs.slice(2)]) {
    const groups: number[] = [Number(arc & 0x7fn)];
    for (let x = arc >> 7n; x > 0n; x >>= 7n) groups.unshift(Number(x & 0x7fn) | 0x80);
    out.push(...groups);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

export function octetString(content: Buffer): Buffer {
  return tlv(TAG.OCTET_STRING, content);
}

export function bitString(content: Buffer, unusedBits = 0): Buffer {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7 || (content.length === 0 && unusedBits !== 0)) {
    throw new MemdumpError('E_USAGE', `BIT STRING cannot have ${unusedBits} unused bits here`);
  }
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), content]));
}

/**
 * A named-bit BIT STRING (KeyUsage): bit 0 is the most significant bit of the first octet, and DER drops trailing
 * zero bits (X.690 11.2.2), so {digitalSignature} is 03 02 07 80, not 03 03 00 80 00.
 */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return bitString(Buffer.alloc(0));
  const highest = Math.max(...bits);
  if (bits.some((b) => !Number.isInteger(b) || b < 0) || highest > 255) throw new MemdumpError('E_USAGE', 'named bit out of range');
  const bytes = Buffer.alloc((highest >> 3) + 1);
  for (const b of bits) bytes[b >> 3] = (bytes[b >> 3] ?? 0) | (0x80 >> (b & 7));
  return bitString(bytes, 7 - (highest & 7));
}

export function utf8String(s: string): Buffer {
  if (/\p{Cs}/u.test(s)) throw new MemdumpError('E_USAGE', 'string contains a lone surrogate and has no UTF-8 form');
  return tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

export function printableString(s: string): Buffer {
  if (!PRINTABLE.test(s)) throw new MemdumpError('E_USAGE', `${JSON.stringify(s)} has characters PrintableString cannot hold`);
  return tlv(TAG.PRINTABLE_STRING, Buffer.from(s, 'latin1'));
}

export function ia5String(s: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(s)) throw new MemdumpError('E_USAGE', `${JSON.stringify(s)} is not ASCII (IA5String)`);
  return tlv(TAG.IA5_STRING, Buffer.from(s, 'latin1'));
}

function timeDigits(d: Date): string {
  const ms = d.getTime();
  if (!Number.isFinite(ms)) throw new MemdumpError('E_USAGE', 'invalid date');
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) throw new MemdumpError('E_USAGE', `year ${y} cannot be encoded`);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${String(y).padStart(4, '0')}${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
}

export function utcTime(d: Date): Buffer {
  const y = d.getUTCFullYear();
  if (y < 1950 || y > 2049) throw new MemdumpError('E_USAGE', `UTCTime holds 1950–2049, not ${y}`);
  return tlv(TAG.UTC_TIME, Buffer.from(timeDigits(d).slice(2), 'latin1'));
}

export function generalizedTime(d: Date): Buffer {
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(timeDigits(d), 'latin1'));
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds always present, fractions never. */
export function x509Time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  return y >= 1950 && y <= 2049 ? utcTime(d) : generalizedTime(d);
}

/** [n] EXPLICIT: a constructed context tag wrapping a complete encoding. */
export function explicit(n: number, inner: Buffer): Buffer {
  return tlv(0xa0 | checkContext(n), inner);
}

/** [n] IMPLICIT: the context tag replaces the underlying tag; `constructed` must match the replaced type. */
export function implicit(n: number, content: Buffer, constructed = false): Buffer {
  return tlv((constructed ? 0xa0 : 0x80) | checkContext(n), content);
}

function checkContext(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new MemdumpError('E_USAGE', `context tag [${n}] out of range`);
  return n;
}

// ---------------------------------------------------------------- reader

export interface Tlv {
  /** The identifier octet (class, constructed bit and number together), e.g. 0x30 for SEQUENCE. */
  tag: number;
  /** Offset of the identifier octet in the buffer. */
  start: number;
  /** Offset of the first content octet. */
  contentStart: number;
  /** Offset just past the content: the next sibling starts here. */
  end: number;
}

/** Lengths above this are refused before any arithmetic: nothing we read (a certificate) comes close. */
export const MAX_DER_LENGTH = 16 * 1024 * 1024;

/** Reads one TLV header at `offset`, checking that its content lies within [offset, limit). */
export function readTlv(buf: Buffer, offset: number, limit: number = buf.length): Tlv {
  const end = Math.min(limit, buf.length);
  if (offset >= end) throw truncated('DER element missing', BigInt(offset));
  const tag = buf[offset] ?? 0;
  if ((tag & 0x1f) === 0x1f) throw corrupt('DER high-tag-number form is not used in certificates', BigInt(offset), { tag });
  if (offset + 1 >= end) throw truncated('DER length missing', BigInt(offset + 1));
  const first = buf[offset + 1] ?? 0;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw corrupt('DER indefinite length', BigInt(offset + 1));
    if (n > 4) throw corrupt(`DER length of ${n} octets`, BigInt(offset + 1));
    if (offset + 2 + n > end) throw truncated('DER length octets cut short', BigInt(offset + 2));
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (buf[offset + 2 + i] ?? 0);
    // Canonical DER: long form only when needed, and no leading zero octet.
    if (length < 0x80 || buf[offset + 2] === 0) throw corrupt('DER non-minimal length', BigInt(offset + 1), { length });
    contentStart = offset + 2 + n;
  }
  if (length > MAX_DER_LENGTH) throw corrupt(`DER length ${length} is beyond any certificate`, BigInt(offset + 1));
  if (contentStart + length > end) {
    throw truncated(`DER content of ${length} bytes runs past its container`, BigInt(contentStart), { length, have: end - contentStart });
  }
  return { tag, start: offset, contentStart, end: contentStart + length };
}

/** Reads one TLV and insists on its tag. */
export function expectTlv(buf: Buffer, offset: number, tag: number, limit?: number, what = 'DER element'): Tlv {
  const t = readTlv(buf, offset, limit);
  if (t.tag !== tag) throw corrupt(`${what}: tag 0x${t.tag.toString(16)} where 0x${tag.toString(16)} belongs`, BigInt(offset));
  return t;
}

/** The elements directly inside a constructed TLV; each starts where the previous ended, so this cannot loop. */
export function children(buf: Buffer, parent: Tlv): Tlv[] {
  if ((parent.tag & 0x20) === 0) throw corrupt('DER primitive element has no children', BigInt(parent.start));
  const out: Tlv[] = [];
  for (let off = parent.contentStart; off < parent.end; ) {
    const t = readTlv(buf, off, parent.end);
    out.push(t);
    off = t.end;
  }
  return out;
}

export function contentOf(buf: Buffer, t: Tlv): Buffer {
  return buf.subarray(t.contentStart, t.end);
}

export function rawOf(buf: Buffer, t: Tlv): Buffer {
  return buf.subarray(t.start, t.end);
}

export function decodeInteger(content: Buffer, at = 0): bigint {
  if (content.length === 0) throw corrupt('empty INTEGER', BigInt(at));
  if (content.length > 1 && ((content[0] === 0 && !((content[1] ?? 0) & 0x80)) || (content[0] === 0xff && (content[1] ?? 0) & 0x80))) {
    throw corrupt('INTEGER not minimally encoded', BigInt(at));
  }
  const v = BigInt('0x' + content.toString('hex'));
  return (content[0] ?? 0) & 0x80 ? v - (1n << BigInt(content.length * 8)) : v;
}

export const MAX_OID_OCTETS = 128;

export function decodeOid(content: Buffer, at = 0): string {
  if (content.length === 0) throw corrupt('empty OBJECT IDENTIFIER', BigInt(at));
  // Real identifiers are a few dozen octets; the cap keeps a hostile one from costing quadratic bigint work.
  if (content.length > MAX_OID_OCTETS) throw corrupt(`OBJECT IDENTIFIER of ${content.length} octets`, BigInt(at));
  const arcs: bigint[] = [];
  let v = 0n;
  let fresh = true;
  for (const byte of content) {
    if (fresh && byte === 0x80) throw corrupt('OBJECT IDENTIFIER arc with a leading 0x80', BigInt(at));
    v = (v << 7n) | BigInt(byte & 0x7f);
    fresh = (byte & 0x80) === 0;
    if (fresh) {
      arcs.push(v);
      v = 0n;
    }
  }
  if (!fresh) throw truncated('OBJECT IDENTIFIER ends inside an arc', BigInt(at + content.length));
  const first = arcs[0] ?? 0n;
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}
