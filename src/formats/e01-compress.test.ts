import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { adler32 } from '../core/adler32.js';
import { Prng } from '../../test/helpers/prng.js';
import { ChunkPool, ENTROPY_LIMIT, encodeChunk, fastAdler32, looksIncompressible, sampleEntropy, storedChunk, type StoredChunk } from './e01-compress.js';

const CHUNK = 32768;
const WORDS = 'the memory of a process holds pages tables and keys that an examiner reads'.split(' ');

function text(p: Prng, n: number): Buffer {
  let s = '';
  while (s.length < n) s += WORDS[p.int(WORDS.length)]! + (p.int(9) === 0 ? '.\n' : ' ');
  return Buffer.from(s.slice(0, n), 'latin1');
}

/** Seeded mix of chunk kinds: random, text, zeros, half random / half zeros, short. */
function chunks(seed: number, n: number): Buffer[] {
  const p = new Prng(seed);
  return Array.from({ length: n }, (_, i) => {
    switch (p.int(5)) {
      case 0:
        return p.bytes(CHUNK);
      case 1:
        return text(p, CHUNK);
      case 2:
        return Buffer.alloc(CHUNK);
      case 3:
        return Buffer.concat([p.bytes(CHUNK / 2), Buffer.alloc(CHUNK / 2, i & 0xff)]);
      default:
        return text(p, 512 * (1 + p.int(63)));
    }
  });
}

/** The data a stored chunk stands for, checking whichever checksum it carries. */
function decode(c: StoredChunk): Buffer {
  if (c.compressed) return inflateSync(c.bytes);
  const data = c.bytes.subarray(0, c.bytes.length - 4);
  assert.equal(c.bytes.readUInt32LE(c.bytes.length - 4), adler32(data), 'stored chunk ends with the Adler-32 of its data');
  return data;
}

test('fastAdler32 equals the reference Adler-32 on any input, including long runs of 0xff', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(200_000), fc.integer({ min: 0, max: 255 }), (head, fillLen, fillByte) => {
      const b = Buffer.concat([Buffer.from(head), Buffer.alloc(fillLen, fillByte)]);
      assert.equal(fastAdler32(b), adler32(b));
    }),
    { numRuns: 60 },
  );
  assert.equal(fastAdler32(Buffer.alloc(0)), 1);
  assert.equal(fastAdler32(Buffer.from('Wikipedia', 'latin1')), 0x11e60398);
});

test('storedChunk is the data followed by its Adler-32, little-endian', () => {
  const data = new Prng(1).bytes(1000);
  const s = storedChunk(data);
  assert.equal(s.length, 1004);
  assert.deepEqual(s.subarray(0, 1000), data);
  assert.equal(s.readUInt32LE(1000), adler32(data));
});

test('the entropy probe: random chunks are incompressible, text, zeros, half-zero and short chunks are not', () => {
  const p = new Prng(2);
  for (let i = 0; i < 50; i++) assert.ok(sampleEntropy(p.bytes(CHUNK)) >= ENTROPY_LIMIT);
  assert.equal(sampleEntropy(Buffer.alloc(CHUNK, 7)), 0);
  assert.ok(looksIncompressible(p.bytes(CHUNK)));
  assert.ok(!looksIncompressible(text(p, CHUNK)));
  assert.ok(!looksIncompressible(Buffer.concat([p.bytes(CHUNK / 2), Buffer.alloc(CHUNK / 2)])));
  assert.ok(!looksIncompressible(p.bytes(4096)), 'short chunks are not probed');
});

test('encodeChunk: deflate when it shrinks, raw + Adler-32 otherwise; none never deflates; levels differ', () => {
  const p = new Prng(3);
  const t = text(p, CHUNK);
  const fast = encodeChunk(t, { compression: 'fast' });
  const best = encodeChunk(t, { compression: 'best' });
  assert.ok(fast.compressed && best.compressed);
  assert.equal(fast.bytes[1], 0x01, 'zlib header of level 1');
  assert.equal(best.bytes[1], 0xda, 'zlib header of level 9');
  assert.deepEqual(decode(fast), t);
  assert.deepEqual(decode(best), t);
  const none = encodeChunk(t, { compression: 'none' });
  assert.ok(!none.compressed);
  assert.deepEqual(decode(none), t);
  // random: the probe stores it; without the probe deflate is tried and loses, so it is stored all the same
  const r = p.bytes(CHUNK);
  for (const probe of [true, false]) {
    const c = encodeChunk(r, { compression: 'fast', probe });
    assert.ok(!c.compressed);
    assert.equal(c.bytes.length, CHUNK + 4);
    assert.deepEqual(decode(c), r);
  }
  // a short random tail chunk (not probed) still ends up raw
  const tail = p.bytes(1536);
  assert.ok(!encodeChunk(tail, { compression: 'best' }).compressed);
});

for (const workers of [0, 1, 2]) {
  test(`ChunkPool (${workers} workers): every chunk comes back as encodeChunk makes it, whatever order batches finish in`, async () => {
    const input = chunks(42 + workers, 300);
    const pool = new ChunkPool({ compression: 'fast', workers, batchChunks: 7 });
    try {
      const buf = Buffer.alloc(CHUNK);
      const promises = input.map((c) => {
        // the pool must copy: the caller's buffer is overwritten right after compress() returns
        c.copy(buf);
        const p = pool.compress(buf.subarray(0, c.length));
        buf.fill(0xee);
        return p;
      });
      promises.forEach((p) => pool.sendFor(p));
      const out = await Promise.all(promises);
      out.forEach((c, i) => {
        const want = encodeChunk(input[i]!, { compression: 'fast' });
        assert.equal(c.compressed, want.compressed, `chunk ${i}`);
        assert.deepEqual(c.bytes, want.bytes, `chunk ${i}`);
        assert.deepEqual(decode(c), input[i]);
      });
    } finally {
      await pool.close();
    }
  });
}

test('ChunkPool: waiting on a chunk of a partly filled batch works once sendFor() sent it', async () => {
  const pool = new ChunkPool({ compression: 'best', workers: 2, batchChunks: 16 });
  try {
    const c = text(new Prng(5), CHUNK);
    const p = pool.compress(c);
    pool.sendFor(p);
    assert.deepEqual(decode(await p), c);
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.compress(Buffer.alloc(512)), (e: { code?: string }) => e.code === 'E_INTERNAL');
});
