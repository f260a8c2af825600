import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Readable } from 'node:stream';
import { constants, createGzip, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { RandomStream, Rng } from '../../../test/fixtures/scan-corpus-rng.js';
import { textBlock } from '../../../test/fixtures/scan-corpus-text.js';
import { findGzip } from './gzip.js';
import type { DecodeBudget } from './types.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'memdump-gzip-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const budget = (maxOutput = 16 * MiB, remaining = 64 * MiB): DecodeBudget => ({ maxOutput, remaining });
const text = (seed: number, size: number): Buffer => Buffer.from(textBlock(new Rng(seed, 'gz'), size, []).text, 'latin1');

/** gzip(1) or pigz on a real file, so the header carries FNAME and the tool's own XFL/OS choices. */
function tool(cmd: 'gzip' | 'pigz', data: Buffer, args: string[] = []): Buffer {
  const f = join(dir, `in-${cmd}-${data.length}.log`);
  writeFileSync(f, data);
  return execFileSync(cmd, ['-c', ...args, f], { maxBuffer: 256 * MiB });
}

test('gzip(1) and pigz members in random bytes: exact start, end and data', () => {
  const rnd = new RandomStream(7);
  const members: { at: number; len: number; data: Buffer }[] = [];
  const parts: Buffer[] = [];
  let pos = 0;
  const variants: [('gzip' | 'pigz'), string[]][] = [['gzip', []], ['gzip', ['-9']], ['gzip', ['-1', '-n']], ['pigz', []], ['pigz', ['-11']], ['pigz', ['-0']]];
  variants.forEach(([cmd, args], i) => {
    const data = text(i, 2000 + i * 5000);
    const gz = tool(cmd, data, args);
    const pad = rnd.take(1000 + i * 37);
    parts.push(pad, gz);
    pos += pad.length;
    members.push({ at: pos, len: gz.length, data });
    pos += gz.length;
  });
  parts.push(rnd.take(500));
  const buf = Buffer.concat(parts);
  const found = findGzip(buf, 0, buf.length, budget());
  assert.deepEqual(found.map((d) => [d.start, d.end, d.truncated]), members.map((m) => [m.at, m.at + m.len, false]));
  found.forEach((d, i) => assert.ok(d.data.equals(members[i]!.data)));
});

test('multi-member file: one result per member; trailing garbage does not matter', () => {
  const a = gzipSync(text(1, 3000));
  const b = gzipSync(text(2, 3000));
  const buf = Buffer.concat([a, b, Buffer.from('garbage after the last member \x01\x02\x03')]);
  const found = findGzip(buf, 0, buf.length, budget());
  assert.deepEqual(found.map((d) => [d.start, d.end]), [[0, a.length], [a.length, a.length + b.length]]);
  const tiny = tool('gzip', Buffer.from('hi\n'));
  assert.deepEqual(findGzip(tiny, 0, tiny.length, budget()).map((d) => d.data.toString()), ['hi\n'], 'a 3-byte member is still a member');
});

test('ownership: a member starting before `from` is not reported, one starting at to-1 is, cut ones are truncated', () => {
  const data = text(3, 20000);
  const gz = gzipSync(data);
  const rnd = new RandomStream(3).take(4096);
  const buf = Buffer.concat([gz, rnd, gz.subarray(0, gz.length >> 1)]);
  const second = gz.length + rnd.length;
  assert.equal(findGzip(buf, 1, buf.length, budget()).length, 1, 'member at 0 is owned by the window before');
  const atEnd = findGzip(buf, 1, second + 1, budget());
  assert.equal(atEnd.length, 1);
  const cut = atEnd[0]!;
  assert.equal(cut.start, second);
  assert.equal(cut.end, buf.length);
  assert.equal(cut.truncated, true);
  assert.ok(cut.data.length > 1000 && data.subarray(0, cut.data.length).equals(cut.data), 'a cut member gives a prefix');
  assert.deepEqual(findGzip(buf, 0, second, budget()).map((d) => d.start), [0]);
});

test('decompression bomb: 1 GiB of zeros is cut at the cap, quickly', async () => {
  const chunks: Buffer[] = [];
  const zero = Buffer.alloc(MiB);
  let n = 0;
  const src = new Readable({ read() { this.push(n++ < 1024 ? zero : null); } });
  const gz = createGzip({ level: 1 });
  src.pipe(gz);
  for await (const c of gz) chunks.push(c as Buffer);
  const bomb = Buffer.concat(chunks);
  const b = budget(16 * MiB, 64 * MiB);
  const t0 = process.hrtime.bigint();
  const [d] = findGzip(bomb, 0, bomb.length, b);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.ok(d);
  assert.equal(d.truncated, true);
  assert.ok(d.data.length <= 16 * MiB && d.data.length >= 8 * MiB, `cut at ${d.data.length}`);
  assert.equal(d.data.indexOf(1), -1);
  assert.equal(b.remaining, 64 * MiB - d.data.length);
  console.log(`# gzip bomb: ${(bomb.length / MiB).toFixed(2)} MiB -> 1 GiB, cut at ${d.data.length} bytes in ${ms.toFixed(1)} ms`);
});

test('budget: the window budget stops the search and caps the last member', () => {
  const data = text(4, 8000);
  const gz = gzipSync(data);
  const buf = Buffer.concat([gz, gz, gz]);
  const b = budget(MiB, data.length + 100);
  const found = findGzip(buf, 0, buf.length, b);
  assert.ok(found.length >= 2);
  const last = found[1]!.data;
  assert.ok(last.length <= 100 && last.length >= 50 && data.subarray(0, last.length).equals(last), `last ${last.length}`);
  assert.equal(found[1]!.truncated, true);
  assert.equal(b.remaining, data.length + 100 - found.reduce((n, d) => n + d.data.length, 0));
  assert.ok(b.remaining >= 0 && b.remaining < 50);
});

test('16 MiB of random bytes: no members (count and time printed)', () => {
  for (const seed of [1, 2]) {
    const buf = new RandomStream(seed).take(16 * MiB);
    findGzip(buf, 0, buf.length, budget());
    const t0 = process.hrtime.bigint();
    const found = findGzip(buf, 0, buf.length, budget());
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`# gzip random 16 MiB seed ${seed}: ${found.length} members, ${ms.toFixed(1)} ms`);
    assert.equal(found.length, 0);
  }
});

test('property: mutated members never throw and stay within the cap', () => {
  const base = gzipSync(text(5, 3000), { level: constants.Z_BEST_COMPRESSION });
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      fc.nat(base.length),
      (muts, cut) => {
        const b = Buffer.from(base.subarray(0, Math.max(1, cut)));
        for (const [i, v] of muts) if (i < b.length) b[i] = v;
        const found = findGzip(b, 0, b.length, budget(4096, 1 << 20));
        for (const d of found) assert.ok(d.data.length <= 4096 && d.start >= 0 && d.end <= b.length);
      },
    ),
    { seed: 42, numRuns: 400 },
  );
});
