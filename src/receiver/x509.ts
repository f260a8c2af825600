/**
 * Certificates for `memdump receive` and its senders: a private CA, server certificates (self-signed or issued
 * by the CA) and client certificates that bind a case label. ECDSA P-256 with SHA-256 throughout, because every
 * TLS stack accepts it and keys are generated in a millisecond.
 *
 * Built with our own DER writer (./der.ts) after RFC 5280. The receiver relies on two things here being exact:
 * the SPKI pin (hashed over the certificate's own SubjectPublicKeyInfo bytes, so it equals the value curl and
 * HPKP compute) and the case label in the client certificate's subject OU (read back from the DER, not from
 * Node's printable subject string, which escapes and joins values and so can be ambiguous).
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { corrupt } from '../core/bytes.js';
import { MemdumpError, isMemdumpError } from '../core/errors.js';
import {
  TAG, bitString, boolean, children, contentOf, expectTlv, explicit, implicit, integer, namedBits, octetString, oid, rawOf,
  decodeOid, sequence, setOf, unsignedInteger, utf8String, x509Time,
} from './der.js';

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

const OID = {
  commonName: '2.5.4.3', organizationalUnit: '2.5.4.11', ecdsaWithSha256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14', keyUsage: '2.5.29.15', subjectAltName: '2.5.29.17', basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35', extKeyUsage: '2.5.29.37', serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** KeyUsage bit numbers (RFC 5280 4.2.1.3). */
const KU = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

/** ub-common-name and ub-organizational-unit-name (RFC 5280 appendix A.1), counted in characters. */
const MAX_NAME_CHARS = 64;
const MAX_DAYS = 36500;
const BACKDATE_MS = 5 * 60 * 1000;
const DAY_MS = 86_400_000;

export interface Extension { oid: string; critical: boolean; value: Buffer }

// ---------------------------------------------------------------- input checks

function checkLabel(what: string, s: unknown): string {
  if (typeof s !== 'string' || s.length === 0) throw new MemdumpError('E_USAGE', `${what} must be a non-empty string`);
  // C0, DEL and C1 controls: a name that can move a terminal cursor or split a log line is refused, not escaped.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(s)) throw new MemdumpError('E_USAGE', `${what} contains a control character`);
  if (/\p{Cs}/u.test(s)) throw new MemdumpError('E_USAGE', `${what} contains a lone surrogate (not valid Unicode)`);
  if ([...s].length > MAX_NAME_CHARS) throw new MemdumpError('E_USAGE', `${what} is longer than ${MAX_NAME_CHARS} characters`);
  return s;
}

function checkDays(days: unknown): number {
  if (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new MemdumpError('E_USAGE', `certificate lifetime must be 1–${MAX_DAYS} days, not ${String(days)}`);
  }
  return days;
}

const DNS_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DNS_NAME = new RegExp(`^(?:\\*\\.)?${DNS_LABEL}(?:\\.${DNS_LABEL})*$`, 'i');

function ipv4Bytes(s: string): Buffer {
  return Buffer.from(s.split('.').map((p) => Number(p)));
}

function ipv6Bytes(s: string): Buffer {
  let text = s;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail.push(...ipv4Bytes(text.slice(lastColon + 1)));
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head = '', rest] = text.split('::') as [string, string | undefined];
  const words = (part: string): number[] => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const left = words(head);
  const right = rest === undefined ? [] : words(rest);
  const all = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  if (tail.length === 4) Buffer.from(tail).copy(out, 12);
  return out;
}

