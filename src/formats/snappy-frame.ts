/**
 * The snappy framing format (google/snappy framing_format.txt), as AVML writes one per record.
 *
 * A framed stream is a sequence of chunks: 1-byte type, 3-byte little-endian body length, body.
 *   0xff  stream identifier, body "sNaPpY" (first chunk of every stream; may repeat)
 *   0x00  compressed data: masked CRC-32C (u32 LE) of the uncompressed bytes, then a raw snappy block
 *   0x01  uncompressed data: masked CRC-32C, then the bytes
 *   0x02-0x7f reserved, unskippable: a decoder must fail
 *   0x80-0xfd reserved, skippable; 0xfe padding: skipped
 * A data chunk carries at most 65536 uncompressed bytes.
 *
 * Writing: `SnappyFrameEncoder` cuts its input into 65536-byte chunks and compresses each with the native `snappy`
 * package (which wraps the same Rust `snap` block encoder AVML links), storing a chunk uncompressed under the rule
 * of snap's FrameEncoder: compressed only when it saves more than 1/8 (compressed length < n - floor(n/8)).
 * So, given the same snap block encoder, our bytes equal AVML's (AVML hands each record to the encoder whole, which
 * cuts it into 65536-byte chunks from the record start, exactly as we do).
 *
 * Reading: `inspectChunk` checks a chunk from its first 13 bytes (header, CRC, length varint) without reading the
 * body, so a caller can walk a stream cheaply; `decodeDataChunk` decodes and checks one data chunk;
 * `decodeFramedStream` does both for a stream in memory. No length from the input is trusted before it is checked
 * against the bytes that exist; nothing allocates more than one chunk body (< 16 MiB, the 24-bit limit) or the
 * caller's `maxOutput`, and every step consumes at least 4 bytes, so no input can make these loop forever.
 */
import { compressSync, uncompressSync } from 'snappy';
import { corrupt, truncated } from '../core/bytes.js';
import { crc32c, maskCrc, unmaskCrc } from '../core/crc32c.js';
import { MemdumpError, hex } from '../core/errors.js';

export const CHUNK_COMPRESSED = 0x00;
export const CHUNK_UNCOMPRESSED = 0x01;
export const CHUNK_PADDING = 0xfe;
export const CHUNK_STREAM_IDENTIFIER = 0xff;

/** `ff 06 00 00 "sNaPpY"`: starts every framed stream. */
export const STREAM_IDENTIFIER: Buffer = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);
const STREAM_BODY = STREAM_IDENTIFIER.subarray(4);

/** Most uncompressed bytes one data chunk may carry. */
export const MAX_CHUNK_DATA = 65536;
/** Chunk header: type byte and 24-bit length. */
export const CHUNK_HEADER_SIZE = 4;
/** Bytes `inspectChunk` needs from the start of a chunk: header, CRC, and a snappy length varint of up to 5 bytes. */
export const CHUNK_PREAMBLE_SIZE = 13;

export type ChunkKind = 'stream-identifier' | 'compressed' | 'uncompressed' | 'padding' | 'skippable';

export interface ChunkInfo {
  readonly kind: ChunkKind;
  readonly type: number;
  /** Absolute offset of the chunk header. */
  readonly offset: bigint;
  /** Body length from the header (excludes the 4 header bytes). */
  readonly bodyLength: number;
  /** Uncompressed bytes the chunk yields (0 for non-data chunks). */
  readonly dataLength: number;
}

/** snap's FrameEncoder rule: keep the compressed form only when it saves more than an eighth. */
export function worthCompressing(compressedLength: number, rawLength: number): boolean {
  return compressedLength < rawLength - Math.floor(rawLength / 8);
}

