import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from './errors.js';
import { xpressHuffmanDecompress } from './xpress-huffman.js';
import { xpressHuffmanCompress } from '../../test/helpers/xpress-encode.js';
import { fuzzDecoder, prefixesFailOrMatch } from '../../test/helpers/decoder-fuzz.js';
import { Prng } from '../../test/helpers/prng.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const FC_SEED = Number(process.env['MEMDUMP_FC_SEED'] ?? 0x5ca1ab1e);

function assertCorrupt(fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => e instanceof MemdumpError && e.code === 'E_CORRUPT', what);
}

/** A 256-byte code-length table: symbol -> bit length, every other symbol absent. */
function table(lengths: Record<number, number>): Buffer {
  const t = Buffer.alloc(256);
  for (const [sym, len] of Object.entries(lengths)) t[Number(sym) >> 1] = t[Number(sym) >> 1]! | (Number(sym) & 1 ? len << 4 : len);
  return t;
}

/*
 * [MS-XCA] section 3.2 "LZ77+Huffman Compression Examples" 1 and 2, byte for byte as Samba's
 * lib/compression/tests/test_lzx_huffman.c carries them (labelled "[MS-XCA] 3.2 example 1/2" there).
 */
const SPEC_32 = [
  {
    // 26 literals + EOF, all once: a..v get 5-bit codes; w, x, y, z and EOF (256) 4-bit ones.
    plain: Buffer.from('abcdefghijklmnopqrstuvwxyz'),
    packed: Buffer.concat([
      table({ ...Object.fromEntries([...'abcdefghijklmnopqrstuv'].map((c) => [c.charCodeAt(0), 5])), 0x77: 4, 0x78: 4, 0x79: 4, 0x7a: 4, 256: 4 }),
      hex('d8523ed794115be9195ff9d67cdf8d04 00000000'),
    ]),
  },
  {
    // a b c (3, 3, 2 bits), symbol 287 = match with 1 offset bit and length nibble 15, its offset bit, EOF; the
    // length 297 - 3 = 294 sits in the byte stream after the two words the decoder preloads: ff, then u16 0x0126.
    plain: Buffer.from('abc'.repeat(100)),
    packed: Buffer.concat([table({ 0x61: 3, 0x62: 3, 0x63: 2, 256: 2, 287: 2 }), hex('a8dc 0000 ff 2601')]),
  },
];

test('[MS-XCA] 3.2 examples decode, and the test encoder reproduces them byte for byte', () => {
  for (const { plain, packed } of SPEC_32) {
    assert.deepEqual(xpressHuffmanDecompress(packed, plain.length), plain);
    assert.deepEqual(xpressHuffmanCompress(plain), packed);
  }
});

test('Windows encodes 65 537 zeros as one block with a match running past 64 KiB (cifs-protocol, Nov 2022)', () => {
  // Literal 0 (code 10), symbol 0x10f = offset 1 + escaped length (code 0), EOF (11); length bytes ff, 0xfffd.
  const packed = Buffer.concat([table({ 0: 2, 256: 2, 0x10f: 1 }), hex('0098 0000 ff fdff')]);
  assert.deepEqual(xpressHuffmanDecompress(packed, 65537), Buffer.alloc(65537));
});

// Windows-made streams (Samba's testdata/compression, produced by the Windows Compression API) are not
// kept in this repository; point MEMDUMP_XPRESS_VECTORS at a checkout's testdata/compression to check them all.

