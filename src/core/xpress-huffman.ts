import { MemdumpError } from './errors.js';
import { checkAllocatable, copyMatch } from './xpress.js';

/**
 * LZ77+Huffman decompression of [MS-XCA] section 2.2 ("LZ77+Huffman Decompression Algorithm Details"),
 * the codec of Windows 8+ hibernation files (and of WIM "XPRESS" chunks).
 *
 * Each block of output (64 KiB, or a little more when its last match runs past that point, as Windows'
 * encoder does) is preceded by a 256-byte table: 512 four-bit code lengths, symbol 2i in the low nibble of
 * byte i. Codes are canonical (ordered by length, then symbol). The bit stream is read as
 * 16-bit little-endian words, most significant bit first. Symbols below 256 are literals; symbol
 * 256 + (offsetBits << 4 | lengthNibble) is a match whose length may escape to a byte, then 16 bits,
 * then 32 bits, read from the byte stream at the current word position.
 *
 * Decoding stops the moment the output holds `outputSize` bytes: the EOF symbol (256) is ambiguous with a
 * length-3/offset-1 match and the encoder pads the last word, so the known size is the only reliable end.
 */
export function xpressHuffmanDecompress(input: Uint8Array, outputSize: number): Buffer {
  if (!Number.isSafeInteger(outputSize) || outputSize < 0) {
    throw new MemdumpError('E_CORRUPT', `xpress-huffman: invalid output size ${outputSize}`, { details: { outputSize } });
  }
  checkAllocatable(outputSize, 'xpress-huffman');
  const out = Buffer.allocUnsafe(outputSize);
  const inLen = input.length;
  const primary = PRIMARY;
  const secondary = SECONDARY;
  let ip = 0;
  let op = 0;

  while (op < outputSize) {
    if (ip + TABLE_BYTES > inLen) throw fail('input ends inside a Huffman table', ip, op);
    buildTable(input, ip, op);
    let cp = ip + TABLE_BYTES;
    // nextBits holds 16..32 valid bits, left-aligned, as an int32 (bit 31 is the next bit; >>> reads it
    // unsigned) so the JIT keeps it in a 32-bit register. extra = valid bits - 16. Words past the end of
    // the input read as zero because the decoder prefetches up to 32 bits it may never use; whether those
    // bits were really consumed is checked once the block is done.
    let nextBits = (word(input, cp) << 16) | word(input, cp + 2);
    cp += 4;
    let extra = 16;
    const blockEnd = Math.min(outputSize, op + BLOCK);

    // Every symbol writes at least one byte or throws, and a block decodes at least one symbol, so decoding
    // ends within outputSize symbols whatever the input says.
    while (op < blockEnd) {
      let entry = primary[nextBits >>> (32 - PRIMARY_BITS)]!;
      if (entry >= SUBTABLE) entry = secondary[((entry - SUBTABLE) << SUB_BITS) | ((nextBits >>> (32 - MAX_BITS)) & SUB_MASK)]!;
      const bits = entry & 15;
      const sym = entry >>> 4;
      nextBits <<= bits;
      extra -= bits;
      if (extra < 0) {
        nextBits |= (cp + 1 < inLen ? input[cp]! | (input[cp + 1]! << 8) : word(input, cp)) << -extra;
        extra += 16;
        cp += 2;
      }
      if (sym < 256) {
        out[op++] = sym;
        continue;
      }
      if (sym >= SYMBOLS) throw fail('bit pattern matches no Huffman code', cp, op);
      let length = sym & 15;
      const offsetBits = (sym >>> 4) & 15;
      if (length === 15) {
        if (cp >= inLen) throw fail('input ends inside a match length', cp, op);
        length = input[cp++]!;
        if (length === 255) {
          if (cp + 2 > inLen) throw fail('input ends inside a match length', cp, op);
          length = input[cp]! | (input[cp + 1]! << 8);
          cp += 2;
          if (length === 0) {
            if (cp + 4 > inLen) throw fail('input ends inside a match length', cp, op);
            length = (input[cp]! | (input[cp + 1]! << 8) | (input[cp + 2]! << 16) | (input[cp + 3]! << 24)) >>> 0;
            cp += 4;
          }
          if (length < 15) throw fail('match length escape is smaller than its prefix', cp, op);
          length -= 15;
        }
        length += 15;
      }
      length += 3;
      let offset = 1 << offsetBits;
      if (offsetBits > 0) {
        offset += nextBits >>> (32 - offsetBits);
        nextBits <<= offsetBits;
        extra -= offsetBits;
        if (extra < 0) {
          nextBits |= word(input, cp) << -extra;
          extra += 16;
          cp += 2;
        }
      }
      if (offset > op) throw fail(`match offset ${offset} reaches before the start of the output`, cp, op);
      if (length > outputSize - op) throw fail(`match of ${length} bytes overruns the output`, cp, op);
      copyMatch(out, op, offset, length);
      op += length;
    }
    // Bits still buffered were read ahead, not consumed; only whole words already shifted out count.
    const consumedBits = cp * 8 - (16 + extra);
    if (consumedBits > inLen * 8) throw fail('bit stream runs past the end of the input', cp, op);
    // The next block's table starts at the next unread word, discarding the prefetched bits (the spec's
    // InputPosition = CurrentPosition).
    ip = cp;
  }
  return out;
}

