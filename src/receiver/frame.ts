/**
 * memdump delivery protocol, version 1 ("MDXF"), spoken inside TLS 1.3 between a sender (`--to tls://…`) and
 * `memdump receive`.
 *
 * Stream: each side first sends the 8-byte preamble  "MDXF" 0x01 0x00 0x00 0x00  (magic, version, 3 reserved
 * zero bytes), then frames. A frame is
 *
 *     type u8 | length u32 big-endian | payload (length bytes)
 *
 * Every type has a hard payload cap, checked on the 5-byte header before anything is buffered: DATA ≤ 1 MiB,
 * JSON frames ≤ 16 KiB (UTF-8 JSON object), PING exactly 0. Unknown types, a type sent in the wrong direction,
 * an oversized length, bad JSON or a wrong preamble are E_PROTOCOL; the decoder then refuses all further input.
 *
 * Sender → receiver                                  Receiver → sender
 *   0x01 HELLO {v:1, token?, case?, sender:{…}}        0x81 ACCEPT {case, authKind, maxBytes, idleTimeoutMs, maxData}
 *   0x02 OPEN  {role, meta?}                           0x82 REFUSE {code, message}   then the receiver closes
 *   0x03 DATA  raw bytes                               0x83 ACK    {offset, name?}   (after OPEN, then every 8 MiB)
 *   0x04 END   {bytes, sha256}                         0x84 RESULT {status, bytes, sha256, name, path, reason?}
 *   0x06 ABORT {reason}                                0x05 PING   (both directions, keepalive, empty)
 *
 * Flow: HELLO → ACCEPT | REFUSE. Then per file: OPEN → ACK{offset:"0"} → DATA* → END | ABORT → RESULT. The
 * first OPEN must be role "evidence"; later OPENs carry a side role (report, log, map, signature) and are named
 * after the evidence file. Byte counts travel as decimal strings (they can exceed 2^53).
 *
 * Why length-prefixed binary frames rather than HTTP: a tiny grammar that an incremental, allocation-bounded
 * parser can cover exhaustively (see frame-fuzz), and DATA payloads that are never re-encoded.
 */
import { MemdumpError } from '../core/errors.js';

export const MAGIC = Buffer.from([0x4d, 0x44, 0x58, 0x46, 0x01, 0x00, 0x00, 0x00]);
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 5;
export const MAX_DATA = 1 << 20;
export const MAX_JSON = 16 << 10;

export const T = {
  HELLO: 0x01,
  OPEN: 0x02,
  DATA: 0x03,
  END: 0x04,
  PING: 0x05,
  ABORT: 0x06,
  ACCEPT: 0x81,
  REFUSE: 0x82,
  ACK: 0x83,
  RESULT: 0x84,
} as const;
export type FrameType = (typeof T)[keyof typeof T];

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(T).map(([k, v]) => [v, k]));
export function typeName(t: number): string {
  return NAMES[t] ?? `0x${t.toString(16)}`;
}

/** Types a receiver accepts from a sender, and the other way round. */
export const FROM_SENDER: ReadonlySet<number> = new Set([T.HELLO, T.OPEN, T.DATA, T.END, T.PING, T.ABORT]);
export const FROM_RECEIVER: ReadonlySet<number> = new Set([T.ACCEPT, T.REFUSE, T.ACK, T.RESULT, T.PING]);

function capOf(type: number): number {
  if (type === T.DATA) return MAX_DATA;
  if (type === T.PING) return 0;
  return MAX_JSON;
}

export type Frame = { type: typeof T.DATA; data: Buffer } | { type: Exclude<FrameType, typeof T.DATA>; json: Record<string, unknown> };

function protocolError(message: string, details: Record<string, unknown> = {}): MemdumpError {
  return new MemdumpError('E_PROTOCOL', message, { details });
}

export function encodeFrame(type: FrameType, payload: Buffer | Record<string, unknown> = Buffer.alloc(0)): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)), 'utf8');
  if (body.length > capOf(type)) throw protocolError(`${typeName(type)} frame of ${body.length} bytes exceeds the ${capOf(type)}-byte cap`);
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  out[0] = type;
  out.writeUInt32BE(body.length, 1);
  body.copy(out, HEADER_BYTES);
  return out;
}

/** Just the header of a DATA frame, so large payloads go to the socket without a copy. */
export function dataHeader(length: number): Buffer {
  if (length > MAX_DATA) throw protocolError(`DATA frame of ${length} bytes exceeds ${MAX_DATA}`);
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h[0] = T.DATA;
  h.writeUInt32BE(length, 1);
  return h;
}

