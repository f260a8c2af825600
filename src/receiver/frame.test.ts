import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { expectCode } from '../../test/helpers/expect-code.js';
import { FROM_RECEIVER, FROM_SENDER, FrameDecoder, HEADER_BYTES, MAGIC, MAX_DATA, MAX_JSON, T, byteCount, dataHeader, encodeFrame, type Frame } from './frame.js';

function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

const senderFrame = fc.oneof(
  fc.uint8Array({ maxLength: 3000 }).map((d) => ({ type: T.DATA as number, body: Buffer.from(d) })),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 40 }), fc.integer())).map((j) => ({ type: T.OPEN as number, body: j })),
  fc.constant({ type: T.PING as number, body: Buffer.alloc(0) }),
);

test('frames survive any split of the byte stream, in order and byte-exact', () => {
  fc.assert(
    fc.property(fc.array(senderFrame, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
      const wire = Buffer.concat([MAGIC, ...frames.map((f) => encodeFrame(f.type as typeof T.DATA, f.body as Buffer))]);
      const d = new FrameDecoder(FROM_SENDER);
      const got: Frame[] = [];
      for (const part of split(wire, cuts)) got.push(...d.push(part));
      assert.equal(got.length, frames.length);
      frames.forEach((f, i) => {
        const g = got[i]!;
        assert.equal(g.type, f.type);
        if (g.type === T.DATA) assert.deepEqual(g.data, f.body);
        else if (f.type === T.OPEN) assert.deepEqual(g.json, JSON.parse(JSON.stringify(f.body)));
      });
      assert.equal(d.pendingBytes, 0);
    }),
    { numRuns: 300, seed: 42 },
  );
});

test('the preamble is checked from its first byte', () => {
  const d = new FrameDecoder(FROM_SENDER);
  assert.deepEqual(d.push(MAGIC.subarray(0, 3)), []);
  expectCode(() => d.push(Buffer.from('X')), 'E_PROTOCOL');
  // a failed decoder stays failed
  expectCode(() => d.push(MAGIC), 'E_PROTOCOL');
  expectCode(() => new FrameDecoder(FROM_SENDER).push(Buffer.from('GET / HTTP/1.1\r\n')), 'E_PROTOCOL');
});

test('caps are enforced on the header, before the payload is buffered', () => {
  const over = Buffer.alloc(HEADER_BYTES);
  over[0] = T.DATA;
  over.writeUInt32BE(MAX_DATA + 1, 1);
  const e = expectCode(() => new FrameDecoder(FROM_SENDER).push(Buffer.concat([MAGIC, over])), 'E_PROTOCOL');
  assert.match(e.message, /cap/);
  const json = Buffer.alloc(HEADER_BYTES);
  json[0] = T.OPEN;
  json.writeUInt32BE(MAX_JSON + 1, 1);
  expectCode(() => new FrameDecoder(FROM_SENDER).push(Buffer.concat([MAGIC, json])), 'E_PROTOCOL');
  const ping = Buffer.from([T.PING, 0, 0, 0, 1]);
  expectCode(() => new FrameDecoder(FROM_SENDER).push(Buffer.concat([MAGIC, ping])), 'E_PROTOCOL');
  // exactly at the cap is fine
  const d = new FrameDecoder(FROM_SENDER);
  const f = d.push(Buffer.concat([MAGIC, dataHeader(MAX_DATA), Buffer.alloc(MAX_DATA, 1)]));
  assert.equal(f.length, 1);
  assert.throws(() => encodeFrame(T.OPEN, { x: 'y'.repeat(MAX_JSON) }), /cap/);
});

test('direction: a receiver frame from a sender (and vice versa) is E_PROTOCOL', () => {
  expectCode(() => new FrameDecoder(FROM_SENDER).push(Buffer.concat([MAGIC, encodeFrame(T.ACCEPT, {})])), 'E_PROTOCOL');
  expectCode(() => new FrameDecoder(FROM_RECEIVER).push(Buffer.concat([MAGIC, encodeFrame(T.HELLO, {})])), 'E_PROTOCOL');
  assert.equal(new FrameDecoder(FROM_RECEIVER).push(Buffer.concat([MAGIC, encodeFrame(T.PING)]))[0]?.type, T.PING);
});

test('JSON frames must be UTF-8 JSON objects', () => {
  for (const body of [Buffer.from('[1,2]'), Buffer.from('null'), Buffer.from('{"a":'), Buffer.from([0xff, 0xfe]), Buffer.from('"s"')]) {
    const h = Buffer.from([T.HELLO, 0, 0, 0, 0]);
    h.writeUInt32BE(body.length, 1);
    expectCode(() => new FrameDecoder(FROM_SENDER).push(Buffer.concat([MAGIC, h, body])), 'E_PROTOCOL');
  }
});

test('byte counts are decimal strings or safe integers', () => {
  assert.equal(byteCount('18446744073709551615', 'x'), 18446744073709551615n);
  assert.equal(byteCount(7, 'x'), 7n);
  for (const bad of ['-1', '01', '1e3', ' 1', 1.5, -1, null, {}, '9'.repeat(30)]) expectCode(() => byteCount(bad, 'x'), 'E_PROTOCOL');
});
