/**
 * Oracle for src/receiver/x509.ts: the openssl CLI must parse our certificates and show what we meant
 * (SANs, key usages, CA flag, OU), must build chains to our CA under -x509_strict and refuse chains to another
 * CA, and must compute the same SPKI pin. Then a real TLS 1.3 handshake on 127.0.0.1 between node:tls server
 * and client uses them the way `memdump receive` and the TLS sender do: the server certificate trusted through
 * its pin, client certificates required and checked against the CA.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import tls from 'node:tls';
import {
  caseOfClientCertificate, createCertificateAuthority, createClientCertificate, createServerCertificate, spkiPin, type KeyAndCert,
} from '../../src/receiver/x509.js';
import { tempDir } from '../helpers/cli.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const skip = hasOpenssl ? false : 'openssl is not installed';

function openssl(args: string[], input?: Buffer | string): { status: number | null; out: string; stdout: Buffer } {
  const r = spawnSync('openssl', args, { input, timeout: 60_000 });
  return { status: r.status, out: `${r.stdout.toString('latin1')}${r.stderr.toString('latin1')}`, stdout: r.stdout };
}

const ca = createCertificateAuthority({ cn: 'memdump Test CA', days: 30 });
const otherCa = createCertificateAuthority({ cn: 'memdump Test CA', days: 30 }); // same name, different key
const server = createServerCertificate({ cn: 'receiver', hosts: ['localhost', '127.0.0.1', '::1', 'evidence.example'], days: 10, issuer: ca });
const selfSigned = createServerCertificate({ cn: 'receiver self', hosts: ['localhost', '127.0.0.1'], days: 10 });
const client = createClientCertificate({ cn: 'examiner-7', caseLabel: 'CASE-2026-0042', days: 10, issuer: ca });
const foreignClient = createClientCertificate({ cn: 'examiner-7', caseLabel: 'CASE-2026-0042', days: 10, issuer: otherCa });

function files(t: { after: (fn: () => void) => void }): Record<string, string> {
  const dir = tempDir(t, 'memdump-certs-');
  const out: Record<string, string> = {};
  for (const [name, kc] of Object.entries({ ca, otherCa, server, selfSigned, client, foreignClient })) {
    out[name] = join(dir, `${name}.pem`);
    writeFileSync(out[name], kc.certPem);
    writeFileSync(join(dir, `${name}.key`), kc.keyPem, { mode: 0o600 });
  }
  return out;
}

test('openssl x509 -text shows the CA flag, key usages, SANs and OU', { skip }, (t) => {
  const f = files(t);
  const text = (name: string): string => {
    const r = openssl(['x509', '-in', f[name]!, '-noout', '-text', '-nameopt', 'RFC2253']);
    assert.equal(r.status, 0, r.out);
    return r.out;
  };
  const c = text('ca');
  assert.match(c, /Version: 3 \(0x2\)/);
  assert.match(c, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.match(c, /ASN1 OID: prime256v1/);
  assert.match(c, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  assert.match(c, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
  assert.match(c, /X509v3 Subject Key Identifier:/);
  assert.match(c, /Subject: CN=memdump Test CA\n/);

  const s = text('server');
  assert.match(s, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  assert.match(s, /X509v3 Key Usage: critical\s+Digital Signature\n/);
  assert.match(s, /X509v3 Extended Key Usage:\s+TLS Web Server Authentication\n/);
  assert.match(s, /X509v3 Subject Alternative Name:\s+DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:evidence.example\n/);
  assert.match(s, /X509v3 Authority Key Identifier:/);
  assert.match(s, /Issuer: CN=memdump Test CA\n/);

  const cl = text('client');
  assert.match(cl, /Subject: CN=examiner-7,OU=CASE-2026-0042\n/);
  assert.match(cl, /X509v3 Extended Key Usage:\s+TLS Web Client Authentication\n/);
  assert.match(cl, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  assert.match(cl, /X509v3 Authority Key Identifier:/);

  // OpenSSL's own DER parser is strict about the encoding: asn1parse must walk the whole file.
  for (const name of Object.keys(f)) {
    const der = openssl(['x509', '-in', f[name]!, '-outform', 'DER']);
    assert.equal(der.status, 0, der.out);
    const walk = openssl(['asn1parse', '-inform', 'DER'], der.stdout);
    assert.equal(walk.status, 0, `${name}: ${walk.out}`);
  }
});

test('openssl verify: chains to our CA pass under -x509_strict, another CA and wrong purposes fail', { skip }, (t) => {
  const f = files(t);
  const verify = (caName: string, leaf: string, purpose: string): { status: number | null; out: string } =>
    openssl(['verify', '-x509_strict', '-purpose', purpose, '-CAfile', f[caName]!, f[leaf]!]);
  const ok = (r: { status: number | null; out: string }): void => assert.equal(r.status, 0, r.out);
  const fail = (r: { status: number | null; out: string }, why: RegExp): void => {
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, why);
  };
  ok(verify('ca', 'client', 'sslclient'));
  ok(verify('ca', 'server', 'sslserver'));
  ok(verify('otherCa', 'foreignClient', 'sslclient'));
  fail(verify('ca', 'foreignClient', 'sslclient'), /signature failure|unable to get local issuer|certificate signature failure/i);
  fail(verify('otherCa', 'client', 'sslclient'), /signature failure|unable to get local issuer/i);
  fail(verify('ca', 'client', 'sslserver'), /unsuitable certificate purpose|unsupported certificate purpose/i);
  fail(verify('ca', 'server', 'sslclient'), /unsuitable certificate purpose|unsupported certificate purpose/i);
  fail(verify('ca', 'selfSigned', 'sslserver'), /unable to get local issuer|self-signed|self signed/i);
});

test('spkiPin equals openssl pkey -pubin -outform der | sha256, base64', { skip }, (t) => {
  const f = files(t);
  for (const name of ['ca', 'server', 'selfSigned', 'client']) {
    const pub = openssl(['x509', '-in', f[name]!, '-noout', '-pubkey']);
    assert.equal(pub.status, 0, pub.out);
    const der = openssl(['pkey', '-pubin', '-outform', 'DER'], pub.stdout);
    assert.equal(der.status, 0, der.out);
    const digest = openssl(['dgst', '-sha256', '-binary'], der.stdout);
    assert.equal(digest.status, 0, digest.out);
    assert.equal(digest.stdout.length, 32);
    const kc = { ca, server, selfSigned, client }[name] as KeyAndCert;
    assert.equal(spkiPin(kc.certPem), 'sha256/' + digest.stdout.toString('base64'), name);
  }
});

// ---- real TLS 1.3 on 127.0.0.1

interface ServerRun {
  port: number;
  accepted: string[];
  /** authorizationError of client certificates a non-rejecting server let through (diagnostics only). */
  unauthorized: string[];
  close: () => Promise<void>;
}

