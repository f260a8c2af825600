import { MemdumpError } from '../core/errors.js';

/**
 * zstd (RFC 8878) at the frame level: where each frame starts and ends, and how much it may expand to, read from
 * headers only, so that the one-shot binding is only ever handed one bounded frame. Plus memdump's own marker
 * frames (skippable, ignored by `zstd -d`) that let a reader tell a stream cut at a frame boundary from a whole one.
 */

export interface ZstdBinding {
  compress(buf: Buffer, level?: number): Promise<Buffer>;
  decompress(buf: Buffer): Promise<Buffer>;
}

let binding: Promise<ZstdBinding> | undefined;

/** The native binding, loaded on first use only: commands that never touch zstd never load a native module. */
export function loadZstd(): Promise<ZstdBinding> {
  binding ??= import('@mongodb-js/zstd').then(
    (m) => {
      const mod = m as unknown as Partial<ZstdBinding> & { default?: Partial<ZstdBinding> };
      const api = typeof mod.compress === 'function' ? mod : mod.default;
      if (typeof api?.compress !== 'function' || typeof api.decompress !== 'function') throw new Error('unexpected module shape');
      return { compress: api.compress.bind(api), decompress: api.decompress.bind(api) } as ZstdBinding;
    },
    (e: unknown) => {
      throw new MemdumpError('E_UNSUPPORTED', `zstd needs the @mongodb-js/zstd binding, which did not load (${(e as Error).message}); use --compress gzip, or \`zstd -d\` to decompress`, {
        details: { algo: 'zstd' },
        cause: e,
      });
    },
  );
  return binding;
}

const KIB = 1024;
const MIB = 1024 * KIB;
export const FRAME_MAGIC = 0xfd2fb528;
/** RFC 8878 §3.1.1.2: no block, of any type, carries or regenerates more than this. */
export const MAX_BLOCK = 128 * KIB;
/** Skippable payloads up to this size are returned (memdump's markers); larger ones are skipped unread. */
const SMALL_SKIPPABLE = 64;

export interface ZstdLimits {
  /** Largest compressed frame held in memory at once. */
  readonly maxFrameBytes: number;
  /** Largest plaintext one frame may declare or, by its block headers, expand to. */
  readonly maxContentBytes: number;
}

/** memdump writes frames of 1 MiB of plaintext; 64 MiB leaves room for `pzstd` and small CLI files. */
export const DEFAULT_LIMITS: ZstdLimits = { maxFrameBytes: 64 * MIB, maxContentBytes: 64 * MIB };

export type ZstdPiece =
  | { kind: 'frame'; offset: bigint; bytes: Buffer; contentBound: number; contentSize: bigint | undefined }
  | { kind: 'skippable'; offset: bigint; nibble: number; size: number; payload: Buffer | undefined };

export function zstdCorrupt(message: string, offset: bigint, truncated = false, cause?: unknown): MemdumpError {
  return new MemdumpError('E_CORRUPT', message, { details: { algo: 'zstd', compressedOffset: '0x' + offset.toString(16), truncated }, cause });
}

function truncatedAt(offset: bigint, what: string): MemdumpError {
  return zstdCorrupt(`zstd stream ends inside ${what} at compressed byte ${offset}: the file is truncated (an incomplete transfer?)`, offset, true);
}

function tooLarge(offset: bigint, what: string, limits: ZstdLimits): MemdumpError {
  return new MemdumpError(
    'E_TOO_LARGE',
    `zstd frame at compressed byte ${offset} ${what}; memdump decodes frames of at most ${limits.maxContentBytes / MIB} MiB ` +
      `(its own are 1 MiB): decompress this file with \`zstd -d\`, which streams frames of any size`,
    { details: { algo: 'zstd', compressedOffset: '0x' + offset.toString(16) } },
  );
}

/** Pulls an async byte stream on demand; never buffers more than the caller asked `ensure` for plus one input chunk. */
export class ByteInput {
  private readonly it: AsyncIterator<Buffer>;
  private chunks: Buffer[] = [];
  private head = 0;
  private buffered = 0;
  private ended = false;
  /** Input bytes consumed (taken or skipped) so far. */
  offset = 0n;

  constructor(input: AsyncIterable<Buffer>) {
    this.it = input[Symbol.asyncIterator]();
  }