// Optional: the complete Samba vector set, when a checkout is named (e.g. MEMDUMP_XPRESS_VECTORS=.../testdata/compression).
const VECTOR_DIR = process.env['MEMDUMP_XPRESS_VECTORS'];
test('every Samba LZ77+Huffman vector (MEMDUMP_XPRESS_VECTORS)', { skip: VECTOR_DIR === undefined || !existsSync(VECTOR_DIR) }, () => {
  let checked = 0;
  for (const dir of ['compressed-huffman', 'compressed-more-huffman']) {
    for (const f of readdirSync(join(VECTOR_DIR!, dir))) {
      const want = readFileSync(join(VECTOR_DIR!, 'decompressed', f.replace(/\.lzhuff$/, '.decomp')));
      assert.deepEqual(xpressHuffmanDecompress(readFileSync(join(VECTOR_DIR!, dir, f)), want.length), want, `${dir}/${f}`);
      checked++;
    }
  }
  assert.ok(checked > 90);
});

test('invalid code-length tables are E_CORRUPT', () => {
  const stream = hex('0000 0000 0000 0000');
  assertCorrupt(() => xpressHuffmanDecompress(Buffer.concat([table({}), stream]), 1), 'all-zero table with data to come');
  assertCorrupt(() => xpressHuffmanDecompress(Buffer.concat([table({ 0x41: 1, 0x42: 1, 0x43: 1 }), stream]), 1), 'over-subscribed');
  assertCorrupt(() => xpressHuffmanDecompress(Buffer.concat([table({ 0x41: 1, 0x42: 2, 0x43: 2, 0x44: 15 }), stream]), 1), 'over by one 15-bit code');
  // Incomplete codes are legal, but a bit pattern that falls in the unused space is not.
  assert.deepEqual(xpressHuffmanDecompress(Buffer.concat([table({ 0x41: 1 }), stream]), 3), Buffer.from('AAA'));
  assertCorrupt(() => xpressHuffmanDecompress(Buffer.concat([table({ 0x41: 1 }), hex('ffff 0000')]), 1), 'unused prefix');
  // Two 'A's, then the unused half of the code space: an error, not a guess (such as a length-3 match).
  assertCorrupt(() => xpressHuffmanDecompress(Buffer.concat([table({ 0x41: 1 }), hex('ff3f 0000')]), 5), 'unused prefix after data');
  // Nothing to decode: the table is never needed.
  assert.deepEqual(xpressHuffmanDecompress(Buffer.alloc(0), 0), Buffer.alloc(0));
  assertCorrupt(() => xpressHuffmanDecompress(Buffer.alloc(255), 1), 'table cut short');
});

test('malformed streams and sizes are E_CORRUPT', () => {
  const good = SPEC_32[1]!.packed;
  assertCorrupt(() => xpressHuffmanDecompress(good, -1), 'negative size');
  assertCorrupt(() => xpressHuffmanDecompress(good, Number.NaN), 'NaN size');
  assertCorrupt(() => xpressHuffmanDecompress(good, 299), 'match overruns the output');
  assertCorrupt(() => xpressHuffmanDecompress(good, 301), 'bits beyond the end of the input');
  assertCorrupt(() => xpressHuffmanDecompress(good.subarray(0, good.length - 1), 300), 'length escape cut short');
  // The alphabet needs 126 bits: 16 bytes of words hold them (the decoder's zero-filled prefetch past the end is
  // harmless), 14 bytes do not, and the missing bits must not be taken as zeros.
  const alphabet = SPEC_32[0]!;
  assert.deepEqual(xpressHuffmanDecompress(alphabet.packed.subarray(0, 256 + 16), 26), alphabet.plain);
  assertCorrupt(() => xpressHuffmanDecompress(alphabet.packed.subarray(0, 256 + 14), 26), 'bits past the end');
  // Symbol 0x100 (offset 1) as the very first symbol reaches before the output.
  assertCorrupt(() => xpressHuffmanDecompress(Buffer.concat([table({ 256: 1, 0x41: 1 }), hex('ffff 0000')]), 3), 'offset before start');
  // A 16-bit length escape below 15 is an error in [MS-XCA] 2.2.4.
  assertCorrupt(() => xpressHuffmanDecompress(Buffer.concat([table({ 0x41: 1, 0x10f: 1 }), hex('0040 0000 ff 0e00')]), 100), 'escape < 15');
  assert.deepEqual(xpressHuffmanDecompress(Buffer.concat([good, Buffer.from('trailing')]), 300), SPEC_32[1]!.plain);
});

