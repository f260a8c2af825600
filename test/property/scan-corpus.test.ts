/**
 * The scan corpus generator is the truth every scanner is measured against, so its truth must be checked by means
 * independent of it: each entry is decoded along its path with node:zlib / Buffer and found at its offset; real
 * key material parses in node's crypto and ssh-keygen; decoys are shown invalid by the stated rules; boundaries are
 * recomputed; and memory is measured in a child process while writing 256 MiB.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { decodePath } from '../fixtures/scan-corpus-decode.js';
import {
  ENCODINGS,
  FEATURE_KINDS,
  LAYER_SETS,
  MiB,
  type PlantedFeature,
  TEST_CARDS,
  ensureCorpus,
  luhnValid,
  truthToJson,
  writeCorpus,
} from '../fixtures/scan-corpus.js';

const dir = mkdtempSync(join(tmpdir(), 'memdump-scan-corpus-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const BIG = join(dir, 'corpus64.bin');
const big = await writeCorpus(BIG, { seed: 11, size: 64 * MiB });
const file = readFileSync(BIG);

function located(t: PlantedFeature): { data: Buffer; at: number } {
  return decodePath(file, big.regions, t.path);
}
const isWordByte = (c: number | undefined): boolean => c !== undefined && /[A-Za-z0-9]/.test(String.fromCharCode(c));

test('same seed gives the same bytes and truth; another seed does not', async () => {
  const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
  const a = await writeCorpus(join(dir, 'a.bin'), { seed: 5, size: 6 * MiB });
  const b = await writeCorpus(join(dir, 'b.bin'), { seed: 5, size: 6 * MiB });
  const c = await writeCorpus(join(dir, 'c.bin'), { seed: 6, size: 6 * MiB });
  assert.equal(statSync(join(dir, 'a.bin')).size, 6 * MiB);
  assert.equal(sha(join(dir, 'a.bin')), sha(join(dir, 'b.bin')));
  assert.equal(truthToJson({ version: 1, options: { seed: 5, size: 0 }, ...a }), truthToJson({ version: 1, options: { seed: 5, size: 0 }, ...b }));
  assert.notEqual(sha(join(dir, 'a.bin')), sha(join(dir, 'c.bin')));
  assert.notDeepEqual(a.truth.map((t) => t.feature), c.truth.map((t) => t.feature));
});

test('every planted feature is at its path, delimited, and offsets agree with paths', () => {
  assert.equal(file.length, 64 * MiB);
  assert.ok(big.truth.length >= 32 * 64 * 0.9, `density: ${big.truth.length} features`);
  for (const t of big.truth) {
    const { data, at } = located(t);
    assert.equal(data.subarray(at, at + t.feature.length).toString('latin1'), t.feature, t.path);
    assert.ok(!isWordByte(data[at - 1]) && !isWordByte(data[at + t.feature.length]), `not delimited: ${t.path}`);
    if (t.encoding.length === 0) assert.equal(t.path, String(t.offset));
    else if (t.encoding.length === 1 && t.encoding[0] === 'utf16le') {
      // the path starts at the text (t.offset) or at the 4 KiB anchor before the feature, inside the text
      const [from, , k] = t.path.split('-').map(Number) as [number, string, number];
      assert.ok(from >= Number(t.offset) && (from === Number(t.offset) || (from - (Number(t.offset) & 1)) % 4096 === 0), t.path);
      assert.ok(2 * k < 4096 + 2 || from === Number(t.offset), `anchored UTF-16 path no more than 4 KiB before its feature: ${t.path}`);
      const raw = file.subarray(from + 2 * k, from + 2 * (k + t.feature.length));
      assert.equal(raw.toString('utf16le'), t.feature);
    } else assert.ok(t.path.startsWith(`${t.offset}-`), t.path);
    for (const [i, e] of t.encoding.entries()) if (e === 'utf16le') assert.equal(i, t.encoding.length - 1);
  }
  const paths = big.truth.map((t) => `${t.path}:${t.kind}`);
  assert.equal(new Set(paths).size, paths.length, 'duplicate truth entries');
});

test('every kind appears plain and in every encoding, and nested', () => {
  const by = new Map<string, Set<string>>();
  for (const t of big.truth) {
    const keys = t.encoding.length === 0 ? ['plain'] : [...t.encoding, t.encoding.join('/')];
    for (const k of keys) by.set(k, (by.get(k) ?? new Set()).add(t.kind));
  }
  for (const enc of ['plain', ...ENCODINGS, ...LAYER_SETS.filter((l) => l.length > 1).map((l) => l.join('/'))]) {
    const missing = FEATURE_KINDS.filter((k) => !by.get(enc)?.has(k));
    assert.deepEqual(missing, [], `kinds missing in ${enc}`);
  }
});

test('base64 blocks are wrapped at 76 or not at all', () => {
  for (const t of big.truth) {
    const e = t.encoding[0];
    if (e !== 'base64' && e !== 'base64-wrapped') continue;
    const g = big.regions.find((r) => r.offset === t.offset);
    assert.ok(g && g.kind === 'base64');
    const lines = file.subarray(Number(g.offset), Number(g.offset) + g.length).toString('latin1').split('\n');
    if (e === 'base64') assert.equal(lines.length, 1);
    else {
      assert.ok(lines.length > 1);
      assert.ok(lines.slice(0, -1).every((l) => l.length === 76) && (lines.at(-1)?.length ?? 0) <= 76);
    }
  }
});

test('features straddle 1 MiB and 16 MiB boundaries, every kind plain and UTF-16', () => {
  const across = big.truth.filter((t) => t.acrossBoundary !== undefined);
  for (const t of across) {
    const c = t.acrossBoundary ?? 0;
    const utf16 = t.encoding.length === 1;
    const start = utf16 ? Number(t.path.split('-')[0]) + 2 * Number(t.path.split('-')[2]) : Number(t.offset);
    const end = start + (utf16 ? 2 : 1) * t.feature.length;
    const m = Math.ceil((start + 1) / c) * c;
    assert.ok(start < m && m < end, `${t.path} does not cross a multiple of ${c}`);
    assert.ok(t.encoding.length === 0 || (t.encoding.length === 1 && t.encoding[0] === 'utf16le'));
  }
  assert.ok(across.filter((t) => t.acrossBoundary === 16 * MiB).length >= 3);
  for (const kind of FEATURE_KINDS)
    for (const enc of [0, 1])
      assert.ok(across.some((t) => t.kind === kind && t.acrossBoundary === MiB && t.encoding.length === enc), `${kind} across 1 MiB, ${enc ? 'utf16' : 'plain'}`);
});

const CARD_ISSUER = /^(4\d{15}|5[1-5]\d{14}|(222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)\d{12}|3[47]\d{13}|6011\d{12}|65\d{14})$/;
const B64URL = /^[A-Za-z0-9_-]+$/;
const VALID: Record<string, (f: string, after: string) => boolean> = {
  email: (f) => /^[a-z0-9.]+@([a-z0-9-]+\.)+[a-z]{2,}$/.test(f),
  url: (f) => /^https?:\/\//.test(f) && URL.canParse(f) && new URL(f).hostname.includes('.'),
  domain: (f) => /^([a-z0-9-]+\.)+[a-z]{2,}$/.test(f),
  ipv4: (f) => f.split('.').length === 4 && f.split('.').every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255),
  ipv6: (f) => isIPv6(f),
  mac: (f) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$|^[0-9A-F]{2}(-[0-9A-F]{2}){5}$/.test(f),
  ccn: (f) => /^[\d]+$|^[\d ]+$|^[\d-]+$/.test(f) && luhnValid(f.replace(/\D/g, '')) && CARD_ISSUER.test(f.replace(/\D/g, '')) && !TEST_CARDS.includes(f.replace(/\D/g, '')),
  'ccn-test': (f) => TEST_CARDS.includes(f.replace(/\D/g, '')) && luhnValid(f.replace(/\D/g, '')),
  phone: (f) => /^\+[1-9]\d{9,11}$/.test(f),
  jwt: (f) => {
    const p = f.split('.');
    return p.length === 3 && p.every((s) => B64URL.test(s)) && typeof JSON.parse(Buffer.from(p[0] ?? '', 'base64url').toString()).alg === 'string';
  },
  'pem-private-key': (f) => createPrivateKey(f).asymmetricKeyType === 'ed25519',
  'pem-certificate': (f) => {
    const x = new X509Certificate(f);
    return x.verify(x.publicKey) && x.subject.startsWith('CN=');
  },
  'ssh-private-key': (f) => f.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----\n') && f.endsWith('\n-----END OPENSSH PRIVATE KEY-----'),
  'ssh-public-key': (f) => /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}$/.test(f),
  'aws-access-key': (f, a) => /^(AKIA|ASIA)[A-Z2-7]{16}$/.test(f) && /^\naws_secret_access_key = [A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])/.test(a),
  'gcp-api-key': (f) => /^AIza[A-Za-z0-9_-]{35}$/.test(f),
  'azure-storage-key': (f) => f.length === 88 && Buffer.from(f, 'base64').length === 64,
  'password-assignment': (f) => /^(password|passwd|pwd)(=|: |:)\S{8,16}$/.test(f),
  'basic-auth': (f) => /^Authorization: Basic [A-Za-z0-9+/=]+$/.test(f) && /^[a-z]+:\S+$/.test(Buffer.from(f.slice(21), 'base64').toString()),
  'bash-history': (f) => /^#1[67]\d{8}\n[^\n]+$|^: 1[67]\d{8}:0;[^\n]+$/.test(f),
  'version-banner': (f) => /^Linux version \d+\.\d+\.\d+\S* \(.+\) #\d+ /.test(f) || /^Microsoft Windows \[Version 10\.0\.\d{5}\.\d+\]$/.test(f),
};

test('every planted feature is valid for its kind (node crypto and ssh-keygen as oracles)', () => {
  for (const t of big.truth) {
    const { data, at } = located(t);
    const after = data.subarray(at + t.feature.length, at + t.feature.length + 80).toString('latin1');
    const ok = VALID[t.kind];
    assert.ok(ok?.(t.feature, after), `${t.kind} invalid: ${JSON.stringify(t.feature)}`);
    if (t.kind === 'azure-storage-key') assert.equal(data.subarray(at - 11, at).toString('latin1'), 'AccountKey=');
  }
  const keys = big.truth.filter((t) => t.kind === 'ssh-private-key').slice(0, 3);
  assert.ok(keys.length > 0);
  for (const [i, t] of keys.entries()) {
    const p = join(dir, `id_${i}`);
    writeFileSync(p, t.feature + '\n', { mode: 0o600 });
    const pub = execFileSync('ssh-keygen', ['-y', '-f', p], { encoding: 'utf8' });
    assert.match(pub, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI/);
  }
  const pubLine = big.truth.find((t) => t.kind === 'ssh-public-key');
  writeFileSync(join(dir, 'k.pub'), `${pubLine?.feature ?? ''} test\n`);
  assert.match(execFileSync('ssh-keygen', ['-l', '-f', join(dir, 'k.pub')], { encoding: 'utf8' }), /ED25519/);
});

test('decoys are present, invalid by the stated rules, and not in the truth', () => {
  const kinds = new Set(big.decoys.map((d) => d.kind));
  assert.deepEqual([...kinds].sort(), ['ccn', 'email', 'ipv4', 'jwt', 'pem-private-key']);
  const truthAt = new Set(big.truth.map((t) => t.path));
  for (const d of big.decoys) {
    assert.equal(file.subarray(Number(d.offset), Number(d.offset) + d.text.length).toString('latin1'), d.text);
    assert.ok(!isWordByte(file[Number(d.offset) - 1]) && !isWordByte(file[Number(d.offset) + d.text.length]));
    assert.ok(!truthAt.has(String(d.offset)));
    if (d.kind === 'ccn') assert.ok(/^\d{16}$/.test(d.text) && !luhnValid(d.text), d.text);
    if (d.kind === 'ipv4') assert.ok(d.text.split('.').some((o) => Number(o) > 255), d.text);
    if (d.kind === 'email') assert.ok(!d.text.split('@')[1]?.includes('.'), d.text);
    if (d.kind === 'jwt') assert.throws(() => JSON.parse(Buffer.from(d.text.split('.')[0] ?? '', 'base64url').toString()));
    if (d.kind === 'pem-private-key') assert.throws(() => createPrivateKey(d.text));
  }
  assert.ok(big.decoys.some((d) => d.text === '999.1.2.3' || d.kind === 'ipv4'));
});

test('filler around the features holds no email or IPv4 the truth does not list', () => {
  const spans = big.truth.filter((t) => t.encoding.length === 0).map((t) => [Number(t.offset), Number(t.offset) + t.feature.length] as const);
  for (const d of big.decoys) spans.push([Number(d.offset), Number(d.offset) + d.text.length]);
  spans.sort((a, b) => a[0] - b[0]);
  const covered = (s: number, e: number): boolean => spans.some(([a, b]) => a <= s && e <= b);
  const re = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}|(?<![\d.])\d{1,3}(\.\d{1,3}){3}(?![\d.])/g;
  let checked = 0;
  for (const g of big.regions) {
    if (g.kind !== 'text') continue;
    const text = file.subarray(Number(g.offset), Number(g.offset) + g.length).toString('latin1');
    for (const m of text.matchAll(re)) {
      const s = Number(g.offset) + (m.index ?? 0);
      if (/^\d/.test(m[0]) && !VALID.ipv4?.(m[0], '')) continue;
      assert.ok(covered(s, s + m[0].length), `stray ${JSON.stringify(m[0])} at ${s}`);
      checked++;
    }
  }
  assert.ok(checked > 40, `only ${checked} matches checked`);
});

test('gzip and unzip read the containers as written', () => {
  const gz = big.regions.find((g) => g.kind === 'gzip');
  const zips = big.regions.filter((g) => g.kind === 'zip').slice(0, 4);
  assert.ok(gz && zips.length > 0);
  const slice = (g: { offset: bigint; length: number }): Buffer => file.subarray(Number(g.offset), Number(g.offset) + g.length);
  const viaTool = execFileSync('gzip', ['-dc'], { input: slice(gz) });
  const t = big.truth.find((x) => x.offset === gz.offset && x.encoding.length === 1);
  assert.ok(t);
  assert.deepEqual(viaTool, located(t).data);
  for (const [i, g] of zips.entries()) {
    const p = join(dir, `z${i}.zip`);
    writeFileSync(p, slice(g));
    execFileSync('unzip', ['-tq', p]);
    const members = execFileSync('zipinfo', ['-1', p], { encoding: 'utf8' }).trim().split('\n');
    assert.equal(members.length, 2);
    const planted = big.truth.find((x) => x.encoding[0] === 'zip' && x.offset > g.offset && x.offset < g.offset + BigInt(g.length));
    assert.ok(planted);
    const data = execFileSync('unzip', ['-p', p, members[1] ?? '']);
    const inner = located(planted);
    if (planted.encoding.length === 1) assert.deepEqual(data, inner.data);
    else assert.ok(data.toString('latin1').replace(/\n/g, '').length > 0);
  }
});

test('regions are ordered, disjoint, inside the file, and of every kind', () => {
  let end = 0n;
  for (const g of big.regions) {
    assert.ok(g.offset >= end && g.length > 0);
    end = g.offset + BigInt(g.length);
  }
  assert.ok(end <= BigInt(file.length));
  assert.deepEqual([...new Set(big.regions.map((g) => g.kind))].sort(), ['base64', 'gzip', 'random', 'text', 'utf16', 'zeros', 'zip', 'zlib']);
});

test('ensureCorpus writes once and reuses by options', async () => {
  const d = join(dir, 'ensure');
  execFileSync('mkdir', ['-p', d]);
  const o = { seed: 3, size: 3 * MiB };
  const a = await ensureCorpus(d, o);
  const mtime = statSync(a.bin).mtimeMs;
  const b = await ensureCorpus(d, o);
  assert.equal(b.bin, a.bin);
  assert.equal(statSync(b.bin).mtimeMs, mtime);
  assert.deepEqual(b.truth, a.truth);
  assert.equal(typeof b.truth[0]?.offset, 'bigint');
  const c = await ensureCorpus(d, { ...o, seed: 4 });
  assert.notEqual(c.bin, a.bin);
});

test('memory stays flat while writing 256 MiB (child process RSS)', () => {
  const mod = new URL('../fixtures/scan-corpus.js', import.meta.url).href;
  const out = join(dir, 'rss.bin');
  // forceGc: sample RSS right after a full collection, so what is measured is what the writer retains, not how
  // lazily V8 frees the random-region buffers; without it, the peak a user would see.
  const run = (forceGc: boolean): number[] => {
    const script = `
      const { writeCorpus } = await import(${JSON.stringify(mod)});
      const samples = [];
      const iv = setInterval(() => { ${forceGc ? 'globalThis.gc();' : ''} samples.push(process.memoryUsage.rss()); }, ${forceGc ? 10 : 1});
      await writeCorpus(${JSON.stringify(out)}, { seed: 9, size: ${256 * MiB} });
      clearInterval(iv);
      samples.push(process.memoryUsage.rss());
      process.stdout.write(JSON.stringify(samples));`;
    const r = spawnSync(process.execPath, [...(forceGc ? ['--expose-gc'] : []), '--input-type=module', '-e', script], { encoding: 'utf8' });
    rmSync(out, { force: true });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as number[];
  };
  const peak = Math.max(...run(false)) / MiB;
  const s = run(true);
  assert.ok(s.length >= 8, `${s.length} samples`);
  const q = Math.floor(s.length / 4);
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const early = median(s.slice(0, q)) / MiB;
  const late = median(s.slice(-q)) / MiB;
  process.stdout.write(`scan corpus 256 MiB: peak RSS ${peak.toFixed(0)} MiB; after GC median of first quarter ${early.toFixed(0)} MiB, of last ${late.toFixed(0)} MiB\n`);
  // The truth, decoy and region lists do grow (about 8k features here, a few MiB); the data path must not.
  assert.ok(late - early < 24, `retained memory grew ${(late - early).toFixed(0)} MiB`);
  assert.ok(peak < 256, `peak RSS ${peak.toFixed(0)} MiB`);
});
