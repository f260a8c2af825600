import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { parseReport, redactArgv } from '../../src/pipeline/report.js';
import { TWO_RUN_LAYOUT, fakeRoot } from '../fixtures/generate.js';
import { CLI, runCli, tempDir } from '../helpers/cli.js';
import { analystKeys } from '../helpers/keys.js';

// --recipient, --compress and --sign-key on local files and on standard output: the oracles are the real `age`,
// `gunzip` and `openssl` binaries, and a plain acquisition of the same source
const LAYOUT = TWO_RUN_LAYOUT;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('acquire --recipient --compress gzip --sign-key: host.lime.gz.age that age+gunzip, decrypt and verify all prove', async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  const k = analystKeys(dir);
  const plain = join(dir, 'plain.lime');
  assert.equal((await runCli(['acquire', '--root', root, '-o', plain, '-q', '--no-context'])).code, 0);
  const out = join(dir, 'host.lime');
  const r = await runCli(['acquire', '--root', root, '-o', out, '--no-context', '--recipient', k.recipient, '--compress', 'gzip', '--sign-key', k.sign, '--hash-window', '1M'], { umask: 0 });
  assert.equal(r.code, 0, r.stderr);
  const stored = out + '.gz.age';
  assert.ok(!existsSync(out), 'the layers name the file: host.lime.gz.age');
  for (const f of [stored, stored + '.report.json', stored + '.report.json.sig', stored + '.log']) assert.equal(statSync(f).mode & 0o777, 0o600, f);
  const cipher = readFileSync(stored);
  assert.match(cipher.subarray(0, 22).toString(), /^age-encryption\.org\/v1/);
  const rep = parseReport(readFileSync(stored + '.report.json', 'utf8'), 'r');
  const plainBytes = readFileSync(plain);
  // the container hashes are the plaintext LiME's; the stored hash is the ciphertext's
  assert.equal(rep.hashes?.digests.sha256, sha256(plainBytes));
  assert.equal(rep.hashes?.length, String(plainBytes.length));
  assert.deepEqual(rep.delivery?.layers, ['gzip', 'age']);
  assert.deepEqual(rep.delivery?.recipients, [k.recipient]);
  assert.equal(rep.delivery?.stored.sha256, sha256(cipher));
  assert.equal(rep.delivery?.stored.bytes, String(cipher.length));
  assert.equal(rep.outputs[0]?.sha256, sha256(cipher));
  // the reference tools undo it
  const viaAge = gunzipSync(execFileSync('age', ['-d', '-i', k.identity, stored], { maxBuffer: 1 << 30 }));
  assert.ok(viaAge.equals(plainBytes), 'age -d | gunzip gives the plain acquisition byte for byte');
  // verify: stored bytes + signature by the trusted key
  const v = await runCli(['verify', stored, '--trusted-key', k.signPub, '--json']);
  assert.equal(v.code, 0, v.stdout.toString() + v.stderr);
  const vr = JSON.parse(v.stdout.toString());
  assert.equal(vr.verdict, 'MATCH');
  assert.equal(vr.signature.ok, true);
  assert.equal(vr.signature.trusted, true);
  assert.equal((await runCli(['verify', stored, '--trusted-key', k.otherPub])).code, 11, 'signed by another key than the trusted one');
  const info = await runCli(['info', stored]);
  assert.equal(info.code, 8);
  assert.match(info.stderr, /age-encrypted: undo it first with memdump decrypt/);
  // decrypt: the container, checked against every digest and window of the report
  const d = await runCli(['decrypt', stored, '-i', k.identity, '--json']);
  assert.equal(d.code, 0, d.stderr);
  const dr = JSON.parse(d.stdout.toString());
  assert.equal(dr.verdict, 'MATCH');
  assert.equal(dr.output, out);
  assert.ok(readFileSync(out).equals(plainBytes));
  assert.equal(statSync(out).mode & 0o777, 0o600);
  assert.equal(dr.container.digests.md5, rep.hashes?.digests.md5);
  assert.equal((await runCli(['decrypt', stored, '-i', k.identity])).code, 6, 'never overwrites the container');
});

