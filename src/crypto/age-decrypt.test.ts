import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from '../core/errors.js';
import { MemorySink } from '../../test/helpers/memory-sink.js';
import { Prng } from '../../test/helpers/prng.js';
import { AgeEncryptSink } from '../sinks/age.js';
import { type AgeIdentity, CHUNK_SIZE, encodeHeader, generateIdentity, newFileKey, parseIdentities, payloadKey, sealChunk } from './age.js';
import { MAX_LINE_BYTES, MAX_STANZAS, decryptAge } from './age-decrypt.js';

const ID = parseIdentities(generateIdentity().identity)[0]!;
const OTHER = parseIdentities(generateIdentity().identity)[0]!;

async function encrypt(plain: Buffer, ids: readonly AgeIdentity[] = [ID]): Promise<Buffer> {
  const m = new MemorySink();
  const s = await AgeEncryptSink.create(m, ids.map((i) => i.recipient));
  await s.write(plain);
  await s.finish();
  return m.bytes;
}

/** Feeds `data` in pieces whose sizes come from the seed: header, nonce and chunk boundaries land anywhere. */
async function* pieces(data: Buffer, seed: number, max = 70_000): AsyncGenerator<Buffer> {
  const p = new Prng(seed);
  for (let off = 0; off < data.length; ) {
    const n = 1 + p.int(p.int(4) === 0 ? 8 : max);
    yield data.subarray(off, off + n);
    off += n;
  }
}

async function decrypt(data: Buffer | AsyncIterable<Buffer>, ids: readonly AgeIdentity[] = [ID], seed = 1): Promise<Buffer> {
  const out: Buffer[] = [];
  const src = Buffer.isBuffer(data) ? pieces(data, seed) : data;
  const r = await decryptAge(src, ids, async (b) => void out.push(Buffer.from(b)));
  const all = Buffer.concat(out);
  assert.equal(r.plaintextBytes, BigInt(all.length));
  return all;
}