/** One data chunk (header, masked CRC, body) for at most 65536 bytes. */
export function encodeChunk(data: Uint8Array): Buffer {
  if (data.length > MAX_CHUNK_DATA) throw new RangeError(`snappy chunk of ${data.length} bytes exceeds ${MAX_CHUNK_DATA}`);
  const crc = maskCrc(crc32c(data));
  const packed = data.length > 0 ? compressSync(data) : undefined;
  const compressed = packed !== undefined && worthCompressing(packed.length, data.length);
  const body = compressed ? packed : data;
  const out = Buffer.allocUnsafe(8 + body.length);
  const len = 4 + body.length;
  out[0] = compressed ? CHUNK_COMPRESSED : CHUNK_UNCOMPRESSED;
  out[1] = len & 0xff;
  out[2] = (len >>> 8) & 0xff;
  out[3] = len >>> 16;
  out.writeUInt32LE(crc, 4);
  out.set(body, 8);
  return out;
}

export interface FrameEncoderStats {
  /** Uncompressed bytes accepted. */
  bytesIn: number;
  /** Framed bytes produced, stream identifier included. */
  bytesOut: number;
  compressedChunks: number;
  uncompressedChunks: number;
}

/**
 * Streaming writer of one framed stream. `push` accepts data of any size and returns the complete chunks it could
 * form (the stream identifier first); `finish` returns the last, partial chunk. Concatenated, the returned buffers
 * are the stream. Buffers handed to `push` are not retained; returned buffers are fresh (never reused).
 * A stream with no data at all is just the stream identifier.
 */
export class SnappyFrameEncoder {
  /** Partial chunk carried between pushes; allocated on first need. */
  private pendingBuf: Buffer | undefined;
  private pendingLength = 0;
  private started = false;
  private finished = false;
  readonly stats: FrameEncoderStats = { bytesIn: 0, bytesOut: 0, compressedChunks: 0, uncompressedChunks: 0 };

  push(data: Uint8Array): Buffer[] {
    if (this.finished) throw new Error('SnappyFrameEncoder: push after finish');
    const out: Buffer[] = [];
    this.start(out);
    this.stats.bytesIn += data.length;
    let i = 0;
    if (this.pendingLength > 0) {
      const pending = this.pending();
      const n = Math.min(MAX_CHUNK_DATA - this.pendingLength, data.length);
      pending.set(data.subarray(0, n), this.pendingLength);
      this.pendingLength += n;
      i = n;
      if (this.pendingLength === MAX_CHUNK_DATA) this.emit(pending, out);
    }
    // Whole chunks straight from the caller's buffer; the remainder waits in `pending`.
    while (data.length - i >= MAX_CHUNK_DATA) {
      this.emit(data.subarray(i, i + MAX_CHUNK_DATA), out);
      i += MAX_CHUNK_DATA;
    }
    if (i < data.length) {
      this.pending().set(data.subarray(i), 0);
      this.pendingLength = data.length - i;
    }
    return out;
  }

  private pending(): Buffer {
    this.pendingBuf ??= Buffer.allocUnsafe(MAX_CHUNK_DATA);
    return this.pendingBuf;
  }

  finish(): Buffer[] {
    if (this.finished) throw new Error('SnappyFrameEncoder: finish called twice');
    const out: Buffer[] = [];
    this.start(out);
    if (this.pendingLength > 0) this.emit(this.pending().subarray(0, this.pendingLength), out);
    this.finished = true;
    return out;
  }

  private start(out: Buffer[]): void {
    if (this.started) return;
    this.started = true;
    out.push(Buffer.from(STREAM_IDENTIFIER));
    this.stats.bytesOut += STREAM_IDENTIFIER.length;
  }

  private emit(data: Uint8Array, out: Buffer[]): void {
    const chunk = encodeChunk(data);
    if (chunk[0] === CHUNK_COMPRESSED) this.stats.compressedChunks++;
    else this.stats.uncompressedChunks++;
    this.stats.bytesOut += chunk.length;
    out.push(chunk);
    this.pendingLength = 0;
  }
}

/** Frame a whole buffer in one go (tests, small inputs). */
export function encodeFramedStream(data: Uint8Array): Buffer {
  const enc = new SnappyFrameEncoder();
  return Buffer.concat([...enc.push(data), ...enc.finish()]);
}

/**
 * The uncompressed length a raw snappy block announces (its leading varint), or undefined when the varint does
 * not end within `block` or within 5 bytes (snappy lengths are 32-bit).
 */
