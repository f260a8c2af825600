import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { expectCode } from '../../test/helpers/expect-code.js';
import { FROM_RECEIVER, FROM_SENDER, FrameDecoder, HEADER_BYTES, MAGIC, MAX_DATA, MAX_JSON, MAX_JSON_DEPTH, MAX_JSON_KEYS, PRE_AUTH, T, byteCount, dataHeader, encodeFrame, type Frame } from './frame.js';
import { Prng } from '../../test/helpers/prng.js';

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

test('a frame completed from one-byte pushes is byte-exact, and the decoder keeps no reference to pushed chunks', () => {
  // 200k one-byte TLS records once made completion quadratic (a chunk list consumed with shift) and cost ~430 bytes
  // per byte: the decoder must copy into one buffer of the declared size and let each chunk go
  const n = 65_536;
  const src = Buffer.from(new Prng(7).bytes(n));
  const want = Buffer.from(src);
  const d = new FrameDecoder(FROM_SENDER);
  assert.deepEqual(d.push(Buffer.concat([MAGIC, dataHeader(n)])), []);
  for (let i = 0; i < n - 1; i++) {
    assert.equal(d.push(src.subarray(i, i + 1)).length, 0);
    assert.equal(d.pendingBytes, HEADER_BYTES + i + 1);
  }
  // the caller (the socket) owns its chunks: scribbling on them after push must not change the frame
  src.fill(0, 0, n - 1);
  const f = d.push(src.subarray(n - 1));
  assert.equal(f.length, 1);
  assert.ok(f[0]!.type === T.DATA && f[0]!.data.equals(want));
  assert.equal(d.pendingBytes, 0);
});

test('split headers and preamble: one-byte pushes of a whole stream give the same frames', () => {
  const frames = [encodeFrame(T.HELLO, { v: 1 }), encodeFrame(T.PING), encodeFrame(T.OPEN, { role: 'evidence' }), dataHeader(3), Buffer.from([1, 2, 3]), encodeFrame(T.END, { bytes: '3' })];
  const wire = Buffer.concat([MAGIC, ...frames]);
  const d = new FrameDecoder(FROM_SENDER, PRE_AUTH);
  const got: Frame[] = [];
  for (let i = 0; i < wire.length; i++) got.push(...d.push(wire.subarray(i, i + 1)));
  assert.deepEqual(got.map((g) => g.type), [T.HELLO, T.PING, T.OPEN, T.DATA, T.END]);
});

test('before HELLO only HELLO and PING are read: OPEN/DATA/END fail on their header (E_PROTOCOL)', () => {
  for (const type of [T.OPEN, T.DATA, T.END, T.ABORT]) {
    const h = Buffer.from([type, 0, 0x10, 0, 0]); // 1 MiB declared, no payload sent
    const d = new FrameDecoder(FROM_SENDER, PRE_AUTH);
    assert.equal(d.push(Buffer.concat([MAGIC, encodeFrame(T.PING)])).length, 1);
    const e = expectCode(() => d.push(h), 'E_PROTOCOL');
    assert.match(e.message, /before authentication/);
  }
  const d = new FrameDecoder(FROM_SENDER, PRE_AUTH);
  const got = d.push(Buffer.concat([MAGIC, encodeFrame(T.HELLO, { v: 1 }), encodeFrame(T.OPEN, { role: 'evidence' }), dataHeader(2), Buffer.from([5, 6])]));
  assert.deepEqual(got.map((g) => g.type), [T.HELLO, T.OPEN, T.DATA]);
});

function nested(depth: number, open = '[', close = ']'): string {
  return open.repeat(depth) + close.repeat(depth);
}

test(`JSON frames deeper than ${MAX_JSON_DEPTH} levels or with more than ${MAX_JSON_KEYS} keys are E_PROTOCOL, before parsing`, () => {
  const frame = (text: string) => {
    const body = Buffer.from(text);
    const h = Buffer.from([T.HELLO, 0, 0, 0, 0]);
    h.writeUInt32BE(body.length, 1);
    return Buffer.concat([MAGIC, h, body]);
  };
  // the object itself is level 1
  assert.equal(new FrameDecoder(FROM_SENDER).push(frame(`{"x":${nested(MAX_JSON_DEPTH - 1)}}`)).length, 1);
  expectCode(() => new FrameDecoder(FROM_SENDER).push(frame(`{"x":${nested(MAX_JSON_DEPTH)}}`)), 'E_PROTOCOL');
  expectCode(() => new FrameDecoder(FROM_SENDER).push(frame(`{"x":${nested(7000)}}`)), 'E_PROTOCOL');
  const objects = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
  assert.equal(new FrameDecoder(FROM_SENDER).push(frame(`{"x":${objects(MAX_JSON_DEPTH - 1)}}`)).length, 1);
  expectCode(() => new FrameDecoder(FROM_SENDER).push(frame(`{"x":${objects(MAX_JSON_DEPTH)}}`)), 'E_PROTOCOL');
  // brackets, colons and escaped quotes inside strings are data
  const tricky = { s: '[[[[[[[[[[{{{{{{{{{{ \\" :::::: ' + ':'.repeat(600) };
  const ok = new FrameDecoder(FROM_SENDER).push(frame(JSON.stringify(tricky)));
  assert.ok(ok[0]!.type !== T.DATA && ok[0]!.json['s'] === tricky.s);
  const keys = (n: number) => JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])));
  assert.equal(new FrameDecoder(FROM_SENDER).push(frame(keys(MAX_JSON_KEYS))).length, 1);
  expectCode(() => new FrameDecoder(FROM_SENDER).push(frame(keys(MAX_JSON_KEYS + 1))), 'E_PROTOCOL');
});

test('property: JSON objects within the depth and key caps decode to what JSON.parse gives', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: MAX_JSON_DEPTH - 3 }), { maxKeys: 8 }), (obj) => {
      const text = JSON.stringify(obj);
      fc.pre(text.length <= MAX_JSON && (text.match(/:/g)?.length ?? 0) <= MAX_JSON_KEYS);
      const got = new FrameDecoder(FROM_SENDER).push(Buffer.concat([MAGIC, encodeFrame(T.OPEN, obj)]));
      assert.equal(got.length, 1);
      assert.deepEqual(got[0]!.type === T.DATA ? null : got[0]!.json, JSON.parse(text));
    }),
    { numRuns: 200, seed: 11 },
  );
});
