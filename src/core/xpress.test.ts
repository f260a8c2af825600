import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from './errors.js';
import { xpressDecompress } from './xpress.js';
import { xpressCompress } from '../../test/helpers/xpress-encode.js';
import { fuzzDecoder, prefixesFailOrMatch } from '../../test/helpers/decoder-fuzz.js';
import { Prng } from '../../test/helpers/prng.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const FC_SEED = Number(process.env['MEMDUMP_FC_SEED'] ?? 0x5ca1ab1e);

function assertCorrupt(fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => e instanceof MemdumpError && e.code === 'E_CORRUPT', what);
}

// [MS-XCA] section 3.1 "Plain LZ77 Compression Examples" (also the vectors of Samba's lzxpress tests).
const SPEC_31 = [
  { plain: Buffer.from('abcdefghijklmnopqrstuvwxyz'), packed: hex('3f000000 6162636465666768696a6b6c6d6e6f707172737475767778797a') },
  // "abc" then one match at distance 3 whose length 297 climbs the nibble (0x0f), byte (0xff) and 16-bit (0x0126) escapes.
  { plain: Buffer.from('abc'.repeat(100)), packed: hex('ffffff1f 616263 1700 0f ff 2601') },
];

test('[MS-XCA] 3.1 examples decode, and the test encoder reproduces them byte for byte', () => {
  for (const { plain, packed } of SPEC_31) {
    assert.deepEqual(xpressDecompress(packed, plain.length), plain);
    assert.deepEqual(xpressCompress(plain), packed);
  }
});

// Windows-made streams (Samba's testdata/compression, produced by the Windows Compression API) are not
// kept in this repository; point MEMDUMP_XPRESS_VECTORS at a checkout's testdata/compression to check them all.

// Optional: the complete Samba vector set, when a checkout is named (e.g. MEMDUMP_XPRESS_VECTORS=.../testdata/compression).
const VECTOR_DIR = process.env['MEMDUMP_XPRESS_VECTORS'];
test('every Samba plain-LZ77 vector (MEMDUMP_XPRESS_VECTORS)', { skip: VECTOR_DIR === undefined || !existsSync(VECTOR_DIR) }, () => {
  let checked = 0;
  for (const dir of ['compressed-plain', 'compressed-more-plain']) {
    for (const f of readdirSync(join(VECTOR_DIR!, dir))) {
      const want = readFileSync(join(VECTOR_DIR!, 'decompressed', f.replace(/\.lzplain$/, '.decomp')));
      const packed = readFileSync(join(VECTOR_DIR!, dir, f));
      // Where compression did not pay, the API stored the file as is; that is not an Xpress stream.
      if (packed.length >= want.length) continue;
      assert.deepEqual(xpressDecompress(packed, want.length), want, `${dir}/${f}`);
      checked++;
    }
  }
  assert.ok(checked > 50);
});

test('two long matches share one length byte, low nibble first', () => {
  // a b c, match(3 back, 10 = 3+7+0: low nibble 0), 'z', match(1 back, 11 = 3+7+1: high nibble 1).
  const packed = hex('ffffff17 616263 1700 10 7a 0700');
  const want = Buffer.from('abcabcabcabca' + 'z'.repeat(12));
  assert.deepEqual(xpressDecompress(packed, want.length), want);
});

test('every length escape round-trips: none, nibble, byte, 16-bit and 32-bit', () => {
  const prng = new Prng(1);
  for (const len of [3, 9, 10, 24, 25, 279, 280, 65538, 65539, 70_000, 300_000]) {
    const head = prng.bytes(16);
    const data = Buffer.concat([head, Buffer.alloc(len, 0x41), prng.bytes(16)]);
    const packed = xpressCompress(data);
    assert.deepEqual(xpressDecompress(packed, data.length), data, `run of ${len}`);
  }
  // The 32-bit form really is used: 'x', one literal zero, then a 299 999-byte match at distance 1 whose
  // length - 3 does not fit 16 bits: token 0x0007, nibble 0x0f, 0xff, 0x0000, u32 299 996.
  const run = Buffer.concat([Buffer.from('x'), Buffer.alloc(300_000)]);
  const packed = xpressCompress(run);
  assert.deepEqual(packed, hex('ffffff3f 78 00 0700 0f ff 0000 dc930400'));
  assert.deepEqual(xpressDecompress(packed, run.length), run);
});