export function snappyBlockLength(block: Uint8Array, start = 0, end = block.length): { value: number; size: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 5 && start + i < end; i++) {
    const b = block[start + i]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return { value, size: i + 1 };
    scale *= 128;
  }
  return undefined;
}

/**
 * Check one chunk from its first bytes. `pre` holds the bytes from the chunk header on, at least
 * min(CHUNK_PREAMBLE_SIZE, remaining); `remaining` is how many bytes the stream (or file) still has from `offset`;
 * `first` says this must be the stream identifier. Throws E_TRUNCATED when the chunk runs past `remaining`,
 * E_CORRUPT for anything the format forbids. The CRC and compressed body are not checked here (decodeDataChunk).
 */
export function inspectChunk(pre: Buffer, offset: bigint, remaining: bigint, first: boolean, what = 'snappy stream'): ChunkInfo {
  if (remaining < BigInt(CHUNK_HEADER_SIZE) || pre.length < CHUNK_HEADER_SIZE) {
    throw truncated(`${what} ends inside a chunk header`, offset, { have: remaining.toString() });
  }
  const type = pre[0]!;
  const bodyLength = pre[1]! | (pre[2]! << 8) | (pre[3]! << 16);
  if (first && type !== CHUNK_STREAM_IDENTIFIER) {
    throw corrupt(`${what} does not start with the snappy stream identifier (chunk type ${hex(type)})`, offset);
  }
  // Constraints the header alone violates come first: they are corruption whatever follows.
  if (type >= 0x02 && type <= 0x7f) throw corrupt(`${what}: reserved unskippable chunk type ${hex(type)}`, offset, { chunkType: type });
  if (type === CHUNK_STREAM_IDENTIFIER && bodyLength !== STREAM_BODY.length) {
    throw corrupt(`${what}: stream identifier chunk of ${bodyLength} bytes (must be ${STREAM_BODY.length})`, offset);
  }
  if (type === CHUNK_UNCOMPRESSED && bodyLength < 4) throw corrupt(`${what}: uncompressed chunk of ${bodyLength} bytes has no room for its CRC`, offset);
  if (type === CHUNK_UNCOMPRESSED && bodyLength - 4 > MAX_CHUNK_DATA) {
    throw corrupt(`${what}: uncompressed chunk holds ${bodyLength - 4} bytes (limit ${MAX_CHUNK_DATA})`, offset);
  }
  if (type === CHUNK_COMPRESSED && bodyLength < 5) throw corrupt(`${what}: compressed chunk of ${bodyLength} bytes has no room for CRC and data`, offset);
  if (BigInt(CHUNK_HEADER_SIZE + bodyLength) > remaining) {
    throw truncated(`${what}: chunk of type ${hex(type)} needs ${bodyLength} body bytes, ${remaining - 4n} remain`, offset, {
      chunkType: type,
      need: bodyLength,
    });
  }
  const needPre = Math.min(CHUNK_PREAMBLE_SIZE, CHUNK_HEADER_SIZE + bodyLength);
  if (pre.length < needPre) throw new RangeError(`inspectChunk: got ${pre.length} preamble bytes, need ${needPre}`);
  const base = { type, offset, bodyLength };
  if (type === CHUNK_STREAM_IDENTIFIER) {
    if (!pre.subarray(4, 10).equals(STREAM_BODY)) throw corrupt(`${what}: malformed stream identifier chunk`, offset);
    return { ...base, kind: 'stream-identifier', dataLength: 0 };
  }
  if (type === CHUNK_UNCOMPRESSED) return { ...base, kind: 'uncompressed', dataLength: bodyLength - 4 };
  if (type === CHUNK_COMPRESSED) {
    const len = snappyBlockLength(pre, 8, CHUNK_HEADER_SIZE + bodyLength);
    if (len === undefined) throw corrupt(`${what}: compressed chunk has a malformed length varint`, offset);
    if (len.value > MAX_CHUNK_DATA) throw corrupt(`${what}: compressed chunk claims ${len.value} bytes (limit ${MAX_CHUNK_DATA})`, offset);
    return { ...base, kind: 'compressed', dataLength: len.value };
  }
  if (type === CHUNK_PADDING) return { ...base, kind: 'padding', dataLength: 0 };
  return { ...base, kind: 'skippable', dataLength: 0 };
}

