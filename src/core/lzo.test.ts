/**
 * The LZO1X decoder against the real liblzo2 (python3-lzo, Debian package python3-lzo): seeded inputs of every
 * kind compressed with LZO1X-1 (what makedumpfile -l and QEMU kdump-lzo use) and LZO1X-999 must come back byte
 * for byte; damaged streams fail with E_CORRUPT only, never a hang or an out-of-bounds access.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from './errors.js';
import { lzo1xCompress, lzo1xDecompress } from './lzo.js';
import { pageContent } from '../../test/fixtures/kdump.js';
import { tempDir } from '../../test/helpers/cli.js';
import { Prng } from '../../test/helpers/prng.js';

const PYTHON = '/usr/bin/python3';
const hasLzo = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import lzo'], { stdio: 'ignore' }).status === 0;

/** Inputs that reach every instruction: literals only, short and long matches, overlapping runs, far (M4) matches. */
function inputs(seed: number): Buffer[] {
  const p = new Prng(seed);
  const out: Buffer[] = [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(4096), Buffer.alloc(4096, 0xcc), p.bytes(4096)];
  for (let i = 0; i < 60; i++) {
    const len = [1 + p.int(40), 4096, 16384, 1 + p.int(200_000)][p.int(4)]!;
    const b = Buffer.alloc(len);
    const kind = p.int(5);
    if (kind === 0) {
      // small alphabet: many short matches at short distances
      for (let k = 0; k < len; k++) b[k] = 0x61 + p.int(3);
    } else if (kind === 1) {
      const text = Buffer.from('Linux version 6.1.0-memdump (gcc) #1 SMP PREEMPT_DYNAMIC ');
      for (let k = 0; k < len; k++) b[k] = text[(k * 7 + (k >> 9)) % text.length]!;
    } else if (kind === 2) {
      // a random block repeated far away: matches at distances beyond 16 KiB (M4)
      const blk = p.bytes(Math.min(len, 300 + p.int(3000)));
      for (let k = 0; k < len; k += blk.length + 20_000) blk.copy(b, k);
    } else if (kind === 3) {
      p.bytes(len).copy(b);
      for (let k = 0; k < len; k += 1 + p.int(600)) b.fill(p.int(256), k, Math.min(len, k + p.int(300)));
    } else {
      p.bytes(len).copy(b);
    }
    out.push(b);
  }
  return out;
}

function compressWithLiblzo(dir: string, data: Buffer[], level: 1 | 9): Buffer[] {
  data.forEach((d, i) => writeFileSync(join(dir, `${i}.in`), d));
  const script = `import lzo, sys\nfor i in range(${data.length}):\n  d = open(f'${dir}/{i}.in','rb').read()\n  open(f'${dir}/{i}.${level}','wb').write(lzo.compress(d, ${level}, False))\n`;
  const r = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return data.map((_, i) => readFileSync(join(dir, `${i}.${level}`)));
}

test('decodes liblzo2 LZO1X-1 and LZO1X-999 output byte for byte', { skip: hasLzo ? false : 'python3-lzo not installed' }, (t) => {
  const dir = tempDir(t, 'memdump-lzo-');
  const data = inputs(0x1a0);
  for (const level of [1, 9] as const) {
    const packed = compressWithLiblzo(dir, data, level);
    let ratioIn = 0;
    let ratioOut = 0;
    data.forEach((d, i) => {
      const got = lzo1xDecompress(packed[i]!, d.length);
      assert.ok(got.equals(d), `level ${level} input ${i} (${d.length} bytes)`);
      // one byte less room than the stream produces must fail, not truncate silently
      if (d.length > 0) assert.throws(() => lzo1xDecompress(packed[i]!, d.length - 1), (e) => e instanceof MemdumpError && e.code === 'E_CORRUPT');
      ratioIn += d.length;
      ratioOut += packed[i]!.length;
    });
    t.diagnostic(`LZO1X-${level === 1 ? '1' : '999'}: ${data.length} inputs, ${ratioIn} -> ${ratioOut} bytes`);
  }
});

