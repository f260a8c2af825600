import { expectCode } from '../../test/helpers/expect-code.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { uncompressSync } from 'snappy';
import { crc32c, maskCrc } from '../core/crc32c.js';
import { MemdumpError } from '../core/errors.js';
import {
  MAX_CHUNK_DATA,
  STREAM_IDENTIFIER,
  SnappyFrameEncoder,
  decodeFramedStream,
  encodeChunk,
  encodeFramedStream,
  inspectChunk,
  snappyBlockLength,
  worthCompressing,
} from './snappy-frame.js';

function chunkHeader(type: number, bodyLength: number): Buffer {
  return Buffer.from([type, bodyLength & 0xff, (bodyLength >>> 8) & 0xff, bodyLength >>> 16]);
}

/** A hand-built uncompressed data chunk. */
function rawChunk(data: Buffer, crc = maskCrc(crc32c(data))): Buffer {
  const b = Buffer.alloc(8 + data.length);
  chunkHeader(0x01, 4 + data.length).copy(b);
  b.writeUInt32LE(crc, 4);
  data.copy(b, 8);
  return b;
}


/** Split `data` into pieces of random sizes (seeded by fast-check's numbers). */
function pieces(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = 0;
  for (const c of cuts) {
    if (i >= data.length) break;
    const n = Math.min(data.length - i, c);
    out.push(data.subarray(i, i + n));
    i += n;
  }
  if (i < data.length) out.push(data.subarray(i));
  return out;
}

test('stream identifier bytes', () => {
  assert.equal(STREAM_IDENTIFIER.toString('hex'), 'ff060000734e61507059');
  assert.equal(encodeFramedStream(Buffer.alloc(0)).toString('hex'), 'ff060000734e61507059');
});

test('golden chunks: "abc" stays uncompressed, 100 x "a" is compressed', () => {
  // CRC-32C("abc") = 0x364B3FB7; masked = 0x21F1576E, stored little-endian.
  assert.equal(crc32c(Buffer.from('abc')), 0x364b3fb7);
  assert.equal(encodeChunk(Buffer.from('abc')).toString('hex'), '01070000' + '6e57f121' + '616263');
  const framed = encodeFramedStream(Buffer.alloc(100, 0x61));
  assert.equal(framed.subarray(0, 10).toString('hex'), 'ff060000734e61507059');
  assert.equal(framed[10], 0x00, 'compressed chunk');
  const len = framed.readUIntLE(11, 3);
  assert.equal(framed.length, 14 + len);
  assert.equal(framed.readUInt32LE(14), maskCrc(crc32c(Buffer.alloc(100, 0x61))));
  assert.deepEqual(uncompressSync(framed.subarray(18)), Buffer.alloc(100, 0x61));
});

test('the snap FrameEncoder rule: compressed only when it saves more than 1/8', () => {
  assert.equal(worthCompressing(100, 100), false);
  assert.equal(worthCompressing(88, 100), false); // 100 - 12 = 88: not < 88
  assert.equal(worthCompressing(87, 100), true);
  assert.equal(worthCompressing(0, 0), false);
  assert.equal(encodeChunk(randomBytes(MAX_CHUNK_DATA))[0], 0x01);
  assert.equal(encodeChunk(Buffer.alloc(MAX_CHUNK_DATA))[0], 0x00);
  assert.throws(() => encodeChunk(Buffer.alloc(MAX_CHUNK_DATA + 1)), RangeError);
});

test('chunking: 65536 bytes per chunk, last one short; stats add up', () => {
  const data = Buffer.concat([Buffer.alloc(MAX_CHUNK_DATA * 2), randomBytes(MAX_CHUNK_DATA + 5)]);
  const enc = new SnappyFrameEncoder();
  const out = [...enc.push(data.subarray(0, 1000)), ...enc.push(data.subarray(1000)), ...enc.finish()];
  const stream = Buffer.concat(out);
  assert.equal(enc.stats.bytesIn, data.length);
  assert.equal(enc.stats.bytesOut, stream.length);
  assert.equal(enc.stats.compressedChunks, 2);
  assert.equal(enc.stats.uncompressedChunks, 2);
  // Walk: identifier, then 4 data chunks of 65536, 65536, 65536, 5 bytes.
  let pos = 10;
  const sizes: number[] = [];
  while (pos < stream.length) {
    const info = inspectChunk(stream.subarray(pos, pos + 13), BigInt(pos), BigInt(stream.length - pos), false);
    sizes.push(info.dataLength);
    pos += 4 + info.bodyLength;
  }
  assert.deepEqual(sizes, [65536, 65536, 65536, 5]);
  assert.deepEqual(decodeFramedStream(stream), data);
  assert.throws(() => enc.push(Buffer.alloc(1)));
  assert.throws(() => enc.finish());
});

