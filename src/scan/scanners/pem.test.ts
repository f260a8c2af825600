import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { pemScanner } from './pem.js';

function found(text: string): [string, string][] {
  const out: [string, string][] = [];
  pemScanner.scan(text, (k, s, e) => out.push([k, text.slice(s, e)]));
  return out;
}
const trim = (s: string): string => s.replace(/\n$/, '');

function realKeys(): string[] {
  const keys: string[] = [];
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  keys.push(rsa.export({ type: 'pkcs1', format: 'pem' }) as string);
  keys.push(rsa.export({ type: 'pkcs8', format: 'pem' }) as string);
  keys.push(rsa.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string);
  keys.push(rsa.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-128-cbc', passphrase: 'pw' }) as string);
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  keys.push(ec.export({ type: 'sec1', format: 'pem' }) as string);
  keys.push(ec.export({ type: 'pkcs8', format: 'pem' }) as string);
  keys.push(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  keys.push(generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  return keys.map(trim);
}

test('real private keys from node:crypto (PKCS#1, PKCS#8, encrypted, SEC1, Ed25519, DSA) are found whole', () => {
  const keys = realKeys();
  assert.ok(keys.some((k) => k.includes('DEK-Info:')), 'a traditional encrypted key with headers is among them');
  assert.ok(keys.some((k) => k.startsWith('-----BEGIN ENCRYPTED PRIVATE KEY-----')));
  for (const k of keys) {
    assert.deepEqual(found(`config:\n${k}\ntrailer`), [['pem-private-key', k]], k.slice(0, 40));
    assert.deepEqual(found(`\0${k}\0`), [['pem-private-key', k]]);
    const crlf = k.replace(/\n/g, '\r\n');
    assert.deepEqual(found(crlf), [['pem-private-key', crlf]]);
  }
  assert.deepEqual(found(keys.join('\n')).length, keys.length);
});

test('a certificate made by openssl req -x509 is found, and openssl parses what we report', () => {
  const dir = mkdtempSync(join(tmpdir(), 'h7sec-pem-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=memdump-test', '-days', '1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
    const cert = trim(readFileSync(join(dir, 'c.pem'), 'latin1'));
    const key = trim(readFileSync(join(dir, 'k.pem'), 'latin1'));
    const text = `junk ${key}\n\n${cert}\nmore`;
    const hits = found(text);
    assert.deepEqual(hits, [['pem-private-key', key], ['pem-certificate', cert]]);
    const out = execFileSync('openssl', ['x509', '-noout', '-subject'], { input: hits[1]?.[1] ?? '' }).toString();
    assert.match(out, /memdump-test/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keys inside JSON strings (escaped line ends) and YAML blocks (indented) are found as written', () => {
  for (const k of realKeys()) {
    // GCP service-account files, Vault and Kubernetes JSON, Terraform state: JSON.stringify escapes the ends.
    const json = JSON.stringify({ type: 'service_account', private_key: `${k}\n`, client_email: 'x@y.iam' });
    const inJson = JSON.stringify(k).slice(1, -1);
    assert.ok(inJson.includes('\\n') && !inJson.includes('\n'));
    assert.deepEqual(found(json), [['pem-private-key', inJson]], k.slice(0, 40));
    // PHP's json_encode also escapes '/'.
    const php = inJson.replaceAll('/', '\\/');
    assert.deepEqual(found(`{"key":"${php}"}`), [['pem-private-key', php]]);
    const crlf = JSON.stringify(k.replace(/\n/g, '\r\n')).slice(1, -1);
    assert.deepEqual(found(`"${crlf}"`), [['pem-private-key', crlf]]);
    // YAML "key: |" block, two and four spaces, and a tab-indented config value.
    for (const ind of ['  ', '    ', '\t']) {
      const yaml = k.replace(/\n/g, `\n${ind}`);
      assert.deepEqual(found(`tls:\n  key: |\n${ind}${yaml}\n  cert: x\n`), [['pem-private-key', yaml]]);
    }
  }
  const k = realKeys()[1] ?? '';
  // Mixed styles are not one block: a real line end after an escaped one, an indent that changes.
  const mixed = JSON.stringify(k).slice(1, -1).replace('\\n', '\n');
  assert.deepEqual(found(mixed), []);
  const lines = k.split('\n');
  assert.deepEqual(found([lines[0], ...lines.slice(1).map((l, i) => (i === 2 ? `   ${l}` : `  ${l}`))].join('\n')), []);
});

test('BEGIN TRUSTED CERTIFICATE (openssl x509 -addtrust) is a certificate; openssl reads what we report', () => {
  const dir = mkdtempSync(join(tmpdir(), 'h7sec-pem-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=memdump-trusted', '-days', '1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
    const trusted = trim(execFileSync('openssl', ['x509', '-in', join(dir, 'c.pem'), '-addtrust', 'serverAuth', '-trustout'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('latin1'));
    assert.ok(trusted.startsWith('-----BEGIN TRUSTED CERTIFICATE-----'), trusted.slice(0, 40));
    const hits = found(`ca bundle:\n${trusted}\n`);
    assert.deepEqual(hits, [['pem-certificate', trusted]]);
    const out = execFileSync('openssl', ['x509', '-noout', '-subject', '-trustout'], { input: hits[0]?.[1] ?? '' }).toString();
    assert.match(out, /memdump-trusted/);
    // A trusted label over a body that is not certificate + trust settings gives nothing.
    const bad = trusted.split('\n');
    bad.splice(2, 1);
    assert.deepEqual(found(bad.join('\n')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('empty pairs, mismatched labels, missing END, non-DER bodies and OpenSSH keys give nothing', () => {
  assert.deepEqual(found('-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----'), []);
  assert.deepEqual(found('-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----'), []);
  const k = realKeys()[1] ?? '';
  assert.deepEqual(found(k.replace('-----END PRIVATE KEY-----', '-----END RSA PRIVATE KEY-----')), []);
  assert.deepEqual(found(k.replace('-----END PRIVATE KEY-----', '')), []);
  assert.deepEqual(found(k.replace('\n', '\0')), [], "a '\\0' inside the block");
  const lines = k.split('\n');
  lines.splice(3, 1); // a line lost from the middle: the DER length no longer fits
  assert.deepEqual(found(lines.join('\n')), []);
  const random = randomBytes(600).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  assert.deepEqual(found(`-----BEGIN PRIVATE KEY-----\n${random}\n-----END PRIVATE KEY-----`), []);
  const ssh = k.replace(/PRIVATE KEY/g, 'OPENSSH PRIVATE KEY');
  assert.deepEqual(found(ssh), []);
  assert.deepEqual(found('-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----'), []);
});

test('property: never throws on mutated blocks and every hit runs BEGIN to END', () => {
  const k = realKeys()[6] ?? '';
  fc.assert(
    fc.property(fc.nat(k.length), fc.nat(20), fc.string({ maxLength: 4 }), (at, del, ins) => {
      const text = k.slice(0, at) + ins + k.slice(at + del);
      for (const [kind, f] of found(text)) {
        assert.equal(kind, 'pem-private-key');
        assert.ok(f.startsWith('-----BEGIN ') && f.endsWith('PRIVATE KEY-----'));
      }
    }),
    { numRuns: 3000 },
  );
});
