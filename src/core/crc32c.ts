/**
 * CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
 * Used by the snappy framing format (masked, see maskCrc) and therefore by AVML files.
 *
 * Pure TypeScript, slicing-by-16: sixteen 256-entry tables, sixteen input bytes per step. On Node 20 / x86-64
 * this runs well above 1 GB/s (see the crc32c test for a throughput check and bench/snappy.ts).
 */

const POLY = 0x82f63b78;
const SLICES = 16;

/** TABLE[k * 256 + b]: CRC of byte b followed by k zero bytes (k = 0 is the classic byte-at-a-time table). */
const TABLE: Int32Array = buildTable();

function buildTable(): Int32Array {
  const t = new Int32Array(SLICES * 256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let i = 0; i < 8; i++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[b] = c;
  }
  for (let b = 0; b < 256; b++) {
    let c = t[b]!;
    for (let k = 1; k < SLICES; k++) {
      c = (c >>> 8) ^ t[c & 0xff]!;
      t[k * 256 + b] = c;
    }
  }
  return t;
}

/**
 * CRC-32C of `data[start, end)`, continuing from `previous` (the finished CRC of the bytes before, 0 for none),
 * so that `crc32c(b, crc32c(a)) === crc32c(concat(a, b))`.
 */
export function crc32c(data: Uint8Array, previous = 0, start = 0, end = data.length): number {
  if (start < 0 || end > data.length || start > end) throw new RangeError(`crc32c: bad slice [${start}, ${end}) of ${data.length}`);
  const t = TABLE;
  let crc = ~previous | 0;
  let i = start;
  // Sixteen bytes per step over the whole blocks, then the tail byte at a time.
  const blocksEnd = end - ((end - i) & 15);
  while (i < blocksEnd) {
    crc ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    crc =
      t[0xf00 | (crc & 0xff)]! ^
      t[0xe00 | ((crc >>> 8) & 0xff)]! ^
      t[0xd00 | ((crc >>> 16) & 0xff)]! ^
      t[0xc00 | (crc >>> 24)]! ^
      t[0xb00 | data[i + 4]!]! ^
      t[0xa00 | data[i + 5]!]! ^
      t[0x900 | data[i + 6]!]! ^
      t[0x800 | data[i + 7]!]! ^
      t[0x700 | data[i + 8]!]! ^
      t[0x600 | data[i + 9]!]! ^
      t[0x500 | data[i + 10]!]! ^
      t[0x400 | data[i + 11]!]! ^
      t[0x300 | data[i + 12]!]! ^
      t[0x200 | data[i + 13]!]! ^
      t[0x100 | data[i + 14]!]! ^
      t[data[i + 15]!]!;
    i += 16;
  }
  while (i < end) {
    crc = (crc >>> 8) ^ t[(crc ^ data[i]!) & 0xff]!;
    i++;
  }
  return ~crc >>> 0;
}

/** The snappy framing format's masked checksum: rotate right by 15, add 0xa282ead8 (all mod 2^32). */
export function maskCrc(crc: number): number {
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** Inverse of maskCrc (for diagnostics: shows the CRC a chunk claims). */
export function unmaskCrc(masked: number): number {
  const rot = (masked - 0xa282ead8) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}

/** Masked CRC-32C of a whole buffer, as stored in snappy frame chunks. */
export function maskedCrc32c(data: Uint8Array): number {
  return maskCrc(crc32c(data));
}
