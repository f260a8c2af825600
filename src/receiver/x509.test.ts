import assert from 'node:assert/strict';
import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { expectCode } from '../../test/helpers/expect-code.js';
import {
  TAG, bitString, children, contentOf, decodeInteger, expectTlv, explicit, ia5String, integer, oid, readTlv, sequence, setOf, tlv,
  utcTime, utf8String,
} from './der.js';
import {
  caseOfClientCertificate, createCertificateAuthority, createClientCertificate, createServerCertificate, readCertificate, spkiPin,
  type KeyAndCert,
} from './x509.js';

const ca = createCertificateAuthority({ cn: 'memdump test CA', days: 30 });
const x = (k: KeyAndCert): X509Certificate => new X509Certificate(k.certPem);

function serialOf(pem: string): bigint {
  const der = x({ keyPem: '', certPem: pem }).raw;
  const tbs = children(der, readTlv(der, 0))[0]!;
  const serial = children(der, tbs)[1]!;
  assert.equal(serial.tag, TAG.INTEGER);
  return decodeInteger(contentOf(der, serial));
}

test('CA: self-signed, CA flag, validity starts 5 minutes back, key is P-256 PKCS#8 and matches', () => {
  const c = x(ca);
  assert.equal(c.ca, true);
  assert.equal(c.subject, 'CN=memdump test CA');
  assert.equal(c.issuer, c.subject);
  assert.ok(c.verify(c.publicKey), 'self-signature verifies');
  assert.ok(c.checkIssued(c));
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  const now = Date.now();
  assert.ok(from <= now - 5 * 60_000 + 1000 && from >= now - 5 * 60_000 - 60_000, `validFrom ${c.validFrom}`);
  assert.ok(Math.abs(to - (from + 5 * 60_000 + 30 * 86_400_000)) <= 1000, `validTo ${c.validTo}`);
  assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.match(ca.certPem, /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{64}\n)+[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----\n$/);
  const key = createPrivateKey(ca.keyPem);
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.ok(c.checkPrivateKey(key));
  assert.equal(c.publicKey.asymmetricKeyType, 'ec');
});

test('serial numbers: positive, from 16 random bytes, distinct', () => {
  const seen = new Set<bigint>();
  for (let i = 0; i < 20; i++) {
    const s = serialOf(createServerCertificate({ cn: 's', hosts: [], days: 1 }).certPem);
    assert.ok(s > 0n && s < 1n << 128n, s.toString(16));
    seen.add(s);
  }
  assert.equal(seen.size, 20);
  assert.ok([...seen].some((s) => s >= 1n << 127n), 'the high bit of the 16 bytes is used (a 00 is prepended, not the bit cleared)');
});