/**
 * Incremental decoder: push() whatever bytes arrived (any split) and get the complete frames back. It holds at
 * most one partial frame (header + capped payload) plus the unread tail of the last chunk, so memory is bounded
 * by the caps however the input is shaped.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private preambleSeen = false;
  private failed: MemdumpError | undefined;
  /** Total bytes accepted, for error details. */
  offset = 0;

  constructor(private readonly allowed: ReadonlySet<number>) {}

  get pendingBytes(): number {
    return this.buffered;
  }

  /** The stream is broken; set once a push has hit bad input (push throws it then, or on the next call). */
  get failure(): MemdumpError | undefined {
    return this.failed;
  }

  /**
   * Frames completed by this chunk. When the chunk also holds bad input after good frames, the good frames are
   * returned (so they are acted on, in order) and the error is kept in `failure` and thrown by the next push.
   */
  push(chunk: Buffer): Frame[] {
    if (this.failed) throw this.failed;
    const frames: Frame[] = [];
    try {
      if (chunk.length > 0) {
        this.chunks.push(chunk);
        this.buffered += chunk.length;
      }
      if (!this.preambleSeen) {
        // checked byte by byte so that a wrong first byte fails at once rather than after 8 bytes
        const head = this.peek(Math.min(this.buffered, MAGIC.length));
        if (!head.equals(MAGIC.subarray(0, head.length))) throw protocolError('not a memdump delivery stream (bad preamble)', { offset: this.offset });
        if (head.length < MAGIC.length) return frames;
        this.consume(MAGIC.length);
        this.preambleSeen = true;
      }
      for (;;) {
        if (this.buffered < HEADER_BYTES) return frames;
        const h = this.peek(HEADER_BYTES);
        const type = h[0]!;
        const len = h.readUInt32BE(1);
        if (!this.allowed.has(type)) throw protocolError(`unexpected frame type ${typeName(type)}`, { offset: this.offset, type });
        if (len > capOf(type)) throw protocolError(`${typeName(type)} frame declares ${len} bytes, over the ${capOf(type)}-byte cap`, { offset: this.offset, type, length: len });
        if (this.buffered < HEADER_BYTES + len) return frames;
        this.consume(HEADER_BYTES);
        const payload = this.take(len);
        frames.push(this.decodePayload(type as FrameType, payload));
      }
    } catch (e) {
      this.failed = e instanceof MemdumpError && e.code === 'E_PROTOCOL' ? e : protocolError(`malformed stream: ${(e as Error)?.message ?? String(e)}`);
      this.chunks = [];
      this.buffered = 0;
      if (frames.length > 0) return frames;
      throw this.failed;
    }
  }

  private decodePayload(type: FrameType, payload: Buffer): Frame {
    if (type === T.DATA) return { type, data: payload };
    if (type === T.PING) return { type, json: {} };
    let v: unknown;
    try {
      v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
    } catch {
      throw protocolError(`${typeName(type)} frame is not UTF-8 JSON`, { offset: this.offset });
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw protocolError(`${typeName(type)} frame is not a JSON object`, { offset: this.offset });
    return { type, json: v as Record<string, unknown> };
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    const merged = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [merged];
    return merged.subarray(0, n);
  }

  /** Remove n bytes; a payload that spans chunks is copied once into a buffer of exactly its size. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (n === 0) out = Buffer.alloc(0);
    else if (first && first.length >= n) out = first.subarray(0, n);
    else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      for (const c of this.chunks) {
        const k = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, k);
        filled += k;
        if (filled === n) break;
      }
    }
    this.consume(n);
    return out;
  }

  private consume(n: number): void {
    this.buffered -= n;
    this.offset += n;
    while (n > 0) {
      const c = this.chunks[0]!;
      if (c.length <= n) {
        n -= c.length;
        this.chunks.shift();
      } else {
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
  }
}

/** Decimal string (or safe integer) → bigint; anything else is E_PROTOCOL. */
export function byteCount(v: unknown, what: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'string' && /^(0|[1-9]\d{0,19})$/.test(v)) return BigInt(v);
  throw protocolError(`${what}: not a byte count`);
}

export function str(v: unknown, what: string, max = 4096): string {
  if (typeof v !== 'string' || v.length > max) throw protocolError(`${what}: expected a string of at most ${max} characters`);
  return v;
}

export function optStr(v: unknown, what: string, max = 4096): string | undefined {
  return v === undefined || v === null ? undefined : str(v, what, max);
}
