/**
 * Detached Ed25519 signatures over the exact bytes of a report (REPORT.json.sig beside REPORT.json).
 *
 * The signature covers the file's bytes, not a re-serialised object, so any JSON reformatting breaks it on
 * purpose. The .sig file carries the public key so a signature can be checked for integrity alone, but a key
 * that travels with the signature proves nothing about who signed: authenticity needs `trusted` (the examiner's
 * public key PEM or its keyId), and the result says which of the two was established.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { MemdumpError } from '../core/errors.js';

export const SIGNATURE_FORMAT = 'memdump-signature/1';

/** A .sig file is a few hundred bytes; anything far larger is not one and is refused before JSON.parse. */
const MAX_SIG_TEXT = 64 * 1024;
const ED25519_SIG_BYTES = 64;
const KEY_ID = /^sha256:[0-9a-f]{64}$/;

export interface SignatureFile {
  format: typeof SIGNATURE_FORMAT;
  algorithm: 'ed25519';
  keyId: string;
  publicKey: string;
  signature: string;
}

export function generateSigningKey(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privatePem: privateKey, publicPem: publicKey };
}

function keyIdOfSpki(spkiDer: Buffer): string {
  return 'sha256:' + createHash('sha256').update(spkiDer).digest('hex');
}

export function loadSigningKey(pem: string): KeyObject {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN')) {
    throw new MemdumpError('E_USAGE', 'the signing key is not a PEM file (expected "-----BEGIN PRIVATE KEY-----", from openssl genpkey -algorithm ed25519)');
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(pem)) {
    // Prompting for a passphrase would stall an unattended acquisition; the examiner decrypts the key beforehand.
    throw new MemdumpError('E_USAGE', 'the signing key is encrypted; memdump does not prompt for passphrases. Write a decrypted copy to protected storage first: openssl pkey -in KEY.pem -out KEY.plain.pem');
  }
  if (/-----BEGIN PUBLIC KEY-----/.test(pem) && !/-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----/.test(pem)) {
    throw new MemdumpError('E_USAGE', 'the signing key is a public key; signing needs the private key (the public one is for memdump verify --trusted-key)');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e) {
    throw new MemdumpError('E_USAGE', `the signing key cannot be read: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new MemdumpError('E_USAGE', `the signing key is ${key.asymmetricKeyType ?? 'unknown'}, not Ed25519; make one with: openssl genpkey -algorithm ed25519 -out sign.pem`, {
      details: { keyType: key.asymmetricKeyType ?? null },
    });
  }
  return key;
}

export function signReport(reportBytes: Buffer, key: KeyObject): string {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') {
    throw new MemdumpError('E_USAGE', 'signReport needs an Ed25519 private key (loadSigningKey)');
  }
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const file: SignatureFile = {
    format: SIGNATURE_FORMAT,
    algorithm: 'ed25519',
    keyId: keyIdOfSpki(spki),
    publicKey: spki.toString('base64'),
    signature: sign(null, reportBytes, key).toString('base64'),
  };
  return JSON.stringify(file, null, 2) + '\n';
}

export function keyIdOf(publicKeyPem: string): string {
  let pub: KeyObject;
  try {
    pub = createPublicKey(publicKeyPem);
  } catch (e) {
    throw new MemdumpError('E_USAGE', 'not a public key PEM', { cause: e });
  }
  return keyIdOfSpki(pub.export({ type: 'spki', format: 'der' }));
}

function bad(message: string, details: Record<string, unknown> = {}): MemdumpError {
  return new MemdumpError('E_SIGNATURE', message, { details });
}

/** Canonical base64 only: Buffer.from(…, 'base64') skips junk silently, which would let two texts mean one key. */
function strictBase64(v: unknown, field: string): Buffer {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_SIG_TEXT) throw bad(`signature file: ${field} is missing`);
  const b = Buffer.from(v, 'base64');
  if (b.toString('base64') !== v) throw bad(`signature file: ${field} is not canonical base64`);
  return b;
}

function parseSignatureFile(sigText: string): { spki: Buffer; pub: KeyObject; keyId: string; signature: Buffer } {
  if (typeof sigText !== 'string' || sigText.length > MAX_SIG_TEXT) throw bad('signature file is not a memdump signature (too large)');
  let o: unknown;
  try {
    o = JSON.parse(sigText);
  } catch {
    throw bad('signature file is not JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad('signature file is not a JSON object');
  const f = o as Record<string, unknown>;
  if (f['format'] !== SIGNATURE_FORMAT) throw bad(`signature file format is not ${SIGNATURE_FORMAT}`, { format: String(f['format']).slice(0, 64) });
  if (f['algorithm'] !== 'ed25519') throw bad('signature algorithm is not ed25519', { algorithm: String(f['algorithm']).slice(0, 64) });
  const spki = strictBase64(f['publicKey'], 'publicKey');
  const signature = strictBase64(f['signature'], 'signature');
  if (signature.length !== ED25519_SIG_BYTES) throw bad(`signature is ${signature.length} bytes, not ${ED25519_SIG_BYTES}`);
  let pub: KeyObject;
  try {
    pub = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw bad('signature file: publicKey is not a SubjectPublicKeyInfo');
  }
  if (pub.asymmetricKeyType !== 'ed25519') throw bad('signature file: publicKey is not an Ed25519 key');
  const keyId = keyIdOfSpki(spki);
  // keyId is derived, but it is what people compare by eye and pass to --trusted-key, so it must agree.
  if (f['keyId'] !== keyId) throw bad('signature file: keyId does not match its publicKey', { keyId: String(f['keyId']).slice(0, 80), computed: keyId });
  return { spki, pub, keyId, signature };
}

/** keyIds of the trusted list; a bad entry is the caller's mistake (E_USAGE), not a bad signature. */
function trustedIds(trusted: readonly string[]): Set<string> {
  const ids = new Set<string>();
  for (const t of trusted) {
    const s = typeof t === 'string' ? t.trim() : '';
    if (KEY_ID.test(s.toLowerCase())) ids.add(s.toLowerCase());
    else if (s.includes('-----BEGIN')) ids.add(keyIdOf(s));
    else throw new MemdumpError('E_USAGE', `trusted key ${JSON.stringify(s.slice(0, 80))} is neither a public key PEM nor a keyId (sha256:<64 hex>)`);
  }
  return ids;
}

export function verifyReportSignature(reportBytes: Buffer, sigText: string, trusted?: readonly string[]): { keyId: string; trusted: boolean } {
  const ids = trusted === undefined ? undefined : trustedIds(trusted);
  const sig = parseSignatureFile(sigText);
  if (!verify(null, reportBytes, sig.pub, sig.signature)) {
    throw bad(`the report does not match its signature (key ${sig.keyId}): it was changed after signing, or the .sig belongs to another report`, { keyId: sig.keyId });
  }
  if (ids === undefined) return { keyId: sig.keyId, trusted: false };
  if (!ids.has(sig.keyId)) {
    throw bad(`the report is signed by key ${sig.keyId}, which is not among the ${ids.size} trusted key(s)`, { keyId: sig.keyId, trusted: [...ids] });
  }
  return { keyId: sig.keyId, trusted: true };
}
