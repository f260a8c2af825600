import {
  type KeyObject,
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { MemdumpError } from '../core/errors.js';
import { bech32Decode, bech32Encode } from './bech32.js';

/**
 * age v1 (age-encryption.org/v1) with X25519 recipients only: keys, the header (stanzas + HMAC) and the STREAM
 * payload primitives. Everything is Node's OpenSSL; nothing here keeps state between files.
 */

export interface AgeRecipient {
  readonly publicKey: Buffer;
  readonly text: string;
}
export interface AgeIdentity {
  readonly secretKey: Buffer;
  readonly recipient: AgeRecipient;
}
export interface Stanza {
  readonly args: readonly string[];
  readonly body: Buffer;
}

export const VERSION_LINE = 'age-encryption.org/v1';
export const CHUNK_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
export const NONCE_SIZE = 16;
const FILE_KEY_SIZE = 16;
const X25519_LABEL = 'age-encryption.org/v1/X25519';
const RECIPIENT_HRP = 'age';
const IDENTITY_HRP = 'age-secret-key-';
// DER wrappers that turn a raw 32-byte X25519 key into something createPrivateKey/createPublicKey accept.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

// ---- base64 as age wants it: standard alphabet, no padding, canonical only

const B64_LINE = /^[A-Za-z0-9+/]*$/;

export function b64encode(b: Buffer): string {
  return b.toString('base64').replace(/=+$/, '');
}

/** undefined for anything non-canonical: Node's decoder is lenient (skips junk, accepts padding and stray bits). */
export function b64decode(s: string): Buffer | undefined {
  if (!B64_LINE.test(s) || s.length % 4 === 1) return undefined;
  const b = Buffer.from(s, 'base64');
  return b64encode(b) === s ? b : undefined;
}

// ---- primitives

function hkdf(ikm: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));
}

function privateKeyObject(secret: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secret]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(point: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, point]), format: 'der', type: 'spki' });
}

/** X25519(scalar, point); undefined when the result is all zeros (a low-order point: the spec says abort). */
function x25519(secret: Buffer, point: Buffer): Buffer | undefined {
  let shared: Buffer;
  try {
    // OpenSSL refuses low-order points itself; either way the stanza is unusable
    shared = diffieHellman({ privateKey: privateKeyObject(secret), publicKey: publicKeyObject(point) });
  } catch {
    return undefined;
  }
  return shared.every((b) => b === 0) ? undefined : shared;
}

function publicOf(secret: Buffer): Buffer {
  const spki = createPublicKey(privateKeyObject(secret)).export({ format: 'der', type: 'spki' });
  return Buffer.from(spki.subarray(spki.length - 32));
}

function aead(key: Buffer, nonce: Buffer, plain: Buffer): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_SIZE });
  const out = c.update(plain);
  c.final();
  return Buffer.concat([out, c.getAuthTag()]);
}

/** undefined when the tag does not verify. */
function aeadOpen(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length < TAG_SIZE) return undefined;
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_SIZE });
  d.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  const out = d.update(sealed.subarray(0, sealed.length - TAG_SIZE));
  try {
    d.final();
  } catch {
    return undefined;
  }
  return out;
}

// ---- keys

function recipientOf(publicKey: Buffer): AgeRecipient {
  return { publicKey, text: bech32Encode(RECIPIENT_HRP, publicKey) };
}

export function parseRecipient(text: string): AgeRecipient {
  const t = text.trim();
  if (/^ssh-(ed25519|rsa)\b/.test(t)) throw new MemdumpError('E_USAGE', 'SSH recipients are not supported by --recipient: use an age X25519 recipient (age1…, from age-keygen)');
  const sep = t.lastIndexOf('1');
  const hrp = sep > 0 ? t.slice(0, sep).toLowerCase() : '';
  if (hrp.startsWith('age1')) {
    throw new MemdumpError('E_USAGE', `age plugin / post-quantum recipients (${hrp}1…) are not supported: use an age X25519 recipient (age1…, from age-keygen)`);
  }
  let decoded: { hrp: string; data: Buffer };
  try {
    decoded = bech32Decode(t);
  } catch (e) {
    throw new MemdumpError('E_USAGE', `not an age recipient: ${e instanceof Error ? e.message : String(e)} (expected age1…, from age-keygen)`, { cause: e });
  }
  if (decoded.hrp !== RECIPIENT_HRP || decoded.data.length !== 32) {
    throw new MemdumpError('E_USAGE', 'not an age X25519 recipient: expected age1… carrying a 32-byte key (from age-keygen)');
  }
  return recipientOf(decoded.data);
}

function identityFromSecret(secretKey: Buffer): AgeIdentity {
  return { secretKey, recipient: recipientOf(publicOf(secretKey)) };
}

/** The age-keygen file format. Error messages name lines, never their content: they hold secrets. */
export function parseIdentities(fileText: string): AgeIdentity[] {
  const out: AgeIdentity[] = [];
  const lines = fileText.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('AGE-PLUGIN-') || line.startsWith('AGE-SECRET-KEY-PQ-')) {
      throw new MemdumpError('E_USAGE', `identity file line ${i + 1}: plugin and post-quantum identities are not supported (X25519 AGE-SECRET-KEY-1… only)`);
    }
    if (line.startsWith('-----BEGIN')) {
      throw new MemdumpError('E_USAGE', `identity file line ${i + 1}: SSH/PEM keys are not supported (use an age-keygen identity file)`);
    }
    let decoded: { hrp: string; data: Buffer } | undefined;
    try {
      decoded = bech32Decode(line);
    } catch {
      decoded = undefined;
    }
    if (!decoded || decoded.hrp !== IDENTITY_HRP || decoded.data.length !== 32) {
      throw new MemdumpError('E_USAGE', `identity file line ${i + 1} is not an age X25519 identity (AGE-SECRET-KEY-1…)`);
    }
    out.push(identityFromSecret(decoded.data));
  }
  if (out.length === 0) throw new MemdumpError('E_USAGE', 'no age identity (AGE-SECRET-KEY-1…) found in the identity file');
  return out;
}

