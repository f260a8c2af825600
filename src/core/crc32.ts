import { crc32 } from 'node:zlib';

/**
 * CRC-32 (gzip's, reflected polynomial 0xEDB88320) bookkeeping that zlib.crc32 alone cannot do: the CRC of A‖B from
 * crc(A), crc(B) and |B|. Multiplying crc(A) by x^(8|B|) modulo the polynomial shifts it past B, so a run of zero
 * blocks (holes, unreadable pages: hundreds of MiB) is accounted without hashing its bytes.
 */

const POLY = 0xedb88320;

/** a·b mod P, both in the reflected representation (bit 31 is x^0). */
function mulModP(a: number, b: number): number {
  let p = 0;
  for (let m = 0x80000000; m !== 0; m >>>= 1) {
    if (a & m) p ^= b;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(8n) mod P, by squaring: x^(2^k) for each set bit k of 8n. */
function xPow8n(n: number): number {
  let p = 0x80000000; // x^0 in the reflected representation
  let sq = 0x40000000; // x^1
  for (let e = n * 8; e > 0; e = Math.floor(e / 2)) {
    if (e % 2) p = mulModP(sq, p);
    sq = mulModP(sq, sq);
  }
  return p;
}

/** crc32(A‖B), given crc32(A), crc32(B) and the length of B in bytes. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (mulModP(xPow8n(lengthB), crcA) ^ crcB) >>> 0;
}

/**
 * Running CRC-32 and length of a stream written as data blocks and whole all-zero blocks of `zeroBlockBytes`:
 * a zero block is folded in with one multiplication by a precomputed shift instead of hashing its bytes.
 */
export class Crc32Account {
  crc = 0;
  length = 0n;
  private readonly zeroCrc: number;
  private readonly shiftBlock: number;

  constructor(private readonly zeroBlockBytes: number) {
    this.zeroCrc = crc32(Buffer.alloc(zeroBlockBytes));
    this.shiftBlock = xPow8n(zeroBlockBytes);
  }

  add(block: Uint8Array): void {
    this.crc = crc32(block, this.crc);
    this.length += BigInt(block.length);
  }

  addZeroBlocks(count: number): void {
    for (let i = 0; i < count; i++) this.crc = (mulModP(this.shiftBlock, this.crc) ^ this.zeroCrc) >>> 0;
    this.length += BigInt(count) * BigInt(this.zeroBlockBytes);
  }
}
