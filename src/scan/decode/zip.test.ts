import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { RandomStream, Rng } from '../../../test/fixtures/scan-corpus-rng.js';
import { textBlock } from '../../../test/fixtures/scan-corpus-text.js';
import { findZip } from './zip.js';
import type { DecodeBudget } from './types.js';

const MiB = 1024 * 1024;
const budget = (maxOutput = 16 * MiB, remaining = 64 * MiB): DecodeBudget => ({ maxOutput, remaining });
const text = (seed: number, size: number): string => textBlock(new Rng(seed, 'zip'), size, []).text;

/**
 * Real zips from Python's zipfile: to a seekable file (sizes in the local header) or to a pipe-like stream (bit 3,
 * sizes in data descriptors, stored members included), optionally Zip64. Prints the archive; members come back
 * with their local header offsets from the central directory.
 */
function pyZip(members: { name: string; data: string; deflate: boolean }[], stream: boolean, zip64: boolean): { bytes: Buffer; offsets: number[] } {
  const script = `
import io, json, sys, zipfile
spec = json.load(sys.stdin)
class Pipe(io.RawIOBase):
    def __init__(self): self.b = bytearray()
    def writable(self): return True
    def write(self, d): self.b += d; return len(d)
out = Pipe() if spec['stream'] else io.BytesIO()
with zipfile.ZipFile(out, 'w') as z:
    for m in spec['members']:
        zi = zipfile.ZipInfo(m['name'], (2024, 2, 1, 12, 0, 0))
        zi.compress_type = zipfile.ZIP_DEFLATED if m['deflate'] else zipfile.ZIP_STORED
        with z.open(zi, 'w', force_zip64=spec['zip64']) as f: f.write(m['data'].encode('latin1'))
b = bytes(out.b) if spec['stream'] else out.getvalue()
offs = [zi.header_offset for zi in zipfile.ZipFile(io.BytesIO(b)).infolist()]
sys.stdout.write(json.dumps({'hex': b.hex(), 'offsets': offs}))
`;
  const r = JSON.parse(execFileSync('python3', ['-c', script], { input: JSON.stringify({ members, stream, zip64 }), maxBuffer: 64 * MiB }).toString()) as { hex: string; offsets: number[] };
  return { bytes: Buffer.from(r.hex, 'hex'), offsets: r.offsets };
}

for (const [stream, zip64] of [[false, false], [true, false], [false, true], [true, true]] as const) {
  test(`python zipfile, ${stream ? 'streamed (data descriptors)' : 'seekable'}${zip64 ? ', Zip64' : ''}: one result per member at its local header`, () => {
    const members = [0, 1, 2, 3].map((i) => ({ name: `dir/file${i}.log`, data: text(i + (stream ? 10 : 0), 500 + 3000 * i), deflate: i % 2 === 1 }));
    const z = pyZip(members, stream, zip64);
    const pad = new RandomStream(5).take(777);
    const buf = Buffer.concat([pad, z.bytes, pad]);
    const found = findZip(buf, 0, buf.length, budget());
    assert.deepEqual(found.map((d) => d.start), z.offsets.map((o) => o + pad.length));
    found.forEach((d, i) => {
      assert.equal(d.data.toString('latin1'), members[i]!.data);
      assert.equal(d.truncated, false);
      const next = z.offsets[i + 1];
      if (next !== undefined) assert.equal(d.end, next + pad.length, `member ${i} end`);
    });
  });
}

/** A hand-made local header, for the cases Python will not write. */
function local(flags: number, method: number, body: Buffer, size: number): Buffer {
  const h = Buffer.alloc(30);
  h.writeUInt32LE(0x04034b50, 0);
  h.writeUInt16LE(20, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt16LE(method, 8);
  h.writeUInt32LE(body.length, 18);
  h.writeUInt32LE(size, 22);
  h.writeUInt16LE(1, 26);
  return Buffer.concat([h, Buffer.from('x'), body]);
}

test('encrypted members and unknown methods are skipped; a cut member is truncated; ownership', () => {
  const data = Buffer.from(text(30, 5000), 'latin1');
  const body = deflateRawSync(data);
  const enc = local(1, 8, body, data.length);
  const bz2 = local(0, 12, body, data.length);
  const good = local(0, 8, body, data.length);
  const buf = Buffer.concat([enc, bz2, good, good.subarray(0, 500)]);
  const g = enc.length + bz2.length;
  const all = findZip(buf, 0, buf.length, budget());
  assert.deepEqual(all.map((d) => [d.start, d.end, d.truncated]), [[g, g + good.length, false], [g + good.length, buf.length, true]]);
  assert.ok(data.subarray(0, all[1]!.data.length).equals(all[1]!.data));
  assert.deepEqual(findZip(buf, g + 1, buf.length, budget()).map((d) => d.start), [g + good.length]);
  assert.deepEqual(findZip(buf, 0, g + 1, budget()).map((d) => d.start), [g]);
});

test('a stored member holding a whole zip is one result (its inner headers are for the recursion)', () => {
  const inner = local(0, 0, Buffer.from(text(31, 300), 'latin1'), 0);
  inner.writeUInt32LE(inner.length - 31, 22);
  const outer = local(0, 0, inner, inner.length);
  const found = findZip(outer, 0, outer.length, budget());
  assert.deepEqual(found.map((d) => d.start), [0]);
  assert.deepEqual(findZip(found[0]!.data, 0, inner.length, budget()).map((d) => d.start), [0]);
});

test('16 MiB of random bytes: no members (count and time printed)', () => {
  for (const seed of [1, 2]) {
    const buf = new RandomStream(seed).take(16 * MiB);
    findZip(buf, 0, buf.length, budget());
    const t0 = process.hrtime.bigint();
    const found = findZip(buf, 0, buf.length, budget());
    console.log(`# zip random 16 MiB seed ${seed}: ${found.length} members, ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`);
    assert.equal(found.length, 0);
  }
});

test('property: mutated zips never throw and stay within the cap', () => {
  const base = pyZip([{ name: 'a', data: text(32, 2000), deflate: true }, { name: 'b', data: text(33, 800), deflate: false }], true, false).bytes;
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(base.length), (muts, cut) => {
      const b = Buffer.from(base.subarray(0, Math.max(1, cut)));
      for (const [i, v] of muts) if (i < b.length) b[i] = v;
      for (const d of findZip(b, 0, b.length, budget(1024, 1 << 20))) assert.ok(d.data.length <= 1024 && d.end <= b.length && d.start < d.end);
    }),
    { seed: 44, numRuns: 400 },
  );
});
