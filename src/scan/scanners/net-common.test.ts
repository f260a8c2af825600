/**
 * The host, TLD and address helpers of net-common.ts. The properties every scanner shares (exact reports of corpus
 * features, nothing from decoys, filler or random bytes, no throw) are in contract.test.ts, over the registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostLabels, isCodeLabel, isCodeTld, isFileExtension, isFileLikeTld, isHostLabel, isIPv4, isKnownTld, runAround } from './net-common.js';

test('host and address helpers', () => {
  const h = (s: string, knownTld = true): number => hostLabels(s, 0, s.length, { knownTld });
  assert.equal(h('www.acme.com'), 3);
  assert.equal(h('acme.co.uk'), 3);
  assert.equal(h('co.uk'), 0, 'a public suffix alone');
  assert.equal(h('acme.corp'), 0, 'unknown TLD');
  assert.equal(h('acme.corp', false), 2, 'any letters TLD for URL hosts');
  assert.equal(h('-acme.com'), 0);
  assert.equal(h('acme-.com'), 0);
  assert.equal(h('a..com'), 0);
  assert.equal(h(`${'a'.repeat(64)}.com`), 0, 'label over 63');
  assert.equal(h('acme.c0m'), 0);
  assert.equal(h('acme.Com'), 0, 'mixed-case TLD');
  assert.ok(isKnownTld('DE') && isKnownTld('de') && !isKnownTld('zz') && !isKnownTld('js'));
  assert.ok(isFileLikeTld('sh') && isFileLikeTld('PY') && !isFileLikeTld('de'));
  const v4 = (s: string): boolean => isIPv4(s, 0, s.length);
  assert.ok(v4('0.0.0.0') && v4('255.255.255.255') && v4('10.0.0.1'));
  for (const bad of ['256.1.1.1', '01.1.1.1', '1.2.3', '1.2.3.4.5', '1..2.3', '1.2.3.', '1.2.3.4444', 'a.b.c.d']) assert.ok(!v4(bad), bad);
});

test('code and file-name helpers (real-data review)', () => {
  assert.ok(isCodeTld('name') && isCodeTld('ID') && isCodeTld('host') && !isCodeTld('com') && !isCodeTld('de'));
  assert.ok(isHostLabel('www') && isHostLabel('MAIL') && !isHostLabel('node'));
  assert.ok(isCodeLabel('prototype') && isCodeLabel('this') && isCodeLabel('i32') && isCodeLabel('f32x4') && !isCodeLabel('acme'));
  assert.ok(isFileExtension('in') && isFileExtension('h') && !isFileExtension('acme'));
  assert.ok(!isFileLikeTld('ai'), '.ai hosts (google.ai) outnumber Illustrator files in memory');
  assert.equal(hostLabels('Obsidian.Systems', 0, 16, { knownTld: true, capitalisedTld: true }), 2);
  assert.equal(hostLabels('Obsidian.Systems', 0, 16, { knownTld: true }), 0);
  assert.equal(hostLabels('my_svc.acme.com', 0, 15, { knownTld: false, underscore: true }), 3);
  assert.equal(hostLabels('my_svc.acme.com', 0, 15, { knownTld: false }), 0);
});

test('runAround gives the maximal run around an anchor, clipped to the text', () => {
  const digitOrDot = (c: number): boolean => (c >= 48 && c <= 57) || c === 46;
  const run = (t: string, at: number): string => {
    const [s, e] = runAround(t, at, digitOrDot);
    return t.slice(s, e);
  };
  assert.equal(run('ip 10.0.0.1, next', 5), '10.0.0.1');
  assert.equal(run('10.0.19045.1234', 2), '10.0.19045.1234', 'the whole token, never a window');
  assert.equal(run('1.2', 1), '1.2', 'runs to both ends of the text');
  assert.equal(run('a.b', 1), '.', 'the anchor alone when no neighbour qualifies');
  assert.deepEqual(runAround('x..y', 1, digitOrDot), [1, 3]);
});
