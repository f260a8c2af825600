/**
 * Properties every registered scanner must share, checked over SCANNERS (index.ts) so a scanner added to the
 * registry is held to them without touching this file. The truth is the corpus generator's own labelled examples:
 * a planted feature is reported exactly once, by exactly one scanner, with exactly the planted text, and nothing
 * else is (except the host of a planted email or URL, which the domain scanner reports by design); corpus decoys
 * and filler give nothing; the engine's view of random bytes gives at most 2 features per scanner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FEATURE_KINDS, type FeatureKind } from '../types.js';
import { SCANNERS } from './index.js';
import { decoySnippet, featureSnippet } from '../../../test/fixtures/scan-corpus-kinds.js';
import { RandomStream, Rng } from '../../../test/fixtures/scan-corpus-rng.js';
import { textBlock } from '../../../test/fixtures/scan-corpus-text.js';

const KINDS: FeatureKind[] = SCANNERS.flatMap((s) => [...s.kinds]);

/**
 * Kinds whose generator builds real keys or certificates (about 1 ms a snippet): the filler property draws fewer
 * of them so the file's run time stays bounded; the 3000-snippet recall check below still covers them fully.
 */
const COSTLY = new Set<FeatureKind>(['pem-certificate', 'ssh-private-key', 'ssh-public-key']);

type Hit = [FeatureKind, number, number, string];
function scanAll(text: string): Hit[] {
  const out: Hit[] = [];
  for (const s of SCANNERS) {
    let last = -1;
    s.scan(text, (k, a, b) => {
      assert.ok(s.kinds.includes(k), `${s.name} emitted ${k}`);
      assert.ok(a >= 0 && a < b && b <= text.length, `${s.name} bounds`);
      assert.ok(a >= last, `${s.name} emits in text order, without overlap`);
      last = b;
      out.push([k, a, b, text.slice(a, b)]);
    });
  }
  return out;
}

/** The host inside an email ("a@HOST") or URL ("scheme://HOST[:port]/..."). */
function hostOf(kind: FeatureKind, feature: string): string | undefined {
  if (kind === 'email') return feature.slice(feature.indexOf('@') + 1);
  if (kind === 'url') return /^[a-z]+:\/\/([^/:?#]+)/.exec(feature)?.[1];
  return undefined;
}

/** Hits minus the domain report of the planted feature's own host, which the corpus tolerates. */
function withoutOwnHost(hits: Hit[], kind: FeatureKind, at: number, feature: string): Hit[] {
  const host = hostOf(kind, feature);
  if (host === undefined) return hits;
  const hs = at + feature.indexOf(host, kind === 'email' ? feature.indexOf('@') : 0);
  return hits.filter(([k, a, b]) => !(k === 'domain' && a === hs && b === hs + host.length));
}

/** What the engine hands a scanner for raw bytes: printable ASCII runs of 6 or more, joined by '\0'. */
function engineView(buf: Buffer): string {
  return (buf.toString('latin1').match(/[\x20-\x7e\t\n\r]{6,}/g) ?? []).join('\0');
}

/** Texts that put the feature alone, at the start or end of the text, and next to run separators. */
const EDGES = [['', ''], ['\0', '\0'], ['random run\0', ''], ['', '\0random run'], ['\n', '\n'], ['\0', ''], ['', '\0']] as const;

test('kinds are disjoint across scanners, names unique, and every feature kind has a scanner', () => {
  assert.equal(new Set(KINDS).size, KINDS.length);
  assert.equal(new Set(SCANNERS.map((s) => s.name)).size, SCANNERS.length);
  assert.deepEqual([...KINDS].sort(), [...FEATURE_KINDS].sort());
});

for (const kind of KINDS) {
  test(`property: a corpus ${kind} in filler lines is reported exactly, once, and nothing else is`, () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 200, max: 6000 }), (seed, size) => {
        const r = new Rng(seed, `contract-${kind}`);
        const sn = featureSnippet(kind, r);
        const { text, placed } = textBlock(r, size, [{ ...sn, kind, decoy: false }]);
        const p = placed[0]!;
        const hits = scanAll(text);
        assert.deepEqual(withoutOwnHost(hits, kind, p.at, p.feature), [[kind, p.at, p.at + p.feature.length, p.feature]]);
        if (hostOf(kind, p.feature) !== undefined) assert.ok(hits.length <= 2);
      }),
      { numRuns: COSTLY.has(kind) ? 120 : 400 },
    );
  });
}

