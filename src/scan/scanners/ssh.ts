/**
 * OpenSSH keys. Private: "-----BEGIN OPENSSH PRIVATE KEY-----" blocks whose body decodes to the openssh-key-v1
 * format (PROTOCOL.key: it starts with the magic "openssh-key-v1\0"); encrypted ones have the same magic, so they
 * are reported too. Public: "<type> <base64 blob>" as in authorized_keys, known_hosts and *.pub, where the blob
 * (RFC 4253 §6.6) starts with the key type as a length-prefixed string — a check random base64 never passes.
 * The public feature is type, the spaces or tabs as found (one, usually; hand-edited files have more) and blob;
 * the comment after it is context. Private keys are read like PEM blocks (readPemBlock): also inside JSON strings
 * with escaped line ends, and indented.
 */
import type { Scanner } from '../types.js';
import { MAX_FEATURE_LENGTH } from '../types.js';
import { emitInOrder, type Hit, isAlnum, isB64, readPemBlock, strictBase64 } from './secret-common.js';

const PRIVATE_BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const PRIVATE_LABEL = 'OPENSSH PRIVATE KEY';
const MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');

/**
 * Key types at a boundary, then spaces or tabs and a blob that must begin "AAAA" (its first length byte is 0).
 * The embedded "ssh-"/"ecdsa-" of an sk- (FIDO) type is rejected by the boundary check ('-' before it).
 */
const PUBLIC =
  /(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)[ \t]{1,8}(AAAA[A-Za-z0-9+/]{8,8192}={0,2})/y;
const ANCHORS: [string, number[]][] = [['sh-', [1, 4]], ['a-sha2-nistp', [4, 7]]];

/** Length-prefixed strings in a public key blob after the type (RFC 4253 §6.6, RFC 5656 §3.1, PROTOCOL.u2f). */
const FIELDS: Record<string, number> = {
  'ssh-ed25519': 1,
  'ssh-rsa': 2,
  'ssh-dss': 4,
  'ecdsa-sha2-nistp256': 2,
  'ecdsa-sha2-nistp384': 2,
  'ecdsa-sha2-nistp521': 2,
  'sk-ssh-ed25519@openssh.com': 2,
  'sk-ecdsa-sha2-nistp256@openssh.com': 3,
};

/**
 * The blob must be exactly the type string and the type's fields, each length-prefixed, and nothing after: a cut
 * or padded blob, or one of another type, is not a key.
 */
function blobMatches(blob: string, type: string): boolean {
  const b = strictBase64(blob);
  if (b === undefined || b.length < 4 + type.length) return false;
  if (b.readUInt32BE(0) !== type.length || b.toString('latin1', 4, 4 + type.length) !== type) return false;
  let at = 4 + type.length;
  const fields = FIELDS[type] ?? 0;
  for (let f = 0; f < fields; f++) {
    if (at + 4 > b.length) return false;
    const n = b.readUInt32BE(at);
    if (n > b.length - at - 4) return false;
    if (f === 0 && type.endsWith('ed25519') && n !== 32) return false;
    at += 4 + n;
  }
  return at === b.length;
}

export const sshScanner: Scanner = {
  name: 'ssh',
  kinds: ['ssh-private-key', 'ssh-public-key'],
  description: 'OpenSSH private keys (openssh-key-v1) and public keys (type + blob, blob checked against the type)',
  scan(text, emit) {
    const hits: Hit[] = [];
    for (let i = text.indexOf(PRIVATE_BEGIN); i >= 0; i = text.indexOf(PRIVATE_BEGIN, i + 11)) {
      const block = readPemBlock(text, i + PRIVATE_BEGIN.length, PRIVATE_LABEL, MAX_FEATURE_LENGTH - PRIVATE_BEGIN.length);
      if (block === undefined) continue;
      const body = strictBase64(block.body);
      if (body === undefined || block.headers || body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) continue;
      hits.push({ kind: 'ssh-private-key', start: i, end: block.end });
      i = block.end - 11;
    }
    // Two anchors cover every type: "sh-" (ssh-*, sk-ssh-*) and "a-sha2-nistp" (ecdsa-*, sk-ecdsa-*). The type
    // starts 1 or 4 chars before the first, 4 or 7 before the second; PUBLIC decides which, if any.
    for (const [anchor, back] of ANCHORS) {
      for (let a = text.indexOf(anchor); a >= 0; a = text.indexOf(anchor, a + 1)) {
        for (const b of back) {
          const i = a - b;
          if (i < 0) continue;
          const prev = text.charCodeAt(i - 1);
          if (isAlnum(prev) || prev === 45 || prev === 95 || prev === 46 || prev === 64) continue;
          PUBLIC.lastIndex = i;
          const m = PUBLIC.exec(text);
          if (m === null) continue;
          const end = i + m[0].length;
          if (isB64(text.charCodeAt(end)) || text.charCodeAt(end) === 61) continue;
          if (!blobMatches(m[2] ?? '', m[1] ?? '')) continue;
          hits.push({ kind: 'ssh-public-key', start: i, end });
          a = end;
          break;
        }
      }
    }
    emitInOrder(hits, emit);
  },
};
