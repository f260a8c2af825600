import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SectorFaultSource } from '../../test/helpers/sector-source.js';
import { isMemdumpError } from '../core/errors.js';
import { type BadPage, type RetryEvent, newAccount, readRange } from './read-policy.js';

/**
 * The imaging additions to the read policy (errorRetries, badPageLimit) under random hard and marginal sectors:
 * the accounting invariant holds, no readable sector is zero-filled, a marginal sector that fails at most
 * `retries` times is never lost, every lost sector got exactly `retries` re-reads, and a limit stops the copy
 * at the first sector beyond it with everything before that sector delivered.
 */
test('errorRetries and badPageLimit under random hard and marginal sectors (300 cases)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        sectors: fc.integer({ min: 1, max: 400 }),
        tail: fc.integer({ min: 0, max: 511 }),
        hard: fc.uniqueArray(fc.integer({ min: 0, max: 400 }), { maxLength: 12 }),
        flaky: fc.array(fc.tuple(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 1, max: 4 })), { maxLength: 12 }),
        retries: fc.integer({ min: 0, max: 3 }),
        limit: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }),
        chunkSectors: fc.integer({ min: 1, max: 64 }),
      }),
      async (c) => {
        const size = BigInt(c.sectors * 512 + c.tail);
        const src = new SectorFaultSource('/dev/prop', size);
        for (const s of c.hard) src.bad.set(BigInt(s), 'EIO');
        for (const [s, n] of c.flaky) if (!src.bad.has(BigInt(s))) src.flaky.set(BigInt(s), n);
        const flakyAtStart = new Map(src.flaky);
        const range = { start: 0n, end: size };
        const account = newAccount(range);
        const bad: BadPage[] = [];
        const retries: RetryEvent[] = [];
        const limit = c.limit === undefined ? undefined : { limit: c.limit, count: 0 };
        const parts: Buffer[] = [];
        let stopped: unknown;
        try {
          for await (const b of readRange(src, range, account, (p) => bad.push(p), {
            chunkSize: c.chunkSectors * 512,
            errorRetries: c.retries,
            onRetry: (r) => retries.push(r),
            ...(limit ? { badPageLimit: limit } : {}),
          })) {
            parts.push(Buffer.from(b));
          }
        } catch (e) {
          stopped = e;
        }
        const out = Buffer.concat(parts);
        const expected = src.expected(0n, BigInt(out.length));
        const badSectors = new Set(bad.map((p) => p.address / 512n));
        for (const s of badSectors) {
          assert.ok(src.bad.has(s) || flakyAtStart.has(s), `sector ${s} reported bad but always readable`);
          assert.ok(!((flakyAtStart.get(s) ?? Infinity) <= c.retries), `marginal sector ${s} lost despite ${c.retries} retries`);
          if (s * 512n < BigInt(out.length)) expected.fill(0, Number(s * 512n), Math.min(out.length, Number(s * 512n + 512n)));
        }
        assert.ok(out.equals(expected), 'delivered bytes are the source or zeros exactly where reported');
        for (const s of badSectors) assert.equal(retries.filter((r) => r.address / 512n === s && !r.recovered).length, c.retries);
        if (stopped) {
          assert.ok(isMemdumpError(stopped, 'E_TOO_MANY_ERRORS'), String(stopped));
          assert.ok(limit);
          assert.equal(bad.length, c.limit);
          const at = BigInt(stopped.details.address as string);
          assert.equal(BigInt(out.length), at, 'everything before the stopping sector was delivered');
          assert.ok(src.bad.has(at / 512n) || flakyAtStart.has(at / 512n));
          assert.equal(account.read + account.zeroFilled, BigInt(out.length));
        } else {
          assert.equal(BigInt(out.length), size);
          for (const s of src.bad.keys()) if (s * 512n < size) assert.ok(badSectors.has(s), `hard-bad sector ${s} not reported`);
          if (limit) assert.ok(bad.length <= limit.limit);
          assert.equal(account.read + account.zeroFilled, size);
        }
        assert.equal(account.skipped, 0n);
        assert.equal(account.zeroFilled, bad.reduce((t, p) => t + BigInt(p.length), 0n));
      },
    ),
    { numRuns: 300 },
  );
});

test('without the new options the policy zero-fills at the first non-transient failure, as before', async () => {
  const src = new SectorFaultSource('/dev/plain', 8192n);
  src.flaky.set(3n, 1);
  src.flaky.set(5n, 1);
  src.bad.set(4n, 'EIO');
  const account = newAccount({ start: 0n, end: 8192n });
  const bad: BadPage[] = [];
  for await (const _ of readRange(src, { start: 0n, end: 8192n }, account, (p) => bad.push(p), { chunkSize: 8192 }));
  // sector 3 failed once in the fast path and then read; 4 is bad; 5 failed its only read
  assert.deepEqual(bad.map((p) => p.address / 512n), [4n, 5n]);
});
