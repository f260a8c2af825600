import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from '../core/errors.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCode } from '../../test/helpers/expect-code.js';
import { Prng } from '../../test/helpers/prng.js';
import { generateSigningKey, keyIdOf, loadSigningKey, signReport, verifyReportSignature } from './sign.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const skip = hasOpenssl ? false : 'openssl is not installed';

function openssl(args: string[], input?: Buffer | string): { status: number | null; out: string; stdout: Buffer } {
  const r = spawnSync('openssl', args, { input, timeout: 60_000 });
  return { status: r.status, out: `${r.stdout.toString('latin1')}${r.stderr.toString('latin1')}`, stdout: r.stdout };
}

/** A report-like JSON text with seeded content, so every run signs the same bytes. */
function report(seed: number, size = 4096): Buffer {
  const r = new Prng(seed);
  const text = JSON.stringify({ tool: 'memdump', seed, outputs: [{ sha256: r.bytes(32).toString('hex') }], blob: r.bytes(size).toString('base64') }, null, 2) + '\n';
  return Buffer.from(text);
}

const mine = generateSigningKey();
const key = loadSigningKey(mine.privatePem);

test('sig file: the documented JSON, keyId over the SPKI, verifies with trust when the key is listed', () => {
  const bytes = report(1);
  const text = signReport(bytes, key);
  assert.ok(text.endsWith('}\n'));
  const o = JSON.parse(text) as Record<string, string>;
  assert.deepEqual(Object.keys(o), ['format', 'algorithm', 'keyId', 'publicKey', 'signature']);
  assert.equal(o['format'], 'memdump-signature/1');
  assert.equal(o['algorithm'], 'ed25519');
  assert.equal(o['keyId'], keyIdOf(mine.publicPem));
  assert.match(o['keyId']!, /^sha256:[0-9a-f]{64}$/);
  assert.equal(o['publicKey'], createPublicKey(mine.publicPem).export({ type: 'spki', format: 'der' }).toString('base64'));
  assert.equal(Buffer.from(o['signature']!, 'base64').length, 64);
  assert.equal(signReport(bytes, key), text, 'Ed25519 is deterministic: same key and bytes, same file');

  assert.deepEqual(verifyReportSignature(bytes, text), { keyId: o['keyId'], trusted: false });
  assert.deepEqual(verifyReportSignature(bytes, text, [mine.publicPem]), { keyId: o['keyId'], trusted: true });
  assert.deepEqual(verifyReportSignature(bytes, text, [o['keyId']!.toUpperCase().replace('SHA256', 'sha256')]), { keyId: o['keyId'], trusted: true });
  assert.deepEqual(verifyReportSignature(bytes, text, [generateSigningKey().publicPem, `  ${o['keyId']}\n`]).trusted, true);
});

test('property: any single edited byte of the report fails with E_SIGNATURE', () => {
  const bytes = report(2, 2000);
  const text = signReport(bytes, key);
  fc.assert(
    fc.property(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, x) => {
      const edited = Buffer.from(bytes);
      edited[pos] = (edited[pos] ?? 0) ^ x;
      expectCode(() => verifyReportSignature(edited, text), 'E_SIGNATURE');
    }),
    { numRuns: 500, seed: 7 },
  );
  expectCode(() => verifyReportSignature(bytes.subarray(0, -1), text), 'E_SIGNATURE');
  expectCode(() => verifyReportSignature(Buffer.concat([bytes, Buffer.from('\n')]), text), 'E_SIGNATURE');
  expectCode(() => verifyReportSignature(report(3, 2000), text), 'E_SIGNATURE');
});

test('trust: a valid signature by a key not listed is E_SIGNATURE, as is an empty list', () => {
  const bytes = report(4);
  const text = signReport(bytes, key);
  const other = generateSigningKey();
  const e = expectCode(() => verifyReportSignature(bytes, text, [other.publicPem, keyIdOf(other.publicPem)]), 'E_SIGNATURE');
  assert.equal(e.details['keyId'], keyIdOf(mine.publicPem));
  expectCode(() => verifyReportSignature(bytes, text, []), 'E_SIGNATURE');
  // A signature made by another key, with that key embedded, verifies for integrity but is not trusted.
  const forged = signReport(bytes, loadSigningKey(other.privatePem));
  assert.equal(verifyReportSignature(bytes, forged).trusted, false);
  expectCode(() => verifyReportSignature(bytes, forged, [mine.publicPem]), 'E_SIGNATURE');
  // Entries that are neither are the caller's mistake.
  expectCode(() => verifyReportSignature(bytes, text, ['sha256:abc']), 'E_USAGE');
  expectCode(() => verifyReportSignature(bytes, text, ['-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n']), 'E_USAGE');
});

test('malformed or tampered sig files are E_SIGNATURE', () => {
  const bytes = report(5);
  const o = JSON.parse(signReport(bytes, key)) as Record<string, unknown>;
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const sig = Buffer.from(String(o['signature']), 'base64');
  const variants: unknown[] = [
    'not json',
    '[]',
    'null',
    { ...o, format: 'memdump-signature/2' },
    { ...o, algorithm: 'ecdsa' },
    { ...o, keyId: keyIdOf(generateSigningKey().publicPem) },
    { ...o, publicKey: ec },
    { ...o, publicKey: 'AAAA' },
    { ...o, signature: sig.subarray(0, 63).toString('base64') },
    { ...o, signature: String(o['signature']).replace(/==$/, '') }, // unpadded: not canonical
    { ...o, signature: ' ' + String(o['signature']) },
    { ...o, signature: undefined },
    { ...o, publicKey: 42 },
    ' '.repeat(70_000),
  ];
  for (const v of variants) expectCode(() => verifyReportSignature(bytes, typeof v === 'string' ? v : JSON.stringify(v)), 'E_SIGNATURE');
  assert.equal(verifyReportSignature(bytes, JSON.stringify(o)).trusted, false, 'whitespace of the sig file itself is free');
});

