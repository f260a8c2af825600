import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { isMemdumpError } from '../core/errors.js';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { MemorySink } from '../../test/helpers/memory-sink.js';
import { mixedContent } from '../../test/helpers/mixed-content.js';
import { CompressSink } from './compress.js';
import { Prng } from '../../test/helpers/prng.js';
import { compressionExtension, decompressStream, detectCompression } from './decompress.js';
import { ByteInput, walkZstd } from './zstd-frames.js';

const dir = mkdtempSync(join(tmpdir(), 'memdump-decompress-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function* pieces(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let off = 0; off < b.length; off += size) yield b.subarray(off, off + size);
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of it) out.push(Buffer.from(b));
  return Buffer.concat(out);
}

/** A real CLI's compressed output of `data`, read as the file it wrote. */
function cli(cmd: string, args: string[], data: Buffer): Buffer {
  const r = spawnSync(cmd, args, { input: data, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr?.toString()}`);
  return r.stdout;
}

const hasPigz = spawnSync('pigz', ['--version']).status === 0;


/**
 * Reads a decompressed stream that must be all zeros, sampling memory every `every` pieces: the bytes seen and
 * how far external buffers and RSS grew above the start.
 */
async function drainZeros(stream: AsyncIterable<Buffer>, every: number): Promise<{ n: number; peakBuffers: number; peakRss: number }> {
  const base = process.memoryUsage();
  const zero = Buffer.alloc(1 << 20);
  let peakBuffers = 0;
  let peakRss = 0;
  let n = 0;
  let pieces = 0;
  for await (const b of stream) {
    assert.ok(b.length <= zero.length && b.equals(zero.subarray(0, b.length)), `non-zero bytes near ${n}`);
    n += b.length;
    if (++pieces % every === 0) {
      const m = process.memoryUsage();
      peakBuffers = Math.max(peakBuffers, m.arrayBuffers - base.arrayBuffers);
      peakRss = Math.max(peakRss, m.rss - base.rss);
    }
  }
  return { n, peakBuffers, peakRss };
}

describe('decompressStream (gzip)', () => {
  const data = mixedContent(21, 3 * 1024 * 1024 + 77);

  for (const level of ['-1', '-6', '-9']) {
    it(`reads gzip ${level} output byte for byte, whatever the input piece size`, async () => {
      const gz = cli('gzip', [level, '-c'], data);
      for (const size of [1, 4097, 1 << 20]) {
        if (size === 1) {
          // one byte per piece over the whole stream is slow; the header and first blocks are the interesting part
          const small = cli('gzip', [level, '-c'], data.subarray(0, 50_000));
          assert.ok((await collect(decompressStream('gzip', pieces(small, 1)))).equals(data.subarray(0, 50_000)));
        } else assert.ok((await collect(decompressStream('gzip', pieces(gz, size)))).equals(data));
      }
    });
  }

  it('reads multi-member files (cat a.gz b.gz) as gzip -dc does', async () => {
    const a = cli('gzip', ['-c'], data.subarray(0, 1000));
    const b = cli('gzip', ['-c'], data.subarray(1000));
    const empty = cli('gzip', ['-c'], Buffer.alloc(0));
    const got = await collect(decompressStream('gzip', pieces(Buffer.concat([a, empty, b]), 65536)));
    assert.ok(got.equals(data));
  });

  it('reads pigz output (independent blocks, one member)', { skip: !hasPigz && 'pigz not installed' }, async () => {
    const gz = cli('pigz', ['-1', '-p', '2', '-b', '128', '-c'], data);
    assert.ok((await collect(decompressStream('gzip', pieces(gz, 65536)))).equals(data));
  });

  it('truncation and damage are E_CORRUPT, never a short plaintext', async () => {
    const gz = cli('gzip', ['-6', '-c'], data);
    const p = new Prng(22);
    for (const cut of [0, 1, 9, 10, 500, gz.length - 8, gz.length - 1, 1 + p.int(gz.length - 2)]) {
      const e = await expectCodeAsync(collect(decompressStream('gzip', pieces(gz.subarray(0, cut), 65536))), 'E_CORRUPT');
      assert.match(e.message, /truncated|damaged|empty/);
    }
    // a flipped bit in the body or in the CRC/ISIZE trailer: the inflater or the trailer check refuses it
    for (const at of [gz.length >> 1, gz.length - 5, gz.length - 2]) {
      const bad = Buffer.from(gz);
      bad[at]! ^= 0x10;
      await expectCodeAsync(collect(decompressStream('gzip', pieces(bad, 65536))), 'E_CORRUPT');
    }
  });

  it('an input that fails passes its own error through', async () => {
    async function* broken(): AsyncGenerator<Buffer> {
      yield gzipSync(data).subarray(0, 1000);
      throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    }
    await assert.rejects(collect(decompressStream('gzip', broken())), /EIO/);
  });

  it('1 GiB of zeros (CompressSink output, ~1 MiB on disk) decompresses in bounded memory', async () => {
    const total = 1n << 30n;
    const file = join(dir, 'zeros.gz');
    const gz = new MemorySink();
    const sink = CompressSink.create(gz, 'gzip', 9);
    await sink.write(Buffer.from([0]));
    await sink.writeZeros(total - 1n);
    await sink.finish();
    writeFileSync(file, gz.bytes);
    assert.ok(gz.bytes.length < 4 << 20, `${gz.bytes.length} compressed bytes`);
    const { n, peakBuffers, peakRss } = await drainZeros(decompressStream('gzip', createReadStream(file) as AsyncIterable<Buffer>), 64);
    assert.equal(BigInt(n), total);
    assert.ok(peakBuffers < 64 * 1024 * 1024, `external buffers grew by ${peakBuffers} bytes`);
    assert.ok(peakRss < 128 * 1024 * 1024, `RSS grew by ${peakRss} bytes`);
  });

  it('stopping early releases the stream', async () => {
    const gz = cli('gzip', ['-c'], data);
    for await (const b of decompressStream('gzip', pieces(gz, 1024))) {
      assert.ok(b.length > 0);
      break;
    }
  });

  it('property: mutated input yields the plaintext or E_CORRUPT, never another error', async () => {
    const small = data.subarray(0, 20_000);
    const gz = gzipSync(small, { level: 6 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(gz.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat(gz.length),
        async (flips, cut) => {
          const bad = Buffer.from(gz.subarray(0, cut));
          for (const [at, x] of flips) if (at < bad.length) bad[at]! ^= x;
          try {
            const out = await collect(decompressStream('gzip', pieces(bad, 4096)));
            // a flip in the header's optional fields can leave the member intact
            assert.ok(out.equals(small), 'damaged input decompressed to a different plaintext');
          } catch (e) {
            assert.ok(isMemdumpError(e, 'E_CORRUPT'), String(e));
          }
        },
      ),
      { numRuns: 200, seed: 23 },
    );
  });
});

describe('detectCompression / compressionExtension', () => {
  it('knows the magic of gzip (CLI output) and zstd frames', () => {
    assert.equal(detectCompression(cli('gzip', ['-c'], Buffer.from('x'))), 'gzip');
    assert.equal(detectCompression(cli('zstd', ['-c', '-q'], Buffer.from('x'))), 'zstd');
    assert.equal(detectCompression(Buffer.from([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])), 'zstd');
    assert.equal(detectCompression(Buffer.from('EMiL')), undefined);
    assert.equal(detectCompression(Buffer.from([0x1f, 0x8b])), undefined);
    assert.equal(detectCompression(Buffer.alloc(0)), undefined);
  });

  it('names the extensions', () => {
    assert.equal(compressionExtension('gzip'), 'gz');
    assert.equal(compressionExtension('zstd'), 'zst');
  });

});

describe('decompressStream (zstd)', () => {
  const data = mixedContent(51, 3 * 1024 * 1024 + 77);

  for (const args of [['-1'], ['-3', '--no-check'], ['-19'], ['-3', '--no-content-size'], ['-3', `--stream-size=${3 * 1024 * 1024 + 77}`]]) {
    it(`reads zstd ${args.join(' ')} output byte for byte, whatever the input piece size`, async () => {
      const zst = cli('zstd', ['-q', '-c', ...args], data);
      for (const size of [4097, 1 << 20]) assert.ok((await collect(decompressStream('zstd', pieces(zst, size)))).equals(data));
      const small = cli('zstd', ['-q', '-c', ...args.map((a) => (a.startsWith('--stream-size') ? '--stream-size=20000' : a))], data.subarray(0, 20_000));
      assert.ok((await collect(decompressStream('zstd', pieces(small, 1)))).equals(data.subarray(0, 20_000)));
    });
  }

  it('reads multi-frame files: concatenated small CLI outputs, an empty frame, foreign skippable frames', async () => {
    const skip = Buffer.alloc(8 + 100, 7);
    skip.writeUInt32LE(0x184d2a51, 0);
    skip.writeUInt32LE(100, 4);
    const parts: Buffer[] = [];
    for (let off = 0; off < data.length; off += 300_000) parts.push(cli('zstd', ['-q', '-c', '-1'], data.subarray(off, off + 300_000)));
    const all = Buffer.concat([skip, parts[0]!, cli('zstd', ['-q', '-c'], Buffer.alloc(0)), ...parts.slice(1), skip]);
    const file = join(dir, 'multi.zst');
    writeFileSync(file, all);
    assert.ok(cli('zstd', ['-q', '-dc', file], Buffer.alloc(0)).equals(data), 'the oracle reads it as one stream');
    assert.ok((await collect(decompressStream('zstd', pieces(all, 65536)))).equals(data));
  });

  it('reads pzstd output (independent frames behind skippable size frames)', { skip: spawnSync('pzstd', ['--version']).status !== 0 && 'pzstd not installed' }, async () => {
    const zst = cli('pzstd', ['-q', '-c', '-p', '2', '-1'], data);
    assert.ok((await collect(decompressStream('zstd', pieces(zst, 65536)))).equals(data));
  });

  it('refuses one huge CLI frame with E_TOO_LARGE, declared or not, and says to use zstd -d', async () => {
    const big = Buffer.concat([mixedContent(52, 1 << 20), Buffer.alloc(95 << 20)]);
    const file = join(dir, 'huge.bin');
    writeFileSync(file, big);
    assert.equal(spawnSync('zstd', ['-q', '-1', '-f', file]).status, 0); // from a file: the frame declares 96 MiB
    const declared = createReadStream(file + '.zst') as AsyncIterable<Buffer>;
    const e = await expectCodeAsync(collect(decompressStream('zstd', declared)), 'E_TOO_LARGE');
    assert.match(e.message, /zstd -d/);
    const piped = cli('zstd', ['-q', '-c', '-1'], big); // from a pipe: no size, the block headers bound it
    await expectCodeAsync(collect(decompressStream('zstd', pieces(piped, 1 << 20))), 'E_TOO_LARGE');
    // the reference tool decodes both
    assert.ok(cli('zstd', ['-q', '-dc'], piped).equals(big));
    // a caller may raise the cap
    assert.ok((await collect(decompressStream('zstd', pieces(piped, 1 << 20), { maxFrameBytes: 64 << 20, maxContentBytes: 128 << 20 }))).equals(big));
  });

  it('truncation and damage are E_CORRUPT, never a short or different plaintext', async () => {
    const zst = cli('zstd', ['-q', '-c', '-3'], data); // with its XXH64 checksum
    const p = new Prng(53);
    for (const cut of [0, 1, 4, 5, 500, zst.length - 4, zst.length - 1, 1 + p.int(zst.length - 2)]) {
      const e = await expectCodeAsync(collect(decompressStream('zstd', pieces(zst.subarray(0, cut), 65536))), 'E_CORRUPT');
      assert.match(e.message, /truncated|damaged|empty/);
    }
    for (const at of [zst.length >> 1, zst.length - 2]) {
      const bad = Buffer.from(zst);
      bad[at]! ^= 0x10;
      await expectCodeAsync(collect(decompressStream('zstd', pieces(bad, 65536))), 'E_CORRUPT');
    }
  });

  it("memdump's markers: a frame dropped from the middle, or duplicated, breaks the tail's length/CRC (E_CORRUPT)", async () => {
    const inner = new MemorySink();
    const sink = CompressSink.create(inner, 'zstd');
    await sink.write(data);
    await sink.finish();
    const frames: Buffer[] = [];
    for await (const piece of walkZstd(new ByteInput(pieces(inner.bytes, 65536)))) frames.push(piece.kind === 'frame' ? piece.bytes : Buffer.alloc(0));
    const whole = inner.bytes;
    assert.ok((await collect(decompressStream('zstd', pieces(whole, 65536)))).equals(data));
    const head = whole.subarray(0, 24);
    const tail = whole.subarray(whole.length - 32);
    const f = frames.slice(1, -1);
    assert.ok(f.length >= 4);
    const dropped = Buffer.concat([head, f[0]!, ...f.slice(2), tail]);
    const duplicated = Buffer.concat([head, f[0]!, f[0]!, ...f.slice(1), tail]);
    for (const bad of [dropped, duplicated]) {
      const file = join(dir, 'spliced.zst');
      writeFileSync(file, bad);
      assert.equal(spawnSync('zstd', ['-t', file]).status, 0, 'zstd(1) alone cannot tell');
      const e = await expectCodeAsync(collect(decompressStream('zstd', pieces(bad, 65536))), 'E_CORRUPT');
      assert.match(e.message, /missing or damaged/);
    }
    // frames after the end marker, and a second head before the first stream ended
    await expectCodeAsync(collect(decompressStream('zstd', pieces(Buffer.concat([whole, f[0]!]), 65536))), 'E_CORRUPT');
    await expectCodeAsync(collect(decompressStream('zstd', pieces(Buffer.concat([head, f[0]!, whole]), 65536))), 'E_CORRUPT');
    // two whole memdump streams back to back are one longer plaintext, as for zstd(1)
    assert.ok((await collect(decompressStream('zstd', pieces(Buffer.concat([whole, whole]), 65536)))).equals(Buffer.concat([data, data])));
  });

  it('an input that fails passes its own error through', async () => {
    async function* broken(): AsyncGenerator<Buffer> {
      yield cli('zstd', ['-q', '-c'], data).subarray(0, 1000);
      throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    }
    await assert.rejects(collect(decompressStream('zstd', broken())), /EIO/);
  });

  it('1 GiB of zeros (CompressSink output, ~50 KiB on disk) decompresses in bounded memory', async () => {
    const total = 1n << 30n;
    const file = join(dir, 'zeros.zst');
    const zs = new MemorySink();
    const sink = CompressSink.create(zs, 'zstd');
    await sink.write(Buffer.from([0]));
    await sink.writeZeros(total - 1n);
    await sink.finish();
    writeFileSync(file, zs.bytes);
    assert.ok(zs.bytes.length < 1 << 20, `${zs.bytes.length} compressed bytes`);
    const { n, peakBuffers, peakRss } = await drainZeros(decompressStream('zstd', createReadStream(file, { highWaterMark: 4096 }) as AsyncIterable<Buffer>), 16);
    assert.equal(BigInt(n), total);
    assert.ok(peakBuffers < 64 * 1024 * 1024, `external buffers grew by ${peakBuffers} bytes`);
    assert.ok(peakRss < 128 * 1024 * 1024, `RSS grew by ${peakRss} bytes`);
  });

  it('stopping early closes the input', async () => {
    const zst = cli('zstd', ['-q', '-c'], data);
    let closed = false;
    async function* src(): AsyncGenerator<Buffer> {
      try {
        yield* pieces(zst, 1024);
      } finally {
        closed = true;
      }
    }
    for await (const b of decompressStream('zstd', src())) {
      assert.ok(b.length > 0);
      break;
    }
    assert.equal(closed, true);
  });

  it('property: mutated CompressSink output yields the plaintext or a coded error, never another plaintext', async () => {
    const small = mixedContent(54, 2_500_000);
    const inner = new MemorySink();
    const sink = CompressSink.create(inner, 'zstd');
    await sink.write(small);
    await sink.finish();
    const zst = inner.bytes;
    await fc.assert(
      fc.asyncProperty(
        // two flips: hiding both markers AND changing a stored byte takes three
        fc.array(fc.tuple(fc.nat(zst.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 2 }),
        // most streams whole: a cut alone is always caught by the missing tail marker
        fc.option(fc.nat(zst.length), { freq: 3 }),
        async (flips, cut) => {
          const bad = Buffer.from(zst.subarray(0, cut ?? zst.length));
          for (const [at, x] of flips) if (at < bad.length) bad[at]! ^= x;
          try {
            const out = await collect(decompressStream('zstd', pieces(bad, 65536)));
            assert.ok(out.equals(small), 'damaged input decompressed to a different plaintext');
          } catch (e) {
            assert.ok(isMemdumpError(e) && ['E_CORRUPT', 'E_TOO_LARGE', 'E_UNSUPPORTED'].includes(e.code), String(e));
          }
        },
      ),
      { numRuns: 150, seed: 55 },
    );
  });
});
