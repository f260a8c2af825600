import assert from 'node:assert/strict';
import { test } from 'node:test';
import { outermost, type Decoded } from './types.js';

const d = (tag: Decoded['tag'], start: number, end: number, truncated = false): Decoded => ({ tag, start, end, data: Buffer.alloc(0), truncated });

test('outermost drops containers that start inside a complete binary container, keeps the rest in order', () => {
  const zip = d('ZIP', 100, 500);
  const inZip = d('BASE64', 150, 400);
  const cut = d('GZIP', 600, 1000, true);
  const afterCut = d('BASE64', 700, 800);
  const b64 = d('BASE64', 10, 90);
  const inB64 = d('ZLIB', 20, 30);
  assert.deepEqual(outermost([afterCut, inZip, cut, zip, b64, inB64]), [b64, inB64, zip, cut, afterCut]);
});
