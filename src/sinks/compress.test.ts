import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { crc32, gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { MemorySink } from '../../test/helpers/memory-sink.js';
import { mixedContent } from '../../test/helpers/mixed-content.js';
import { Prng } from '../../test/helpers/prng.js';
import { BLOCK_BYTES, CompressSink, type TransportCompression } from './compress.js';
import { decompressStream } from './decompress.js';
import { ByteInput, walkZstd } from './zstd-frames.js';

const dir = mkdtempSync(join(tmpdir(), 'memdump-compress-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** gzip(1) / zstd(1) as the oracle: SHA-256 and length of what `gzip -dc FILE` prints, streamed (outputs reach hundreds of MiB). */
function gzipDc(file: string, cmd: 'gzip' | 'zstd' = 'gzip'): Promise<{ code: number | null; sha256: string; bytes: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, ['-dc', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const h = createHash('sha256');
    let bytes = 0;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (h.update(d), (bytes += d.length)));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, sha256: h.digest('hex'), bytes, stderr }));
  });
}

type Op = { kind: 'data'; buf: Buffer } | { kind: 'zeros'; n: bigint };

/** Expected plaintext digest of a write sequence, without materialising the zero runs. */
function expected(ops: Op[]): { sha256: string; bytes: number } {
  const h = createHash('sha256');
  let bytes = 0;
  const z = Buffer.alloc(1 << 20);
  for (const op of ops) {
    if (op.kind === 'data') (h.update(op.buf), (bytes += op.buf.length));
    else for (let left = Number(op.n); left > 0; left -= z.length) h.update(z.subarray(0, Math.min(left, z.length)));
    if (op.kind === 'zeros') bytes += Number(op.n);
  }
  return { sha256: h.digest('hex'), bytes };
}

async function run(ops: Op[], parallel?: number, algo: TransportCompression = 'gzip'): Promise<{ sink: CompressSink; inner: MemorySink }> {
  const inner = new MemorySink();
  const sink = CompressSink.create(inner, algo, undefined, parallel === undefined ? {} : { parallel });
  for (const op of ops) {
    if (op.kind === 'data') {
      await sink.write(op.buf);
      op.buf.fill(0xee); // the caller may reuse its buffer once write() resolves
    } else await sink.writeZeros(op.n);
  }
  const receipt = await sink.finish();
  assert.equal(receipt.complete, true);
  return { sink, inner };
}

/** A seeded sequence: mixed content cut at PRNG-chosen points, with zero runs of every size class between. */
function seededOps(seed: number, bytes: number): Op[] {
  const data = mixedContent(seed, bytes);
  const p = new Prng(seed + 1);
  const ops: Op[] = [];
  for (let off = 0; off < data.length; ) {
    const n = Math.min(data.length - off, 1 + p.int(3 * BLOCK_BYTES));
    ops.push({ kind: 'data', buf: Buffer.from(data.subarray(off, off + n)) });
    off += n;
    const z = [0n, 1n, 4095n, BigInt(BLOCK_BYTES) - 1n, BigInt(BLOCK_BYTES) + 17n][p.int(5)]!;
    if (z > 0n) ops.push({ kind: 'zeros', n: z });
  }
  return ops;
}


/**
 * A split of `base` into write()/writeZeros() calls: each cut is data, or zeros (the plaintext's stretch is zeroed
 * then, so the output must not care which way a zero run was given). Returns the calls and the plaintext they make.
 */
function opsFromCuts(base: Buffer, cuts: readonly (readonly [number, boolean])[]): { ops: Op[]; want: Buffer } {
  const plain = Buffer.from(base);
  const ops: Op[] = [];
  let off = 0;
  for (const [len, asZeros] of cuts) {
    const n = Math.min(len, plain.length - off);
    if (asZeros) (plain.fill(0, off, off + n), ops.push({ kind: 'zeros', n: BigInt(n) }));
    else ops.push({ kind: 'data', buf: Buffer.from(plain.subarray(off, off + n)) });
    off += n;
  }
  return { ops, want: plain.subarray(0, off) };
}

