/**
 * Test-side encoders for the two [MS-XCA] Xpress codecs, so decoders can be round-tripped and hibernation fixtures
 * built without Windows. They are real encoders (hash-chain LZ77, per-block canonical Huffman) written for clarity,
 * not speed.
 *
 * Both reproduce the byte-exact outputs of the specification's examples (3.1 and 3.2), which pins down the
 * details a round trip alone cannot: flag padding, Huffman tie-breaking, where literal length bytes sit between
 * the 16-bit bit-stream words, and the EOF symbol.
 */

export interface XpressEncodeOptions {
  /**
   * Longest match emitted. Plain LZ77 defaults to unlimited (the 32-bit length escape); LZ77+Huffman defaults to
   * 65538, the limit [MS-XCA] 2.1.4.3 states, so fixtures look like Windows output. Raise it to exercise the
   * 32-bit escape in the Huffman decoder.
   */
  maxMatch?: number;
  /** Hash-chain candidates examined per position (default 32): more finds longer matches, slower. */
  chainDepth?: number;
}

const MIN_MATCH = 3;
const HASH_BITS = 15;
/** A match this long is good enough; searching further down the chain rarely pays. */
const NICE_MATCH = 258;

/**
 * Greedy LZ77 parse with hash chains. Calls `emit` for every token in order: a literal (length 0, `offset` is the
 * byte) or a match of `length` bytes at distance `offset`.
 */