test('every length escape round-trips, including the 32-bit one', () => {
  const prng = new Prng(2);
  for (const len of [3, 17, 18, 19, 272, 273, 65538, 65539, 70_000, 300_000]) {
    const data = Buffer.concat([prng.bytes(16), Buffer.alloc(len, 0x41), prng.bytes(16)]);
    for (const maxMatch of [65538, 1 << 30]) {
      assert.deepEqual(xpressHuffmanDecompress(xpressHuffmanCompress(data, { maxMatch }), data.length), data, `run of ${len}, max ${maxMatch}`);
    }
  }
  // One literal and a single 299 999-byte match: u8 0xff, u16 0, u32 299 996 follow the two preloaded words.
  const run = Buffer.concat([Buffer.from('x'), Buffer.alloc(300_000)]);
  const packed = xpressHuffmanCompress(run, { maxMatch: 1 << 30 });
  assert.deepEqual(packed.subarray(256 + 4, 256 + 11), hex('ff 0000 dc930400'));
  assert.deepEqual(xpressHuffmanDecompress(packed, run.length), run);
});

const arbData = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 2 }),
  fc.uint8Array({ maxLength: 5000 }),
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 3000 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 20 })).map(([unit, reps, edits]) => {
    const b = Buffer.alloc(unit.length * reps);
    for (let i = 0; i < b.length; i++) b[i] = unit[i % unit.length]!;
    for (const [at, v] of edits) if (b.length > 0) b[at % b.length] = v;
    return b;
  }),
  fc.array(fc.tuple(fc.constantFrom('zero', 'text', 'random', 'skewed'), fc.integer({ min: 1, max: 40_000 }), fc.nat()), { maxLength: 8 }).map((parts) =>
    Buffer.concat(
      parts.map(([kind, n, seed]) => {
        if (kind === 'zero') return Buffer.alloc(n);
        const p = new Prng(seed);
        if (kind === 'random') return p.bytes(n);
        // Geometric byte distribution: long codes, exercising the 15-bit limit.
        if (kind === 'skewed') return Buffer.from(Array.from({ length: n }, () => Math.min(255, Math.clz32(p.int(2 ** 31) + 1) * 3 + p.int(3))));
        return Buffer.from('struct task_struct init '.repeat(Math.ceil(n / 24)).slice(0, n));
      }),
    ),
  ),
);

test('round trip (test encoder -> decoder) on random, repetitive and page-like data', () => {
  fc.assert(
    fc.property(arbData, fc.integer({ min: 1, max: 64 }), (data, depth) => {
      const packed = xpressHuffmanCompress(data, { chainDepth: depth });
      assert.deepEqual(xpressHuffmanDecompress(packed, data.length), Buffer.from(data));
    }),
    { numRuns: 200, seed: FC_SEED },
  );
});

test('round trip at sizes around the 64 KiB block boundary', () => {
  const prng = new Prng(9);
  const base = Buffer.concat([prng.bytes(30_000), Buffer.alloc(50_000), Buffer.from('page '.repeat(30_000)), prng.bytes(70_000)]);
  for (const n of [0, 1, 2, 65535, 65536, 65537, 65536 + 300, 131071, 131072, 131073, 196_613, 300_000]) {
    const data = base.subarray(0, n);
    assert.deepEqual(xpressHuffmanDecompress(xpressHuffmanCompress(data), n), data, `size ${n}`);
  }
  // Every block gets its own table: 5 blocks of random bytes need 5 tables (> 5 * 256 bytes of overhead).
  const random = prng.bytes(5 * 65536);
  assert.ok(xpressHuffmanCompress(random).length > random.length + 4 * 256);
});