/**
 * Decode one data chunk. `body` is the chunk body (masked CRC, then payload); `offset` the chunk header's absolute
 * offset for messages; `expectedLength`, when given, the uncompressed length the caller indexed.
 * Returns the uncompressed bytes (for an uncompressed chunk, a view into `body`).
 */
export function decodeDataChunk(type: number, body: Buffer, offset: bigint, expectedLength?: number, what = 'snappy stream'): Buffer {
  if (body.length < 4) throw corrupt(`${what}: data chunk of ${body.length} bytes has no room for its CRC`, offset);
  const stored = body.readUInt32LE(0);
  const payload = body.subarray(4);
  let data: Buffer;
  if (type === CHUNK_UNCOMPRESSED) {
    data = payload;
  } else if (type === CHUNK_COMPRESSED) {
    const len = snappyBlockLength(payload);
    if (len === undefined) throw corrupt(`${what}: compressed chunk has a malformed length varint`, offset);
    if (len.value > MAX_CHUNK_DATA) throw corrupt(`${what}: compressed chunk claims ${len.value} bytes (limit ${MAX_CHUNK_DATA})`, offset);
    let out: string | Buffer;
    try {
      out = uncompressSync(payload, { asBuffer: true });
    } catch (e) {
      throw corrupt(`${what}: compressed chunk does not decompress (${e instanceof Error ? e.message : String(e)})`, offset);
    }
    if (typeof out === 'string' || out.length !== len.value) {
      throw corrupt(`${what}: compressed chunk decompressed to ${out.length} bytes, announced ${len.value}`, offset);
    }
    data = out;
  } else {
    throw corrupt(`${what}: chunk type ${hex(type)} carries no data`, offset);
  }
  if (data.length > MAX_CHUNK_DATA) throw corrupt(`${what}: chunk holds ${data.length} bytes (limit ${MAX_CHUNK_DATA})`, offset);
  if (expectedLength !== undefined && data.length !== expectedLength) {
    throw corrupt(`${what}: chunk holds ${data.length} bytes, index says ${expectedLength}`, offset);
  }
  const actual = maskCrc(crc32c(data));
  if (actual !== stored) {
    throw corrupt(`${what}: CRC-32C mismatch in chunk`, offset, {
      storedCrc: hex(unmaskCrc(stored)),
      computedCrc: hex(unmaskCrc(actual)),
    });
  }
  return data;
}

export interface DecodeOptions {
  /** Absolute offset of stream[0], for messages. */
  readonly base?: bigint;
  /** Refuse (E_TOO_LARGE) to produce more than this many bytes. Default 256 MiB. */
  readonly maxOutput?: number;
  readonly what?: string;
}

/** Decode and check a whole framed stream held in memory. Empty input is E_TRUNCATED (no stream identifier). */
export function decodeFramedStream(stream: Buffer, options: DecodeOptions = {}): Buffer {
  const base = options.base ?? 0n;
  const maxOutput = options.maxOutput ?? 256 * 1024 * 1024;
  const what = options.what ?? 'snappy stream';
  const parts: Buffer[] = [];
  let total = 0;
  let pos = 0;
  let first = true;
  while (first || pos < stream.length) {
    const offset = base + BigInt(pos);
    const info = inspectChunk(stream.subarray(pos, pos + CHUNK_PREAMBLE_SIZE), offset, BigInt(stream.length - pos), first, what);
    first = false;
    const bodyAt = pos + CHUNK_HEADER_SIZE;
    if (info.kind === 'compressed' || info.kind === 'uncompressed') {
      if (total + info.dataLength > maxOutput) {
        throw new MemdumpError('E_TOO_LARGE', `${what} decodes to more than ${maxOutput} bytes`, { details: { offset: hex(offset) } });
      }
      const data = decodeDataChunk(info.type, stream.subarray(bodyAt, bodyAt + info.bodyLength), offset, info.dataLength, what);
      parts.push(data);
      total += data.length;
    }
    pos = bodyAt + info.bodyLength;
  }
  return Buffer.concat(parts, total);
}
