/**
 * Bounded inflate on top of node:zlib's synchronous API. node:zlib throws away everything it decoded when the
 * output passes maxOutputLength or the stream turns corrupt, and gives no partial result; since deflate decodes a
 * prefix of its input into a prefix of its output (with Z_SYNC_FLUSH a cut is not an error), a good input prefix
 * is searched for instead. Over the cap (a bomb): start from a prefix that cannot exceed it and scale by the
 * observed ratio, 2-4 decodes of at most `cap` bytes. Corrupt: halve, then bisect, each try at most `cap`.
 */
import { constants, inflateRawSync, inflateSync, type ZlibOptions } from 'node:zlib';

export interface Inflated {
  data: Buffer;
  /** Input bytes the decoder consumed (for a zlib stream: header, body and Adler-32 trailer). */
  consumed: number;
  /** The stream reached its final block (and, for zlib, a matching Adler-32). */
  ended: boolean;
  /** Output cut by the cap, by the end of the input, or by corruption. */
  truncated: boolean;
}

export type InflateMode = 'raw' | 'zlib';

/** Refinement steps after halving: the result is then within 1/2^BISECT of the largest prefix that fits. */
const BISECT = 6;
/** Deflate's best case is 258 bytes from 2 bits, so this many input bytes give at most `cap` output. */
const MAX_RATIO = 1032;
/** Aim a little under the cap so the ratio-guided step usually lands on a prefix that fits. */
const AIM = 0.97;

type Try = { ok: true; data: Buffer; consumed: number } | { ok: false; tooLarge: boolean };

function tryInflate(input: Buffer, mode: InflateMode, cap: number, finish: boolean): Try {
  const opts: ZlibOptions & { info: true } = { info: true, maxOutputLength: Math.max(1, cap) };
  if (!finish) opts.finishFlush = constants.Z_SYNC_FLUSH;
  try {
    const r = (mode === 'raw' ? inflateRawSync(input, opts) : inflateSync(input, opts)) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    if (r.buffer.length > cap) return { ok: false, tooLarge: true };
    // zlib hands back a view on its 16 KiB chunk: a tiny member would keep the whole chunk alive while the window
    // waits to scan it, and 100,000 tiny members cost gigabytes
    const data = r.buffer.buffer.byteLength > 2 * r.buffer.length + 4096 ? Buffer.from(r.buffer) : r.buffer;
    return { ok: true, data, consumed: r.engine.bytesWritten };
  } catch (e) {
    return { ok: false, tooLarge: (e as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE' };
  }
}

/**
 * Inflate `input` into at most `cap` bytes. Returns undefined when nothing could be decoded, or when the stream is
 * corrupt and `salvage` is false (zlib candidates in random data are common: their garbage prefix is not wanted).
 */
export function inflateBounded(input: Buffer, mode: InflateMode, cap: number, salvage: boolean): Inflated | undefined {
  if (cap <= 0 || input.length === 0) return undefined;
  const first = tryInflate(input, mode, cap, false);
  if (first.ok) {
    // Trailing bytes left unread mean the decoder saw the end of the stream; all bytes read is ambiguous (ended
    // exactly at the window end, or cut there), and a finishing decode tells the two apart.
    let ended = first.consumed < input.length;
    if (!ended) ended = tryInflate(input, mode, cap, true).ok;
    return { data: first.data, consumed: first.consumed, ended, truncated: !ended };
  }
  if (!first.tooLarge && !salvage) return undefined;
  const best = first.tooLarge ? fitCap(input, mode, cap) : largestClean(input, mode, cap);
  if (best === undefined) return undefined;
  if (best.data.length === 0) return undefined;
  return { data: best.data, consumed: best.consumed, ended: false, truncated: true };
}

type Ok = { ok: true; data: Buffer; consumed: number };

/** The output of a prefix close under the cap, for input that decodes to more than `cap`. */
function fitCap(input: Buffer, mode: InflateMode, cap: number): Ok | undefined {
  let lo = Math.max(1, Math.min(input.length, Math.floor(cap / MAX_RATIO)));
  let hi = input.length;
  const t = tryInflate(input.subarray(0, lo), mode, cap, false);
  if (!t.ok) return largestClean(input.subarray(0, lo), mode, cap);
  let best: Ok = t;
  for (let i = 0; i < BISECT + 2 && hi - lo > 1 && best.data.length < cap * AIM; i++) {
    const got = best.data.length;
    const guess = got > 0 ? Math.floor((lo * cap * AIM) / got) : lo * 2;
    const len = Math.max(lo + 1, Math.min(hi - 1, guess));
    const u = tryInflate(input.subarray(0, len), mode, cap, false);
    if (u.ok) {
      best = u;
      lo = len;
    } else hi = len;
  }
  return best;
}

/** The output of the largest prefix (within 1/2^BISECT) that decodes without error and within the cap. */
function largestClean(input: Buffer, mode: InflateMode, cap: number): Ok | undefined {
  let lo = 0;
  let hi = input.length;
  let best: Ok | undefined;
  for (let len = input.length >>> 1; len > 0; len >>>= 1) {
    const t = tryInflate(input.subarray(0, len), mode, cap, false);
    if (t.ok) {
      best = t;
      lo = len;
      break;
    }
    hi = len;
  }
  if (best === undefined) return undefined;
  for (let i = 0; i < BISECT && hi - lo > 1; i++) {
    const mid = lo + ((hi - lo) >>> 1);
    const t = tryInflate(input.subarray(0, mid), mode, cap, false);
    if (t.ok) {
      best = t;
      lo = mid;
    } else hi = mid;
  }
  return best;
}