test('damaged liblzo2 streams: E_CORRUPT or some bytes within the limit, never anything else', { skip: hasLzo ? false : 'python3-lzo not installed' }, (t) => {
  const dir = tempDir(t, 'memdump-lzo-fuzz-');
  const data = inputs(7).filter((d) => d.length > 0 && d.length <= 20_000);
  const packed = compressWithLiblzo(dir, data, 1);
  const outcomes = new Map<string, number>();
  fc.assert(
    fc.property(fc.nat({ max: packed.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 }), fc.nat({ max: 3 })), { minLength: 1, maxLength: 4 }), (which, edits) => {
      let b = Buffer.from(packed[which]!);
      for (const [pos, val, kind] of edits) {
        const at = pos % Math.max(1, b.length);
        if (kind === 0) b[at] = val;
        else if (kind === 1) b = b.subarray(0, at);
        else if (kind === 2) b = Buffer.concat([b.subarray(0, at), Buffer.from([val]), b.subarray(at)]);
        else b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
      }
      const limit = data[which]!.length;
      try {
        const out = lzo1xDecompress(b, limit);
        assert.ok(out.length <= limit);
        outcomes.set('ok', (outcomes.get('ok') ?? 0) + 1);
      } catch (e) {
        assert.ok(e instanceof MemdumpError && e.code === 'E_CORRUPT', String(e));
        outcomes.set(e.code, (outcomes.get(e.code) ?? 0) + 1);
      }
    }),
    { numRuns: 3000, seed: 42 },
  );
  t.diagnostic(JSON.stringify(Object.fromEntries(outcomes)));
  assert.ok((outcomes.get('E_CORRUPT') ?? 0) > 0);
});

test('arbitrary bytes never escape as anything but E_CORRUPT', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 8192 }), (src, limit) => {
      try {
        assert.ok(lzo1xDecompress(src, limit).length <= limit);
      } catch (e) {
        assert.ok(e instanceof MemdumpError && e.code === 'E_CORRUPT', String(e));
      }
    }),
    { numRuns: 5000, seed: 9 },
  );
});

test('hand-made streams: end marker, overlapping match, trailing bytes', () => {
  // 17+4 -> 4 literals "abcd", then M2 match length 3 distance 4 (op 0x4c = 0b010_011_00), end marker
  const s = Buffer.from([21, 0x61, 0x62, 0x63, 0x64, 0x4c, 0x00, 0x11, 0x00, 0x00]);
  assert.equal(lzo1xDecompress(s, 100).toString(), 'abcdabc');
  assert.throws(() => lzo1xDecompress(Buffer.concat([s, Buffer.from([0])]), 100), /after the end marker/);
  assert.throws(() => lzo1xDecompress(s.subarray(0, 8), 100), (e) => e instanceof MemdumpError && e.code === 'E_CORRUPT');
  // distance 1, length 8: a run of the last byte (overlapping copy)
  const run = Buffer.from([18, 0x7a, 0x20 | 6, 0x00, 0x00, 0x11, 0x00, 0x00]);
  assert.equal(lzo1xDecompress(run, 100).toString(), 'z'.repeat(9));
  // a match reaching before the start of the output
  assert.throws(() => lzo1xDecompress(Buffer.from([18, 0x7a, 0x20 | 6, 0x08, 0x00, 0x11, 0x00, 0x00]), 100), /before the output start/);
});

test('lzo1xCompress writes streams liblzo2 itself decodes', { skip: hasLzo ? false : 'python3-lzo not installed' }, (t) => {
  const dir = tempDir(t, 'memdump-kdump-lzo-');
  const pages = Array.from({ length: 40 }, (_, i) => (i % 5 === 0 ? Buffer.concat([pageContent(i, i, 4096), pageContent(i, i, 4096), Buffer.alloc(30_000, i)]) : pageContent(9, i, 4096)));
  pages.forEach((p, i) => {
    const c = lzo1xCompress(p);
    assert.ok(lzo1xDecompress(c, p.length).equals(p));
    writeFileSync(join(dir, `${i}.lzo`), c);
    writeFileSync(join(dir, `${i}.raw`), p);
  });
  const script = `import lzo\nfor i in range(${pages.length}):\n  r = open(f'${dir}/{i}.raw','rb').read()\n  assert lzo.decompress(open(f'${dir}/{i}.lzo','rb').read(), False, len(r)) == r, i\n`;
  const r = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});