test('fuzz: damaged streams give E_CORRUPT or exactly outputSize bytes, never another error', () => {
  const corpus = [
    ...SPEC_32.map((s) => ({ packed: s.packed, size: s.plain.length })),
    ...[1, 2].map((seed) => {
      const data = Buffer.concat([new Prng(seed).bytes(3000), Buffer.alloc(70_000), Buffer.from('abc'.repeat(900))]);
      return { packed: xpressHuffmanCompress(data), size: data.length };
    }),
  ];
  fuzzDecoder(xpressHuffmanDecompress, corpus, { seed: 0xfa12, runs: 10_000, patchBytes: [0, 0xff, 0x0f, 0xf0, 0x11] });
});

test('truncating a stream never yields different bytes: a prefix fails or decodes to the original', () => {
  const data = Buffer.concat([new Prng(4).bytes(500), Buffer.alloc(66_000), Buffer.from('abcd'.repeat(400))]);
  prefixesFailOrMatch(xpressHuffmanDecompress, xpressHuffmanCompress(data), data);
});

/**
 * wimlib (libwim15, an independent LZ77+Huffman implementation: WIM's "XPRESS" chunks) as a two-way oracle:
 * its compressor's output must decode with ours, and our encoder's output (which the hibernation fixtures are
 * built with) must decode with its decompressor. wimlib handles one block of at most 64 KiB per call.
 */
function loadWimlib(): { compress(data: Uint8Array, level: number): Buffer | null; decompress(packed: Uint8Array, size: number): Buffer | null } | null {
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load('libwim.so.15');
    const createCompressor = lib.func('int wimlib_create_compressor(int ctype, size_t max, unsigned int level, _Out_ void **ret)');
    const compress = lib.func('size_t wimlib_compress(const void *in, size_t n, _Out_ void *out, size_t avail, void *c)');
    const createDecompressor = lib.func('int wimlib_create_decompressor(int ctype, size_t max, _Out_ void **ret)');
    const decompress = lib.func('int wimlib_decompress(const void *in, size_t n, _Out_ void *out, size_t outn, void *d)');
    const XPRESS = 1;
    const compressors = new Map<number, unknown>();
    const d: unknown[] = [null];
    if (createDecompressor(XPRESS, 65536, d) !== 0) return null;
    return {
      compress(data, level) {
        if (!compressors.has(level)) {
          const c: unknown[] = [null];
          if (createCompressor(XPRESS, 65536, level, c) !== 0) throw new Error('wimlib_create_compressor failed');
          compressors.set(level, c[0]);
        }
        const out = Buffer.alloc(data.length + 1024);
        const n = Number(compress(data, data.length, out, out.length, compressors.get(level)));
        return n === 0 ? null : out.subarray(0, n);
      },
      decompress(packed, size) {
        const out = Buffer.alloc(size);
        return decompress(packed, packed.length, out, size, d[0]) === 0 ? out : null;
      },
    };
  } catch {
    return null;
  }
}
const wimlib = loadWimlib();

test('oracle: wimlib and these codecs read each other (libwim15)', { skip: wimlib === null ? 'libwim.so.15 not installed (apt-get install libwim15)' : false }, () => {
  fc.assert(
    fc.property(arbData.map((d) => d.subarray(0, 65536)), fc.constantFrom(1, 20, 50, 100), fc.integer({ min: 1, max: 64 }), (data, level, depth) => {
      if (data.length === 0) return;
      const theirs = wimlib!.compress(data, level);
      if (theirs !== null) assert.deepEqual(xpressHuffmanDecompress(theirs, data.length), Buffer.from(data), `wimlib level ${level} -> ours`);
      const ours = xpressHuffmanCompress(data, { chainDepth: depth });
      assert.deepEqual(wimlib!.decompress(ours, data.length), Buffer.from(data), 'ours -> wimlib');
    }),
    { numRuns: 300, seed: FC_SEED },
  );
});
