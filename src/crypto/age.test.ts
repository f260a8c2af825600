import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { Prng } from '../../test/helpers/prng.js';
import {
  CHUNK_SIZE,
  TAG_SIZE,
  b64decode,
  b64encode,
  encodeHeader,
  encodeStanza,
  generateIdentity,
  headerMac,
  headerSize,
  newFileKey,
  openChunk,
  parseIdentities,
  parseRecipient,
  payloadKey,
  sealChunk,
  unwrapFileKey,
  verifyHeaderMac,
  wrapFileKey,
} from './age.js';
import { HeaderParser } from './age-decrypt.js';
import { bech32Encode } from './bech32.js';

// the key pair printed in the age spec (C2SP age.md, "The X25519 recipient type")
const SPEC_IDENTITY = 'AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX';
const SPEC_RECIPIENT = 'age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj';

function usage(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof MemdumpError && e.code === 'E_USAGE' && re.test(e.message));
}

test('keys: the spec identity derives the spec recipient', () => {
  const [id] = parseIdentities(`# created: 2019-12-27T00:00:00Z\n# public key: ${SPEC_RECIPIENT}\n${SPEC_IDENTITY}\n`);
  assert.ok(id);
  assert.equal(id.secretKey.toString('hex'), '42'.repeat(32));
  assert.equal(id.recipient.text, SPEC_RECIPIENT);
  assert.deepEqual(parseRecipient(SPEC_RECIPIENT).publicKey, id.recipient.publicKey);
});

test('keys: parseRecipient refuses everything but age1… X25519 with E_USAGE', () => {
  usage(() => parseRecipient('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN'), /SSH recipients are not supported/);
  usage(() => parseRecipient('age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t'), /plugin/);
  usage(() => parseRecipient('age1pq1' + 'q'.repeat(200)), /post-quantum/);
  usage(() => parseRecipient(SPEC_RECIPIENT.slice(0, -1) + (SPEC_RECIPIENT.endsWith('j') ? 'k' : 'j')), /checksum/);
  usage(() => parseRecipient(SPEC_IDENTITY), /X25519 recipient/);
  usage(() => parseRecipient(bech32Encode('age', Buffer.alloc(31))), /32-byte/);
  usage(() => parseRecipient(''), /not an age recipient/);
  usage(() => parseRecipient('hello'), /not an age recipient/);
  assert.equal(parseRecipient(`  ${SPEC_RECIPIENT.toUpperCase()}\n`).text, SPEC_RECIPIENT);
});

test('keys: parseIdentities skips comments and blanks, refuses junk without echoing it', () => {
  const a = generateIdentity();
  const b = generateIdentity();
  const ids = parseIdentities(`# one\n${a.identity}\n\n   \n# two\r\n${b.identity}\r\n`);
  assert.deepEqual(
    ids.map((i) => i.recipient.text),
    [a.recipient, b.recipient],
  );
  usage(() => parseIdentities('# only comments\n\n'), /no age identity/);
  usage(() => parseIdentities(''), /no age identity/);
  const secretish = 'AGE-SECRET-KEY-1' + 'Q'.repeat(58);
  assert.throws(
    () => parseIdentities(`${a.identity}\n${secretish}\n`),
    (e: unknown) => e instanceof MemdumpError && e.code === 'E_USAGE' && /line 2/.test(e.message) && !e.message.includes(secretish),
  );
  usage(() => parseIdentities('AGE-PLUGIN-YUBIKEY-1QQQQ'), /plugin/);
  usage(() => parseIdentities('-----BEGIN OPENSSH PRIVATE KEY-----'), /SSH/);
  usage(() => parseIdentities(a.recipient), /not an age X25519 identity/);
});

test('keys: generateIdentity gives fresh, self-consistent pairs in the age-keygen encoding', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const g = generateIdentity();
    assert.match(g.identity, /^AGE-SECRET-KEY-1[0-9AC-HJ-NP-Z]{58}$/);
    assert.match(g.recipient, /^age1[0-9ac-hj-np-z]{58}$/);
    assert.equal(parseIdentities(g.identity)[0]?.recipient.text, g.recipient);
    assert.ok(!seen.has(g.identity));
    seen.add(g.identity);
  }
});

test('base64: canonical unpadded only', () => {
  const p = new Prng(64);
  for (let n = 0; n < 70; n++) {
    const b = p.bytes(n);
    assert.deepEqual(b64decode(b64encode(b)), b);
    assert.ok(!b64encode(b).includes('='));
  }
  assert.deepEqual(b64decode('AA'), Buffer.from([0]));
  for (const bad of ['AB', 'AA==', 'A', 'AA A', 'AA\n', '****', 'AAA-', 'AAA_']) assert.equal(b64decode(bad), undefined, bad);
});