describe('CompressSink (gzip)', () => {
  it('output decompresses with gzip -dc byte for byte: seeded mixed data, odd writes, zero runs, a 300 MiB hole', async () => {
    const ops: Op[] = [...seededOps(11, 9 * BLOCK_BYTES + 12345), { kind: 'zeros', n: 300n * BigInt(BLOCK_BYTES) + 5n }, { kind: 'data', buf: Buffer.from('tail') }];
    const want = expected(ops);
    const { sink, inner } = await run(ops);
    assert.equal(sink.position, BigInt(want.bytes));
    assert.equal(sink.storedBytes, inner.position);
    // the hole costs about a KiB per MiB, not a MiB: zero blocks are cached members
    assert.ok(inner.position < 8n * 1024n * 1024n, `stored ${inner.position}`);
    const file = join(dir, 'mixed.gz');
    writeFileSync(file, inner.bytes);
    const got = await gzipDc(file);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.bytes, want.bytes);
    assert.equal(got.sha256, want.sha256);
    assert.equal(spawnSync('gzip', ['-t', file]).status, 0);
  });

  it('empty input is a valid empty .gz', async () => {
    const { sink, inner } = await run([]);
    assert.equal(sink.position, 0n);
    const file = join(dir, 'empty.gz');
    writeFileSync(file, inner.bytes);
    const got = await gzipDc(file);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.bytes, 0);
  });

  it('a zero run only (256 MiB): writeZeros(n) allocates nothing near n and decompresses to n zeros', async () => {
    const n = 256n * BigInt(BLOCK_BYTES) + 3n;
    const before = process.memoryUsage().arrayBuffers;
    const { inner } = await run([{ kind: 'zeros', n }]);
    assert.ok(process.memoryUsage().arrayBuffers - before < 32 * 1024 * 1024);
    const file = join(dir, 'zeros.gz');
    writeFileSync(file, inner.bytes);
    const got = await gzipDc(file);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(BigInt(got.bytes), n);
    assert.equal(got.sha256, expected([{ kind: 'zeros', n }]).sha256);
  });

  it('synchronous (parallel 0) and off-thread (parallel 1, 3) produce identical bytes', async () => {
    const ops = seededOps(12, 5 * BLOCK_BYTES + 7);
    const outs = await Promise.all([0, 1, 3].map(async (p) => (await run(ops.map((o) => (o.kind === 'data' ? { kind: 'data', buf: Buffer.from(o.buf) } : o)), p)).inner.bytes));
    assert.deepEqual(outs[1], outs[0]);
    assert.deepEqual(outs[2], outs[0]);
  });

  it('truncated output fails gzip -t and decompressStream with E_CORRUPT', async () => {
    const { inner } = await run(seededOps(13, 3 * BLOCK_BYTES));
    const full = inner.bytes;
    const p = new Prng(14);
    // every boundary between the sink's writes (where a multi-member file would still look whole), and random cuts
    const boundaries: number[] = [];
    for (let off = 0, i = 0; i < inner.parts.length - 1; i++) boundaries.push((off += inner.parts[i]!.length));
    assert.ok(boundaries.length >= 3);
    for (const cut of [1, 10, ...boundaries, full.length - 10, full.length - 1, full.length - 4, 1 + p.int(full.length - 2)]) {
      const file = join(dir, `cut-${cut}.gz`);
      writeFileSync(file, full.subarray(0, cut));
      assert.notEqual(spawnSync('gzip', ['-t', file]).status, 0, `gzip -t accepted a cut at ${cut}`);
      await expectCodeAsync(drain(decompressStream('gzip', once(full.subarray(0, cut)))), 'E_CORRUPT');
    }
  });

  it('an inner sink failure surfaces from write/finish, and abort() reaches the inner sink', async () => {
    const inner = new MemorySink(100n);
    const sink = CompressSink.create(inner, 'gzip');
    const data = mixedContent(15, 6 * BLOCK_BYTES);
    let failed: unknown;
    try {
      for (let off = 0; off < data.length; off += 65536) await sink.write(data.subarray(off, off + 65536));
      await sink.finish();
    } catch (e) {
      failed = e;
    }
    assert.match(String(failed), /ENOSPC/);
    await assert.rejects(sink.write(Buffer.from('x')), /ENOSPC/);
    const receipt = await sink.abort();
    assert.equal(receipt.complete, false);
    assert.equal(inner.aborted, true);
  });

  it('writes one gzip member: the header gzip(1) expects, one trailer whose ISIZE is the length mod 2^32', async () => {
    const { inner } = await run([{ kind: 'data', buf: Buffer.from('x') }, { kind: 'zeros', n: 4096n * BigInt(BLOCK_BYTES) + 2n }]);
    const out = inner.bytes;
    assert.deepEqual([...out.subarray(0, 4)], [0x1f, 0x8b, 8, 0]);
    assert.equal(out.readUInt32LE(out.length - 4), 3); // 4 GiB + 3 bytes, modulo 2^32
    // the CRC of the zero blocks is combined, not computed: check it against zlib over the real bytes
    let crc = crc32(Buffer.from('x'));
    const z = Buffer.alloc(BLOCK_BYTES);
    for (let i = 0; i < 4096; i++) crc = crc32(z, crc);
    crc = crc32(Buffer.alloc(2), crc);
    assert.equal(out.readUInt32LE(out.length - 8), crc);
  });

  it('rejects bad levels (E_USAGE)', async () => {
    for (const level of [0, 10, 1.5, -1]) await expectCodeAsync((async () => CompressSink.create(new MemorySink(), 'gzip', level))(), 'E_USAGE');
    assert.ok(CompressSink.create(new MemorySink(), 'gzip', 9) instanceof CompressSink);
  });

  it('property: any split of the input into write()/writeZeros() calls gives decompressible output with the same plaintext', async () => {
    const base = mixedContent(16, 3 * BLOCK_BYTES + 999);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 * BLOCK_BYTES }), fc.boolean()), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 3 }),
        async (cuts, parallel) => {
          const { ops, want } = opsFromCuts(base, cuts);
          const { sink, inner } = await run(ops, parallel);
          assert.equal(sink.position, BigInt(want.length));
          assert.ok(gunzipSync(inner.bytes).equals(want));
          // members follow 1 MiB input boundaries, so the bytes themselves do not depend on the split
          const whole = await run([{ kind: 'data', buf: Buffer.from(want) }], 1);
          assert.ok(whole.inner.bytes.equals(inner.bytes));
        },
      ),
      { numRuns: 40, seed: 17 },
    );
  });
});

