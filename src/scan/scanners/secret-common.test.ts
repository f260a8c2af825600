/**
 * The base64, DER and PEM helpers of secret-common.ts. The properties every scanner shares (exact reports of corpus
 * features, nothing from decoys, filler or random bytes, no throw) are in contract.test.ts, over the registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDerSequence, readPemBlock, strictBase64 } from './secret-common.js';

test('strictBase64, isDerSequence and readPemBlock reject what an encoder never writes', () => {
  assert.deepEqual(strictBase64('YWJj'), Buffer.from('abc'));
  assert.deepEqual(strictBase64('YWI='), Buffer.from('ab'));
  assert.equal(strictBase64('YWJ='), undefined, 'stray bits');
  assert.equal(strictBase64('YWJjZ'), undefined, 'length');
  assert.equal(strictBase64('YW=j'), undefined, 'padding inside');
  assert.equal(strictBase64(''), undefined);
  assert.ok(isDerSequence(Buffer.from([0x30, 0x03, 1, 2, 3])));
  assert.ok(!isDerSequence(Buffer.from([0x30, 0x04, 1, 2, 3])));
  assert.ok(isDerSequence(Buffer.concat([Buffer.from([0x30, 0x81, 0x80]), Buffer.alloc(0x80)])));
  assert.ok(!isDerSequence(Buffer.from([0x31, 0x00])));
  const t = '-----BEGIN X-----\nYWJj\r\nZGVm\n-----END X-----';
  assert.deepEqual(readPemBlock(t, 17, 'X', 1000), { end: t.length, body: 'YWJjZGVm', headers: false });
  assert.equal(readPemBlock(t, 17, 'Y', 1000), undefined);
  assert.equal(readPemBlock(t, 17, 'X', 20), undefined, 'cap');
});