  /** True once at least `n` bytes are buffered; false if the input ends first. */
  async ensure(n: number): Promise<boolean> {
    while (this.buffered < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else if (r.value.length > 0) {
        this.chunks.push(Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array));
        this.buffered += r.value.length;
      }
    }
    return this.buffered >= n;
  }

  /** The next `n` (≤ buffered) bytes: a view when they lie in one input chunk, else a copy. */
  take(n: number): Buffer {
    if (n > this.buffered) throw new MemdumpError('E_INTERNAL', `ByteInput.take(${n}) with ${this.buffered} buffered`);
    this.buffered -= n;
    this.offset += BigInt(n);
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[this.head]!;
    if (first.length >= n) return this.advance(first, n);
    const out = Buffer.allocUnsafe(n);
    for (let got = 0; got < n; ) {
      const c = this.chunks[this.head]!;
      const k = Math.min(c.length, n - got);
      c.copy(out, got, 0, k);
      got += k;
      this.advance(c, k);
    }
    return out;
  }

  /** Discards up to `n` bytes without holding them; returns how many there were. */
  async skip(n: bigint): Promise<bigint> {
    let left = n;
    while (left > 0n && (await this.ensure(1))) {
      const first = this.chunks[this.head]!;
      const k = left < BigInt(first.length) ? Number(left) : first.length;
      this.take(k);
      left -= BigInt(k);
    }
    return n - left;
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }

  private advance(c: Buffer, k: number): Buffer {
    const out = c.subarray(0, k);
    if (k === c.length) {
      this.chunks[this.head++] = undefined as unknown as Buffer;
      if (this.head > 1024 && this.head * 2 > this.chunks.length) (this.chunks = this.chunks.slice(this.head)), (this.head = 0);
    } else this.chunks[this.head] = c.subarray(k);
    return out;
  }
}

/** Grows by doubling up to the frame cap, so a frame costs at most one extra copy however its blocks arrive. */
class FrameBuilder {
  private buf = Buffer.allocUnsafe(128 * KIB);
  length = 0;
  push(b: Buffer): void {
    if (this.length + b.length > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.length + b.length, this.buf.length * 2));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    }
    b.copy(this.buf, this.length);
    this.length += b.length;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/**
 * Frames and skippable frames of a zstd stream, in order, each with its byte range checked against `limits` before
 * it is held: a header that declares too much, or block headers that could expand past the cap, are E_TOO_LARGE;
 * a cut or malformed structure is E_CORRUPT. Ends quietly only at a frame boundary.
 */
export async function* walkZstd(input: ByteInput, limits: ZstdLimits = DEFAULT_LIMITS): AsyncGenerator<ZstdPiece> {
  const need = async (n: number, start: bigint, what: string): Promise<Buffer> => {
    if (!(await input.ensure(n))) throw truncatedAt(start, what);
    return input.take(n);
  };
  for (;;) {
    const start = input.offset;
    if (!(await input.ensure(1))) return;
    const magicBytes = await need(4, start, 'a frame magic number');
    const magic = magicBytes.readUInt32LE(0);
    if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
      const size = (await need(4, start, 'a skippable frame header')).readUInt32LE(0);
      let payload: Buffer | undefined;
      if (size <= SMALL_SKIPPABLE) payload = Buffer.from(await need(size, start, 'a skippable frame'));
      else if ((await input.skip(BigInt(size))) < BigInt(size)) throw truncatedAt(start, 'a skippable frame');
      yield { kind: 'skippable', offset: start, nibble: magic & 0xf, size, payload };
      continue;
    }
    if (magic !== FRAME_MAGIC) {
      throw zstdCorrupt(`not a zstd frame at compressed byte ${start} (magic 0x${magic.toString(16).padStart(8, '0')}): the stream is damaged`, start);
    }
    const frame = new FrameBuilder();
    frame.push(magicBytes);
    const fhdByte = await need(1, start, 'a frame header');
    frame.push(fhdByte);
    const fhd = fhdByte[0]!;
    const fcsFlag = fhd >> 6;
    const single = (fhd >> 5) & 1;
    if (fhd & 0x08) throw zstdCorrupt(`zstd frame at compressed byte ${start} sets the reserved header bit: the stream is damaged`, start);
    const hasChecksum = (fhd >> 2) & 1;
    const didLen = [0, 1, 2, 4][fhd & 3]!;
    const fcsLen = [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
    const rest = await need((single ? 0 : 1) + didLen + fcsLen, start, 'a frame header');
    frame.push(rest);
    let p = 0;
    let windowSize = 0;
    if (!single) {
      const wd = rest[p++]!;
      const base = 2 ** (10 + (wd >> 3));
      windowSize = base + (base / 8) * (wd & 7);
    }
    const dictId = didLen === 0 ? 0 : rest.readUIntLE(p, didLen);
    p += didLen;
    if (dictId !== 0) {
      throw new MemdumpError('E_UNSUPPORTED', `zstd frame at compressed byte ${start} needs dictionary ${dictId}, which memdump does not have: use \`zstd -d -D DICT\``, {
        details: { algo: 'zstd', compressedOffset: '0x' + start.toString(16), dictId },
      });
    }
    let contentSize: bigint | undefined;
    if (fcsLen === 1) contentSize = BigInt(rest[p]!);
    else if (fcsLen === 2) contentSize = BigInt(rest.readUInt16LE(p) + 256);
    else if (fcsLen === 4) contentSize = BigInt(rest.readUInt32LE(p));
    else if (fcsLen === 8) contentSize = rest.readBigUInt64LE(p);
    if (contentSize !== undefined && contentSize > BigInt(limits.maxContentBytes)) throw tooLarge(start, `declares ${contentSize} bytes of content`, limits);
    if (single) windowSize = Number(contentSize);
    else if (contentSize === undefined && windowSize > limits.maxContentBytes) throw tooLarge(start, `has a ${windowSize}-byte window and no declared size`, limits);
    const blockMax = Math.min(MAX_BLOCK, windowSize);
    let bound = 0;
    for (;;) {
      const bh = await need(3, start, 'a block header');
      frame.push(bh);
      const v = bh[0]! | (bh[1]! << 8) | (bh[2]! << 16);
      const type = (v >> 1) & 3;
      const size = v >>> 3;
      if (type === 3) throw zstdCorrupt(`zstd block at compressed byte ${input.offset - 3n} has the reserved type: the stream is damaged`, input.offset - 3n);
      if (size > MAX_BLOCK) throw zstdCorrupt(`zstd block at compressed byte ${input.offset - 3n} claims ${size} bytes (more than 128 KiB): the stream is damaged`, input.offset - 3n);
      const stored = type === 1 ? 1 : size;
      bound += type === 2 ? blockMax : size;
      if (frame.length + stored > limits.maxFrameBytes) throw tooLarge(start, `is larger than ${limits.maxFrameBytes} bytes compressed`, limits);
      if (contentSize === undefined && bound > limits.maxContentBytes) throw tooLarge(start, `can expand to more than ${limits.maxContentBytes} bytes and declares no size`, limits);
      if (stored > 0) frame.push(await need(stored, start, 'a block'));
      if (v & 1) break;
    }
    if (hasChecksum) frame.push(await need(4, start, 'a frame checksum'));
    yield { kind: 'frame', offset: start, bytes: frame.done(), contentBound: contentSize === undefined ? bound : Math.min(bound, Number(contentSize)), contentSize };
  }
}

