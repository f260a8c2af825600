/**
 * A cheap, allocation-free look at the first deflate block, so that the ~130k zlib-looking headers per GiB of
 * random data are rejected in JS instead of each costing a node:zlib instance. The checks are the ones zlib's
 * inflate itself makes and would fail on: block type 3, stored LEN != ~NLEN, too many length/distance codes,
 * incomplete or over-subscribed Huffman codes, a repeat with nothing to repeat, no end-of-block code; for a
 * fixed-Huffman block, the first symbols are decoded and a back-reference before any output is refused.
 */

/** LSB-first bit reader over buf[pos, end); reading past `end` yields -1 so a cut header is "maybe". */
class Bits {
  private bit = 0;
  constructor(private readonly buf: Buffer, private pos: number, private readonly end: number) {}
  get(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) {
      if (this.pos >= this.end) return -1;
      const b = ((this.buf[this.pos] as number) >>> this.bit) & 1;
      v |= b << i;
      if (++this.bit === 8) {
        this.bit = 0;
        this.pos++;
      }
    }
    return v;
  }
  align(): void {
    if (this.bit !== 0) {
      this.bit = 0;
      this.pos++;
    }
  }
}

const CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** 0: complete, 1: incomplete, 2: over-subscribed (zlib's inflate_table rules). */
function kraft(lengths: ArrayLike<number>, n: number, maxBits: number): { state: 0 | 1 | 2; used: number; max: number } {
  let left = 1;
  let used = 0;
  let max = 0;
  const count = new Uint16Array(maxBits + 1);
  for (let i = 0; i < n; i++) {
    const l = lengths[i] as number;
    if (l > 0) {
      count[l] = (count[l] as number) + 1;
      used++;
      if (l > max) max = l;
    }
  }
  for (let l = 1; l <= maxBits; l++) {
    left = left * 2 - (count[l] as number);
    if (left < 0) return { state: 2, used, max };
  }
  return { state: left === 0 ? 0 : 1, used, max };
}

/** Canonical Huffman code as counts per length and symbols in code order (as in zlib's puff.c). */
interface Huff {
  count: Uint16Array;
  symbol: Uint16Array;
}
function huff(lengths: ArrayLike<number>, n: number): Huff {
  const count = new Uint16Array(16);
  for (let i = 0; i < n; i++) count[lengths[i] as number]! += 1;
  const offs = new Uint16Array(16);
  for (let l = 1; l < 15; l++) offs[l + 1] = (offs[l] as number) + (count[l] as number);
  const symbol = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const l = lengths[i] as number;
    if (l !== 0) symbol[offs[l]!++] = i;
  }
  return { count, symbol };
}

/** Next symbol, -1 when the data ran out, -2 for a code that is not in the table. */
function decodeSym(bits: Bits, h: Huff): number {
  let code = 0;
  let first = 0;
  let index = 0;
  for (let len = 1; len < 16; len++) {
    const b = bits.get(1);
    if (b < 0) return -1;
    code |= b;
    const count = h.count[len] as number;
    if (code - count < first) return h.symbol[index + (code - first)] as number;
    index += count;
    first = (first + count) << 1;
    code <<= 1;
  }
  return -2;
}

const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];

/** A fixed-Huffman start is believed after this many symbols and this much output (zlib.ts wants 16 bytes anyway). */
const FIXED_SYMBOLS = 64;
const FIXED_OUTPUT = 16;
/** Blocks looked at before giving the benefit of the doubt (a stream may open with empty sync-flush blocks). */
const MAX_BLOCKS = 4;

/**
 * False when the deflate stream at buf[pos] cannot be valid. Data cut by `end` before a verdict counts as
 * plausible (node:zlib decides). A stream that ends with less than `minOutput` bytes is refused. Fixed-Huffman blocks, a quarter of random candidates, are decoded symbol by
 * symbol until FIXED_OUTPUT bytes came out: random bits soon refer back past the start or end the stream early.
 */
