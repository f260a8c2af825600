import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Range } from '../../src/core/ranges.js';
import { type BadPage, ErrorRuns, newAccount, readRange } from '../../src/pipeline/read-policy.js';
import { FaultSource, patternByte } from '../helpers/fault-source.js';

const PAGE = 4096;

/**
 * The read policy's contract under random faults: for every range, read + zeroFilled + skipped == requested;
 * every readable byte arrives intact; every unreadable page is zero-filled and recorded with its errno;
 * no readable page is reported bad.
 */
test('read policy accounting invariant under random unreadable pages, short reads, EINTR and slow pages (1000 cases)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        startPage: fc.integer({ min: 0, max: 64 }),
        startSkew: fc.integer({ min: 0, max: PAGE - 1 }),
        pages: fc.integer({ min: 1, max: 96 }),
        tail: fc.integer({ min: 0, max: PAGE - 1 }),
        badFraction: fc.constantFrom(0, 0.01, 0.1, 0.5, 1),
        shortReadRate: fc.constantFrom(0, 0.2, 0.7),
        eintrRate: fc.constantFrom(0, 0.1, 0.3),
        slowRate: fc.constantFrom(0, 0.02),
        chunkPages: fc.integer({ min: 1, max: 40 }),
        errno: fc.constantFrom('EIO', 'EFAULT', 'ENXIO', 'EPERM'),
      }),
      async (c) => {
        const start = BigInt(c.startPage * PAGE + c.startSkew);
        const range: Range = { start, end: start + BigInt(c.pages * PAGE + c.tail) };
        const bad = new Map<bigint, string>();
        let s = c.seed;
        const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
        for (let p = range.start / 4096n; p * 4096n < range.end; p++) if (rnd() < c.badFraction) bad.set(p, c.errno);
        const src = new FaultSource([range], PAGE, patternByte, { badPages: bad, shortReadRate: c.shortReadRate, eintrRate: c.eintrRate, slowRate: c.slowRate, slowMs: 1 }, c.seed);
        const account = newAccount(range);
        const badSeen: BadPage[] = [];
        const errors = new ErrorRuns();
        const parts: Buffer[] = [];
        for await (const b of readRange(src, range, account, (p) => (badSeen.push(p), errors.add(p)), { chunkSize: c.chunkPages * PAGE, transientRetries: 50 })) parts.push(Buffer.from(b)); // the policy reuses its buffer
        const out = Buffer.concat(parts);

        assert.equal(account.read + account.zeroFilled + account.skipped, account.requested);
        assert.equal(account.skipped, 0n);
        assert.equal(BigInt(out.length), range.end - range.start);
        const badNum = new Set([...bad.keys()].map(Number));
        const expected = Buffer.alloc(out.length);
        let expectZero = 0n;
        for (let i = 0; i < out.length; i++) {
          const a = Number(range.start) + i;
          if (badNum.has(Math.floor(a / 4096))) expectZero++;
          else expected[i] = patternByte(a);
        }
        if (!out.equals(expected)) assert.fail('readable bytes corrupted or bad pages not zero-filled');
        assert.equal(account.zeroFilled, expectZero);
        assert.equal(errors.badBytes, expectZero);
        for (const p of badSeen) {
          assert.ok(bad.has(p.address / 4096n), `page at ${p.address} reported bad but is readable`);
          assert.equal(p.errno, c.errno);
        }
      },
    ),
    { numRuns: 1000 },
  );
});

test('an abort accounts the rest of the range as skipped and stops with E_INTERRUPTED', async () => {
  const range: Range = { start: 0n, end: 64n * 4096n };
  const src = new FaultSource([range], PAGE, patternByte, { badPages: new Map(), shortReadRate: 0, eintrRate: 0, slowRate: 0, slowMs: 0 }, 1);
  const ac = new AbortController();
  const account = newAccount(range);
  let got = 0;
  await assert.rejects(async () => {
    for await (const b of readRange(src, range, account, () => undefined, { chunkSize: 8 * PAGE, signal: ac.signal })) {
      got += b.length;
      if (got >= 16 * PAGE) ac.abort();
    }
  }, { code: 'E_INTERRUPTED' });
  assert.equal(account.read, 16n * 4096n);
  assert.equal(account.read + account.zeroFilled + account.skipped, account.requested);
});

test('errors are grouped into runs of adjacent pages with the same errno', () => {
  const e = new ErrorRuns();
  e.add({ address: 0x1000n, length: 4096, errno: 'EIO' });
  e.add({ address: 0x2000n, length: 4096, errno: 'EIO' });
  e.add({ address: 0x3000n, length: 4096, errno: 'EFAULT' });
  e.add({ address: 0x5000n, length: 4096, errno: 'EFAULT' });
  assert.deepEqual(e.runs, [
    { start: 0x1000n, end: 0x3000n, errno: 'EIO', pages: 2 },
    { start: 0x3000n, end: 0x4000n, errno: 'EFAULT', pages: 1 },
    { start: 0x5000n, end: 0x6000n, errno: 'EFAULT', pages: 1 },
  ]);
});
