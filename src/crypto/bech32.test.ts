import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from '../core/errors.js';
import { bech32Decode, bech32Encode, decodeWords, encodeWords } from './bech32.js';

// BIP-173, "Test vectors": valid bech32 strings (checksum level)
const VALID = [
  'A12UEL5L',
  'a12uel5l',
  'an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs',
  'abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw',
  '11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j',
  'split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w',
  '?1ezyfcl',
];

// BIP-173 invalid strings, with the reason the BIP gives
const INVALID: Array<[string, string]> = [
  ['\x201nwldj5', 'HRP character out of range'],
  ['\x7f1axkwrx', 'HRP character out of range'],
  ['\x801eym55h', 'HRP character out of range'],
  ['an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx', 'overall max length exceeded'],
  ['pzry9x0s0muk', 'no separator character'],
  ['1pzry9x0s0muk', 'empty HRP'],
  ['x1b4n0q5v', 'invalid data character'],
  ['li1dgmt3', 'too short checksum'],
  ['de1lg7wt\xff', 'invalid character in checksum'],
  ['A1G7SGD8', 'checksum calculated with uppercase form of HRP'],
  ['10a06t8', 'empty HRP'],
  ['1qzzfhee', 'empty HRP'],
  ['A12uEL5L', 'mixed case'],
  ['a12uel5m', 'checksum'],
  // bech32m (BIP-350) strings are not bech32: age keys never use them
  ['a1lqfn3a', 'bech32m checksum'],
];

test('bech32: BIP-173 valid strings decode', () => {
  for (const v of VALID) {
    const { hrp } = decodeWords(v);
    assert.equal(hrp, v.slice(0, v.lastIndexOf('1')).toLowerCase());
  }
  assert.equal(bech32Decode('abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw').data.toString('hex'), '00443214c74254b635cf84653a56d7c675be77df');
});

test('bech32: BIP-173 invalid strings are refused with E_USAGE', () => {
  for (const [v, why] of INVALID) {
    assert.throws(() => decodeWords(v), (e: unknown) => e instanceof MemdumpError && e.code === 'E_USAGE', `${JSON.stringify(v)}: ${why}`);
  }
});

test('bech32: every single-character substitution of a valid string is caught', () => {
  const good = bech32Encode('age', Buffer.alloc(32, 7));
  const alphabet = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
  for (let i = 4; i < good.length; i++) {
    for (const c of alphabet) {
      if (c === good[i]) continue;
      const bad = good.slice(0, i) + c + good.slice(i + 1);
      assert.throws(() => bech32Decode(bad), MemdumpError, bad);
    }
  }
});

test('bech32: round trip of random data, either case', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), fc.constantFrom('age', 'age-secret-key-', 'x'), (data, hrp) => {
      const s = bech32Encode(hrp, data);
      assert.equal(s, s.toLowerCase());
      for (const form of [s, s.toUpperCase()]) {
        const d = bech32Decode(form);
        assert.equal(d.hrp, hrp);
        assert.deepEqual(d.data, Buffer.from(data));
      }
    }),
    { seed: 173, numRuns: 300 },
  );
});

test('bech32: non-zero or excess padding bits are refused when converting back to bytes', () => {
  // checksums are valid, so only the 5→8 regrouping can object
  assert.deepEqual(bech32Decode(encodeWords('a', [0, 0])).data, Buffer.from([0]));
  assert.throws(() => bech32Decode(encodeWords('a', [0, 1])), MemdumpError, 'non-zero padding');
  assert.throws(() => bech32Decode(encodeWords('a', [0])), MemdumpError, 'a whole 5-bit group of padding');
});

test('bech32: encoding refuses results over the length limit', () => {
  assert.throws(() => bech32Encode('age', Buffer.alloc(60)), MemdumpError);
  assert.equal(bech32Encode('age', Buffer.alloc(60), 200).length, 3 + 1 + 96 + 6);
});
