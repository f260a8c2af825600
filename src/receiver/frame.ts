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

/** Types a receiver accepts before the sender has authenticated: nothing that allocates a 1 MiB payload. */
export const PRE_AUTH: ReadonlySet<number> = new Set([T.HELLO, T.PING]);
/** JSON frames nested deeper than this, or with more keys, are refused before JSON.parse (finding 3). */
export const MAX_JSON_DEPTH = 8;
export const MAX_JSON_KEYS = 256;

const EMPTY = Buffer.alloc(0);

/**
 * Incremental decoder: push() whatever bytes arrived (any split) and get the complete frames back. It copies a
 * partial frame into one buffer of the frame's declared (capped) size, allocated when the header is read, and
 * keeps no reference to the chunks it was given: memory is O(largest frame) and each byte is touched a constant
 * number of times however finely the input is split (one-byte TLS records made an earlier chunk list quadratic).
 */
export class FrameDecoder {
  private preamble = 0;
  private readonly head = Buffer.alloc(HEADER_BYTES);
  private headFill = 0;
  /** Declared payload length of the frame whose header has been read; -1 while reading a header. */
  private want = -1;
  /** Allocated when the first payload byte arrives, not on the header alone. */
  private body: Buffer | undefined;
  private bodyFill = 0;
  private type = 0;
  private failed: MemdumpError | undefined;
  private allowed: ReadonlySet<number>;
  /** Total bytes accepted, for error details. */
  offset = 0;

  /**
   * `preAuth`: types accepted until the first HELLO has been decoded (then `allowed`); a receiver passes
   * PRE_AUTH so that OPEN/DATA/END from an unauthenticated peer fail on their header.
   */
  constructor(
    private readonly full: ReadonlySet<number>,
    preAuth?: ReadonlySet<number>,
  ) {
    this.allowed = preAuth ?? full;
  }

  get pendingBytes(): number {
    return this.want >= 0 ? HEADER_BYTES + this.bodyFill : this.headFill;
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
      let i = 0;
      while (i < chunk.length) {
        if (this.preamble < MAGIC.length) {
          // byte by byte, so that a wrong first byte fails at once rather than after 8 bytes
          if (chunk[i] !== MAGIC[this.preamble]) throw protocolError('not a memdump delivery stream (bad preamble)', { offset: this.offset });
          this.preamble++;
          i++;
          this.offset++;
          continue;
        }
        if (this.want < 0) {
          const k = Math.min(HEADER_BYTES - this.headFill, chunk.length - i);
          chunk.copy(this.head, this.headFill, i, i + k);
          this.headFill += k;
          i += k;
          if (this.headFill < HEADER_BYTES) break;
          const type = this.head[0]!;
          const len = this.head.readUInt32BE(1);
          if (!this.allowed.has(type)) {
            const early = this.full.has(type) && this.allowed !== this.full;
            throw protocolError(early ? `${typeName(type)} frame before authentication (send HELLO first)` : `unexpected frame type ${typeName(type)}`, { offset: this.offset, type });
          }
          if (len > capOf(type)) throw protocolError(`${typeName(type)} frame declares ${len} bytes, over the ${capOf(type)}-byte cap`, { offset: this.offset, type, length: len });
          this.offset += HEADER_BYTES;
          this.headFill = 0;
          this.type = type;
          this.want = len;
          if (len === 0) this.body = EMPTY;
        }
        if (this.body === undefined) {
          if (i === chunk.length) break;
          if (chunk.length - i >= this.want) {
            // the whole payload is in this chunk: hand out a view (Node never reuses a chunk it has emitted)
            this.body = chunk.subarray(i, i + this.want);
            this.bodyFill = this.want;
            i += this.want;
          } else {
            this.body = Buffer.allocUnsafe(this.want);
            this.bodyFill = 0;
          }
        }
        const body = this.body;
        if (this.bodyFill < body.length) {
          const k = Math.min(body.length - this.bodyFill, chunk.length - i);
          chunk.copy(body, this.bodyFill, i, i + k);
          this.bodyFill += k;
          i += k;
          if (this.bodyFill < body.length) break;
        }
        this.offset += body.length;
        this.body = undefined;
        this.bodyFill = 0;
        this.want = -1;
        frames.push(this.decodePayload(this.type as FrameType, body));
        if (this.type === T.HELLO) this.allowed = this.full;
      }
      return frames;
    } catch (e) {
      this.failed = e instanceof MemdumpError && e.code === 'E_PROTOCOL' ? e : protocolError(`malformed stream: ${(e as Error)?.message ?? String(e)}`);
      this.body = undefined;
      this.bodyFill = 0;
      this.headFill = 0;
      this.want = -1;
      if (frames.length > 0) return frames;
      throw this.failed;
    }
  }

  private decodePayload(type: FrameType, payload: Buffer): Frame {
    if (type === T.DATA) return { type, data: payload };
    if (type === T.PING) return { type, json: {} };
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(payload);
    } catch {
      throw protocolError(`${typeName(type)} frame is not UTF-8 JSON`, { offset: this.offset });
    }
    checkShape(text, typeName(type), this.offset);
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw protocolError(`${typeName(type)} frame is not UTF-8 JSON`, { offset: this.offset });
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw protocolError(`${typeName(type)} frame is not a JSON object`, { offset: this.offset });
    return { type, json: v as Record<string, unknown> };
  }
}

/**
 * Nesting depth and key count, scanned without recursion before JSON.parse: whatever consumes the object later
 * (escaping, the upload record, JSON.stringify) recurses, and 16 KiB of "[" is 16k levels.
 */
function checkShape(text: string, what: string, offset: number): void {
  let depth = 0;
  let keys = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) throw protocolError(`${what} frame is nested deeper than ${MAX_JSON_DEPTH} levels`, { offset });
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x3a && ++keys > MAX_JSON_KEYS) throw protocolError(`${what} frame has more than ${MAX_JSON_KEYS} keys`, { offset });
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