const BLOCK = 65536;
const TABLE_BYTES = 256;
const SYMBOLS = 512;
const MAX_BITS = 15;
/**
 * Two-level decode table. A full 15-bit table is 32 768 entries to fill per block, which dominates when
 * the caller's streams are small (a few pages each); with a 10-bit first level a block
 * costs 1 024 entries plus 32 per prefix that has longer codes. Entries are (symbol << 4) | length;
 * INVALID (symbol 512) marks unused code space; SUBTABLE + n points at second-level table n.
 */
const PRIMARY_BITS = 10;
const SUB_BITS = MAX_BITS - PRIMARY_BITS;
const SUB_MASK = (1 << SUB_BITS) - 1;
const SUBTABLE = 0x8000;
const INVALID = SYMBOLS << 4;
/** Reused: decoding is synchronous, and tables are rebuilt for every block. */
const PRIMARY = new Uint16Array(1 << PRIMARY_BITS);
const SECONDARY = new Uint16Array(1 << MAX_BITS);
const COUNTS = new Uint16Array(MAX_BITS + 1);
const NEXT = new Uint32Array(MAX_BITS + 1);

function word(input: Uint8Array, at: number): number {
  return at + 1 < input.length ? input[at]! | (input[at + 1]! << 8) : at < input.length ? input[at]! : 0;
}

/**
 * Canonical code assignment (by length, then symbol, counting upwards). Over-subscribed length sets cannot
 * come from a real encoder and would make codes ambiguous, so they are rejected; incomplete sets (one used
 * symbol) are legal, and their unused code space decodes to INVALID, which is E_CORRUPT.
 */
function buildTable(input: Uint8Array, at: number, op: number): void {
  COUNTS.fill(0);
  for (let i = 0; i < TABLE_BYTES; i++) {
    const b = input[at + i]!;
    COUNTS[b & 15]!++;
    COUNTS[b >>> 4]!++;
  }
  let kraft = 0;
  for (let len = 1; len <= MAX_BITS; len++) kraft += COUNTS[len]! << (MAX_BITS - len);
  if (kraft === 0) throw fail('Huffman table has no codes', at, op);
  if (kraft > 1 << MAX_BITS) throw fail('Huffman table is over-subscribed', at, op);
  let code = 0;
  for (let len = 1; len <= MAX_BITS; len++) {
    NEXT[len] = code;
    code += COUNTS[len]! << (MAX_BITS - len);
  }
  const primary = PRIMARY;
  const secondary = SECONDARY;
  // Codes are handed out in increasing order, so the short ones fill a prefix of the first level and the
  // rest of it is either subtable pointers or unused space.
  primary.fill(INVALID);
  let subtables = 0;
  for (let sym = 0; sym < SYMBOLS; sym++) {
    const b = input[at + (sym >>> 1)]!;
    const len = sym & 1 ? b >>> 4 : b & 15;
    if (len === 0) continue;
    const start = NEXT[len]!;
    NEXT[len] = start + (1 << (MAX_BITS - len));
    const entry = (sym << 4) | len;
    if (len <= PRIMARY_BITS) {
      const first = start >>> SUB_BITS;
      const end = first + (1 << (PRIMARY_BITS - len));
      for (let i = first; i < end; i++) primary[i] = entry;
      continue;
    }
    const prefix = start >>> SUB_BITS;
    let slot = primary[prefix]!;
    if (slot < SUBTABLE) {
      slot = SUBTABLE + subtables++;
      primary[prefix] = slot;
      secondary.fill(INVALID, (slot - SUBTABLE) << SUB_BITS, (slot - SUBTABLE + 1) << SUB_BITS);
    }
    const base = ((slot - SUBTABLE) << SUB_BITS) | (start & SUB_MASK);
    const end = base + (1 << (MAX_BITS - len));
    for (let i = base; i < end; i++) secondary[i] = entry;
  }
}

function fail(what: string, ip: number, op: number): MemdumpError {
  return new MemdumpError('E_CORRUPT', `xpress-huffman: ${what} (input offset ${ip}, output offset ${op})`, {
    details: { inputOffset: ip, outputOffset: op },
  });
}