async function startServer(cert: KeyAndCert, reject = true): Promise<ServerRun> {
  const accepted: string[] = [];
  const unauthorized: string[] = [];
  const srv = tls.createServer({
    key: cert.keyPem, cert: cert.certPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: reject,
    minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3',
  });
  srv.on('secureConnection', (sock) => {
    if (!sock.authorized) {
      unauthorized.push(String(sock.authorizationError));
      sock.destroy();
      return;
    }
    const label = caseOfClientCertificate(sock.getPeerX509Certificate()!) ?? '(none)';
    accepted.push(label);
    sock.end(`case ${label}`);
  });
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  return {
    port: (srv.address() as AddressInfo).port,
    accepted,
    unauthorized,
    close: () => new Promise<void>((res) => srv.close(() => res())),
  };
}

interface ClientResult {
  protocol: string | null;
  peerPin: string | undefined;
  data: string;
  error: string | undefined;
}

function connect(port: number, opts: tls.ConnectionOptions): Promise<ClientResult> {
  return new Promise((resolve) => {
    const r: ClientResult = { protocol: null, peerPin: undefined, data: '', error: undefined };
    const sock = tls.connect({ host: '127.0.0.1', port, minVersion: 'TLSv1.3', ...opts });
    sock.on('secureConnect', () => {
      r.protocol = sock.getProtocol();
      const peer = sock.getPeerX509Certificate();
      r.peerPin = peer === undefined ? undefined : spkiPin(peer);
    });
    sock.on('data', (d: Buffer) => (r.data += d.toString('utf8')));
    sock.on('error', (e: Error & { code?: string }) => (r.error = e.code ?? e.message));
    sock.on('close', () => resolve(r));
  });
}