const arbData = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 2 }),
  fc.uint8Array({ maxLength: 5000 }),
  // Repetitive: a short random unit repeated, with occasional edits.
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 3000 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 20 })).map(([unit, reps, edits]) => {
    const b = Buffer.alloc(unit.length * reps);
    for (let i = 0; i < b.length; i++) b[i] = unit[i % unit.length]!;
    for (const [at, v] of edits) if (b.length > 0) b[at % b.length] = v;
    return b;
  }),
  // Page-like: zero, text and random stretches.
  fc.array(fc.tuple(fc.constantFrom('zero', 'text', 'random'), fc.integer({ min: 1, max: 9000 }), fc.nat()), { maxLength: 12 }).map((parts) =>
    Buffer.concat(parts.map(([kind, n, seed]) => (kind === 'zero' ? Buffer.alloc(n) : kind === 'random' ? new Prng(seed).bytes(n) : Buffer.from('struct task_struct init '.repeat(Math.ceil(n / 24)).slice(0, n))))),
  ),
);

test('round trip (test encoder -> decoder) on random, repetitive and page-like data', () => {
  fc.assert(
    fc.property(arbData, fc.integer({ min: 1, max: 64 }), (data, depth) => {
      const packed = xpressCompress(data, { chainDepth: depth });
      assert.deepEqual(xpressDecompress(packed, data.length), Buffer.from(data));
    }),
    { numRuns: 300, seed: FC_SEED },
  );
});

test('round trip at sizes around 8 KiB windows and 64 KiB', () => {
  const prng = new Prng(7);
  const base = Buffer.concat([prng.bytes(3000), Buffer.alloc(40_000), Buffer.from('page '.repeat(20_000)), prng.bytes(70_000)]);
  for (const n of [0, 1, 2, 3, 8191, 8192, 8193, 65535, 65536, 65537, 131071, 131072, 131073, 200_000]) {
    const data = base.subarray(0, n);
    assert.deepEqual(xpressDecompress(xpressCompress(data), n), data, `size ${n}`);
  }
});

test('malformed streams and sizes are E_CORRUPT', () => {
  const good = SPEC_31[1]!.packed;
  assertCorrupt(() => xpressDecompress(good, -1), 'negative size');
  assertCorrupt(() => xpressDecompress(good, 1.5), 'fractional size');
  assertCorrupt(() => xpressDecompress(Buffer.alloc(0), 1), 'empty input');
  assertCorrupt(() => xpressDecompress(good, 301), 'output larger than the stream holds');
  assertCorrupt(() => xpressDecompress(good, 299), 'match overruns the output');
  assertCorrupt(() => xpressDecompress(hex('ffffffff 0800'), 4), 'match before the start of the output');
  // 16-bit escape below its own prefix (15 + 7): the spec calls this an error.
  assertCorrupt(() => xpressDecompress(hex('7fffffff 41 0700 0f ff 1500'), 100), '16-bit length < 22');
  assertCorrupt(() => xpressDecompress(hex('7fffffff 41 0700 0f ff 00 00'), 100), '32-bit escape cut short');
  assert.deepEqual(xpressDecompress(Buffer.alloc(0), 0), Buffer.alloc(0));
  // Decoding stops when the output is full; what follows (padding, the next record) is not read.
  assert.deepEqual(xpressDecompress(Buffer.concat([good, Buffer.from('trailing')]), 300), SPEC_31[1]!.plain);
});

test('fuzz: damaged streams give E_CORRUPT or exactly outputSize bytes, never another error', () => {
  const corpus = [
    ...SPEC_31.map((s) => ({ packed: s.packed, size: s.plain.length })),
    ...[1, 2, 3].map((seed) => {
      const data = Buffer.concat([new Prng(seed).bytes(3000), Buffer.alloc(9000), Buffer.from('abc'.repeat(900))]);
      return { packed: xpressCompress(data), size: data.length };
    }),
  ];
  fuzzDecoder(xpressDecompress, corpus, { seed: 0xfa11, runs: 20_000, patchBytes: [0, 0xff, 0x07, 0x0f] });
});

test('truncating a stream never yields different bytes: a prefix fails or decodes to the original', () => {
  const data = Buffer.concat([new Prng(3).bytes(500), Buffer.alloc(3000), Buffer.from('abcd'.repeat(400))]);
  prefixesFailOrMatch(xpressDecompress, xpressCompress(data), data);
});
