/**
 * LZO1X decompression (the format makedumpfile -l and QEMU's kdump-lzo write with lzo1x_1_compress; the same
 * decoder reads LZO1X-999 output). Written from the format's description, not from liblzo.
 *
 * A stream is a sequence of instructions, each an opcode byte with operands:
 *   0..15   after a match: a 2-byte match M1 (distance 1 + (op>>2) + (next<<2)); after a literal run: a 3-byte
 *           match with distance 0x801 + ...; in the "loop" state: a literal run of op+3 bytes (0 = extended length)
 *   16..31  M4: distance 0x4000 + (bit 3 << 11) + (LE16 >> 2), length op&7 + 2 (0 = extended); distance 0x4000
 *           exactly is the end-of-stream marker (0x11 0x00 0x00)
 *   32..63  M3: distance 1 + (LE16 >> 2), length op&31 + 2 (0 = extended)
 *   64..255 M2: distance 1 + ((op>>2)&7) + (next<<3), length (op>>5) + 1
 * The low two bits of the byte before a match's last operand byte say how many literals (0-3) follow the match.
 *
 * Safety: every instruction consumes at least one input byte, so the decoder ends within input-length steps;
 * every copy is checked against the output capacity and every match against the bytes already produced, so no
 * input reads or writes out of bounds. Failures are E_CORRUPT (bad data) with the position in the stream.
 */
import { MemdumpError } from './errors.js';

const M2_MAX_OFFSET = 0x0800;

function bad(what: string, ip: number, op: number): MemdumpError {
  return new MemdumpError('E_CORRUPT', `LZO1X stream: ${what} (input byte ${ip}, output byte ${op})`, { details: { inputOffset: ip, outputOffset: op } });
}

/**
 * Decompress one complete LZO1X stream into at most `maxOutput` bytes. The stream must end with its end marker
 * and nothing after it (as lzo1x_decompress_safe demands). Returns a buffer of the bytes produced.
 */
export function lzo1xDecompress(src: Uint8Array, maxOutput: number): Buffer {
  if (!Number.isSafeInteger(maxOutput) || maxOutput < 0) throw new RangeError(`bad LZO output limit ${maxOutput}`);
  const out = Buffer.alloc(maxOutput);
  const end = src.length;
  let ip = 0;
  let op = 0;

  const need = (n: number): void => {
    if (ip + n > end) throw bad(`input ends before ${n} more byte(s)`, ip, op);
  };
  const literals = (n: number): void => {
    need(n);
    if (op + n > maxOutput) throw bad(`${n} literal bytes overrun the ${maxOutput}-byte output`, ip, op);
    out.set(src.subarray(ip, ip + n), op);
    ip += n;
    op += n;
  };
  const match = (distance: number, n: number): void => {
    if (distance > op || distance <= 0) throw bad(`match distance ${distance} reaches before the output start`, ip, op);
    if (op + n > maxOutput) throw bad(`${n}-byte match overruns the ${maxOutput}-byte output`, ip, op);
    let from = op - distance;
    if (distance >= n) {
      out.copyWithin(op, from, from + n);
      op += n;
    } else {
      // overlapping: the match repeats bytes it is producing, so copy forward one at a time
      for (let k = 0; k < n; k++) out[op++] = out[from++]!;
    }
  };
  /** Length with zero-byte extension: each 0 adds 255, the first non-zero byte ends it. */
  const extended = (base: number): number => {
    let t = base;
    for (;;) {
      need(1);
      const b = src[ip++]!;
      if (b !== 0) return t + b;
      t += 255;
    }
  };

  need(1);
  // state: 0 = expecting a literal run or a match; 1 = right after a literal run of 4+; 2 = after a match
  let state: 0 | 1 | 2 = 0;
  let t: number;
  if (src[0]! > 17) {
    t = src[0]! - 17;
    ip = 1;
    literals(t);
    state = t < 4 ? 2 : 1;
  }
  for (;;) {
    need(1);
    t = src[ip++]!;
    if (t < 16) {
      if (state === 0) {
        literals(t === 0 ? extended(15) + 3 : t + 3);
        state = 1;
        continue;
      }
      need(1);
      const next = src[ip++]!;
      if (state === 1) match(1 + M2_MAX_OFFSET + (t >> 2) + (next << 2), 3);
      else match(1 + (t >> 2) + (next << 2), 2);
    } else if (t >= 64) {
      need(1);
      match(1 + ((t >> 2) & 7) + (src[ip++]! << 3), (t >> 5) + 1);
    } else if (t >= 32) {
      const len = (t & 31) === 0 ? extended(31) : t & 31;
      need(2);
      const d = (src[ip]! | (src[ip + 1]! << 8)) >> 2;
      ip += 2;
      match(1 + d, len + 2);
    } else {
      const high = (t & 8) << 11;
      const len = (t & 7) === 0 ? extended(7) : t & 7;
      need(2);
      const d = (src[ip]! | (src[ip + 1]! << 8)) >> 2;
      ip += 2;
      // distance 0x4000 exactly (liblzo: the match would start at the output position itself) ends the stream
      if (high === 0 && d === 0) {
        if (ip !== end) throw bad(`${end - ip} byte(s) after the end marker`, ip, op);
        return out.subarray(0, op);
      }
      match(high + d + 0x4000, len + 2);
    }
    const trailing = src[ip - 2]! & 3;
    if (trailing === 0) {
      state = 0;
    } else {
      literals(trailing);
      state = 2;
    }
  }
}