test('TLS 1.3: self-signed server trusted by pin; client certificate from our CA accepted with its case', async () => {
  const s = await startServer(selfSigned);
  try {
    const r = await connect(s.port, { rejectUnauthorized: false, key: client.keyPem, cert: client.certPem });
    assert.equal(r.error, undefined);
    assert.equal(r.protocol, 'TLSv1.3');
    assert.equal(r.peerPin, spkiPin(selfSigned.certPem), 'the pin a sender computes from the live connection');
    assert.notEqual(r.peerPin, spkiPin(server.certPem), 'and it would not match another key');
    assert.equal(r.data, 'case CASE-2026-0042');
    assert.deepEqual(s.accepted, ['CASE-2026-0042']);
  } finally {
    await s.close();
  }
});

test('TLS 1.3: a client certificate from another CA (same CA name) and no certificate are refused', async () => {
  const s = await startServer(selfSigned);
  try {
    const foreign = await connect(s.port, { rejectUnauthorized: false, key: foreignClient.keyPem, cert: foreignClient.certPem });
    const none = await connect(s.port, { rejectUnauthorized: false });
    // In TLS 1.3 the client finishes its side before the server judges its certificate, so the refusal shows
    // as a connection that closes (or an alert) without one byte of application data.
    for (const r of [foreign, none]) assert.equal(r.data, '', 'no application data reaches a refused client');
    assert.equal(none.error, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    assert.deepEqual(s.accepted, [], 'the server never saw an authorised connection');
  } finally {
    await s.close();
  }
  // Why the foreign certificate was refused, from a server that reports instead of dropping.
  const diag = await startServer(selfSigned, false);
  try {
    await connect(diag.port, { rejectUnauthorized: false, key: foreignClient.keyPem, cert: foreignClient.certPem });
    await connect(diag.port, { rejectUnauthorized: false, key: client.keyPem, cert: client.certPem });
    assert.equal(diag.unauthorized.length, 1, diag.unauthorized.join(', '));
    assert.match(diag.unauthorized[0]!, /CERT_SIGNATURE_FAILURE|UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    assert.deepEqual(diag.accepted, ['CASE-2026-0042']);
  } finally {
    await diag.close();
  }
});

test('TLS 1.3: CA-issued server certificate passes hostname checks for its DNS and IP SANs only', async () => {
  const s = await startServer(server);
  try {
    const base = { ca: [ca.certPem], rejectUnauthorized: true, key: client.keyPem, cert: client.certPem };
    const byName = await connect(s.port, { ...base, servername: 'localhost' });
    assert.equal(byName.error, undefined);
    assert.equal(byName.data, 'case CASE-2026-0042');
    const byIp = await connect(s.port, base); // checked against the IP Address SAN 127.0.0.1
    assert.equal(byIp.error, undefined);
    const wrong = await connect(s.port, { ...base, servername: 'other.example' });
    assert.equal(wrong.error, 'ERR_TLS_CERT_ALTNAME_INVALID');
    const untrusted = await connect(s.port, { ...base, ca: [otherCa.certPem], servername: 'localhost' });
    assert.match(untrusted.error ?? '', /SELF_SIGNED_CERT_IN_CHAIN|CERT_SIGNATURE_FAILURE|UNABLE_TO_VERIFY/);
  } finally {
    await s.close();
  }
});
