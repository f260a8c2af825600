import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { Hasher, parseDigests } from './hasher.js';

const ref = (alg: string, b: Buffer) => createHash(alg).update(b).digest('hex');

test('digests and window hashes equal one-shot hashes for any split of the input and any ring size', async () => {
  const data = randomBytes(3 << 20);
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: 700_000 }), { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 4096, max: 2 << 20 }),
      fc.integer({ min: 1000, max: 1 << 20 }),
      async (cuts, ring, window) => {
        const h = new Hasher({ digests: ['md5', 'sha1', 'sha256'], windowSize: BigInt(window), ringBytes: ring });
        let off = 0;
        for (let i = 0; off < data.length; i++) {
          const n = Math.min(cuts[i % cuts.length]!, data.length - off);
          await h.update(data.subarray(off, off + n));
          off += n;
        }
        const r = await h.digest();
        assert.equal(r.length, BigInt(data.length));
        assert.equal(r.digests.md5, ref('md5', data));
        assert.equal(r.digests.sha1, ref('sha1', data));
        assert.equal(r.digests.sha256, ref('sha256', data));
        assert.equal(r.windowDigest, 'sha256');
        const expected: string[] = [];
        for (let o = 0; o < data.length; o += window) expected.push(ref('sha256', data.subarray(o, o + window)));
        assert.deepEqual(r.windows, expected);
      },
    ),
    { numRuns: 25 },
  );
});

test('zero runs hash as zeros; empty input hashes as empty', async () => {
  const h = new Hasher({ digests: ['md5'], windowSize: 0n });
  await h.updateZeros(3_000_000n);
  assert.equal((await h.digest()).digests.md5, ref('md5', Buffer.alloc(3_000_000)));
  const e = new Hasher({ digests: ['sha256'], windowSize: 64n });
  const r = await e.digest();
  assert.equal(r.digests.sha256, ref('sha256', Buffer.alloc(0)));
  assert.deepEqual(r.windows, []);
});

test('digest list parsing', () => {
  assert.deepEqual(parseDigests('MD5, sha-256,sha1,md5'), ['md5', 'sha256', 'sha1']);
  assert.throws(() => parseDigests('crc32'), { code: 'E_USAGE' });
});
