import assert from 'node:assert/strict';
import { test } from 'node:test';
import { autoPartSize } from './presign.js';

test('default part size: the smallest power-of-two multiple of 8 MiB that fits --max-size in 10000 parts', () => {
  const M = 1n << 20n;
  const G = 1n << 30n;
  assert.equal(autoPartSize(1n), 8n * M);
  assert.equal(autoPartSize(64n * G), 8n * M);
  assert.equal(autoPartSize(80000n * M), 8n * M);
  assert.equal(autoPartSize(80000n * M + 1n), 16n * M);
  assert.equal(autoPartSize(256n * G), 32n * M);
  assert.equal(autoPartSize(1n << 40n), 128n * M);
  for (const max of [1n, 5n * G, 100n * G, 3n << 40n]) assert.ok(autoPartSize(max) * 10000n >= max);
});