test('round trip at boundary sizes', () => {
  for (const n of [0, 1, 7, 65535, 65536, 65537, 3 * 65536 + 5]) {
    const data = Buffer.concat([randomBytes(Math.floor(n / 2)), Buffer.alloc(n - Math.floor(n / 2), 0x20)]);
    assert.deepEqual(decodeFramedStream(encodeFramedStream(data)), data, `size ${n}`);
  }
});

test('property: decode(encode(x)) == x, whatever the push sizes', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.constantFrom(new Uint8Array(70000), new Uint8Array(65536))), { maxLength: 5 }),
      fc.array(fc.integer({ min: 1, max: 80000 }), { maxLength: 8 }),
      (parts, cuts) => {
        const data = Buffer.concat(parts);
        const enc = new SnappyFrameEncoder();
        const out: Buffer[] = [];
        for (const p of pieces(data, cuts)) out.push(...enc.push(p));
        out.push(...enc.finish());
        const stream = Buffer.concat(out);
        assert.deepEqual(stream, encodeFramedStream(data), 'chunking-independent output');
        assert.deepEqual(decodeFramedStream(stream), data);
      },
    ),
    { numRuns: 150 },
  );
});

test('decoder: skippable (0x80-0xfd), padding (0xfe) and repeated stream identifiers are skipped', () => {
  const a = Buffer.from('hello ');
  const b = Buffer.from('world');
  const stream = Buffer.concat([
    STREAM_IDENTIFIER,
    chunkHeader(0xfe, 3),
    Buffer.alloc(3),
    rawChunk(a),
    chunkHeader(0x80, 0),
    chunkHeader(0xfd, 2),
    Buffer.from([1, 2]),
    STREAM_IDENTIFIER,
    rawChunk(b),
  ]);
  assert.equal(decodeFramedStream(stream).toString(), 'hello world');
});

test('decoder: CRC mismatch is E_CORRUPT with the chunk offset', () => {
  const data = Buffer.from('some bytes to checksum');
  const good = Buffer.concat([STREAM_IDENTIFIER, rawChunk(data)]);
  const bad = Buffer.from(good);
  bad[14] = bad[14]! ^ 0x01; // first CRC byte
  const e = expectCode(() => decodeFramedStream(bad, { base: 0x1000n }), 'E_CORRUPT', 0x100an);
  assert.match(e.message, /CRC/);
  const bad2 = Buffer.from(good);
  bad2[bad2.length - 1] = bad2[bad2.length - 1]! ^ 0x80; // data byte
  expectCode(() => decodeFramedStream(bad2), 'E_CORRUPT', 10n);
  // Same in a compressed chunk.
  const z = encodeFramedStream(Buffer.alloc(5000));
  assert.equal(z[10], 0x00);
  z[14] = z[14]! ^ 0xff;
  expectCode(() => decodeFramedStream(z), 'E_CORRUPT', 10n);
});

test('decoder: a chunk longer than the stream is E_TRUNCATED', () => {
  const stream = Buffer.concat([STREAM_IDENTIFIER, rawChunk(Buffer.alloc(100, 1))]);
  for (const cut of [11, 13, 17, 50, stream.length - 1]) {
    expectCode(() => decodeFramedStream(stream.subarray(0, cut)), 'E_TRUNCATED', 10n);
  }
  expectCode(() => decodeFramedStream(Buffer.alloc(0)), 'E_TRUNCATED', 0n);
  expectCode(() => decodeFramedStream(STREAM_IDENTIFIER.subarray(0, 7)), 'E_TRUNCATED', 0n);
});

test('decoder: reserved unskippable types 0x02-0x7f are E_CORRUPT', () => {
  for (const t of [0x02, 0x10, 0x7f]) {
    const stream = Buffer.concat([STREAM_IDENTIFIER, chunkHeader(t, 1), Buffer.alloc(1)]);
    expectCode(() => decodeFramedStream(stream), 'E_CORRUPT', 10n);
  }
});

