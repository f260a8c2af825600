import { constants } from 'node:buffer';
import { MemdumpError } from './errors.js';

/**
 * Plain LZ77 decompression of [MS-XCA] section 2.4 ("Plain LZ77 Decompression Algorithm Details"), the
 * codec of Windows XP-era hibernation files and of many kernel-side compressed buffers.
 *
 * The stream interleaves 32-bit little-endian flag words with literal bytes and 16-bit match tokens
 * (offset-1 in the high 13 bits, length-3 in the low 3). Lengths that do not fit escape to a shared
 * nibble, then a byte, then 16 bits, then 32 bits.
 *
 * The caller always knows the decompressed size (hibernation page tables, crash dump headers), so the
 * output is exactly `outputSize` bytes or the input is E_CORRUPT. Decoding stops as soon as the output is
 * full, so a trailing end marker or a container's padding after the stream is never read. The caller bounds
 * `outputSize` (the decoder cannot: a 32-bit length escape lets a few bytes expand to 4 GiB).
 */
export function xpressDecompress(input: Uint8Array, outputSize: number): Buffer {
  if (!Number.isSafeInteger(outputSize) || outputSize < 0) {
    throw new MemdumpError('E_CORRUPT', `xpress: invalid output size ${outputSize}`, { details: { outputSize } });
  }
  checkAllocatable(outputSize, 'xpress');
  const out = Buffer.allocUnsafe(outputSize);
  const inLen = input.length;
  let ip = 0;
  let op = 0;
  let flags = 0;
  let flagCount = 0;
  // Position of the byte whose high nibble is still owed to the next long match (-1 = none): long matches
  // share length bytes in pairs, low nibble first, whatever comes between them.
  let halfByte = -1;

  // Every iteration writes at least one byte or throws, so decoding ends within outputSize iterations
  // whatever the input says.
  while (op < outputSize) {
    if (flagCount === 0) {
      if (ip + 4 > inLen) throw fail('input ends inside a flag word', ip, op);
      flags = (input[ip]! | (input[ip + 1]! << 8) | (input[ip + 2]! << 16) | (input[ip + 3]! << 24)) >>> 0;
      ip += 4;
      flagCount = 32;
    }
    flagCount--;
    if (((flags >>> flagCount) & 1) === 0) {
      if (ip >= inLen) throw fail('input ends before a literal', ip, op);
      out[op++] = input[ip++]!;
      // Runs of literals are the common case in page data; consume the rest of the flag word's
      // zero bits without re-entering the outer loop.
      while (flagCount > 0 && ((flags >>> (flagCount - 1)) & 1) === 0 && op < outputSize) {
        if (ip >= inLen) throw fail('input ends before a literal', ip, op);
        out[op++] = input[ip++]!;
        flagCount--;
      }
      continue;
    }
    if (ip + 2 > inLen) throw fail('input ends before the output is complete', ip, op);
    const token = input[ip]! | (input[ip + 1]! << 8);
    ip += 2;
    const offset = (token >>> 3) + 1;
    let length = token & 7;
    if (length === 7) {
      if (halfByte < 0) {
        if (ip >= inLen) throw fail('input ends inside a match length', ip, op);
        halfByte = ip;
        length = input[ip++]! & 15;
      } else {
        length = input[halfByte]! >>> 4;
        halfByte = -1;
      }
      if (length === 15) {
        if (ip >= inLen) throw fail('input ends inside a match length', ip, op);
        length = input[ip++]!;
        if (length === 255) {
          if (ip + 2 > inLen) throw fail('input ends inside a match length', ip, op);
          length = input[ip]! | (input[ip + 1]! << 8);
          ip += 2;
          if (length === 0) {
            if (ip + 4 > inLen) throw fail('input ends inside a match length', ip, op);
            length = (input[ip]! | (input[ip + 1]! << 8) | (input[ip + 2]! << 16) | (input[ip + 3]! << 24)) >>> 0;
            ip += 4;
          }
          if (length < 15 + 7) throw fail('match length escape is smaller than its prefix', ip, op);
          length -= 15 + 7;
        }
        length += 15;
      }
      length += 7;
    }
    length += 3;
    if (offset > op) throw fail(`match offset ${offset} reaches before the start of the output`, ip, op);
    if (length > outputSize - op) throw fail(`match of ${length} bytes overruns the output`, ip, op);
    copyMatch(out, op, offset, length);
    op += length;
  }
  return out;
}

/** LZ77 copy where source and destination may overlap (offset < length repeats the last `offset` bytes). */
export function copyMatch(out: Buffer, op: number, offset: number, length: number): void {
  const src = op - offset;
  if (length <= 16) {
    // Short matches dominate text; a byte loop beats the call overhead of copyWithin and handles overlap.
    for (let i = 0; i < length; i++) out[op + i] = out[src + i]!;
    return;
  }
  if (offset >= length) {
    out.copyWithin(op, src, src + length);
    return;
  }
  if (offset === 1) {
    out.fill(out[src]!, op, op + length);
    return;
  }
  // Overlapping copy: each pass doubles the copied span, so long repeats cost O(log n) copyWithin calls
  // instead of one loop iteration per byte.
  const end = op + length;
  let span = offset;
  while (op < end) {
    const n = Math.min(span, end - op);
    out.copyWithin(op, src, src + n);
    op += n;
    span += n;
  }
}

/** Buffer.allocUnsafe throws a RangeError beyond this; report it as a coded error instead. */
export function checkAllocatable(outputSize: number, codec: string): void {
  if (outputSize > constants.MAX_LENGTH) {
    throw new MemdumpError('E_TOO_LARGE', `${codec}: output size ${outputSize} exceeds what one buffer can hold`, { details: { outputSize } });
  }
}

function fail(what: string, ip: number, op: number): MemdumpError {
  return new MemdumpError('E_CORRUPT', `xpress: ${what} (input offset ${ip}, output offset ${op})`, {
    details: { inputOffset: ip, outputOffset: op },
  });
}