/**
 * A small greedy LZO1X encoder (one hash probe per position): literal runs and M2, M3 and M4 matches. memdump
 * writes no LZO container; this exists so test fixtures need no liblzo, and lzo.test.ts checks that liblzo2
 * decodes what it writes.
 */
export function lzo1xCompress(src: Buffer): Buffer {
  const out: number[] = [];
  const table = new Int32Array(1 << 14).fill(-1);
  let litStart = 0;
  // the byte whose low two bits carry the count (1-3) of literals following the last match
  let patch = -1;
  const ext = (v: number): void => {
    for (; v > 255; v -= 255) out.push(0);
    out.push(v);
  };
  const literals = (end: number): void => {
    const n = end - litStart;
    if (n === 0) return;
    if (out.length === 0 && n <= 238) out.push(17 + n);
    else if (patch >= 0 && n <= 3) out[patch] = out[patch]! | n;
    else if (n <= 18) out.push(n - 3);
    else {
      out.push(0);
      ext(n - 18);
    }
    for (let k = litStart; k < end; k++) out.push(src[k]!);
  };
  let i = 0;
  while (i + 3 <= src.length) {
    const h = (Math.imul(src[i]! | (src[i + 1]! << 8) | (src[i + 2]! << 16), 0x9e3779b1) >>> 18) & 0x3fff;
    const cand = table[h]!;
    table[h] = i;
    const d = i - cand;
    if (cand < 0 || d > 0xbfff || src[cand] !== src[i] || src[cand + 1] !== src[i + 1] || src[cand + 2] !== src[i + 2]) {
      i++;
      continue;
    }
    let len = 3;
    while (i + len < src.length && src[cand + len] === src[i + len]) len++;
    literals(i);
    if (len <= 8 && d <= 0x800) {
      patch = out.length;
      out.push(((len - 1) << 5) | (((d - 1) & 7) << 2), (d - 1) >> 3);
    } else {
      const m3 = d <= 0x4000;
      const lenBits = m3 ? 31 : 7;
      const dist = m3 ? (d - 1) << 2 : ((d - 0x4000) & 0x3fff) << 2;
      const op = m3 ? 32 : 16 | (((d - 0x4000) >> 14) << 3);
      if (len - 2 <= lenBits) out.push(op | (len - 2));
      else {
        out.push(op);
        ext(len - 2 - lenBits);
      }
      patch = out.length;
      out.push(dist & 0xff, dist >> 8);
    }
    i += len;
    litStart = i;
  }
  literals(src.length);
  out.push(0x11, 0, 0);
  return Buffer.from(out);
}