test('decoder: more than 65536 uncompressed bytes in a chunk is E_CORRUPT', () => {
  const big = Buffer.concat([STREAM_IDENTIFIER, rawChunk(Buffer.alloc(MAX_CHUNK_DATA + 1))]);
  expectCode(() => decodeFramedStream(big), 'E_CORRUPT', 10n);
  // A compressed chunk whose varint claims 65537 bytes.
  const claim = Buffer.from([0x81, 0x80, 0x04]); // 65537
  assert.deepEqual(snappyBlockLength(claim), { value: 65537, size: 3 });
  const body = Buffer.concat([Buffer.alloc(4), claim, Buffer.alloc(10)]);
  const c = Buffer.concat([STREAM_IDENTIFIER, chunkHeader(0x00, body.length), body]);
  expectCode(() => decodeFramedStream(c), 'E_CORRUPT', 10n);
  // A varint that never ends.
  const body2 = Buffer.concat([Buffer.alloc(4), Buffer.alloc(6, 0xff)]);
  expectCode(() => decodeFramedStream(Buffer.concat([STREAM_IDENTIFIER, chunkHeader(0x00, body2.length), body2])), 'E_CORRUPT', 10n);
});

test('decoder: structural errors', () => {
  // No stream identifier first.
  expectCode(() => decodeFramedStream(rawChunk(Buffer.from('x'))), 'E_CORRUPT', 0n);
  // Identifier with the wrong body or length.
  expectCode(() => decodeFramedStream(Buffer.from('ff060000734e61507058', 'hex')), 'E_CORRUPT', 0n);
  expectCode(() => decodeFramedStream(Buffer.from('ff070000734e6150705900', 'hex')), 'E_CORRUPT', 0n);
  // Data chunks too short for their CRC.
  expectCode(() => decodeFramedStream(Buffer.concat([STREAM_IDENTIFIER, chunkHeader(0x01, 3), Buffer.alloc(3)])), 'E_CORRUPT', 10n);
  expectCode(() => decodeFramedStream(Buffer.concat([STREAM_IDENTIFIER, chunkHeader(0x00, 4), Buffer.alloc(4)])), 'E_CORRUPT', 10n);
  // Garbage snappy payload with a plausible length: the native decoder's error becomes E_CORRUPT.
  const garbage = Buffer.concat([Buffer.alloc(4), Buffer.from([0x20]), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);
  expectCode(() => decodeFramedStream(Buffer.concat([STREAM_IDENTIFIER, chunkHeader(0x00, garbage.length), garbage])), 'E_CORRUPT', 10n);
  // Output bound.
  expectCode(() => decodeFramedStream(encodeFramedStream(Buffer.alloc(200000)), { maxOutput: 100000 }), 'E_TOO_LARGE');
});

test('mutation fuzz: random flips and truncations only ever yield coded errors', () => {
  const data = Buffer.concat([Buffer.alloc(70000), randomBytes(3000), Buffer.from('text '.repeat(2000))]);
  const valid = encodeFramedStream(data);
  const rand = fc.sample(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 3 })), { numRuns: 1500, seed: 42 });
  const seen = new Map<string, number>();
  for (const [p, q, v, kind] of rand) {
    let m: Buffer;
    if (kind === 0) m = valid.subarray(0, p % valid.length);
    else {
      m = Buffer.from(valid);
      // Bias towards headers and the start, where structure lives.
      const at = kind === 1 ? p % Math.min(64, m.length) : p % m.length;
      m[at] = v;
      if (kind === 3) m[q % m.length] = (q >>> 8) & 0xff;
    }
    let outcome: string;
    try {
      const out = decodeFramedStream(m, { maxOutput: 1 << 20 });
      // A data chunk whose type byte became skippable/padding vanishes (the framing has no total length); any
      // other change that decodes would have to beat the CRC.
      if (!out.equals(data)) assert.ok(out.length < data.length, 'only whole chunks can go missing');
      outcome = out.equals(data) ? 'same' : 'shorter';
    } catch (e) {
      assert.ok(e instanceof MemdumpError, `non-MemdumpError: ${String(e)}`);
      assert.ok(['E_TRUNCATED', 'E_CORRUPT', 'E_TOO_LARGE'].includes(e.code), e.code);
      outcome = e.code;
    }
    seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
  }
  assert.ok((seen.get('E_CORRUPT') ?? 0) > 0 && (seen.get('E_TRUNCATED') ?? 0) > 0, JSON.stringify([...seen]));
});
