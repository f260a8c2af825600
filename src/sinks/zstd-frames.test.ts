import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isMemdumpError } from '../core/errors.js';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { mixedContent } from '../../test/helpers/mixed-content.js';
import { Prng } from '../../test/helpers/prng.js';
import { ByteInput, DEFAULT_LIMITS, headMarker, loadZstd, parseMarker, tailMarker, walkZstd, type ZstdLimits, type ZstdPiece } from './zstd-frames.js';

function zstdCli(args: string[], input: Buffer): Buffer {
  const r = spawnSync('zstd', ['-q', '-c', ...args], { input, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, r.stderr?.toString());
  return r.stdout;
}

async function* pieces(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let off = 0; off < b.length; off += size) yield b.subarray(off, off + size);
}

async function walk(b: Buffer, size = 4096, limits?: ZstdLimits): Promise<ZstdPiece[]> {
  const out: ZstdPiece[] = [];
  for await (const p of walkZstd(new ByteInput(pieces(b, size)), limits)) out.push(p.kind === 'frame' ? { ...p, bytes: Buffer.from(p.bytes) } : p);
  return out;
}

describe('walkZstd', () => {
  const data = mixedContent(31, 700_000);

  it('finds the byte range of every frame of concatenated CLI outputs, whatever the piece size', async () => {
    // from a pipe zstd(1) declares a content size only when told the stream size
    const parts = [
      zstdCli(['-1', '--stream-size=1'], data.subarray(0, 1)),
      zstdCli(['-19', '--no-check', '--stream-size=300000'], data.subarray(0, 300_000)),
      zstdCli(['-3'], data),
      zstdCli(['--stream-size=0'], Buffer.alloc(0)),
    ];
    const all = Buffer.concat(parts);
    for (const size of [1, 7, 65536, all.length]) {
      const got = await walk(all, size);
      assert.deepEqual(
        got.map((p) => (p.kind === 'frame' ? p.bytes.length : -1)),
        parts.map((p) => p.length),
      );
      got.forEach((p, i) => assert.ok(p.kind === 'frame' && p.bytes.equals(parts[i]!)));
    }
    const [one, big, noSize, empty] = (await walk(all)) as Extract<ZstdPiece, { kind: 'frame' }>[];
    assert.equal(one!.contentSize, 1n);
    assert.equal(big!.contentSize, 300_000n);
    assert.equal(noSize!.contentSize, undefined);
    assert.ok(noSize!.contentBound >= data.length, 'the bound from block headers is an upper bound');
    assert.equal(empty!.contentSize, 0n);
  });

  it('each frame it returns decodes alone with the binding to the right plaintext', async () => {
    const zstd = await loadZstd();
    const a = zstdCli(['-1'], data.subarray(0, 1000));
    const b = zstdCli(['--no-content-size'], data.subarray(1000));
    const frames = (await walk(Buffer.concat([a, b]), 999)) as Extract<ZstdPiece, { kind: 'frame' }>[];
    assert.ok((await zstd.decompress(frames[0]!.bytes)).equals(data.subarray(0, 1000)));
    assert.ok((await zstd.decompress(frames[1]!.bytes)).equals(data.subarray(1000)));
  });

  it('returns small skippable payloads, skips large ones without holding them, and reads the markers back', async () => {
    const big = Buffer.alloc(8 + 5_000_000);
    big.writeUInt32LE(0x184d2a53, 0);
    big.writeUInt32LE(5_000_000, 4);
    const all = Buffer.concat([headMarker(), big, zstdCli([], data.subarray(0, 10)), tailMarker(10n, 0xdeadbeef)]);
    const got = await walk(all, 65536);
    assert.deepEqual(
      got.map((p) => p.kind),
      ['skippable', 'skippable', 'frame', 'skippable'],
    );
    const [head, skipped, , tail] = got as Extract<ZstdPiece, { kind: 'skippable' }>[];
    assert.deepEqual(parseMarker(head!), { kind: 'head', version: 1 });
    assert.equal(skipped!.payload, undefined);
    assert.equal(parseMarker(skipped!), undefined);
    assert.deepEqual(parseMarker(tail!), { kind: 'tail', crc: 0xdeadbeef, length: 10n });
    // zstd(1) itself ignores them
    const r = spawnSync('zstd', ['-dc'], { input: all });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.ok(r.stdout.equals(data.subarray(0, 10)));
  });

  it('refuses frames past the caps with E_TOO_LARGE before reading them, naming zstd -d', async () => {
    const zeros = Buffer.alloc(96 << 20);
    // from a file, zstd declares the size; from a pipe it cannot, and only the block headers bound it
    const withSize = zstdCli(['-1', '--content-size', `--stream-size=${zeros.length}`], zeros);
    const noSize = zstdCli(['-1', '--no-content-size'], zeros);
    const e1 = await expectCodeAsync(walk(withSize), 'E_TOO_LARGE');
    assert.match(e1.message, /zstd -d/);
    assert.match(e1.message, /declares 100663296 bytes/);
    const e2 = await expectCodeAsync(walk(noSize), 'E_TOO_LARGE');
    assert.match(e2.message, /can expand to more than/);
    // the same frames pass under a cap that fits them
    const roomy: ZstdLimits = { maxFrameBytes: 64 << 20, maxContentBytes: 128 << 20 };
    assert.equal((await walk(noSize, 65536, roomy)).length, 1);
    // compressed size: random data does not shrink
    const rnd = zstdCli(['-1'], new Prng(32).bytes(3 << 20));
    await expectCodeAsync(walk(rnd, 65536, { maxFrameBytes: 1 << 20, maxContentBytes: 64 << 20 }), 'E_TOO_LARGE');
  });

  it('truncation anywhere but a frame boundary is E_CORRUPT with truncated: true', async () => {
    const one = zstdCli([], data.subarray(0, 200_000));
    const all = Buffer.concat([one, headMarker()]);
    for (const cut of [1, 3, 4, 5, 8, 100, one.length - 4, one.length - 1, one.length + 1, one.length + 9, all.length - 1]) {
      const e = await expectCodeAsync(walk(all.subarray(0, cut), 1000), 'E_CORRUPT');
      assert.equal(e.details['truncated'], true, `${cut}: ${e.message}`);
    }
    assert.equal((await walk(all.subarray(0, one.length))).length, 1);
    assert.equal((await walk(Buffer.alloc(0))).length, 0);
  });

  it('refuses bad magic, the reserved header bit, reserved block type and oversized blocks (E_CORRUPT), dictionaries (E_UNSUPPORTED)', async () => {
    const f = zstdCli(['--no-check'], data.subarray(0, 5000));
    await expectCodeAsync(walk(Buffer.from('not zstd at all')), 'E_CORRUPT');
    const reserved = Buffer.from(f);
    reserved[4]! |= 0x08;
    await expectCodeAsync(walk(reserved), 'E_CORRUPT');
    // a hand-made frame: FHD 0 (window descriptor only), window 1 KiB, then one block header
    const frame = (block: number) => Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, block & 0xff, (block >> 8) & 0xff, (block >> 16) & 0xff]);
    await expectCodeAsync(walk(frame(1 | (3 << 1))), 'E_CORRUPT'); // reserved type
    await expectCodeAsync(walk(frame(1 | (0 << 1) | ((128 * 1024 + 1) << 3))), 'E_CORRUPT'); // raw block > 128 KiB
    const dict = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x01, 0x00, 7, 1, 0, 0]);
    await expectCodeAsync(walk(dict), 'E_UNSUPPORTED');
    const trained = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x01, 0x00, 0, 1, 0, 0]); // dictionary id present but 0: fine
    assert.equal((await walk(trained)).length, 1);
    const badMarker = Buffer.concat([headMarker()]);
    badMarker.writeUInt32LE(15, 4); // the tag still says memdump, the payload size is wrong
    await expectCodeAsync(
      (async () => {
        for (const p of await walk(badMarker.subarray(0, 8 + 15))) if (p.kind === 'skippable') parseMarker(p);
      })(),
      'E_CORRUPT',
    );
  });

  it('property: mutated and cut streams give frames, E_CORRUPT, E_TOO_LARGE or E_UNSUPPORTED, never another error or a hang', async () => {
    const base = Buffer.concat([headMarker(), zstdCli(['-1'], data.subarray(0, 3000)), zstdCli(['--no-content-size'], data.subarray(0, 40_000)), tailMarker(1n, 2)]);
    const limits: ZstdLimits = { maxFrameBytes: 1 << 20, maxContentBytes: 1 << 20 };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.nat(base.length),
        fc.integer({ min: 1, max: 5000 }),
        async (flips, cut, size) => {
          const bad = Buffer.from(base.subarray(0, cut));
          for (const [at, x] of flips) if (at < bad.length) bad[at]! ^= x;
          try {
            for (const p of await walk(bad, size, limits)) {
              if (p.kind === 'frame') assert.ok(p.bytes.length <= limits.maxFrameBytes && p.contentBound <= limits.maxContentBytes);
              else parseMarker(p);
            }
          } catch (e) {
            assert.ok(isMemdumpError(e) && ['E_CORRUPT', 'E_TOO_LARGE', 'E_UNSUPPORTED'].includes(e.code), String(e));
          }
        },
      ),
      { numRuns: 400, seed: 33 },
    );
  });

  it('property: random bytes behind a frame magic never escape the caps', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 400 }), async (tail) => {
        const b = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), tail]);
        try {
          for (const p of await walk(b, 64, DEFAULT_LIMITS)) if (p.kind === 'frame') assert.ok(p.bytes.length <= b.length);
        } catch (e) {
          assert.ok(isMemdumpError(e) && ['E_CORRUPT', 'E_TOO_LARGE', 'E_UNSUPPORTED'].includes(e.code), String(e));
        }
      }),
      { numRuns: 500, seed: 34 },
    );
  });
});
