/**
 * Properties every secret scanner must share, checked against the corpus generator's own labelled examples: a
 * planted feature inside filler is reported exactly once, by exactly one scanner, with exactly the planted text;
 * corpus decoys and filler give nothing; the engine's view of random bytes gives (almost) nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { FeatureKind, Scanner } from '../types.js';
import { bannerScanner } from './banner.js';
import { ccnScanner } from './ccn.js';
import { cloudScanner } from './cloud.js';
import { historyScanner } from './history.js';
import { jwtScanner } from './jwt.js';
import { passwordScanner } from './password.js';
import { pemScanner } from './pem.js';
import { sshScanner } from './ssh.js';
import { isDerSequence, readPemBlock, strictBase64 } from './secret-common.js';
import { decoySnippet, featureSnippet } from '../../../test/fixtures/scan-corpus-kinds.js';
import { RandomStream, Rng } from '../../../test/fixtures/scan-corpus-rng.js';
import { textBlock } from '../../../test/fixtures/scan-corpus-text.js';
import { FEATURE_KINDS } from '../../../test/fixtures/scan-corpus-types.js';

const SCANNERS: Scanner[] = [ccnScanner, jwtScanner, pemScanner, sshScanner, cloudScanner, passwordScanner, historyScanner, bannerScanner];
const KINDS: FeatureKind[] = SCANNERS.flatMap((s) => [...s.kinds]);

type Hit = [FeatureKind, number, number, string];
function scanAll(text: string): Hit[] {
  const out: Hit[] = [];
  for (const s of SCANNERS) {
    let last = -1;
    s.scan(text, (k, a, b) => {
      assert.ok(s.kinds.includes(k), `${s.name} emitted ${k}`);
      assert.ok(a >= 0 && a < b && b <= text.length, `${s.name} bounds`);
      assert.ok(a >= last, `${s.name} emits in text order`);
      last = a;
      out.push([k, a, b, text.slice(a, b)]);
    });
  }
  return out;
}

/** What the engine hands a scanner for raw bytes: printable ASCII runs of 6 or more, joined by '\0'. */
function engineView(buf: Buffer): string {
  return (buf.toString('latin1').match(/[\x20-\x7e\t\n\r]{6,}/g) ?? []).join('\0');
}

test('kinds are disjoint across scanners and names unique', () => {
  assert.equal(new Set(KINDS).size, KINDS.length);
  assert.equal(new Set(SCANNERS.map((s) => s.name)).size, SCANNERS.length);
});

test('property: a corpus feature in filler lines is reported exactly, once, and nothing else is (other kinds: nothing)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(...FEATURE_KINDS), fc.integer({ min: 200, max: 6000 }), (seed, kind, size) => {
      const r = new Rng(seed, `secret-${kind}`);
      const sn = featureSnippet(kind, r);
      const { text, placed } = textBlock(r, size, [{ ...sn, kind, decoy: false }]);
      const p = placed[0]!;
      // Features of the other scanners' kinds (email, url, ipv4, …) must give nothing here.
      const want = KINDS.includes(kind) ? [[kind, p.at, p.at + p.feature.length, p.feature]] : [];
      assert.deepEqual(scanAll(text), want);
    }),
    { numRuns: 2500 },
  );
});

test('every kind: 3000 seeded corpus snippets each are found exactly (the exhaustive recall check)', () => {
  // The property above draws 2500 snippets over all kinds; a rule that drops a rare value shape (a random
  // password that happens to look like "kFooBar") needs many more per kind to show up.
  for (const kind of KINDS) {
    const r = new Rng(20261122, `recall-${kind}`);
    for (let i = 0; i < 3000; i++) {
      const sn = featureSnippet(kind, r);
      const hits = scanAll(sn.text).map((h) => [h[0], h[3]]);
      assert.deepEqual(hits, [[kind, sn.feature]], sn.text.slice(0, 200));
    }
  }
});

test('property: the feature alone, at text start/end and between run separators, is still found', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(...KINDS), (seed, kind) => {
      const { feature } = featureSnippet(kind, new Rng(seed, `edge-${kind}`));
      // An Azure key is only recognised behind its connection-string anchor.
      const lead = kind === 'azure-storage-key' ? 'AccountKey=' : '';
      for (const [p, post] of [['', ''], ['\0', '\0'], ['random run\0', ''], ['', '\0random run'], ['\n', '\n']] as const) {
        const pre = p + lead;
        assert.deepEqual(scanAll(pre + feature + post), [[kind, pre.length, pre.length + feature.length, feature]], JSON.stringify(pre + feature + post).slice(0, 120));
      }
    }),
    { numRuns: 400 },
  );
});

test('property: corpus decoys of every kind give nothing from any secret scanner', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.nat(6), (seed, i) => {
      const r = new Rng(seed, 'decoy');
      const d = decoySnippet(i, r);
      const { text } = textBlock(r, 2000, [{ ...d, decoy: true }]);
      assert.deepEqual(scanAll(text), []);
    }),
    { numRuns: 1000 },
  );
});

test('1 MiB of filler gives nothing', () => {
  const { text } = textBlock(new Rng(11, 'filler'), 1 << 20, []);
  assert.deepEqual(scanAll(text), []);
});

test('the engine view of 16 MiB of random bytes gives at most one feature per scanner', () => {
  const view = engineView(new RandomStream(2026).take(16 << 20));
  assert.ok(view.length > 100_000, 'the view has material to scan');
  for (const s of SCANNERS) {
    let n = 0;
    s.scan(view, () => n++);
    assert.ok(n <= 1, `${s.name}: ${n} hits on random data`);
  }
});

test('property: arbitrary strings with planted anchors never make a scanner throw', () => {
  const anchors = ['-----BEGIN PRIVATE KEY-----\n', '-----BEGIN OPENSSH PRIVATE KEY-----\n', 'eyJ', 'AKIA', 'AIza', 'AccountKey=', 'ssh-ed25519 AAAA', 'password=', 'Authorization: Basic ', '#1700000000\n', ': 1700000000:0;', 'Linux version 6.1 (', '4111 1111 '];
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom(...anchors)), { maxLength: 12 }), (parts) => {
      for (const [, a, b, f] of scanAll(parts.join(''))) assert.ok(!f.includes('\0') && b - a === f.length);
    }),
    { numRuns: 3000 },
  );
});

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