function parse(
  data: Uint8Array,
  maxOffset: number,
  maxMatch: number,
  chainDepth: number,
  emit: (pos: number, length: number, offset: number) => void,
): void {
  const n = data.length;
  const head = new Int32Array(1 << HASH_BITS).fill(-1);
  const windowSize = 1 << Math.ceil(Math.log2(maxOffset + 1));
  const prev = new Int32Array(windowSize).fill(-1);
  const mask = windowSize - 1;
  const hashAt = (i: number): number => (((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!) * 0x9e3779b1) >>> (32 - HASH_BITS);
  const insert = (i: number): void => {
    if (i + MIN_MATCH > n) return;
    const h = hashAt(i);
    prev[i & mask] = head[h]!;
    head[h] = i;
  };

  let pos = 0;
  while (pos < n) {
    let bestLen = 0;
    let bestOff = 0;
    if (pos + MIN_MATCH <= n) {
      const limit = Math.min(maxMatch, n - pos);
      let cand = head[hashAt(pos)]!;
      for (let depth = 0; cand >= 0 && depth < chainDepth; depth++) {
        const off = pos - cand;
        if (off > maxOffset) break;
        if (data[cand + bestLen] === data[pos + bestLen]) {
          let l = 0;
          while (l < limit && data[cand + l] === data[pos + l]) l++;
          if (l > bestLen) {
            bestLen = l;
            bestOff = off;
            if (l >= NICE_MATCH || l === limit) break;
          }
        }
        const next = prev[cand & mask]!;
        // Slots are reused modulo the window; a link that does not point backwards is stale.
        if (next >= cand) break;
        cand = next;
      }
    }
    if (bestLen >= MIN_MATCH) {
      emit(pos, bestLen, bestOff);
      const end = pos + bestLen;
      for (; pos < end; pos++) insert(pos);
    } else {
      emit(pos, 0, data[pos]!);
      insert(pos);
      pos++;
    }
  }
}

/** Growable byte buffer with little-endian writes and in-place patching. */
class Out {
  buf = Buffer.alloc(1024);
  len = 0;
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }
  u16(v: number): void {
    this.room(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
  }
  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
  }
  reserve(n: number): number {
    this.room(n);
    const at = this.len;
    this.buf.fill(0, at, at + n);
    this.len += n;
    return at;
  }
  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Plain LZ77 ([MS-XCA] 2.3)

export function xpressCompress(data: Uint8Array, options: XpressEncodeOptions = {}): Buffer {
  const out = new Out();
  let flagsAt = out.reserve(4);
  let flags = 0;
  let flagCount = 0;
  let nibbleAt = -1;
  const pushFlag = (bit: number): void => {
    flags = ((flags << 1) | bit) >>> 0;
    if (++flagCount === 32) {
      out.buf.writeUInt32LE(flags, flagsAt);
      flagsAt = out.reserve(4);
      flags = 0;
      flagCount = 0;
    }
  };
  parse(data, 8192, options.maxMatch ?? 0xffffffff, options.chainDepth ?? 32, (_pos, length, offset) => {
    if (length === 0) {
      out.u8(offset);
      pushFlag(0);
      return;
    }
    let l = length - MIN_MATCH;
    out.u16(((offset - 1) << 3) | Math.min(l, 7));
    if (l >= 7) {
      l -= 7;
      // Long matches share length bytes in pairs: the first takes the low nibble, the next one the high nibble.
      if (nibbleAt < 0) {
        nibbleAt = out.reserve(1);
        out.buf[nibbleAt] = Math.min(l, 15);
      } else {
        out.buf[nibbleAt] = out.buf[nibbleAt]! | (Math.min(l, 15) << 4);
        nibbleAt = -1;
      }
      if (l >= 15) {
        l -= 15;
        if (l < 255) out.u8(l);
        else {
          out.u8(255);
          const full = length - MIN_MATCH;
          if (full <= 0xffff) out.u16(full);
          else {
            out.u16(0);
            out.u32(full);
          }
        }
      }
    }
    pushFlag(1);
  });
  // Unused flag bits are ones: a spec decoder that meets a match flag at the end of its input stops there.
  out.buf.writeUInt32LE(flagCount === 0 ? 0xffffffff : (((flags << (32 - flagCount)) | ((1 << (32 - flagCount)) - 1)) >>> 0), flagsAt);
  return out.result();
}

// ---------------------------------------------------------------------------------------------------------------
// LZ77+Huffman ([MS-XCA] 2.1)

const BLOCK = 65536;
const SYMBOLS = 512;
const EOF_SYMBOL = 256;
const MAX_CODE_BITS = 15;

export function xpressHuffmanCompress(data: Uint8Array, options: XpressEncodeOptions = {}): Buffer {
  const out = new Out();
  // One block's tokens at a time (at most one per byte of the block), so memory does not grow with the input.
  const lengthOf = new Uint32Array(BLOCK);
  const offsetOf = new Uint32Array(BLOCK);
  let count = 0;
  let started = false;
  let blockEnd = 0;
  const symbolOf = (i: number): number => {
    const length = lengthOf[i]!;
    if (length === 0) return offsetOf[i]!;
    return 256 + ((31 - Math.clz32(offsetOf[i]!)) << 4) + Math.min(length - MIN_MATCH, 15);
  };
  const writeBlock = (final: boolean): void => {
    const freq = new Uint32Array(SYMBOLS);
    for (let i = 0; i < count; i++) freq[symbolOf(i)]!++;
    if (final) freq[EOF_SYMBOL]!++;
    const lengths = codeLengths(freq);
    const codes = canonicalCodes(lengths);
    const tableAt = out.reserve(256);
    for (let s = 0; s < SYMBOLS; s += 2) out.buf[tableAt + (s >>> 1)] = lengths[s]! | (lengths[s + 1]! << 4);
    const bits = new BitWriter(out);
    for (let i = 0; i < count; i++) {
      const sym = symbolOf(i);
      bits.write(codes[sym]!, lengths[sym]!);
      if (sym < 256) continue;
      const l = lengthOf[i]! - MIN_MATCH;
      if (l >= 15) {
        if (l - 15 < 255) out.u8(l - 15);
        else {
          out.u8(255);
          if (l <= 0xffff) out.u16(l);
          else {
            out.u16(0);
            out.u32(l);
          }
        }
      }
      const offsetBits = (sym >>> 4) & 15;
      if (offsetBits > 0) bits.write(offsetOf[i]! - (1 << offsetBits), offsetBits);
    }
    if (final) bits.write(codes[EOF_SYMBOL]!, lengths[EOF_SYMBOL]!);
    bits.flush();
  };
  parse(data, 65535, options.maxMatch ?? 65538, options.chainDepth ?? 32, (pos, length, offset) => {
    // A block is everything emitted until the output reaches 64 KiB past its start; a match may run past that
    // point and the next block then starts where the match ends (as Windows does, and as the decoder expects).
    if (pos >= blockEnd) {
      if (started) writeBlock(false);
      started = true;
      count = 0;
      blockEnd = pos + BLOCK;
    }
    lengthOf[count] = length;
    offsetOf[count] = offset;
    count++;
  });
  writeBlock(true);
  return out.result();
}

/**
 * MSB-first bits in 16-bit little-endian words, interleaved with raw bytes exactly where the decoder will look
 * for them. The decoder holds 32 bits: after consuming c bits it has loaded max(2, ceil(c/16) + 1) words, and a
 * raw byte read comes from just past the last loaded word. So a word's slot is reserved (at the current end of
 * the output) the moment the decoder would load it, and raw bytes are appended after the reserved slots.
 */
class BitWriter {
  private readonly slots: number[] = [];
  private consumed = 0;
  private acc = 0;
  private accBits = 0;
  private wordsDone = 0;
  constructor(private readonly out: Out) {
    this.ensure();
  }
  /** `count` <= 15 bits of `value`, most significant first. */
  write(value: number, count: number): void {
    // acc holds < 16 pending bits, so adding <= 15 stays within 31.
    this.acc = (this.acc << count) | (value & ((1 << count) - 1));
    this.accBits += count;
    if (this.accBits >= 16) {
      this.accBits -= 16;
      this.emitWord(this.acc >>> this.accBits);
      this.acc &= (1 << this.accBits) - 1;
    }
    this.consumed += count;
    this.ensure();
  }
  flush(): void {
    if (this.accBits > 0) this.emitWord(this.acc << (16 - this.accBits));
    this.acc = 0;
    this.accBits = 0;
  }
  private emitWord(word: number): void {
    this.out.buf.writeUInt16LE(word & 0xffff, this.slots[this.wordsDone++]!);
  }
  private ensure(): void {
    const need = Math.max(2, Math.ceil(this.consumed / 16) + 1);
    while (this.slots.length < need) this.slots.push(this.out.reserve(2));
  }
}

/**
 * Huffman code lengths limited to 15 bits. Leaves are ordered by (frequency, symbol) and merged with the
 * two-queue method, taking a leaf on ties: this is the tie-breaking that reproduces Windows' tables in
 * [MS-XCA] 3.2. When a code would exceed 15 bits the frequencies are flattened and the tree rebuilt.
 */
export function codeLengths(freq: Uint32Array): Uint8Array {
  const f = Array.from(freq);
  for (;;) {
    const lengths = huffmanLengths(f);
    let max = 0;
    for (const l of lengths) max = Math.max(max, l);
    if (max <= MAX_CODE_BITS) return lengths;
    for (let i = 0; i < f.length; i++) if (f[i]! > 0) f[i] = Math.max(1, f[i]! >>> 1);
  }
}

function huffmanLengths(freq: readonly number[]): Uint8Array {
  const n = freq.length;
  const lengths = new Uint8Array(n);
  const leaves: number[] = [];
  for (let s = 0; s < n; s++) if (freq[s]! > 0) leaves.push(s);
  if (leaves.length === 0) return lengths;
  if (leaves.length === 1) {
    // One symbol still gets a complete one-bit code (paired with an unused symbol), so strict decoders that
    // reject incomplete tables accept the block.
    lengths[leaves[0]!] = 1;
    lengths[leaves[0] === 0 ? 1 : 0] = 1;
    return lengths;
  }
  leaves.sort((a, b) => freq[a]! - freq[b]! || a - b);
  // Nodes 0..n-1 are symbols; internal nodes are numbered from n. parent[] lets depths be read back.
  const weight: number[] = [...freq];
  const parent: number[] = new Array<number>(n).fill(-1);
  const internal: number[] = [];
  let li = 0;
  let ii = 0;
  const takeSmallest = (): number => {
    if (li < leaves.length && (ii >= internal.length || weight[leaves[li]!]! <= weight[internal[ii]!]!)) return leaves[li++]!;
    return internal[ii++]!;
  };
  while (leaves.length - li + internal.length - ii > 1) {
    const a = takeSmallest();
    const b = takeSmallest();
    const node = weight.length;
    weight.push(weight[a]! + weight[b]!);
    parent.push(-1);
    parent[a] = node;
    parent[b] = node;
    internal.push(node);
  }
  const depth = new Array<number>(weight.length).fill(0);
  for (let node = weight.length - 2; node >= 0; node--) if (parent[node]! >= 0) depth[node] = depth[parent[node]!]! + 1;
  for (const s of leaves) lengths[s] = depth[s]!;
  return lengths;
}

/** Canonical codes: by length, then by symbol, counting upwards (the order the decoder's table assumes). */
export function canonicalCodes(lengths: Uint8Array): Uint32Array {
  const codes = new Uint32Array(lengths.length);
  let code = 0;
  for (let len = 1; len <= MAX_CODE_BITS; len++) {
    for (let s = 0; s < lengths.length; s++) if (lengths[s] === len) codes[s] = code++;
    code <<= 1;
  }
  return codes;
}