/** GeneralName for one host: iPAddress [7] for literals (4 or 16 octets), dNSName [2] otherwise. */
function generalName(host: unknown): Buffer {
  if (typeof host !== 'string' || host.length === 0) throw new MemdumpError('E_USAGE', 'a certificate host must be a non-empty string');
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = isIP(bare);
  if (family !== 0 && bare.includes('%')) throw new MemdumpError('E_USAGE', `${JSON.stringify(host)}: an address with a zone cannot be in a certificate`);
  if (family === 4) return implicit(7, ipv4Bytes(bare));
  if (family === 6) return implicit(7, ipv6Bytes(bare));
  if (host.length > 253 || !DNS_NAME.test(host)) {
    throw new MemdumpError('E_USAGE', `${JSON.stringify(host)} is neither an IP address nor a DNS name (letters, digits, hyphens; IDNs in punycode)`);
  }
  return implicit(2, Buffer.from(host.toLowerCase(), 'latin1'));
}

// ---------------------------------------------------------------- reading our own (and the issuer's) DER

export interface CertificateFields { subject: Buffer; subjectPublicKeyInfo: Buffer; extensions: Extension[] }

/** The raw fields of a certificate that Node's X509Certificate does not expose as bytes. */
export function readCertificate(der: Buffer): CertificateFields {
  const cert = expectTlv(der, 0, TAG.SEQUENCE, der.length, 'Certificate');
  if (cert.end !== der.length) throw corrupt('bytes after the certificate', BigInt(cert.end));
  const [tbs] = children(der, cert);
  if (tbs === undefined || tbs.tag !== TAG.SEQUENCE) throw corrupt('TBSCertificate missing', BigInt(cert.contentStart));
  const f = children(der, tbs);
  const at = f[0]?.tag === 0xa0 ? 1 : 0; // [0] version is absent in v1 certificates
  const subject = f[at + 4];
  const spki = f[at + 5];
  if (subject?.tag !== TAG.SEQUENCE || spki?.tag !== TAG.SEQUENCE) throw corrupt('TBSCertificate lacks subject or key', BigInt(tbs.start));
  const extensions: Extension[] = [];
  const wrapper = f.slice(at + 6).find((t) => t.tag === 0xa3);
  if (wrapper !== undefined) {
    const [list] = children(der, wrapper);
    if (list === undefined || list.tag !== TAG.SEQUENCE) throw corrupt('Extensions missing', BigInt(wrapper.start));
    for (const ext of children(der, list)) {
      const parts = children(der, ext);
      const id = parts[0];
      const value = parts[parts.length - 1];
      if (id?.tag !== TAG.OID || value?.tag !== TAG.OCTET_STRING) throw corrupt('malformed Extension', BigInt(ext.start));
      const crit = parts.length === 3 && parts[1]?.tag === TAG.BOOLEAN && der[parts[1].contentStart] === 0xff;
      extensions.push({ oid: decodeOid(contentOf(der, id), id.contentStart), critical: crit, value: Buffer.from(contentOf(der, value)) });
    }
  }
  return { subject: Buffer.from(rawOf(der, subject)), subjectPublicKeyInfo: Buffer.from(rawOf(der, spki)), extensions };
}

/** RFC 5280 4.2.1.2 method (1): SHA-1 over the subjectPublicKey bits. An identifier, not a security property. */
function keyIdentifier(spki: Buffer): Buffer {
  const outer = expectTlv(spki, 0, TAG.SEQUENCE);
  const bits = children(spki, outer)[1];
  if (bits?.tag !== TAG.BIT_STRING) throw corrupt('SubjectPublicKeyInfo without a key', 0n);
  return createHash('sha1').update(spki.subarray(bits.contentStart + 1, bits.end)).digest();
}

// ---------------------------------------------------------------- writing

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function name(rdns: readonly (readonly [string, string])[]): Buffer {
  return sequence(...rdns.map(([type, value]) => setOf(sequence(oid(type), utf8String(value)))));
}

function serialNumber(): Buffer {
  for (;;) {
    const b = randomBytes(16);
    if (b.some((x) => x !== 0)) return unsignedInteger(b); // a leading 00 is added when the high bit is set
  }
}

/** Who signs: the issuer Name to copy, its key, its key identifier (for AKI) and the end of its validity. */
interface Signer { name: Buffer; key: KeyObject; keyId: Buffer; notAfter?: Date }

