/**
 * Oracle for age v1: the real age 1.1.1 (/usr/bin/age, age-keygen) must decrypt what AgeEncryptSink writes and
 * refuse it once altered or truncated, and decryptAge must read what `age` writes. Data is seeded; keys are fresh
 * each run (both sides must work with any key).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemdumpError } from '../../src/core/errors.js';
import { type AgeIdentity, CHUNK_SIZE, TAG_SIZE, generateIdentity, headerSize, parseIdentities, parseRecipient } from '../../src/crypto/age.js';
import { decryptAge } from '../../src/crypto/age-decrypt.js';
import { AgeEncryptSink, ageCiphertextSize } from '../../src/sinks/age.js';
import { tempDir } from '../helpers/cli.js';
import { MemorySink } from '../helpers/memory-sink.js';
import { Prng } from '../helpers/prng.js';

const hasAge = spawnSync('age', ['--version']).status === 0 && spawnSync('age-keygen', ['--version']).status === 0;
const skip = hasAge ? false : 'age / age-keygen are not installed';
const SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 5 * 2 ** 20 + 12345];
const MAX_BUFFER = 64 * 2 ** 20;

function run(cmd: string, args: string[], input?: Buffer): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(cmd, args, { maxBuffer: MAX_BUFFER, ...(input ? { input } : {}) });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

function keygen(dir: string, name: string): { file: string; id: AgeIdentity; recipient: string } {
  const file = join(dir, name);
  const r = run('age-keygen', ['-o', file]);
  assert.equal(r.status, 0, r.stderr);
  const recipient = run('age-keygen', ['-y', file]).stdout.toString().trim();
  const [id, ...rest] = parseIdentities(readFileSync(file, 'utf8'));
  assert.ok(id);
  assert.equal(rest.length, 0);
  return { file, id, recipient };
}

async function ourEncrypt(plain: Buffer, recipients: string[]): Promise<Buffer> {
  const m = new MemorySink();
  const sink = await AgeEncryptSink.create(m, recipients.map(parseRecipient));
  // uneven writes, so chunking does not depend on the caller's buffer sizes
  const p = new Prng(plain.length);
  for (let off = 0; off < plain.length; ) {
    const n = 1 + p.int(200_000);
    await sink.write(plain.subarray(off, off + n));
    off += n;
  }
  await sink.finish();
  assert.equal(sink.storedBytes, ageCiphertextSize(BigInt(plain.length), recipients.length));
  return m.bytes;
}

async function ourDecrypt(file: string, ids: readonly AgeIdentity[], highWaterMark = 65536): Promise<Buffer> {
  const out: Buffer[] = [];
  await decryptAge(createReadStream(file, { highWaterMark }), ids, async (b) => void out.push(Buffer.from(b)));
  return Buffer.concat(out);
}

async function ourDecryptFails(file: string, ids: readonly AgeIdentity[]): Promise<string> {
  try {
    await ourDecrypt(file, ids);
  } catch (e) {
    assert.ok(e instanceof MemdumpError && e.code === 'E_DECRYPT', `expected E_DECRYPT, got ${String(e)}`);
    return e.message;
  }
  assert.fail(`decryptAge accepted ${file}`);
}

test('age-keygen keys parse; our recipients match age-keygen -y', { skip }, (t) => {
  const dir = tempDir(t, 'memdump-age-');
  for (let i = 0; i < 3; i++) {
    const k = keygen(dir, `k${i}.txt`);
    assert.equal(k.id.recipient.text, k.recipient);
    assert.deepEqual(parseRecipient(k.recipient).publicKey, k.id.recipient.publicKey);
  }
  const g = generateIdentity();
  writeFileSync(join(dir, 'g.txt'), g.identity + '\n', { mode: 0o600 });
  assert.equal(run('age-keygen', ['-y', join(dir, 'g.txt')]).stdout.toString().trim(), g.recipient);
});

test('our encryption decrypts with age -d byte for byte (sizes across chunk edges, several recipients)', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-age-');
  const keys = [keygen(dir, 'a.txt'), keygen(dir, 'b.txt'), keygen(dir, 'c.txt')];
  const prng = new Prng(2026);
  for (const size of SIZES) {
    const plain = prng.bytes(size);
    const recipients = size % 2 === 1 ? keys.map((k) => k.recipient) : [keys[0]!.recipient];
    const enc = await ourEncrypt(plain, recipients);
    const file = join(dir, `ours-${size}.age`);
    writeFileSync(file, enc);
    for (const k of keys.slice(0, recipients.length)) {
      const r = run('age', ['-d', '-i', k.file, file]);
      assert.equal(r.status, 0, `size ${size}: ${r.stderr}`);
      assert.ok(r.stdout.equals(plain), `size ${size}: age -d output differs`);
    }
  }
});

test('age output decrypts with decryptAge byte for byte (-r, -R, several recipients)', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-age-');
  const keys = [keygen(dir, 'a.txt'), keygen(dir, 'b.txt')];
  const recipientsFile = join(dir, 'recipients.txt');
  writeFileSync(recipientsFile, `# team\n${keys[0]!.recipient}\n${keys[1]!.recipient}\n`);
  const prng = new Prng(7);
  for (const [i, size] of SIZES.entries()) {
    const plain = prng.bytes(size);
    const pf = join(dir, `p-${size}`);
    const cf = join(dir, `theirs-${size}.age`);
    writeFileSync(pf, plain);
    const args = i % 2 === 0 ? ['-r', keys[1]!.recipient] : ['-R', recipientsFile];
    const r = run('age', [...args, '-o', cf, pf]);
    assert.equal(r.status, 0, r.stderr);
    // age writes no grease: its size is ours for the same recipient count
    assert.equal(BigInt(readFileSync(cf).length), ageCiphertextSize(BigInt(size), i % 2 === 0 ? 1 : 2));
    assert.ok((await ourDecrypt(cf, [keys[1]!.id], 1 + ((size * 7919) % 100_000))).equals(plain), `size ${size}`);
    if (i % 2 === 1) assert.ok((await ourDecrypt(cf, [keys[0]!.id])).equals(plain));
    const other = keygen(dir, `other-${size}.txt`);
    assert.match(await ourDecryptFails(cf, [other.id]), /no identity matches/);
  }
});

test('generateIdentity keys work with age both ways', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-age-');
  const g = generateIdentity();
  const keyFile = join(dir, 'g.txt');
  writeFileSync(keyFile, `# memdump generateIdentity\n# public key: ${g.recipient}\n${g.identity}\n`, { mode: 0o600 });
  const plain = new Prng(1).bytes(100_000);
  writeFileSync(join(dir, 'ours.age'), await ourEncrypt(plain, [g.recipient]));
  const r = run('age', ['-d', '-i', keyFile, join(dir, 'ours.age')]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.equals(plain));
  assert.equal(run('age', ['-r', g.recipient, '-o', join(dir, 'theirs.age')], plain).status, 0);
  assert.ok((await ourDecrypt(join(dir, 'theirs.age'), parseIdentities(readFileSync(keyFile, 'utf8')))).equals(plain));
});

test('a flipped byte anywhere, or a truncation, makes both age -d and decryptAge fail; so does a wrong key', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-age-');
  const k = keygen(dir, 'k.txt');
  const wrong = keygen(dir, 'wrong.txt');
  const plain = new Prng(3).bytes(3 * CHUNK_SIZE + 100);
  const ours = await ourEncrypt(plain, [k.recipient]);
  const pf = join(dir, 'p');
  writeFileSync(pf, plain);
  assert.equal(run('age', ['-r', k.recipient, '-o', join(dir, 'theirs.age'), pf]).status, 0);
  const theirs = readFileSync(join(dir, 'theirs.age'));
  const h = headerSize(1);
  const sealed = CHUNK_SIZE + TAG_SIZE;
  const flips: Array<[string, number]> = [
    ['version line', 3],
    ['stanza type', 25],
    ['ephemeral share', 40],
    ['stanza body', 22 + 54 + 10],
    ['MAC line dashes', h - 48],
    ['MAC', h - 10],
    ['final newline of header', h - 1],
    ['nonce first byte', h],
    ['nonce last byte', h + 15],
  ];
  for (let c = 0; c < 4; c++) {
    const start = h + 16 + c * sealed;
    const len = c === 3 ? 100 + TAG_SIZE : sealed;
    flips.push([`chunk ${c} first byte`, start], [`chunk ${c} middle`, start + (len >> 1)], [`chunk ${c} tag`, start + len - 1]);
  }
  for (const [name, bytes] of [['ours', ours], ['age output', theirs]] as const) {
    const cases: Array<[string, Buffer]> = flips.map(([what, at]) => {
      const b = Buffer.from(bytes);
      b[at] = b[at]! ^ 0x01;
      return [`flip ${what} @${at}`, b];
    });
    for (const cut of [0, 10, h - 1, h, h + 8, h + 16, h + 16 + 100, h + 16 + sealed, h + 16 + 2 * sealed, h + 16 + 3 * sealed, bytes.length - 1]) {
      cases.push([`truncate at ${cut}`, bytes.subarray(0, cut)]);
    }
    cases.push(['extra byte at the end', Buffer.concat([bytes, Buffer.from([0])])]);
    for (const [what, b] of cases) {
      const f = join(dir, 'bad.age');
      writeFileSync(f, b);
      const r = run('age', ['-d', '-i', k.file, '-o', join(dir, 'out'), f]);
      assert.notEqual(r.status, 0, `${name}, ${what}: age -d accepted it`);
      await ourDecryptFails(f, [k.id]);
    }
    const f = join(dir, 'good.age');
    writeFileSync(f, bytes);
    assert.ok((await ourDecrypt(f, [k.id])).equals(plain));
    assert.notEqual(run('age', ['-d', '-i', wrong.file, f]).status, 0);
    assert.match(await ourDecryptFails(f, [wrong.id]), /no identity matches/);
  }
});
