import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { MemorySink } from '../../test/helpers/memory-sink.js';
import { Prng } from '../../test/helpers/prng.js';
import { CHUNK_SIZE, generateIdentity, headerSize, parseIdentities } from '../crypto/age.js';
import { decryptAge } from '../crypto/age-decrypt.js';
import { AgeEncryptSink, ageCiphertextSize } from './age.js';

const IDS = [generateIdentity(), generateIdentity()].map((g) => parseIdentities(g.identity)[0]!);

async function decrypt(bytes: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  async function* one(): AsyncGenerator<Buffer> {
    yield bytes;
  }
  await decryptAge(one(), IDS, async (b) => void out.push(Buffer.from(b)));
  return Buffer.concat(out);
}

test('AgeEncryptSink: header at create, position counts plaintext, storedBytes is the exact stored size', async () => {
  const p = new Prng(99);
  for (const recipients of [1, 2]) {
    for (const sizes of [[], [0], [1], [CHUNK_SIZE], [CHUNK_SIZE - 1, 1], [CHUNK_SIZE, 1], [5, CHUNK_SIZE * 2 + 7, 3], [1000, 70_000, 200_000]]) {
      const m = new MemorySink();
      const sink = await AgeEncryptSink.create(m, IDS.slice(0, recipients).map((i) => i.recipient));
      assert.equal(m.position, BigInt(headerSize(recipients) + 16));
      assert.equal(sink.storedBytes, m.position);
      assert.equal(sink.position, 0n);
      assert.equal('newSegment' in sink, false);
      const expect: Buffer[] = [];
      let total = 0n;
      for (const [i, n] of sizes.entries()) {
        if (i % 2 === 1) {
          await sink.writeZeros(BigInt(n));
          expect.push(Buffer.alloc(n));
        } else {
          const b = p.bytes(n);
          await sink.write(b);
          expect.push(Buffer.from(b));
          // the caller may reuse its buffer as soon as write() resolves
          b.fill(0xee);
        }
        total += BigInt(n);
        assert.equal(sink.position, total);
        assert.equal(sink.storedBytes, m.position);
      }
      const receipt = await sink.finish();
      assert.equal(receipt.complete, true);
      assert.equal(sink.storedBytes, ageCiphertextSize(total, recipients));
      assert.equal(BigInt(m.bytes.length), ageCiphertextSize(total, recipients));
      assert.deepEqual(await decrypt(m.bytes), Buffer.concat(expect));
      await assert.rejects(sink.write(Buffer.alloc(1)), (e: unknown) => e instanceof MemdumpError && e.code === 'E_WRITE');
    }
  }
});

test('AgeEncryptSink: abort leaves a stream that does not decrypt, at any size', async () => {
  for (const n of [0, 10, CHUNK_SIZE, CHUNK_SIZE + 10, 3 * CHUNK_SIZE]) {
    const m = new MemorySink();
    const sink = await AgeEncryptSink.create(m, [IDS[1]!.recipient]);
    await sink.writeZeros(BigInt(n));
    const r = await sink.abort();
    assert.equal(r.complete, false);
    assert.equal(m.aborted, true);
    await assert.rejects(decrypt(m.bytes), (e: unknown) => e instanceof MemdumpError && e.code === 'E_DECRYPT');
  }
});

test('AgeEncryptSink: an inner write failure propagates and breaks the stream', async () => {
  // room for the header and less than one sealed chunk
  const m = new MemorySink(BigInt(headerSize(1) + 16 + CHUNK_SIZE));
  const sink = await AgeEncryptSink.create(m, [IDS[0]!.recipient]);
  await sink.write(Buffer.alloc(CHUNK_SIZE));
  await assert.rejects(sink.write(Buffer.alloc(CHUNK_SIZE)), /ENOSPC/);
  await assert.rejects(sink.write(Buffer.alloc(1)), (e: unknown) => e instanceof MemdumpError && e.code === 'E_WRITE');
  await assert.rejects(sink.finish(), (e: unknown) => e instanceof MemdumpError && e.code === 'E_WRITE');
  assert.equal((await sink.abort()).complete, false);
});

test('AgeEncryptSink: no recipients is a usage error; ageCiphertextSize arithmetic', async () => {
  await assert.rejects(AgeEncryptSink.create(new MemorySink(), []), (e: unknown) => e instanceof MemdumpError && e.code === 'E_USAGE');
  const h = BigInt(headerSize(1) + 16);
  assert.equal(headerSize(1), 22 + 98 + 48);
  assert.equal(ageCiphertextSize(0n, 1), h + 16n);
  assert.equal(ageCiphertextSize(65536n, 1), h + 65536n + 16n);
  assert.equal(ageCiphertextSize(65537n, 1), h + 65537n + 32n);
  assert.equal(ageCiphertextSize(1n << 40n, 3), BigInt(headerSize(3) + 16) + (1n << 40n) + (1n << 24n) * 16n);
  assert.throws(() => ageCiphertextSize(-1n, 1), MemdumpError);
  assert.throws(() => ageCiphertextSize(1n, 0), MemdumpError);
});