function newKey(): { key: KeyObject; keyPem: string; spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { key: privateKey, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, spki: publicKey.export({ type: 'spki', format: 'der' }) };
}

function issue(subject: Buffer, spki: Buffer, days: number, signer: Signer, extensions: readonly Extension[]): string {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const notBefore = new Date(now - BACKDATE_MS);
  let notAfter = new Date(now + days * DAY_MS);
  if (signer.notAfter !== undefined && notAfter > signer.notAfter) notAfter = signer.notAfter; // never outlive the CA
  const algorithm = sequence(oid(OID.ecdsaWithSha256)); // parameters absent (RFC 5758 3.2)
  const encoded = extensions.map((e) => sequence(oid(e.oid), ...(e.critical ? [boolean(true)] : []), octetString(e.value)));
  const validity = sequence(x509Time(notBefore), x509Time(notAfter));
  const tbs = sequence(explicit(0, integer(2n)) /* v3 */, serialNumber(), algorithm, signer.name, validity, subject, spki, explicit(3, sequence(...encoded)));
  const signature = cryptoSign('sha256', tbs, { key: signer.key, dsaEncoding: 'der' });
  return pem('CERTIFICATE', sequence(tbs, algorithm, bitString(signature)));
}

function signerFrom(issuer: KeyAndCert): Signer {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(issuer.certPem);
  } catch (e) {
    throw new MemdumpError('E_USAGE', 'the issuing certificate cannot be parsed', { cause: e });
  }
  try {
    key = createPrivateKey(issuer.keyPem);
  } catch (e) {
    throw new MemdumpError('E_USAGE', 'the issuing private key cannot be read (PKCS#8 PEM, unencrypted)', { cause: e });
  }
  if (!cert.ca) throw new MemdumpError('E_USAGE', 'the issuing certificate is not a CA certificate (basicConstraints CA:TRUE)');
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new MemdumpError('E_USAGE', 'the issuing key must be an ECDSA P-256 key');
  }
  const fields = readCertificate(cert.raw);
  const pub = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!pub.equals(fields.subjectPublicKeyInfo)) throw new MemdumpError('E_USAGE', 'the issuing key does not belong to the issuing certificate');
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() <= Date.now()) throw new MemdumpError('E_USAGE', `the issuing certificate expired on ${cert.validTo}`);
  const ski = fields.extensions.find((e) => e.oid === OID.subjectKeyIdentifier);
  let keyId = keyIdentifier(fields.subjectPublicKeyInfo);
  if (ski !== undefined) {
    const inner = expectTlv(ski.value, 0, TAG.OCTET_STRING, ski.value.length, 'subjectKeyIdentifier');
    keyId = Buffer.from(contentOf(ski.value, inner));
  }
  // The issuer field must repeat the CA's subject byte for byte: chain building compares names.
  return { name: fields.subject, key, keyId, notAfter };
}

const ext = (id: string, critical: boolean, value: Buffer): Extension => ({ oid: id, critical, value });
const eku = (purpose: string): Extension => ext(OID.extKeyUsage, false, sequence(oid(purpose)));
const notCa = (): Extension => ext(OID.basicConstraints, true, sequence()); // cA DEFAULT FALSE is omitted in DER
const ski = (spki: Buffer): Extension => ext(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(spki)));
const signingOnly = (): Extension => ext(OID.keyUsage, true, namedBits([KU.digitalSignature]));
const aki = (s: Signer): Extension => ext(OID.authorityKeyIdentifier, false, sequence(implicit(0, s.keyId)));

export function createCertificateAuthority(opts: { cn: string; days: number }): KeyAndCert {
  const cn = checkLabel('CA common name', opts.cn);
  const days = checkDays(opts.days);
  const k = newKey();
  const subject = name([[OID.commonName, cn]]);
  const self: Signer = { name: subject, key: k.key, keyId: keyIdentifier(k.spki) };
  const certPem = issue(subject, k.spki, days, self, [
    ext(OID.basicConstraints, true, sequence(boolean(true), integer(0n))),
    ext(OID.keyUsage, true, namedBits([KU.keyCertSign, KU.cRLSign])),
    ski(k.spki),
  ]);
  return { keyPem: k.keyPem, certPem };
}