test('server certificate issued by the CA: chain, SANs, purpose, no CA flag', () => {
  const s = createServerCertificate({ cn: 'receiver', hosts: ['localhost', 'Evidence.Example.org', '127.0.0.1', '::1', '[fe80::1:2]', '*.lab.example'], days: 10, issuer: ca });
  const c = x(s);
  assert.equal(c.ca, false);
  assert.ok(c.checkIssued(x(ca)) && c.verify(x(ca).publicKey));
  assert.equal(c.issuer, 'CN=memdump test CA');
  assert.equal(c.subjectAltName, 'DNS:localhost, DNS:evidence.example.org, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:FE80:0:0:0:0:0:1:2, DNS:*.lab.example');
  assert.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.1']); // Node's keyUsage is the extended key usage list
  assert.equal(c.checkHost('localhost'), 'localhost');
  assert.equal(c.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(c.checkIP('::1'), '::1');
  assert.equal(c.checkIP('127.0.0.2'), undefined);
  assert.equal(c.checkHost('x.lab.example'), '*.lab.example');
  assert.equal(c.checkHost('elsewhere.example'), undefined);
  assert.ok(Date.parse(c.validTo) <= Date.parse(x(ca).validTo));
});

test('IPv6 literals in every spelling become the right 16 octets', () => {
  const s = createServerCertificate({ cn: 'r', hosts: ['2001:db8::8:800:200c:417a', '::ffff:192.0.2.128', '1:2:3:4:5:6:7:8', '::', '2001:db8::'], days: 1 });
  assert.equal(x(s).subjectAltName, [
    'IP Address:2001:DB8:0:0:8:800:200C:417A', 'IP Address:0:0:0:0:0:FFFF:C000:280', 'IP Address:1:2:3:4:5:6:7:8',
    'IP Address:0:0:0:0:0:0:0:0', 'IP Address:2001:DB8:0:0:0:0:0:0',
  ].join(', '));
});

test('self-signed server certificate: no issuer needed, duplicate hosts collapse, empty host list has no SAN', () => {
  const c = x(createServerCertificate({ cn: 'r', hosts: ['localhost', 'LOCALHOST', '127.0.0.1', '127.0.0.1'], days: 1 }));
  assert.equal(c.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1');
  // Signed by its own key, but with keyUsage digitalSignature only it is not an issuer, not even of itself:
  // clients trust it through the SPKI pin, never as a CA.
  assert.ok(c.verify(c.publicKey));
  assert.equal(c.checkIssued(c), false);
  assert.equal(x(createServerCertificate({ cn: 'r', hosts: [], days: 1 })).subjectAltName, undefined);
});

test('client certificate: OU carries the case label exactly, chain to the CA, AKI = CA SKI', () => {
  const cl = createClientCertificate({ cn: 'examiner laptop', caseLabel: 'CASE-2026-0042', days: 5, issuer: ca });
  const c = x(cl);
  assert.equal(caseOfClientCertificate(c), 'CASE-2026-0042');
  assert.equal(c.subject, 'OU=CASE-2026-0042\nCN=examiner laptop');
  assert.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.2']);
  assert.ok(c.verify(x(ca).publicKey));
  const caSki = readCertificate(x(ca).raw).extensions.find((e) => e.oid === '2.5.29.14')!.value;
  const aki = readCertificate(c.raw).extensions.find((e) => e.oid === '2.5.29.35')!.value;
  assert.equal(aki.toString('hex'), '3016' + '8014' + caSki.subarray(2).toString('hex'));
  const spki = readCertificate(x(ca).raw).subjectPublicKeyInfo;
  const bits = children(spki, expectTlv(spki, 0, TAG.SEQUENCE))[1]!;
  assert.equal(caSki.subarray(2).toString('hex'), createHash('sha1').update(spki.subarray(bits.contentStart + 1, bits.end)).digest('hex'));
  assert.equal(caseOfClientCertificate(x(ca)), undefined, 'no OU, no case');
});

test('property: any printable label round-trips through the OU byte for byte (Node would escape , + " =)', () => {
  const label = fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: 40 })
    .filter((s) => !/[\u0000-\u001f\u007f-\u009f]/.test(s) && [...s].length <= 64);
  fc.assert(
    fc.property(label, (caseLabel) => {
      const c = x(createClientCertificate({ cn: 'c', caseLabel, days: 1, issuer: ca }));
      assert.equal(caseOfClientCertificate(c), caseLabel);
    }),
    { numRuns: 60, seed: 42 },
  );
  assert.equal(caseOfClientCertificate(x(createClientCertificate({ cn: 'c', caseLabel: 'a, OU=b\\+"c"', days: 1, issuer: ca }))), 'a, OU=b\\+"c"');
});

test('spkiPin: SHA-256 over the certificate’s SubjectPublicKeyInfo, same for PEM, DER and X509Certificate', () => {
  const s = createServerCertificate({ cn: 'r', hosts: ['localhost'], days: 1 });
  const want = 'sha256/' + createHash('sha256').update(createPublicKey(s.keyPem).export({ type: 'spki', format: 'der' })).digest('base64');
  assert.equal(spkiPin(s.certPem), want);
  assert.equal(spkiPin(x(s).raw), want);
  assert.equal(spkiPin(x(s)), want);
  assert.match(want, /^sha256\/[A-Za-z0-9+/]{43}=$/);
  assert.notEqual(spkiPin(createServerCertificate({ cn: 'r', hosts: ['localhost'], days: 1 }).certPem), want);
  expectCode(() => spkiPin('not a certificate'), 'E_CORRUPT');
  expectCode(() => spkiPin(Buffer.from('3000', 'hex')), 'E_CORRUPT');
});