test('every kind: 3000 seeded corpus snippets each are found exactly (the exhaustive recall check)', () => {
  // The filler property draws at most 400 snippets per kind; a rule that drops a rare value shape (a random
  // password that happens to look like "kFooBar") needs many more per kind to show up.
  for (const kind of KINDS) {
    const r = new Rng(20261122, `recall-${kind}`);
    for (let i = 0; i < 3000; i++) {
      const sn = featureSnippet(kind, r);
      const hits = withoutOwnHost(scanAll(sn.text), kind, sn.at, sn.feature);
      assert.deepEqual(hits, [[kind, sn.at, sn.at + sn.feature.length, sn.feature]], sn.text.slice(0, 200));
    }
  }
});

test('property: the feature alone, at text start/end and between run separators, is still found', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(...KINDS), (seed, kind) => {
      const { feature } = featureSnippet(kind, new Rng(seed, `edge-${kind}`));
      // An Azure key is only recognised behind its connection-string anchor.
      const lead = kind === 'azure-storage-key' ? 'AccountKey=' : '';
      for (const [p, post] of EDGES) {
        const pre = p + lead;
        const text = pre + feature + post;
        const hits = withoutOwnHost(scanAll(text), kind, pre.length, feature);
        assert.deepEqual(hits, [[kind, pre.length, pre.length + feature.length, feature]], JSON.stringify(text).slice(0, 200));
      }
    }),
    { numRuns: 1400 },
  );
});

test('property: corpus decoys of every kind give nothing', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.nat(6), (seed, i) => {
      const r = new Rng(seed, 'contract-decoy');
      const d = decoySnippet(i, r);
      const { text } = textBlock(r, 2000, [{ ...d, decoy: true }]);
      assert.deepEqual(scanAll(text), [], d.text);
    }),
    { numRuns: 1000 },
  );
});

test('4 MiB of filler lines give nothing', () => {
  const { text } = textBlock(new Rng(11, 'contract-filler'), 4 << 20, []);
  assert.deepEqual(scanAll(text), []);
});

test('the engine view of 16 MiB of random bytes gives at most 2 features per scanner', () => {
  for (const seed of [1, 2026]) {
    const view = engineView(new RandomStream(seed).take(16 << 20));
    assert.ok(view.length > 100_000, 'the view has material to scan');
    for (const s of SCANNERS) {
      let n = 0;
      s.scan(view, () => n++);
      assert.ok(n <= 2, `${s.name}: ${n} hits on random data (seed ${seed})`);
    }
  }
});

test('property: arbitrary strings around the anchors of every scanner never make one throw or report past a separator', () => {
  const anchors = [
    // network
    '@', '.', ':', '::', '-', '+', '://', 'http://', '[', ']', 'a.com', 'ab:', '1.', 'fe80', '+44', '\0', '.co.uk',
    // secrets, banners, history
    '-----BEGIN PRIVATE KEY-----\n', '-----BEGIN OPENSSH PRIVATE KEY-----\n', '-----BEGIN CERTIFICATE-----\n', '-----END ', 'eyJ', 'AKIA', 'AIza',
    'AccountKey=', 'ssh-ed25519 AAAA', 'ssh-rsa AAAA', 'password=', 'Authorization: Basic ', 'https://u:p@', '#1700000000\n', ': 1700000000:0;',
    'Linux version 6.1 (', '4111 1111 ', '4111111111111111',
  ];
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom(...anchors)), { maxLength: 16 }), (parts) => {
      for (const [, a, b, f] of scanAll(parts.join(''))) assert.ok(!f.includes('\0') && b - a === f.length);
    }),
    { numRuns: 5000 },
  );
});