test('property: single-byte edits of the sig file verify unchanged or fail with E_SIGNATURE, never otherwise', () => {
  const bytes = report(6, 512);
  const text = Buffer.from(signReport(bytes, key));
  const keyId = keyIdOf(mine.publicPem);
  fc.assert(
    fc.property(fc.nat({ max: text.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, x) => {
      const t = Buffer.from(text);
      t[pos] = (t[pos] ?? 0) ^ x;
      try {
        assert.equal(verifyReportSignature(bytes, t.toString('utf8')).keyId, keyId);
      } catch (e) {
        assert.ok(e instanceof MemdumpError && e.code === 'E_SIGNATURE', String(e));
      }
    }),
    { numRuns: 500, seed: 8 },
  );
});

test('loadSigningKey refuses what is not an unencrypted Ed25519 private key, with E_USAGE', () => {
  const pems = [
    generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'sec1', format: 'pem' }) as string,
    generateKeyPairSync('ed448').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    mine.publicPem,
    'not a key',
    '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
    createPrivateKey(mine.privatePem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string,
  ];
  for (const p of pems) expectCode(() => loadSigningKey(p), 'E_USAGE');
  assert.match(expectCode(() => loadSigningKey(pems[8]!), 'E_USAGE').message, /encrypted/);
  assert.match(expectCode(() => loadSigningKey(pems[0]!), 'E_USAGE').message, /not Ed25519/);
  assert.match(expectCode(() => loadSigningKey(pems[5]!), 'E_USAGE').message, /public key/);
  expectCode(() => signReport(Buffer.from('x'), createPublicKey(mine.publicPem)), 'E_USAGE');
  expectCode(() => signReport(Buffer.from('x'), generateKeyPairSync('ed448').privateKey), 'E_USAGE');
  expectCode(() => keyIdOf('junk'), 'E_USAGE');
});

test('oracle: openssl genpkey keys load and sign; openssl pkeyutl verifies ours; keyIds and signatures agree', { skip }, (t) => {
  const dir = tempDir(t, 'memdump-sign-');
  const p = (n: string): string => join(dir, n);
  assert.equal(openssl(['genpkey', '-algorithm', 'ed25519', '-out', p('k.pem')]).status, 0);
  assert.equal(openssl(['pkey', '-in', p('k.pem'), '-pubout', '-out', p('k.pub')]).status, 0);
  const bytes = report(9, 10_000);
  writeFileSync(p('report.json'), bytes);

  const text = signReport(bytes, loadSigningKey(readFileSync(p('k.pem'), 'utf8')));
  const o = JSON.parse(text) as { keyId: string; signature: string; publicKey: string };
  writeFileSync(p('report.sig'), Buffer.from(o.signature, 'base64'));
  const v = openssl(['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', p('k.pub'), '-in', p('report.json'), '-sigfile', p('report.sig')]);
  assert.equal(v.status, 0, v.out);
  assert.match(v.out, /Signature Verified Successfully/);
  // …and the oracle itself rejects an edited report.
  const edited = Buffer.from(bytes);
  edited[100] = (edited[100] ?? 0) ^ 1;
  writeFileSync(p('edited.json'), edited);
  assert.notEqual(openssl(['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', p('k.pub'), '-in', p('edited.json'), '-sigfile', p('report.sig')]).status, 0);

  // Ed25519 is deterministic, so openssl signing the same bytes with the same key must give our exact signature.
  const os = openssl(['pkeyutl', '-sign', '-rawin', '-inkey', p('k.pem'), '-in', p('report.json')]);
  assert.equal(os.status, 0, os.out);
  assert.equal(os.stdout.toString('base64'), o.signature);

  const spki = openssl(['pkey', '-pubin', '-in', p('k.pub'), '-outform', 'DER']);
  const digest = openssl(['dgst', '-sha256', '-binary'], spki.stdout);
  assert.equal(o.keyId, 'sha256:' + digest.stdout.toString('hex'));
  assert.equal(keyIdOf(readFileSync(p('k.pub'), 'utf8')), o.keyId);
  assert.equal(o.publicKey, spki.stdout.toString('base64'));
  assert.equal(verifyReportSignature(bytes, text, [readFileSync(p('k.pub'), 'utf8')]).trusted, true);

  // Our generated key is what openssl would write: it reads it and derives the same public PEM.
  writeFileSync(p('mine.pem'), mine.privatePem);
  const pub = openssl(['pkey', '-in', p('mine.pem'), '-pubout']);
  assert.equal(pub.status, 0, pub.out);
  assert.equal(pub.stdout.toString('latin1'), mine.publicPem);
  assert.match(openssl(['pkey', '-in', p('mine.pem'), '-noout', '-text']).out, /ED25519 Private-Key/);

  // Keys openssl makes that are not usable for signing reports.
  for (const [args, why] of [
    [['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], /not Ed25519/],
    [['-algorithm', 'ed448'], /not Ed25519/],
    [['-algorithm', 'ed25519', '-aes-256-cbc', '-pass', 'pass:secret'], /encrypted/],
  ] as const) {
    const out = p('other.pem');
    const g = openssl(['genpkey', ...args, '-out', out]);
    assert.equal(g.status, 0, g.out);
    assert.match(expectCode(() => loadSigningKey(readFileSync(out, 'utf8')), 'E_USAGE').message, why);
    rmSync(out);
  }
});
