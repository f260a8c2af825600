/**
 * Properties the seven network scanners share, checked against the corpus generator's own labelled examples: a
 * planted feature inside filler lines is reported exactly once with exactly the planted text, and nothing else
 * is (except the host of a planted email or URL, which the domain scanner reports by design); snippets and decoys
 * of every other kind give nothing; the engine's view of random bytes gives at most 2 features per scanner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FEATURE_KINDS, type FeatureKind, type Scanner } from '../types.js';
import { domainScanner } from './domain.js';
import { emailScanner } from './email.js';
import { ipv4Scanner } from './ipv4.js';
import { ipv6Scanner } from './ipv6.js';
import { macScanner } from './mac.js';
import { phoneScanner } from './phone.js';
import { urlScanner } from './url.js';
import { hostLabels, isCodeLabel, isCodeTld, isFileExtension, isFileLikeTld, isHostLabel, isIPv4, isKnownTld } from './net-common.js';
import { decoySnippet, featureSnippet } from '../../../test/fixtures/scan-corpus-kinds.js';
import { RandomStream, Rng } from '../../../test/fixtures/scan-corpus-rng.js';
import { textBlock } from '../../../test/fixtures/scan-corpus-text.js';

const SCANNERS: Scanner[] = [emailScanner, urlScanner, domainScanner, ipv4Scanner, ipv6Scanner, macScanner, phoneScanner];
const KINDS = SCANNERS.flatMap((s) => [...s.kinds]);
const OTHER_KINDS = FEATURE_KINDS.filter((k) => !KINDS.includes(k));

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

test('kinds are disjoint across scanners and names unique', () => {
  assert.equal(new Set(KINDS).size, KINDS.length);
  assert.equal(new Set(SCANNERS.map((s) => s.name)).size, SCANNERS.length);
});

for (const kind of KINDS) {
  test(`property: a corpus ${kind} in filler lines is reported exactly, once, and nothing else is`, () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 200, max: 6000 }), (seed, size) => {
        const r = new Rng(seed, `net-${kind}`);
        const sn = featureSnippet(kind, r);
        const { text, placed } = textBlock(r, size, [{ ...sn, kind, decoy: false }]);
        const p = placed[0]!;
        const hits = scanAll(text);
        assert.deepEqual(withoutOwnHost(hits, kind, p.at, p.feature), [[kind, p.at, p.at + p.feature.length, p.feature]]);
        if (hostOf(kind, p.feature) !== undefined) assert.ok(hits.length <= 2);
      }),
      { numRuns: 400 },
    );
  });
}

test('property: the feature alone, at text start/end and between run separators, is still found', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(...KINDS), (seed, kind) => {
      const { feature } = featureSnippet(kind, new Rng(seed, `edge-${kind}`));
      for (const [pre, post] of [['', ''], ['\0', '\0'], ['random run\0', ''], ['', '\0random run'], ['\n', '\n'], ['\0', ''], ['', '\0']] as const) {
        const text = pre + feature + post;
        const hits = withoutOwnHost(scanAll(text), kind, pre.length, feature);
        assert.deepEqual(hits, [[kind, pre.length, pre.length + feature.length, feature]], JSON.stringify(text));
      }
    }),
    { numRuns: 1000 },
  );
});

test('property: snippets of every other kind (keys, banners, JWTs, cards, history) give nothing', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(...OTHER_KINDS), (seed, kind) => {
      const r = new Rng(seed, `other-${kind}`);
      const { text } = textBlock(r, 1500, [{ ...featureSnippet(kind, r), kind, decoy: false }]);
      assert.deepEqual(scanAll(text), []);
    }),
    { numRuns: 1500 },
  );
});

test('property: corpus decoys of every kind give nothing', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.nat(6), (seed, i) => {
      const r = new Rng(seed, 'net-decoy');
      const d = decoySnippet(i, r);
      const { text } = textBlock(r, 2000, [{ ...d, decoy: true }]);
      assert.deepEqual(scanAll(text), [], d.text);
    }),
    { numRuns: 1000 },
  );
});

test('4 MiB of filler lines give nothing', () => {
  const { text } = textBlock(new Rng(11, 'net-filler'), 4 << 20, []);
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

test('property: arbitrary strings around the anchors never make a scanner throw or report past a separator', () => {
  const anchors = ['@', '.', ':', '::', '-', '+', '://', 'http://', '[', ']', 'a.com', 'ab:', '1.', 'fe80', '+44', '\0', '.co.uk'];
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom(...anchors)), { maxLength: 16 }), (parts) => {
      for (const [, a, b, f] of scanAll(parts.join(''))) assert.ok(!f.includes('\0') && b - a === f.length);
    }),
    { numRuns: 5000 },
  );
});

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
