import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { cloudScanner } from './cloud.js';

function found(text: string): [string, string][] {
  const out: [string, string][] = [];
  cloudScanner.scan(text, (k, s, e) => out.push([k, text.slice(s, e)]));
  return out;
}
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const b32 = (n: number): string => [...randomBytes(n)].map((b) => B32[b & 31]).join('');

test('AWS key ids of every principal prefix, word-bounded', () => {
  for (const p of ['AKIA', 'ASIA', 'AGPA', 'AIDA', 'AROA', 'ANPA', 'ANVA', 'AIPA', 'ABIA', 'ACCA']) {
    const id = p + b32(16);
    assert.deepEqual(found(`aws_access_key_id = ${id}\naws_secret_access_key = ${'x'.repeat(40)}`), [['aws-access-key', id]]);
    assert.deepEqual(found(`"${id}"`), [['aws-access-key', id]]);
    assert.deepEqual(found(`\0${id}\0`), [['aws-access-key', id]]);
    assert.deepEqual(found(`X${id}`), []);
    assert.deepEqual(found(`${id}Q`), []);
    assert.deepEqual(found(`${id}7`), []);
  }
  assert.deepEqual(found(`AKIA${b32(15)}`), [], 'too short');
  assert.deepEqual(found('AKIA0123456789ABCDEF'), [], '0, 1, 8, 9 are not base32');
  assert.deepEqual(found(`akia${b32(16).toLowerCase()}`), []);
  assert.deepEqual(found(`AXIA${b32(16)}`), [], 'unknown prefix');
  assert.deepEqual(found(`ACIA${b32(16)}`), [], 'unknown prefix');
  // The review's example ids (AWS documentation style) with the prefixes that were missing.
  assert.deepEqual(found('ABIAIOSFODNN7EXAMPLE'), [['aws-access-key', 'ABIAIOSFODNN7EXAMPLE']]);
  assert.deepEqual(found('ACCAIOSFODNN7EXAMPLE'), [['aws-access-key', 'ACCAIOSFODNN7EXAMPLE']]);
});

test('Google API keys: AIza + 35 token characters as a whole token', () => {
  const key = `AIza${randomBytes(40).toString('base64url').slice(0, 35)}`;
  assert.deepEqual(found(`GOOGLE_API_KEY=${key}`), [['gcp-api-key', key]]);
  assert.deepEqual(found(`"api_key": "${key}",`), [['gcp-api-key', key]]);
  assert.deepEqual(found(key), [['gcp-api-key', key]]);
  assert.deepEqual(found(`${key}x`), [], '36 characters');
  assert.deepEqual(found(key.slice(0, -1)), [], '34 characters');
  assert.deepEqual(found(`_${key}`), []);
});

test('Azure AccountKey values: 88 base64 chars of 64 bytes', () => {
  const key = randomBytes(64).toString('base64');
  const conn = `DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=${key};EndpointSuffix=core.windows.net`;
  assert.deepEqual(found(conn), [['azure-storage-key', key]]);
  assert.deepEqual(found(`AccountKey=${key}`), [['azure-storage-key', key]]);
  assert.deepEqual(found(`AccountKey=${randomBytes(63).toString('base64')}`), [], '84 chars');
  assert.deepEqual(found(`AccountKey=${randomBytes(66).toString('base64')}`), [], '88 chars without ==');
  assert.deepEqual(found(`AccountKey=${key}A`), []);
  assert.deepEqual(found(key), [], 'no anchor');
  const noncanonical = key.slice(0, 85) + 'B==';
  assert.deepEqual(found(`AccountKey=${noncanonical}`), [], 'unused low bits set');
});

test('hits come out in text order across the three kinds', () => {
  const a = `AKIA${b32(16)}`;
  const g = `AIza${'k'.repeat(35)}`;
  const z = randomBytes(64).toString('base64');
  assert.deepEqual(found(`${g} AccountKey=${z} ${a}`).map((h) => h[0]), ['gcp-api-key', 'azure-storage-key', 'aws-access-key']);
});

test('property: never throws; every hit has its exact shape', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), fc.constantFrom('AKIA', 'AIza', 'AccountKey='), fc.string({ maxLength: 100 }), (a, anchor, b) => {
      for (const [kind, f] of found(a + anchor + b)) {
        if (kind === 'aws-access-key') assert.match(f, /^A[A-Z]{3}[A-Z2-7]{16}$/);
        else if (kind === 'gcp-api-key') assert.match(f, /^AIza[\w-]{35}$/);
        else assert.equal(Buffer.from(f, 'base64').length, 64);
      }
    }),
    { numRuns: 3000 },
  );
});