export function createServerCertificate(opts: { cn: string; hosts: readonly string[]; days: number; issuer?: KeyAndCert }): KeyAndCert {
  const cn = checkLabel('server common name', opts.cn);
  const days = checkDays(opts.days);
  if (!Array.isArray(opts.hosts)) throw new MemdumpError('E_USAGE', 'hosts must be a list');
  const sans = [...new Map(opts.hosts.map((h) => generalName(h)).map((g) => [g.toString('hex'), g])).values()];
  const k = newKey();
  const subject = name([[OID.commonName, cn]]);
  const signer = opts.issuer === undefined ? { name: subject, key: k.key, keyId: keyIdentifier(k.spki) } : signerFrom(opts.issuer);
  const altNames = sans.length > 0 ? [ext(OID.subjectAltName, false, sequence(...sans))] : [];
  const extensions = [notCa(), signingOnly(), eku(OID.serverAuth), ...altNames, ski(k.spki), ...(opts.issuer === undefined ? [] : [aki(signer)])];
  return { keyPem: k.keyPem, certPem: issue(subject, k.spki, days, signer, extensions) };
}

export function createClientCertificate(opts: { cn: string; caseLabel: string; days: number; issuer: KeyAndCert }): KeyAndCert {
  const cn = checkLabel('client common name', opts.cn);
  const caseLabel = checkLabel('case label', opts.caseLabel);
  const days = checkDays(opts.days);
  const signer = signerFrom(opts.issuer);
  const k = newKey();
  const subject = name([[OID.organizationalUnit, caseLabel], [OID.commonName, cn]]);
  const certPem = issue(subject, k.spki, days, signer, [notCa(), signingOnly(), eku(OID.clientAuth), ski(k.spki), aki(signer)]);
  return { keyPem: k.keyPem, certPem };
}

// ---------------------------------------------------------------- reading peers' certificates

export function spkiPin(cert: string | Buffer | X509Certificate): string {
  let x: X509Certificate;
  try {
    x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  } catch (e) {
    throw new MemdumpError('E_CORRUPT', 'not an X.509 certificate (PEM or DER)', { cause: e });
  }
  const spki = readCertificate(x.raw).subjectPublicKeyInfo;
  return 'sha256/' + createHash('sha256').update(spki).digest('base64');
}

/**
 * The subject OU, when there is exactly one and it is a UTF8String or PrintableString free of control
 * characters. Anything else (none, two, another string type) yields undefined so the caller refuses the case
 * binding instead of guessing.
 */
export function caseOfClientCertificate(cert: X509Certificate): string | undefined {
  try {
    const subject = readCertificate(cert.raw).subject;
    const found: string[] = [];
    for (const rdn of children(subject, expectTlv(subject, 0, TAG.SEQUENCE))) {
      for (const atv of children(subject, rdn)) {
        const [type, value] = children(subject, atv);
        if (type?.tag !== TAG.OID || value === undefined) return undefined;
        if (decodeOid(contentOf(subject, type)) !== OID.organizationalUnit) continue;
        if (value.tag !== TAG.UTF8_STRING && value.tag !== TAG.PRINTABLE_STRING) return undefined;
        found.push(new TextDecoder('utf-8', { fatal: true }).decode(contentOf(subject, value)));
      }
    }
    const [only] = found;
    if (found.length !== 1 || only === undefined || only.length === 0 || /[\u0000-\u001f\u007f-\u009f]/.test(only)) return undefined;
    return only;
  } catch (e) {
    if (isMemdumpError(e) || e instanceof TypeError) return undefined; // TypeError: invalid UTF-8
    throw e;
  }
}
