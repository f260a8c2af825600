/**
 * The scorer decides every recall number of issue 7, so it is tested on a hand-made truth whose right answer is
 * known line by line, on a real generated corpus (host paths checked against the decoded bytes), and by property:
 * escaping round-trips and a known subset of reported features gives exactly that recall.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { decodePath } from '../fixtures/scan-corpus-decode.js';
import { FEATURE_KINDS, type FeatureKind, MiB, type PlantedFeature, writeCorpus } from '../fixtures/scan-corpus.js';
import { featureSnippet } from '../fixtures/scan-corpus-kinds.js';
import { Rng } from '../fixtures/scan-corpus-rng.js';
import { escapeFeature, type FoundFeature, hostOf, parseFeatureLines, readFeatureFile, readFeatureFiles, score, unescapeFeature, writeFeatureFiles } from './scan-score.js';

const dir = mkdtempSync(join(tmpdir(), 'memdump-scan-score-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const pem = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----';
const truth: PlantedFeature[] = [
  { kind: 'email', feature: 'alice.smith@mail.acme.com', offset: 100n, path: '100', encoding: [] },
  { kind: 'email', feature: 'bob.jones7@globex.io', offset: 5000n, path: '5000-GZIP-56', encoding: ['gzip'] },
  { kind: 'url', feature: 'https://www.acme.com:8443/login/x1?id=3&lang=en', offset: 300n, path: '300', encoding: [], acrossBoundary: MiB },
  { kind: 'pem-private-key', feature: pem, offset: 9000n, path: '9000-UTF16-12', encoding: ['utf16le'] },
  { kind: 'bash-history', feature: '#1700000000\nls -la /var/log', offset: 400n, path: '400', encoding: [] },
  { kind: 'domain', feature: 'vpn.hooli.de', offset: 700n, path: '700', encoding: [] },
  { kind: 'ccn', feature: '4111 1111 1111 1112', offset: 800n, path: '800', encoding: [] },
  { kind: 'ccn', feature: '5500-0000-0000-0004', offset: 900n, path: '900-BASE64-0-GZIP-33', encoding: ['base64', 'gzip'] },
];

function files(content: Partial<Record<FeatureKind, string>>): string {
  const d = mkdtempSync(join(dir, 'out-'));
  for (const [k, v] of Object.entries(content)) writeFileSync(join(d, `${k}.txt`), v, 'latin1');
  return d;
}

test('hand-made truth: found, missing, escapes, duplicates, host-of, false positives, decoys', () => {
  const out = files({
    email: '# memdump scan email\n100\talice.smith@mail.acme.com\tFrom: <alice.smith@mail.acme.com>\n100\talice.smith@mail.acme.com\tdup\n',
    url: '300\thttps://www.acme.com:8443/login/x1?id=3&lang=en\t\n',
    // lower-case hex in one escape, upper in the other; the context holds a tab-free escaped newline too
    'pem-private-key': `9000-UTF16-12\t${pem.replace('\n', '\\x0a').replace('\n', '\\x0A')}\tctx\\x0Amore\n`,
    'bash-history': '400\t#1700000000\\x0Als -la /var/log\n',
    domain: [
      '700\tvpn.hooli.de\t',
      '112\tmail.acme.com\thost of the planted email',
      '5000-GZIP-67\tglobex.io\thost of the gzip email',
      '308\twww.acme.com\thost of the url',
      '308\twww.acme.com:8443\tnot a host',
      '104\tacme.com\twrong place',
    ].join('\n'),
    ccn: '800\t4111 1111 1111 1111\twrong text\n6000\t4000000000000002\tdecoy\n900-BASE64-0-GZIP-33\t5500-0000-0000-0004\t\n',
    'ssh-public-key': '# nothing\n',
  });
  const found = readFeatureFiles(out);
  assert.deepEqual([...found.keys()], [...FEATURE_KINDS]);
  assert.equal(found.get('pem-private-key')?.[0]?.feature, pem);
  assert.equal(found.get('bash-history')?.[0]?.feature, '#1700000000\nls -la /var/log');

  const r = score(truth, found, { decoys: [{ kind: 'ccn', text: '4000000000000002', offset: 6000n }], samples: 2 });
  const k = r.perKind;
  assert.deepEqual([k.email.planted, k.email.found, k.email.duplicates, k.email.falsePositives], [2, 1, 1, 0]);
  assert.deepEqual(k.email.missing.map((t) => t.path), ['5000-GZIP-56']);
  assert.equal(k.email.recall, 0.5);
  assert.deepEqual([k.url.found, k['pem-private-key'].found, k['bash-history'].found], [1, 1, 1]);
  assert.deepEqual([k.domain.planted, k.domain.found, k.domain.hostOf, k.domain.falsePositives, k.domain.duplicates], [1, 1, 3, 2, 1]);
  assert.deepEqual(k.domain.falsePositiveSamples, [{ path: '308', feature: 'www.acme.com:8443' }, { path: '104', feature: 'acme.com' }]);
  assert.deepEqual([k.ccn.planted, k.ccn.found, k.ccn.falsePositives, k.ccn.wrongText, k.ccn.decoysReported], [2, 1, 2, 1, 1]);
  assert.equal(k['ssh-public-key'].planted, 0);
  assert.equal(k['ssh-public-key'].recall, 1);
  assert.deepEqual(r.total, { planted: 8, found: 6, recall: 6 / 8, duplicates: 2, falsePositives: 4, hostOf: 3, aliases: 0 });
  assert.equal(r.minKindRecall, 0.5);
  assert.deepEqual(r.byEncoding, {
    plain: { planted: 5, found: 4, recall: 4 / 5 },
    gzip: { planted: 1, found: 0, recall: 0 },
    utf16le: { planted: 1, found: 1, recall: 1 },
    'base64/gzip': { planted: 1, found: 1, recall: 1 },
  });
  assert.deepEqual(r.acrossBoundary, { planted: 1, found: 1, recall: 1 });
});

test('a feature reported twice at one path counts once as found and once as duplicate', () => {
  const line = '100\talice.smith@mail.acme.com\t\n';
  const r = score(truth.slice(0, 1), readFeatureFiles(files({ email: line + line + line })));
  assert.deepEqual([r.perKind.email.found, r.perKind.email.duplicates, r.perKind.email.falsePositives], [1, 2, 0]);
});

test('with regions, a planted feature reached through the raw bytes of a stored zip member is an alias, not a false positive', () => {
  const zipped: PlantedFeature[] = [
    { kind: 'email', feature: 'carol.rossi@acme.io', offset: 2000n, path: '2000-ZIP-0-BASE64-40', encoding: ['zip', 'base64-wrapped'] },
    { kind: 'ipv4', feature: '10.1.2.3', offset: 2500n, path: '2500-ZIP-0-BASE64-9', encoding: ['zip', 'base64-wrapped'] },
  ];
  const regions = [{ kind: 'zip' as const, offset: 1900n, length: 1000 }, { kind: 'text' as const, offset: 2900n, length: 100 }];
  const found = new Map<FeatureKind, FoundFeature[]>([
    ['email', [{ path: '2000-ZIP-0-BASE64-40', feature: 'carol.rossi@acme.io' }, { path: '2050-BASE64-40', feature: 'carol.rossi@acme.io' }, { path: '2950-BASE64-40', feature: 'carol.rossi@acme.io' }]],
    ['domain', [{ path: '2050-BASE64-46', feature: 'acme.io' }]],
    ['ipv4', [{ path: '2600-BASE64-9', feature: '10.1.2.3' }, { path: '2600-BASE64-30', feature: '10.1.2.4' }]],
  ]);
  const r = score(zipped, found, { regions });
  assert.deepEqual([r.perKind.email.found, r.perKind.email.aliases, r.perKind.email.falsePositives], [1, 1, 1]);
  assert.deepEqual([r.perKind.domain.aliases, r.perKind.domain.falsePositives], [1, 0]);
  assert.deepEqual([r.perKind.ipv4.found, r.perKind.ipv4.aliases, r.perKind.ipv4.falsePositives], [0, 1, 1]);
  assert.equal(score(zipped, found).total.falsePositives, 5);
});

test('malformed feature lines and escapes are E_CORRUPT with file and line', () => {
  assert.throws(() => parseFeatureLines('# c\nno tab here\n', 'x.txt'), (e: unknown) => (e as { code: string }).code === 'E_CORRUPT' && /x\.txt:2:/.test((e as Error).message));
  for (const bad of ['a\\nb', 'a\\x4', 'a\\xZZ', 'trailing\\', 'a\\\\b']) {
    assert.throws(() => unescapeFeature(bad), (e: unknown) => (e as { code: string }).code === 'E_CORRUPT', bad);
  }
  assert.throws(() => parseFeatureLines('1\tbad\\q\t\n', 'y.txt'), /y\.txt:1:/);
  assert.equal(unescapeFeature('a\\x5Cb\\x5cc\\x09'), 'a\\b\\c\t');
  assert.deepEqual(parseFeatureLines('1\tx', 'z'), [{ path: '1', feature: 'x' }]);
});

test('property: reading a feature file in small pieces gives the same lines and error line numbers as whole', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(1e9), fc.string({ maxLength: 40 }), fc.boolean()), { maxLength: 30 }), fc.integer({ min: 1, max: 64 }), (rows, piece) => {
      const text = rows.map(([p, f, comment]) => (comment ? `# ${f.replace(/\n/g, ' ')}` : `${p}\t${escapeFeature(f)}\tctx`) + '\n').join('');
      const file = join(dir, 'pieces.txt');
      writeFileSync(file, text, 'latin1');
      assert.deepEqual(readFeatureFile(file, piece), parseFeatureLines(text, file));
      writeFileSync(file, `${text}broken line\n`, 'latin1');
      assert.throws(() => readFeatureFile(file, piece), new RegExp(`:${rows.length + 1}: expected`));
    }),
    { numRuns: 200 },
  );
});

test('property: escapeFeature output is printable ASCII without raw backslashes and unescapes to the input', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const s = Buffer.from(bytes).toString('latin1');
      const e = escapeFeature(s);
      assert.match(e, /^[\x20-\x7e]*$/);
      assert.ok(!/\t/.test(e));
      assert.equal(unescapeFeature(e), s);
      assert.equal(unescapeFeature(e.replace(/\\x([0-9A-F]{2})/g, (_m, h: string) => `\\x${h.toLowerCase()}`)), s);
    }),
  );
});

test('property: reporting a seeded subset of generated features gives exactly that recall per kind', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 0, max: 100 }), (seed, keepPct) => {
      const r = new Rng(seed, 'scan-score');
      const t: PlantedFeature[] = [];
      for (let i = 0; i < 60; i++) {
        const kind = FEATURE_KINDS[i % FEATURE_KINDS.length] as FeatureKind;
        const s = featureSnippet(kind, r);
        const off = BigInt(i * 100_000);
        const nested = r.chance(0.5);
        t.push({ kind, feature: s.feature, offset: off, path: nested ? `${off}-ZLIB-${r.int(5000)}` : String(off), encoding: nested ? ['zlib'] : [] });
      }
      const kept = t.filter(() => r.int(100) < keepPct);
      const found = new Map<FeatureKind, FoundFeature[]>();
      for (const x of kept) found.set(x.kind, [...(found.get(x.kind) ?? []), { path: x.path, feature: x.feature }]);
      const res = score(t, found);
      assert.equal(res.total.found, kept.length);
      assert.equal(res.total.falsePositives, 0);
      for (const kind of FEATURE_KINDS) {
        const planted = t.filter((x) => x.kind === kind).length;
        const got = kept.filter((x) => x.kind === kind).length;
        assert.equal(res.perKind[kind].found, got);
        assert.equal(res.perKind[kind].missing.length, planted - got);
      }
    }),
    { numRuns: 50 },
  );
});

test('a generated corpus: the truth written as feature files scores 100%, and host paths point at the hosts', async () => {
  const bin = join(dir, 'c.bin');
  const c = await writeCorpus(bin, { seed: 21, size: 8 * MiB });
  const out = mkdtempSync(join(dir, 'fake-'));
  writeFeatureFiles(out, c.truth);
  const r = score(c.truth, readFeatureFiles(out), { decoys: c.decoys });
  assert.equal(r.total.planted, c.truth.length);
  assert.equal(r.total.found, c.truth.length);
  assert.equal(r.total.falsePositives + r.total.duplicates, 0);
  for (const kind of FEATURE_KINDS) assert.ok(r.perKind[kind].planted > 0, kind);
  assert.deepEqual(Object.keys(r.byEncoding).sort(), [...new Set(c.truth.map((t) => t.encoding.join('/') || 'plain'))].sort());
  assert.ok(Object.keys(r.byEncoding).length >= 5);

  const file = readFileSync(bin);
  let hosts = 0;
  const extra = new Map<FeatureKind, FoundFeature[]>();
  for (const t of c.truth) {
    const h = hostOf(t);
    if (!h) continue;
    const { data, at } = decodePath(file, c.regions, h.path);
    assert.equal(data.subarray(at, at + h.feature.length).toString('latin1'), h.feature, h.path);
    assert.match(h.feature, /^[a-z0-9.-]+$/);
    extra.set('domain', [...(extra.get('domain') ?? []), h]);
    hosts++;
  }
  assert.ok(hosts > 10, `${hosts} hosts`);
  const withHosts = score(c.truth, extra);
  assert.equal(withHosts.perKind.domain.hostOf, hosts);
  assert.equal(withHosts.perKind.domain.falsePositives, 0);
});