test('an edited report fails verification; altered or truncated ciphertext fails decryption and publishes nothing', async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  const k = analystKeys(dir);
  const out = join(dir, 'h.lime');
  assert.equal((await runCli(['acquire', '--root', root, '-o', out, '-q', '--no-context', '--recipient', k.recipient, '--sign-key', k.sign])).code, 0);
  const stored = out + '.age';
  const reportPath = stored + '.report.json';
  const original = readFileSync(reportPath, 'utf8');
  assert.equal((await runCli(['verify', stored])).code, 0);
  // one field edited (the examiner's notes would do; here the hostname): the signature no longer holds
  const edited = original.replace(/"hostname": "([^"]*)"/, '"hostname": "x$1"');
  assert.notEqual(edited, original);
  writeFileSync(reportPath, edited);
  const v = await runCli(['verify', stored, '--json']);
  assert.equal(v.code, 11);
  assert.equal(JSON.parse(v.stdout.toString()).signature.ok, false);
  writeFileSync(reportPath, original);
  // a flipped ciphertext byte in the payload: verify (stored hash) and decrypt (AEAD tag) both fail
  const cipher = readFileSync(stored);
  const flipped = Buffer.from(cipher);
  flipped[cipher.length - 100]! ^= 0x01;
  const bad = join(dir, 'bad.lime.age');
  writeFileSync(bad, flipped);
  writeFileSync(bad + '.report.json', original);
  assert.equal((await runCli(['verify', bad])).code, 11);
  const d = await runCli(['decrypt', bad, '-i', k.identity]);
  assert.equal(d.code, 15, d.stderr);
  assert.match(d.stderr, /E_DECRYPT/);
  assert.ok(!existsSync(join(dir, 'bad.lime')), 'nothing published from a failed decryption');
  assert.ok(!existsSync(join(dir, 'bad.lime.partial')));
  // truncated: the last chunk is missing
  const cut = join(dir, 'cut.lime.age');
  writeFileSync(cut, cipher.subarray(0, cipher.length - 70000));
  assert.equal((await runCli(['decrypt', cut, '-i', k.identity])).code, 15);
  assert.ok(!existsSync(join(dir, 'cut.lime')));
  // the wrong identity
  const wrong = join(dir, 'wrong.key');
  execFileSync('age-keygen', ['-o', wrong], { stdio: 'pipe' });
  assert.equal((await runCli(['decrypt', stored, join(dir, 'w.lime'), '-i', wrong])).code, 15);
  assert.ok(!existsSync(join(dir, 'w.lime.partial')), 'a failed decryption leaves nothing that blocks the retry');
  assert.equal((await runCli(['decrypt', stored, join(dir, 'w.lime'), '-i', k.identity])).code, 0, 'the retry with the right identity works');
});

test('ssh-style pipe: -o - -q carries only the evidence on stdout and only the report on stderr, encrypted or not', async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  const k = analystKeys(dir);
  // exactly the README recipe, through a shell's redirections
  const sh = (args: string, out: string, err: string) => spawnSync('/bin/sh', ['-c', `"${process.execPath}" "${CLI}" acquire --root "${root}" -o - -q --no-context ${args} 2> "${err}" > "${out}"`]);
  const lime = join(dir, 'web01.lime');
  assert.equal(sh('', lime, lime + '.report.json').status, 0);
  const v = await runCli(['verify', lime, '--json']);
  assert.equal(JSON.parse(v.stdout.toString()).verdict, 'MATCH');
  const aged = join(dir, 'web01.lime.age');
  assert.equal(sh(`--recipient ${k.recipient}`, aged, aged + '.report.json').status, 0);
  assert.equal(JSON.parse((await runCli(['verify', aged, '--json'])).stdout.toString()).verdict, 'MATCH');
  const plain = execFileSync('age', ['-d', '-i', k.identity, aged], { maxBuffer: 1 << 30 });
  assert.ok(plain.equals(readFileSync(lime)));
  const d = await runCli(['decrypt', aged, '-', '-i', k.identity]);
  assert.equal(d.code, 0, d.stderr);
  assert.ok(d.stdout.equals(readFileSync(lime)), 'decrypt to stdout');
  assert.match(d.stderr, /^MATCH/);
  const dj = await runCli(['--json', 'decrypt', aged, '-', '-i', k.identity]);
  assert.ok(dj.stdout.equals(readFileSync(lime)), 'with --json the verdict still stays off stdout');
  assert.equal(JSON.parse(dj.stderr).verdict, 'MATCH');
});

test('usage errors are caught before anything is read', async (t) => {
  const dir = tempDir(t);
  const root = fakeRoot(join(dir, 'root'), LAYOUT);
  const base = ['acquire', '--root', root, '--no-context', '-q'];
  const cases: [string[], RegExp][] = [
    [['-o', join(dir, 'a.avml'), '--format', 'avml', '--compress', 'gzip'], /compressed already/],
    [['-o', join(dir, 'b.lime'), '--pin', 'sha256/AAAA'], /--pin applies to network delivery only/],
    [['--to', 'tls://127.0.0.1:1', '--token', 't'], /needs --pin/],
    [['--to', 'tls://127.0.0.1:1', '--pin', 'sha256/AAAA'], /needs --token-file/],
    [['-o', join(dir, 'c.lime'), '--to', 'tls://127.0.0.1:1'], /either -o/],
    [['-o', '-', '--sign-key', join(dir, 'nokey.pem')], /reading --sign-key/],
    [['-o', join(dir, 'd.lime'), '--recipient', 'age1notarecipient'], /recipient/],
    [['-o', join(dir, 'e.lime'), '--compress', 'lz4'], /not gzip or zstd/],
    [['--to', 'ftp://x/y'], /is not tls:\/\//],
  ];
  for (const [args, msg] of cases) {
    const r = await runCli([...base, ...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, msg, args.join(' '));
  }
  assert.deepEqual(readdirSync(dir).sort(), ['root'], 'no file was created by any refused command');
  const sign = join(dir, 'k.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', sign]);
  const r = await runCli([...base, '-o', '-', '--sign-key', sign]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /needs --report/);
});

test('the report never keeps a token or a pre-signed query string', () => {
  assert.deepEqual(redactArgv(['acquire', '--token', 'mdt_secret', '--to', 'https://b.s3/x?X-Amz-Signature=abc', '--token=mdt_2', '--to=https://h/p?sig=1']), [
    'acquire',
    '--token',
    '[redacted]',
    '--to',
    'https://b.s3/x?[redacted]',
    '--token=[redacted]',
    '--to=https://h/p?[redacted]',
  ]);
});
