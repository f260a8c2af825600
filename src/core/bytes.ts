import { MemdumpError, hex } from './errors.js';

/**
 * A bounded little-endian reader over one buffer. Every parser uses it so that no length or offset from a
 * file is trusted before it is checked: a read past the end is E_TRUNCATED with the absolute file offset.
 */
export class ByteReader {
  constructor(
    readonly buf: Buffer,
    /** Absolute file offset of buf[0], for error messages. */
    readonly base: bigint = 0n,
    readonly what = 'input',
  ) {}

  get length(): number {
    return this.buf.length;
  }

  private need(off: number, len: number): void {
    if (!Number.isInteger(off) || off < 0 || len < 0 || off + len > this.buf.length) {
      throw new MemdumpError('E_TRUNCATED', `${this.what} ends before ${len} bytes at offset ${hex(this.base + BigInt(Math.max(0, off)))}`, {
        details: { offset: hex(this.base + BigInt(Math.max(0, off))), need: len, have: this.buf.length - off },
      });
    }
  }

  u8(off: number): number {
    this.need(off, 1);
    return this.buf.readUInt8(off);
  }
  u16(off: number): number {
    this.need(off, 2);
    return this.buf.readUInt16LE(off);
  }
  u32(off: number): number {
    this.need(off, 4);
    return this.buf.readUInt32LE(off);
  }
  i32(off: number): number {
    this.need(off, 4);
    return this.buf.readInt32LE(off);
  }
  u64(off: number): bigint {
    this.need(off, 8);
    return this.buf.readBigUInt64LE(off);
  }
  bytes(off: number, len: number): Buffer {
    this.need(off, len);
    return this.buf.subarray(off, off + len);
  }
  sub(off: number, len: number, what = this.what): ByteReader {
    return new ByteReader(this.bytes(off, len), this.base + BigInt(off), what);
  }
  /** NUL-terminated string within a fixed field. */
  cstr(off: number, max: number): string {
    const b = this.bytes(off, Math.min(max, this.buf.length - off));
    const z = b.indexOf(0);
    return b.subarray(0, z < 0 ? b.length : z).toString('latin1');
  }
}

/** Convert a bigint file quantity to a JS number only when it is provably safe, or fail with E_TOO_LARGE. */
export function toSafeNumber(v: bigint, what: string): number {
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new MemdumpError('E_TOO_LARGE', `${what} ${v} is out of range`, { details: { value: v.toString() } });
  }
  return Number(v);
}

export function corrupt(what: string, offset: bigint, details: Record<string, unknown> = {}): MemdumpError {
  return new MemdumpError('E_CORRUPT', `${what} at offset ${hex(offset)}`, { details: { offset: hex(offset), ...details } });
}

export function truncated(what: string, offset: bigint, details: Record<string, unknown> = {}): MemdumpError {
  return new MemdumpError('E_TRUNCATED', `${what} at offset ${hex(offset)}`, { details: { offset: hex(offset), ...details } });
}