export function generateIdentity(): { identity: string; recipient: string } {
  const { privateKey } = generateKeyPairSync('x25519');
  const d = privateKey.export({ format: 'jwk' }).d;
  if (typeof d !== 'string') throw new MemdumpError('E_INTERNAL', 'x25519 key export failed');
  const secret = Buffer.from(d, 'base64url');
  return { identity: bech32Encode(IDENTITY_HRP, secret).toUpperCase(), recipient: identityFromSecret(secret).recipient.text };
}

// ---- stanzas and header

export function wrapFileKey(fileKey: Buffer, recipient: AgeRecipient): Stanza {
  const eph = randomBytes(32);
  const share = publicOf(eph);
  const shared = x25519(eph, recipient.publicKey);
  // only a low-order recipient key gives zeros; parseRecipient cannot tell, so refuse here
  if (!shared) throw new MemdumpError('E_USAGE', `age recipient ${recipient.text} is not a usable X25519 public key`);
  const key = hkdf(shared, Buffer.concat([share, recipient.publicKey]), X25519_LABEL);
  return { args: ['X25519', b64encode(share)], body: aead(key, Buffer.alloc(12), fileKey) };
}

export function decryptError(message: string, details: Record<string, unknown> = {}): MemdumpError {
  return new MemdumpError('E_DECRYPT', message, { details });
}

/**
 * The file key from an X25519 stanza this identity can open; undefined for a stanza of another type or for
 * another identity. A malformed X25519 stanza is an error (spec: MUST reject), not a miss.
 */
export function unwrapFileKey(stanza: Stanza, identity: AgeIdentity): Buffer | undefined {
  if (stanza.args[0] !== 'X25519') return undefined;
  const share = stanza.args.length === 2 ? b64decode(stanza.args[1] ?? '') : undefined;
  if (!share || share.length !== 32) throw decryptError('malformed X25519 stanza in the age header (bad ephemeral share)');
  if (stanza.body.length !== FILE_KEY_SIZE + TAG_SIZE) throw decryptError('malformed X25519 stanza in the age header (body is not 32 bytes)');
  const shared = x25519(identity.secretKey, share);
  if (!shared) throw decryptError('X25519 stanza with a low-order ephemeral share in the age header');
  const key = hkdf(shared, Buffer.concat([share, identity.recipient.publicKey]), X25519_LABEL);
  return aeadOpen(key, Buffer.alloc(12), stanza.body);
}

export function encodeStanza(s: Stanza): string {
  const b = b64encode(s.body);
  let out = `-> ${s.args.join(' ')}\n`;
  // always end with a line shorter than 64 columns, empty when the body fills whole lines
  for (let i = 0; i <= b.length; i += 64) out += b.slice(i, i + 64) + '\n';
  return out;
}

export function headerMac(fileKey: Buffer, macInput: Buffer): Buffer {
  return createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header')).update(macInput).digest();
}

export function verifyHeaderMac(fileKey: Buffer, macInput: Buffer, mac: Buffer): boolean {
  const want = headerMac(fileKey, macInput);
  return want.length === mac.length && timingSafeEqual(want, mac);
}

/** The whole textual header, MAC line included, for a fresh file key. */
export function encodeHeader(fileKey: Buffer, recipients: readonly AgeRecipient[]): Buffer {
  let text = VERSION_LINE + '\n';
  for (const r of recipients) text += encodeStanza(wrapFileKey(fileKey, r));
  const macInput = Buffer.from(text + '---', 'latin1');
  return Buffer.concat([macInput, Buffer.from(` ${b64encode(headerMac(fileKey, macInput))}\n`, 'latin1')]);
}

/** Exact header length for n X25519 recipients: every variable part is fixed-width base64. */
export function headerSize(recipients: number): number {
  return VERSION_LINE.length + 1 + recipients * (3 + 7 + 43 + 1 + 43 + 1) + 4 + 43 + 1;
}

export function newFileKey(): Buffer {
  return randomBytes(FILE_KEY_SIZE);
}

// ---- STREAM payload

export function payloadKey(fileKey: Buffer, nonce: Buffer): Buffer {
  return hkdf(fileKey, nonce, 'payload');
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  // 11-byte big-endian counter; 2^53 chunks is far beyond anything we write
  n.writeUIntBE(Math.floor(counter / 2 ** 32), 3, 4);
  n.writeUInt32BE(counter >>> 0, 7);
  n[11] = last ? 1 : 0;
  return n;
}

export function sealChunk(key: Buffer, counter: number, last: boolean, plain: Buffer): Buffer {
  return aead(key, chunkNonce(counter, last), plain);
}

/** undefined when the tag does not verify under this (counter, last). */
export function openChunk(key: Buffer, counter: number, last: boolean, sealed: Buffer): Buffer | undefined {
  return aeadOpen(key, chunkNonce(counter, last), sealed);
}
