/**
 * Adler-32 (RFC 1950 §9): two 16-bit sums modulo 65521, B in the high half. Node 20's zlib exports neither
 * adler32 nor crc32, and EWF checksums every section descriptor, table and uncompressed chunk with it.
 * `previous` continues a running checksum: adler32(b, adler32(a)) === adler32(concat(a, b)).
 */
const MOD = 65521;
/** Largest n such that 255·n·(n+1)/2 + (n+1)·(MOD−1) < 2^32: sums stay exact in uint32 arithmetic for NMAX bytes. */
const NMAX = 5552;

export function adler32(data: Uint8Array, previous = 1, start = 0, end = data.length): number {
  if (start < 0 || end > data.length || start > end) throw new RangeError(`adler32: bad slice [${start}, ${end}) of ${data.length}`);
  let a = previous & 0xffff;
  let b = (previous >>> 16) & 0xffff;
  let i = start;
  while (i < end) {
    const stop = Math.min(end, i + NMAX);
    for (; i < stop; i++) {
      a += data[i]!;
      b += a;
    }
    a %= MOD;
    b %= MOD;
  }
  return ((b << 16) | a) >>> 0;
}