test('names and lifetimes are checked: control characters, empty, too long, bad days, bad hosts', () => {
  for (const cn of ['a\nb', 'a\u0000', 'tab\there', 'del\u007f', 'c1\u0085', 'esc\u001b[31m', '', 'x'.repeat(65), 'lone\ud800']) {
    expectCode(() => createCertificateAuthority({ cn, days: 1 }), 'E_USAGE');
    expectCode(() => createClientCertificate({ cn: 'ok', caseLabel: cn, days: 1, issuer: ca }), 'E_USAGE');
  }
  assert.equal(x(createCertificateAuthority({ cn: '证'.repeat(64), days: 1 })).subject, 'CN=' + '证'.repeat(64));
  for (const days of [0, -1, 1.5, NaN, 36501]) expectCode(() => createCertificateAuthority({ cn: 'a', days }), 'E_USAGE');
  for (const h of ['', 'under_score.example', 'a..b', '-a.example', 'exa mple', 'é.example', 'fe80::1%eth0', 'x'.repeat(64) + '.example', 'a.*.example']) {
    expectCode(() => createServerCertificate({ cn: 'r', hosts: [h], days: 1 }), 'E_USAGE');
  }
});

test('issuer checks: must be a CA, key must match, must be P-256', () => {
  const leaf = createServerCertificate({ cn: 'r', hosts: [], days: 1 });
  expectCode(() => createClientCertificate({ cn: 'c', caseLabel: 'k', days: 1, issuer: leaf }), 'E_USAGE');
  const other = createCertificateAuthority({ cn: 'other', days: 1 });
  expectCode(() => createServerCertificate({ cn: 'r', hosts: [], days: 1, issuer: { keyPem: other.keyPem, certPem: ca.certPem } }), 'E_USAGE');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  expectCode(() => createServerCertificate({ cn: 'r', hosts: [], days: 1, issuer: { keyPem: rsa, certPem: ca.certPem } }), 'E_USAGE');
  expectCode(() => createServerCertificate({ cn: 'r', hosts: [], days: 1, issuer: { keyPem: ca.keyPem, certPem: 'junk' } }), 'E_USAGE');
  // A leaf never outlives its CA.
  const shortCa = createCertificateAuthority({ cn: 'short', days: 2 });
  const long = x(createServerCertificate({ cn: 'r', hosts: [], days: 365, issuer: shortCa }));
  assert.equal(long.validTo, x(shortCa).validTo);
});

test('readCertificate refuses trailing bytes and truncation with coded errors', () => {
  const der = x(ca).raw;
  expectCode(() => readCertificate(Buffer.concat([der, Buffer.from([0])])), 'E_CORRUPT');
  expectCode(() => readCertificate(der.subarray(0, der.length - 1)), 'E_TRUNCATED');
});

/** A certificate with an arbitrary subject, built by hand, to feed caseOfClientCertificate what we never write. */
function withSubject(subject: Buffer): X509Certificate {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const alg = sequence(oid('1.2.840.10045.4.3.2'));
  const now = new Date();
  const tbs = sequence(explicit(0, integer(2n)), integer(7n), alg, subject, sequence(utcTime(now), utcTime(now)), subject,
    publicKey.export({ type: 'spki', format: 'der' }));
  return new X509Certificate(sequence(tbs, alg, bitString(sign('sha256', tbs, privateKey))));
}

test('caseOfClientCertificate answers only for exactly one clean UTF8String/PrintableString OU', () => {
  const OU = '2.5.4.11';
  const rdn = (v: Buffer, type = OU): Buffer => setOf(sequence(oid(type), v));
  assert.equal(caseOfClientCertificate(withSubject(sequence(rdn(utf8String('one'))))), 'one');
  assert.equal(caseOfClientCertificate(withSubject(sequence(rdn(tlv(TAG.PRINTABLE_STRING, Buffer.from('P-1')))))), 'P-1');
  assert.equal(caseOfClientCertificate(withSubject(sequence(rdn(utf8String('a')), rdn(utf8String('b'))))), undefined, 'two OUs are ambiguous');
  assert.equal(caseOfClientCertificate(withSubject(sequence(setOf(sequence(oid(OU), utf8String('a')), sequence(oid(OU), utf8String('b')))))), undefined);
  assert.equal(caseOfClientCertificate(withSubject(sequence(rdn(ia5String('ia5'))))), undefined);
  assert.equal(caseOfClientCertificate(withSubject(sequence(rdn(utf8String('a\nb'))))), undefined);
  // Invalid UTF-8 never gets this far: OpenSSL refuses to parse such a name, so X509Certificate throws.
  assert.throws(() => withSubject(sequence(rdn(tlv(TAG.UTF8_STRING, Buffer.from([0x61, 0xff]))))));
  assert.equal(caseOfClientCertificate(withSubject(sequence(rdn(utf8String(''))))), undefined);
  assert.equal(caseOfClientCertificate(withSubject(sequence(rdn(utf8String('x'), '2.5.4.3')))), undefined, 'a CN is not a case');
});