test('stanza: body lines wrap at 64 columns and always end with a short line', () => {
  assert.equal(encodeStanza({ args: ['x'], body: Buffer.alloc(0) }), '-> x\n\n');
  const full = encodeStanza({ args: ['x', 'y'], body: Buffer.alloc(48, 1) });
  assert.deepEqual(full.split('\n').map((l) => l.length), [6, 64, 0, 0]);
  const longer = encodeStanza({ args: ['x'], body: Buffer.alloc(49, 1) });
  assert.deepEqual(longer.split('\n').map((l) => l.length), [4, 64, 2, 0]);
});

test('header: X25519 wrap/unwrap, exact size, MAC over everything up to "---"', () => {
  const ids = [generateIdentity(), generateIdentity(), generateIdentity()].map((g) => parseIdentities(g.identity)[0]!);
  const fileKey = newFileKey();
  for (let n = 1; n <= 3; n++) {
    const header = encodeHeader(fileKey, ids.slice(0, n).map((i) => i.recipient));
    assert.equal(header.length, headerSize(n));
    const parser = new HeaderParser();
    assert.equal(parser.push(Buffer.concat([header, Buffer.from('payload')])), header.length);
    const h = parser.header!;
    assert.equal(h.stanzas.length, n);
    assert.equal(h.macInput.toString('latin1'), header.toString('latin1').slice(0, header.lastIndexOf('---') + 3));
    assert.ok(verifyHeaderMac(fileKey, h.macInput, h.mac));
    assert.deepEqual(h.mac, headerMac(fileKey, h.macInput));
    const flipped = Buffer.from(h.macInput);
    flipped[5] = flipped[5]! ^ 1;
    assert.ok(!verifyHeaderMac(fileKey, flipped, h.mac));
    for (let k = 0; k < n; k++) {
      // stanza k opens with identity k and with no other
      for (let j = 0; j < 3; j++) {
        const got = unwrapFileKey(h.stanzas[k]!, ids[j]!);
        if (j === k) assert.deepEqual(got, fileKey);
        else assert.equal(got, undefined);
      }
    }
  }
});

test('header: malformed X25519 stanzas are rejected (E_DECRYPT), foreign stanzas ignored', () => {
  const id = parseIdentities(generateIdentity().identity)[0]!;
  const good = wrapFileKey(newFileKey(), id.recipient);
  const decrypt = (e: unknown): boolean => e instanceof MemdumpError && e.code === 'E_DECRYPT';
  assert.equal(unwrapFileKey({ args: ['ssh-ed25519', 'abc', 'def'], body: Buffer.alloc(32) }, id), undefined);
  assert.throws(() => unwrapFileKey({ args: ['X25519'], body: good.body }, id), decrypt);
  assert.throws(() => unwrapFileKey({ args: [...good.args, 'extra'], body: good.body }, id), decrypt);
  assert.throws(() => unwrapFileKey({ args: ['X25519', good.args[1]!.slice(0, -1)], body: good.body }, id), decrypt);
  assert.throws(() => unwrapFileKey({ args: good.args, body: good.body.subarray(1) }, id), decrypt);
  // the identity element and a small-order point: shared secret all zeros, which the spec says to abort on
  assert.throws(() => unwrapFileKey({ args: ['X25519', b64encode(Buffer.alloc(32))], body: good.body }, id), decrypt);
  assert.throws(() => unwrapFileKey({ args: ['X25519', b64encode(Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]))], body: good.body }, id), decrypt);
});

test('STREAM: a chunk opens only under its own counter, last flag and key', () => {
  const fileKey = newFileKey();
  const key = payloadKey(fileKey, Buffer.alloc(16, 9));
  const plain = new Prng(7).bytes(CHUNK_SIZE);
  for (const [counter, last] of [[0, false], [1, true], [2 ** 32 + 5, false]] as const) {
    const sealed = sealChunk(key, counter, last, plain);
    assert.equal(sealed.length, CHUNK_SIZE + TAG_SIZE);
    assert.deepEqual(openChunk(key, counter, last, sealed), plain);
    assert.equal(openChunk(key, counter, !last, sealed), undefined);
    assert.equal(openChunk(key, counter + 1, last, sealed), undefined);
    assert.equal(openChunk(payloadKey(fileKey, Buffer.alloc(16, 8)), counter, last, sealed), undefined);
    const bad = Buffer.from(sealed);
    bad[100] = bad[100]! ^ 0x80;
    assert.equal(openChunk(key, counter, last, bad), undefined);
  }
  assert.equal(sealChunk(key, 0, true, Buffer.alloc(0)).length, TAG_SIZE);
  assert.equal(openChunk(key, 0, true, Buffer.alloc(TAG_SIZE - 1)), undefined);
});
