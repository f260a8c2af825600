import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from '../../src/core/errors.js';
import { FROM_RECEIVER, FROM_SENDER, FrameDecoder, HEADER_BYTES, MAGIC, MAX_DATA, T, encodeFrame } from '../../src/receiver/frame.js';

const MAX_CHUNK = 4096;

/** Feed chunks; the only acceptable failure is E_PROTOCOL, and buffered bytes never exceed one frame + one chunk. */
function feed(d: FrameDecoder, chunks: Uint8Array[]): void {
  for (const c of chunks) {
    try {
      d.push(Buffer.from(c));
      if (d.failure) throw d.failure;
    } catch (e) {
      assert.ok(e instanceof MemdumpError && e.code === 'E_PROTOCOL', `non-E_PROTOCOL failure: ${String(e)}`);
      // and it stays failed, with nothing retained
      assert.throws(() => d.push(Buffer.alloc(1)), (x: unknown) => x instanceof MemdumpError && x.code === 'E_PROTOCOL');
      assert.equal(d.pendingBytes, 0);
      return;
    }
    assert.ok(d.pendingBytes <= HEADER_BYTES + MAX_DATA + MAX_CHUNK, `buffered ${d.pendingBytes}`);
  }
}

const chunk = fc.uint8Array({ maxLength: MAX_CHUNK });

test('random byte streams: only E_PROTOCOL, bounded buffering (both directions)', () => {
  fc.assert(
    fc.property(fc.array(chunk, { maxLength: 30 }), fc.boolean(), (chunks, prefix) => {
      const withMagic = prefix ? [MAGIC, ...chunks] : chunks;
      feed(new FrameDecoder(FROM_SENDER), withMagic);
      feed(new FrameDecoder(FROM_RECEIVER), withMagic);
    }),
    { numRuns: 1500, seed: 1234 },
  );
});

const valid = Buffer.concat([
  MAGIC,
  encodeFrame(T.HELLO, { v: 1, token: 'mdt_0123456789abcdef_' + 'A'.repeat(43), sender: { host: 'h' } }),
  encodeFrame(T.OPEN, { role: 'evidence', meta: { host: 'h', format: 'lime', layers: ['age'] } }),
  encodeFrame(T.DATA, Buffer.alloc(700, 0x5a)),
  encodeFrame(T.PING),
  encodeFrame(T.DATA, Buffer.alloc(300, 0xa5)),
  encodeFrame(T.END, { bytes: '1000', sha256: 'ab'.repeat(32) }),
  encodeFrame(T.OPEN, { role: 'report' }),
  encodeFrame(T.END, { bytes: '0', sha256: 'cd'.repeat(32) }),
]);

test('mutated valid streams (bit flips, overwrites, cuts, duplications), split anywhere: only E_PROTOCOL, bounded', () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), len: fc.nat({ max: 64 }) }),
    fc.record({ kind: fc.constant('dup' as const), at: fc.nat(), len: fc.nat({ max: 64 }) }),
    fc.record({ kind: fc.constant('len' as const), at: fc.nat(), value: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 6 }), fc.array(fc.nat({ max: valid.length }), { maxLength: 12 }), (muts, cuts) => {
      let b = Buffer.from(valid);
      for (const m of muts) {
        const at = m.at % b.length;
        if (m.kind === 'flip') b[at] = b[at]! ^ (1 << m.bit);
        else if (m.kind === 'set') b[at] = m.value;
        else if (m.kind === 'cut') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        else if (m.kind === 'dup') b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]);
        else if (at + 4 <= b.length) b.writeUInt32BE(m.value >>> 0, at);
        if (b.length === 0) b = Buffer.from([0]);
      }
      const points = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
      const parts: Uint8Array[] = [];
      let prev = 0;
      for (const p of [...points, b.length]) {
        parts.push(b.subarray(prev, p));
        prev = p;
      }
      feed(new FrameDecoder(FROM_SENDER), parts);
    }),
    { numRuns: 3000, seed: 4321 },
  );
});

test('the unmutated stream decodes to its 8 frames (so the fuzz starts from something valid)', () => {
  assert.equal(new FrameDecoder(FROM_SENDER).push(valid).length, 8);
});

test('a declared length just under the cap waits for its payload without pre-allocating it', () => {
  const d = new FrameDecoder(FROM_SENDER);
  const h = Buffer.alloc(5);
  h[0] = T.DATA;
  h.writeUInt32BE(MAX_DATA, 1);
  assert.deepEqual(d.push(Buffer.concat([MAGIC, h])), []);
  assert.equal(d.pendingBytes, 5, 'only what arrived is held');
});