/**
 * memdump's marker frames: skippable frames (magic 0x184D2A5E) that `zstd -d` ignores. A stream that starts with
 * the head marker must end with the tail marker, which carries the plaintext length and CRC-32: without it a file
 * cut exactly between two frames would decompress cleanly to a shorter image.
 */
export const MARKER_NIBBLE = 0xe;
const TAG = Buffer.from('memdump\0', 'latin1');

function skippable(payload: Buffer): Buffer {
  const out = Buffer.alloc(8 + payload.length);
  out.writeUInt32LE((0x184d2a50 | MARKER_NIBBLE) >>> 0, 0);
  out.writeUInt32LE(payload.length, 4);
  payload.copy(out, 8);
  return out;
}

export function headMarker(): Buffer {
  const p = Buffer.alloc(16);
  TAG.copy(p, 0);
  p.write('head', 8, 'latin1');
  p.writeUInt32LE(1, 12); // version
  return skippable(p);
}

export function tailMarker(length: bigint, crc: number): Buffer {
  const p = Buffer.alloc(24);
  TAG.copy(p, 0);
  p.write('tail', 8, 'latin1');
  p.writeUInt32LE(crc >>> 0, 12);
  p.writeBigUInt64LE(length, 16);
  return skippable(p);
}

export type Marker = { kind: 'head'; version: number } | { kind: 'tail'; crc: number; length: bigint };

/** A memdump marker, or undefined for any other skippable frame (pzstd's, a user's). */
export function parseMarker(piece: Extract<ZstdPiece, { kind: 'skippable' }>): Marker | undefined {
  const p = piece.payload;
  if (piece.nibble !== MARKER_NIBBLE || p === undefined || p.length < 12 || !p.subarray(0, 8).equals(TAG)) return undefined;
  const kind = p.toString('latin1', 8, 12);
  if (kind === 'head' && p.length === 16) return { kind, version: p.readUInt32LE(12) };
  if (kind === 'tail' && p.length === 24) return { kind, crc: p.readUInt32LE(12), length: p.readBigUInt64LE(16) };
  throw zstdCorrupt(`memdump marker frame at compressed byte ${piece.offset} is malformed: the stream is damaged`, piece.offset);
}