describe('CompressSink (zstd)', () => {
  it('output decompresses with zstd -dc byte for byte: seeded mixed data, odd writes, zero runs, a 300 MiB hole', async () => {
    const ops: Op[] = [...seededOps(41, 9 * BLOCK_BYTES + 12345), { kind: 'zeros', n: 300n * BigInt(BLOCK_BYTES) + 5n }, { kind: 'data', buf: Buffer.from('tail') }];
    const want = expected(ops);
    const { sink, inner } = await run(ops, undefined, 'zstd');
    assert.equal(sink.position, BigInt(want.bytes));
    assert.equal(sink.storedBytes, inner.position);
    // the hole costs tens of bytes per MiB: zero blocks are copies of one cached frame
    assert.ok(inner.position < 8n * 1024n * 1024n, `stored ${inner.position}`);
    const file = join(dir, 'mixed.zst');
    writeFileSync(file, inner.bytes);
    const got = await gzipDc(file, 'zstd');
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.bytes, want.bytes);
    assert.equal(got.sha256, want.sha256);
    const t = spawnSync('zstd', ['-t', file]);
    assert.equal(t.status, 0, t.stderr.toString());
    // one frame per 1 MiB block: no frame holds more than a block, so any reader holds at most ~1 MiB per frame
    let frames = 0;
    for await (const p of walkZstd(new ByteInput(once(inner.bytes)))) {
      if (p.kind !== 'frame') continue;
      frames++;
      assert.ok(p.contentBound <= 2 * BLOCK_BYTES && p.bytes.length <= BLOCK_BYTES + 4096, `frame of ${p.bytes.length} bytes, bound ${p.contentBound}`);
    }
    assert.equal(frames, Math.ceil(want.bytes / BLOCK_BYTES));
  });

  it('empty input is a valid empty .zst (only the marker frames)', async () => {
    const { sink, inner } = await run([], undefined, 'zstd');
    assert.equal(sink.position, 0n);
    const file = join(dir, 'empty.zst');
    writeFileSync(file, inner.bytes);
    const got = await gzipDc(file, 'zstd');
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.bytes, 0);
    assert.equal(spawnSync('zstd', ['-t', file]).status, 0);
    assert.equal(await drain(decompressStream('zstd', once(inner.bytes))), 0);
  });

  it('a zero run only (256 MiB): writeZeros(n) allocates nothing near n and decompresses to n zeros', async () => {
    const n = 256n * BigInt(BLOCK_BYTES) + 3n;
    const before = process.memoryUsage().arrayBuffers;
    const { inner } = await run([{ kind: 'zeros', n }], undefined, 'zstd');
    assert.ok(process.memoryUsage().arrayBuffers - before < 32 * 1024 * 1024);
    assert.ok(inner.position < 64n * 1024n, `stored ${inner.position}`);
    const file = join(dir, 'zeros.zst');
    writeFileSync(file, inner.bytes);
    const got = await gzipDc(file, 'zstd');
    assert.equal(got.code, 0, got.stderr);
    assert.equal(BigInt(got.bytes), n);
    assert.equal(got.sha256, expected([{ kind: 'zeros', n }]).sha256);
  });

  it('parallel 0, 1 and 3 produce identical bytes', async () => {
    const ops = seededOps(42, 5 * BLOCK_BYTES + 7);
    const outs = await Promise.all([0, 1, 3].map(async (p) => (await run(ops.map((o) => (o.kind === 'data' ? { kind: 'data', buf: Buffer.from(o.buf) } : o)), p, 'zstd')).inner.bytes));
    assert.deepEqual(outs[1], outs[0]);
    assert.deepEqual(outs[2], outs[0]);
  });

  it('truncated output: zstd -t fails inside a frame; decompressStream refuses every cut (E_CORRUPT), frame boundaries too', async () => {
    const { inner } = await run(seededOps(43, 3 * BLOCK_BYTES), undefined, 'zstd');
    const full = inner.bytes;
    const boundaries: number[] = [];
    for (let off = 0, i = 0; i < inner.parts.length - 1; i++) boundaries.push((off += inner.parts[i]!.length));
    assert.ok(boundaries.length >= 3);
    const p = new Prng(44);
    const inside = [1, 10, 30, full.length - 10, full.length - 1, ...Array.from({ length: 4 }, () => 1 + p.int(full.length - 2))].filter((c) => !boundaries.includes(c));
    for (const cut of inside) {
      const file = join(dir, `cut-${cut}.zst`);
      writeFileSync(file, full.subarray(0, cut));
      assert.notEqual(spawnSync('zstd', ['-t', file]).status, 0, `zstd -t accepted a cut at ${cut}`);
      await expectCodeAsync(drain(decompressStream('zstd', once(full.subarray(0, cut)))), 'E_CORRUPT');
    }
    for (const cut of boundaries) {
      // frames end on their own: zstd(1) takes this for a whole (shorter) stream, which is why the tail marker exists
      const file = join(dir, `cut-${cut}.zst`);
      writeFileSync(file, full.subarray(0, cut));
      assert.equal(spawnSync('zstd', ['-t', file]).status, 0, `a cut between frames at ${cut} is valid zstd`);
      const e = await expectCodeAsync(drain(decompressStream('zstd', once(full.subarray(0, cut)))), 'E_CORRUPT');
      assert.match(e.message, /truncated/);
    }
  });

  it('an inner sink failure surfaces from write/finish, and abort() reaches the inner sink', async () => {
    const inner = new MemorySink(100n);
    const sink = CompressSink.create(inner, 'zstd');
    const data = mixedContent(45, 6 * BLOCK_BYTES);
    let failed: unknown;
    try {
      for (let off = 0; off < data.length; off += 65536) await sink.write(data.subarray(off, off + 65536));
      await sink.finish();
    } catch (e) {
      failed = e;
    }
    assert.match(String(failed), /ENOSPC/);
    await assert.rejects(sink.write(Buffer.from('x')), /ENOSPC/);
    const receipt = await sink.abort();
    assert.equal(receipt.complete, false);
    assert.equal(inner.aborted, true);
  });

  it('accepts level 3 (the binding has no other), refuses any other (E_USAGE)', async () => {
    for (const level of [1, 2, 4, 19, 3.5]) {
      const e = await expectCodeAsync((async () => CompressSink.create(new MemorySink(), 'zstd', level))(), 'E_USAGE');
      assert.match(e.message, /level must be 3/);
    }
    assert.ok(CompressSink.create(new MemorySink(), 'zstd', 3) instanceof CompressSink);
  });

  it('property: any split of the input into write()/writeZeros() calls gives the same zstd bytes and plaintext', async () => {
    const base = mixedContent(46, 3 * BLOCK_BYTES + 999);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 * BLOCK_BYTES }), fc.boolean()), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 3 }),
        async (cuts, parallel) => {
          const { ops, want } = opsFromCuts(base, cuts);
          const { sink, inner } = await run(ops, parallel, 'zstd');
          assert.equal(sink.position, BigInt(want.length));
          const got: Buffer[] = [];
          for await (const b of decompressStream('zstd', once(inner.bytes))) got.push(Buffer.from(b));
          assert.ok(Buffer.concat(got).equals(want));
          const whole = await run([{ kind: 'data', buf: Buffer.from(want) }], 1, 'zstd');
          assert.ok(whole.inner.bytes.equals(inner.bytes));
        },
      ),
      { numRuns: 25, seed: 47 },
    );
  });
});

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

async function drain(it: AsyncIterable<Buffer>): Promise<number> {
  let n = 0;
  for await (const b of it) n += b.length;
  return n;
}