export function plausibleDeflate(buf: Buffer, pos: number, end: number, minOutput = FIXED_OUTPUT): boolean {
  const bits = new Bits(buf, pos, Math.min(end, buf.length));
  let out = 0;
  let symbols = 0;
  for (let block = 0; block < MAX_BLOCKS; block++) {
    const final = bits.get(1);
    const type = bits.get(2);
    if (final < 0 || type < 0) return true;
    if (type === 3) return false;
    if (type === 0) {
      bits.align();
      const len = bits.get(16);
      const nlen = bits.get(16);
      if (len < 0 || nlen < 0) return true;
      return (len ^ 0xffff) === nlen && (len > 0 || final === 0);
    }
    if (type === 2) return plausibleDynamic(bits);
    for (;;) {
      const sym = decodeSymFixed(bits);
      if (sym === -1) return true;
      if (++symbols >= FIXED_SYMBOLS && out >= minOutput) return true;
      if (sym < 256) {
        out++;
        continue;
      }
      if (sym === 256) break;
      if (sym > 285) return false;
      const li = sym - 257;
      const lx = bits.get(LEN_EXTRA[li] as number);
      const d = bits.get(5);
      if (lx < 0 || d < 0) return true;
      const dsym = reverse(d, 5);
      if (dsym > 29) return false;
      const dx = bits.get(DIST_EXTRA[dsym] as number);
      if (dx < 0) return true;
      if ((DIST_BASE[dsym] as number) + dx > out) return false;
      out += (LEN_BASE[li] as number) + lx;
    }
    if (final === 1) return out >= minOutput;
  }
  return true;
}

function plausibleDynamic(bits: Bits): boolean {
  const hlit = bits.get(5);
  const hdist = bits.get(5);
  const hclen = bits.get(4);
  if (hlit < 0 || hdist < 0 || hclen < 0) return true;
  const nlit = hlit + 257;
  const ndist = hdist + 1;
  if (nlit > 286 || ndist > 30) return false;
  const cl = new Uint8Array(19);
  for (let i = 0; i < hclen + 4; i++) {
    const v = bits.get(3);
    if (v < 0) return true;
    cl[CL_ORDER[i] as number] = v;
  }
  if (kraft(cl, 19, 7).state !== 0) return false;
  const clHuff = huff(cl, 19);
  const lens = new Uint8Array(nlit + ndist);
  let n = 0;
  while (n < nlit + ndist) {
    const sym = decodeSym(bits, clHuff);
    if (sym === -1) return true;
    if (sym < 0) return false;
    if (sym < 16) {
      lens[n++] = sym;
      continue;
    }
    let rep: number;
    let val = 0;
    if (sym === 16) {
      if (n === 0) return false;
      val = lens[n - 1] as number;
      rep = bits.get(2);
      if (rep < 0) return true;
      rep += 3;
    } else {
      rep = bits.get(sym === 17 ? 3 : 7);
      if (rep < 0) return true;
      rep += sym === 17 ? 3 : 11;
    }
    if (n + rep > nlit + ndist) return false;
    lens.fill(val, n, n + rep);
    n += rep;
  }
  if (lens[256] === 0) return false;
  const lit = kraft(lens, nlit, 15);
  if (lit.state === 2 || (lit.state === 1 && lit.max !== 1)) return false;
  const dist = kraft(lens.subarray(nlit), ndist, 15);
  if (dist.state === 2 || (dist.state === 1 && dist.max > 1)) return false;
  return true;
}

function reverse(v: number, n: number): number {
  let r = 0;
  for (let i = 0; i < n; i++) r = (r << 1) | ((v >>> i) & 1);
  return r;
}

/** Fixed lit/len codes: 7-bit 256-279, 8-bit 0-143 and 280-287, 9-bit 144-255 (RFC 1951 3.2.6). */
function decodeSymFixed(bits: Bits): number {
  const a = bits.get(7);
  if (a < 0) return -1;
  const c7 = reverse(a, 7);
  if (c7 <= 0x17) return 256 + c7;
  const b = bits.get(1);
  if (b < 0) return -1;
  const c8 = (c7 << 1) | b;
  if (c8 >= 0x30 && c8 <= 0xbf) return c8 - 0x30;
  if (c8 >= 0xc0 && c8 <= 0xc7) return 280 + (c8 - 0xc0);
  const c = bits.get(1);
  if (c < 0) return -1;
  return 144 + (((c8 << 1) | c) - 0x190);
}
