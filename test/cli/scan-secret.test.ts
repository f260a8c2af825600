/**
 * `memdump scan --find-secret @FILE` end to end: the real keeper and wiper programs (test/helpers/secret-*.c) as
 * targets, the exit status that tells (16 held, 0 not), the text and --json outputs, a plain file holding the secret
 * in base64 off any 3-byte alignment, and the usage errors, which never echo a secret.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { Prng } from '../helpers/prng.js';
import { buildSecretPrograms, secretProgramsMissing, startSecretProgram } from '../helpers/secret-programs.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function alnum(rng: Prng, n: number): Buffer {
  let s = '';
  for (let i = 0; i < n; i++) s += ALNUM[rng.int(ALNUM.length)];
  return Buffer.from(s);
}

const missing = secretProgramsMissing();

test('--pid of a process that keeps the secret: exit 16, one line per place; --json lists every form', { skip: missing }, async (t) => {
  const dir = tempDir(t, 'memdump-secret-cli-');
  const exes = buildSecretPrograms(t);
  const rng = new Prng(0x5ec7e9);
  const secret = alnum(rng, 24);
  const file = join(dir, 'secrets.txt');
  writeFileSync(file, `${alnum(rng, 16).toString()}\n${secret.toString()}\n`); // the first is held nowhere
  const p = await startSecretProgram(t, exes['secret-keeper'], secret);
  const r = await runCli(['scan', '--pid', String(p.pid), '--find-secret', `@${file}`]);
  assert.equal(r.code, 16, r.stderr);
  const lines = r.stdout.toString().trimEnd().split('\n');
  for (const l of lines) assert.match(l, /^secret 2\t(exact|utf16le|base64|base64url|hex)\t0x[0-9a-f]+\t\S/);
  assert.ok(lines.some((l) => l.startsWith('secret 2\texact\t0x')));
  const held = (addr: bigint, len: number) => lines.some((l) => {
    const a = BigInt(l.split('\t')[2]!);
    return a >= addr && a < addr + BigInt(len);
  });
  assert.ok(held(p.info.stack, 24) && held(p.info.heap, 24), 'stack and heap copies');
  assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret.toString()), 'output never holds the secret');
  assert.match(r.stderr, /1 of 2 secret\(s\) still in memory/);

  const j = await runCli(['--json', 'scan', '--pid', String(p.pid), '--find-secret', `@${file}`]);
  assert.equal(j.code, 16, j.stderr);
  const s = JSON.parse(j.stdout.toString()) as { secrets: number; held: { secret: number; sha256: string }[]; hits: { secret: number; form: string; address: string }[]; interrupted: boolean };
  assert.equal(s.secrets, 2);
  assert.deepEqual(s.held.map((h) => h.secret), [2]);
  const forms = new Set(s.hits.map((h) => h.form));
  for (const f of ['exact', 'utf16le', 'base64', 'hex']) assert.ok(forms.has(f), `form ${f} in ${[...forms].join(',')}`);
  assert.equal(s.interrupted, false);
  assert.equal(s.hits.length, lines.length, 'text and --json report the same places');
});

test('--pid of a process that wiped the secret: exit 0, nothing on stdout', { skip: missing }, async (t) => {
  const dir = tempDir(t, 'memdump-secret-cli-');
  const exes = buildSecretPrograms(t);
  const secret = alnum(new Prng(0x5ec7ea), 24);
  const file = join(dir, 'secrets.txt');
  writeFileSync(file, secret);
  const p = await startSecretProgram(t, exes['secret-wiper'], secret);
  const r = await runCli(['scan', '--pid', String(p.pid), '--find-secret', `@${file}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.length, 0);
  assert.match(r.stderr, /0 of 1 secret\(s\) still in memory/);
});

test('a plain file holding the secret inside longer base64, off alignment: found at its offset, exit 16', async (t) => {
  const dir = tempDir(t, 'memdump-secret-cli-');
  const rng = new Prng(0x5ec7eb);
  const secret = alnum(rng, 30);
  const file = join(dir, 'secrets.txt');
  writeFileSync(file, secret);
  // 1 and 2 bytes before the secret: it starts off every 3-byte group boundary of the encoded text
  const b64 = Buffer.from(Buffer.concat([Buffer.from('k'), secret, Buffer.from('tail')]).toString('base64'));
  const b64b = Buffer.from(Buffer.concat([Buffer.from('kk'), secret]).toString('base64'));
  const at = 100_003;
  const at2 = 300_001;
  const data = Buffer.concat([Buffer.from('plain text, not a memory image\n'), rng.bytes(400_000)]);
  b64.copy(data, at);
  b64b.copy(data, at2);
  const input = join(dir, 'page.bin');
  writeFileSync(input, data);
  const r = await runCli(['scan', input, '--find-secret', `@${file}`]);
  assert.equal(r.code, 16, r.stderr);
  const lines = r.stdout.toString().trimEnd().split('\n');
  assert.equal(lines.length, 2, r.stdout.toString());
  const offs = lines.map((l) => {
    const [who, form, off] = l.split('\t');
    assert.deepEqual([who, form], ['secret 1', 'base64']);
    return Number(off); // a plain file's offsets are decimal
  });
  assert.ok(offs[0]! > at && offs[0]! < at + 4, `first at ${offs[0]}`);
  assert.ok(offs[1]! > at2 && offs[1]! < at2 + 4, `second at ${offs[1]}`);
});

test('usage errors: a too-short secret (not echoed), --find-secret without @, exit 2', async (t) => {
  const dir = tempDir(t, 'memdump-secret-cli-');
  const input = join(dir, 'page.bin');
  writeFileSync(input, new Prng(5).bytes(10_000));
  const file = join(dir, 'secrets.txt');
  writeFileSync(file, 'long-enough-secret\nQz7!x\n');
  for (const json of [[], ['--json']]) {
    const r = await runCli([...json, 'scan', input, '--find-secret', `@${file}`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /E_USAGE/);
    assert.match(r.stderr, /line 2/);
    assert.ok(!r.stderr.includes('Qz7!x') && !r.stderr.includes('long-enough-secret'), r.stderr);
    assert.equal(r.stdout.length, 0);
  }
  const r = await runCli(['scan', input, '--find-secret', file]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /E_USAGE.*@FILE/);
  assert.equal(r.stdout.length, 0);
});