async function decryptFails(data: Buffer, re?: RegExp, ids: readonly AgeIdentity[] = [ID]): Promise<MemdumpError> {
  try {
    await decrypt(data, ids);
  } catch (e) {
    assert.ok(e instanceof MemdumpError, `uncoded error: ${String(e)}`);
    assert.equal(e.code, 'E_DECRYPT', e.message);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail('decryption succeeded');
}

/** A file built from parts, to produce streams our encryptor never would. */
function handmade(chunks: Array<[Buffer, boolean]>): Buffer {
  const fileKey = newFileKey();
  const nonce = randomBytes(16);
  const key = payloadKey(fileKey, nonce);
  return Buffer.concat([encodeHeader(fileKey, [ID.recipient]), nonce, ...chunks.map(([p, last], i) => sealChunk(key, i, last, p))]);
}

test('decryptAge: round trips across chunk boundaries, any input split', async () => {
  const p = new Prng(11);
  for (const n of [0, 1, 15, 16, 17, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 5]) {
    const plain = p.bytes(n);
    const enc = await encrypt(plain);
    for (const seed of [1, 2, 3]) assert.deepEqual(await decrypt(enc, [ID], seed), plain, `size ${n} seed ${seed}`);
  }
});

test('decryptAge: any of several identities, any of several stanzas', async () => {
  const plain = new Prng(3).bytes(1000);
  const enc = await encrypt(plain, [OTHER, ID]);
  assert.deepEqual(await decrypt(enc, [ID]), plain);
  assert.deepEqual(await decrypt(enc, [OTHER]), plain);
  const third = parseIdentities(generateIdentity().identity)[0]!;
  assert.deepEqual(await decrypt(enc, [third, ID]), plain);
  await decryptFails(enc, /no identity matches any of the 2 recipient stanza/, [third]);
});

test('decryptAge: every flipped byte and every truncation of a small file is E_DECRYPT', async () => {
  const enc = await encrypt(new Prng(5).bytes(100));
  for (let i = 0; i < enc.length; i++) {
    const bad = Buffer.from(enc);
    bad[i] = bad[i]! ^ (1 << (i % 8));
    await decryptFails(bad);
  }
  for (let n = 0; n < enc.length; n++) await decryptFails(enc.subarray(0, n));
  await decryptFails(Buffer.concat([enc, Buffer.from([0])]));
});

test('decryptAge: each STREAM failure says which', async () => {
  const full = Buffer.alloc(CHUNK_SIZE, 1);
  const two = handmade([
    [full, false],
    [full, true],
  ]);
  assert.deepEqual(await decrypt(two), Buffer.concat([full, full]));
  await decryptFails(two.subarray(0, two.length - CHUNK_SIZE - 16), /missing last chunk/);
  await decryptFails(handmade([[full, false]]), /missing last chunk/);
  await decryptFails(handmade([[full, true], [Buffer.alloc(5), false]]), /data after the last chunk/);
  await decryptFails(handmade([[full, false], [Buffer.alloc(0), true]]), /empty last chunk/);
  assert.deepEqual(await decrypt(handmade([[Buffer.alloc(0), true]])), Buffer.alloc(0));
  await decryptFails(handmade([]), /no payload chunk/);
  await decryptFails(two.subarray(0, two.length - 3), /chunk 1 failed authentication/);
  const flipped = Buffer.from(two);
  flipped[two.length - CHUNK_SIZE - 100] = flipped[two.length - CHUNK_SIZE - 100]! ^ 4;
  await decryptFails(flipped, /chunk 0 failed authentication/);
  const headerFlip = Buffer.from(two);
  const hf = headerFlip.indexOf("--- ") - 2;
  headerFlip[hf] = headerFlip[hf]! ^ 1;
  await decryptFails(headerFlip);
  await decryptFails(Buffer.from('not age at all\n'), /not an age v1 file/);
  await decryptFails(Buffer.from('-----BEGIN AGE ENCRYPTED FILE-----\n'), /armored/);
  await decryptFails(Buffer.from('age-encryption.org/v2\n'), /unsupported age version/);
});

test('decryptAge: header line, stanza and size caps hold before allocation', async () => {
  const v = 'age-encryption.org/v1\n';
  await decryptFails(Buffer.from(v + '-> ' + 'a'.repeat(MAX_LINE_BYTES) + '\n'), /longer than/);
  // a line that never ends must be refused at the cap, not buffered
  async function* endless(): AsyncGenerator<Buffer> {
    yield Buffer.from(v + '-> X25519 ');
    for (;;) yield Buffer.alloc(4096, 0x41);
  }
  await assert.rejects(decryptAge(endless(), [ID], async () => {}), (e: unknown) => e instanceof MemdumpError && e.code === 'E_DECRYPT');
  await decryptFails(Buffer.from(v + '-> x\n\n'.repeat(MAX_STANZAS + 1) + '--- ' + 'A'.repeat(43) + '\n'), /more than 1024/);
  await decryptFails(Buffer.from(v + '--- ' + 'A'.repeat(43) + '\n'), /no recipient stanza/);
  await decryptFails(Buffer.from(v + '-> x\n' + 'A'.repeat(65) + '\n'), /longer than 64/);
  await decryptFails(Buffer.from(v + '-> x  y\n\n'), /malformed recipient stanza/);
  await decryptFails(Buffer.from(v + '-> x\nAB\n'), /canonical/);
  await decryptFails(Buffer.from(v + '-> x\n\n--- AAAA\n'), /bad MAC line/);
  await decryptFails(Buffer.from(v + '-> scrypt AAAAAAAAAAAAAAAAAAAAAA 10\n' + 'A'.repeat(43) + '\n--- ' + 'A'.repeat(43) + '\n'), /scrypt/);
});

test('decryptAge: mutated headers give E_DECRYPT or the right plaintext, never anything else (fast-check)', async () => {
  const plain = Buffer.from('the evidence');
  const enc = await encrypt(plain, [OTHER, ID]);
  const headerEnd = enc.indexOf('\n--- ') + 49;
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(headerEnd + 20), bit: fc.nat(7) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(headerEnd + 20), byte: fc.constantFrom(0x0a, 0x20, 0x2d, 0x3e, 0x41, 0x3d, 0x00, 0xff) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(headerEnd), len: fc.integer({ min: 1, max: 60 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(headerEnd), bytes: fc.uint8Array({ minLength: 1, maxLength: 70 }) }),
    fc.record({ kind: fc.constant('dup' as const), at: fc.nat(headerEnd), len: fc.integer({ min: 1, max: 200 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat(headerEnd + 20) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 1000 }), async (muts, seed) => {
      let b = Buffer.from(enc);
      for (const m of muts) {
        const at = Math.min(m.at, b.length);
        if (m.kind === 'flip') b[at] = (b[at] ?? 0) ^ (1 << m.bit);
        else if (m.kind === 'set') b[at] = m.byte;
        else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
        else if (m.kind === 'dup') b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]);
        else b = b.subarray(0, at);
      }
      try {
        const got = await decrypt(b, [ID], seed);
        // a mutation can only be invisible if it undid itself
        assert.deepEqual(got, plain);
        assert.deepEqual(b, enc);
      } catch (e) {
        if (!(e instanceof MemdumpError) || e.code !== 'E_DECRYPT') throw e;
      }
    }),
    { seed: 4242, numRuns: 1500 },
  );
});

test('decryptAge: memory stays flat on a 256 MiB stream', async () => {
  const fileKey = newFileKey();
  const nonce = randomBytes(16);
  const key = payloadKey(fileKey, nonce);
  const chunks = 4096;
  const plain = Buffer.alloc(CHUNK_SIZE, 0x5a);
  async function* stream(): AsyncGenerator<Buffer> {
    yield Buffer.concat([encodeHeader(fileKey, [ID.recipient]), nonce]);
    for (let i = 0; i < chunks; i++) yield sealChunk(key, i, i === chunks - 1, plain);
  }
  const before = process.memoryUsage().rss;
  let peak = before;
  let n = 0;
  const r = await decryptAge(stream(), [ID], async (b) => {
    if ((n++ & 255) === 0) peak = Math.max(peak, process.memoryUsage().rss);
    assert.equal(b[0], 0x5a);
  });
  assert.equal(r.plaintextBytes, BigInt(chunks * CHUNK_SIZE));
  assert.ok(peak - before < 96 * 2 ** 20, `rss grew by ${(peak - before) / 2 ** 20} MiB`);
});
