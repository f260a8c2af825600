import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { isMemdumpError } from '../core/errors.js';
import { Prng } from '../../test/helpers/prng.js';
import { findSecrets, readSecretsFile, secretForms, type SecretForm } from './secret.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function alnum(rng: Prng, n: number): Buffer {
  let s = '';
  for (let i = 0; i < n; i++) s += ALNUM[rng.int(ALNUM.length)];
  return Buffer.from(s);
}

test('secretForms: exact, UTF-16LE, hex, and base64/base64url needles for the three alignments', () => {
  const s = Buffer.from('hunter2-Passw0rd');
  const forms = secretForms([Buffer.from('other-secret'), s]);
  const mine = forms.filter((f) => f.secret === 1);
  assert.deepEqual(mine.find((f) => f.form === 'exact')!.needle, s);
  assert.deepEqual(mine.find((f) => f.form === 'utf16le')!.needle, Buffer.from('hunter2-Passw0rd', 'utf16le'));
  assert.equal(mine.find((f) => f.form === 'hex')!.needle.toString(), s.toString('hex'));
  const b64 = mine.filter((f) => f.form === 'base64').map((f) => f.needle.toString());
  assert.equal(b64.length, 3);
  // aligned: the plain encoding minus the characters that also cover the byte after the secret
  assert.ok(s.toString('base64').startsWith(b64[0]!));
  // non-ASCII UTF-8 goes to UTF-16 as text, not byte by byte
  const u = secretForms([Buffer.from('pässwörd€')]).find((f) => f.form === 'utf16le')!;
  assert.deepEqual(u.needle, Buffer.from('pässwörd€', 'utf16le'));
  // no duplicate needles within one secret
  for (const i of [0, 1]) {
    const ns = forms.filter((f) => f.secret === i).map((f) => f.needle.toString('latin1'));
    assert.equal(new Set(ns).size, ns.length);
  }
});

test('a secret embedded at any offset of longer base64 / base64url text is found (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 6, maxLength: 80 }), fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (sec, pre, post) => {
      const s = Buffer.from(sec);
      const forms = secretForms([s]);
      const text = Buffer.concat([Buffer.from(pre), s, Buffer.from(post)]);
      for (const [form, enc] of [
        ['base64', text.toString('base64')],
        ['base64url', text.toString('base64url')],
      ] as const) {
        const hits = findSecrets(Buffer.from(enc, 'latin1'), 0, enc.length, forms.filter((f) => f.form === form || (form === 'base64url' && f.form === 'base64')));
        assert.ok(hits.length > 0, `${form} of ${pre.length}+${s.length}+${post.length} bytes not found`);
      }
      // every base64 needle is long enough to mean something: about 4/3 of the secret less the two ends
      for (const f of forms.filter((x) => x.form === 'base64')) assert.ok(f.needle.length >= Math.floor((4 * s.length) / 3) - 3);
    }),
    { numRuns: 400, seed: 7 },
  );
});

test('findSecrets: needle starts in [from, to), overlapping occurrences, sorted', () => {
  const forms: SecretForm[] = [
    { secret: 0, form: 'exact', needle: Buffer.from('aaaaaa') },
    { secret: 1, form: 'hex', needle: Buffer.from('abcdef') },
  ];
  const b = Buffer.from('xxaaaaaaaxxabcdefxxaaaaaa'); // seven a's at 2: two overlapping hits
  assert.deepEqual(
    findSecrets(b, 0, b.length, forms).map((h) => [h.form.secret, h.offset]),
    [
      [0, 2],
      [0, 3],
      [1, 11],
      [0, 19],
    ],
  );
  assert.deepEqual(
    findSecrets(b, 3, 19, forms).map((h) => [h.form.secret, h.offset]),
    [
      [0, 3],
      [1, 11],
    ],
  );
  // a needle that starts inside [from, to) but runs past the buffer is not there
  assert.deepEqual(findSecrets(b.subarray(0, 15), 5, 15, forms), []);
  assert.deepEqual(findSecrets(b, 10, 10, forms), []);
});

test('findSecrets with many needles (prefix index) equals one indexOf pass per needle (property)', () => {
  const rng = new Prng(77);
  const secrets = Array.from({ length: 12 }, (_, i) => alnum(rng, 6 + i * 3));
  const forms = [...secretForms(secrets), { secret: 99, form: 'exact' as const, needle: Buffer.from('ab') }];
  assert.ok(forms.length > 32);
  const naive = (b: Buffer, from: number, to: number) => {
    const out: [number, number][] = [];
    forms.forEach((f, k) => {
      for (let at = b.indexOf(f.needle, from); at >= 0 && at < to; at = b.indexOf(f.needle, at + 1)) out.push([at, k]);
    });
    return out.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  };
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.nat(3000), fc.nat(3000), (seed, a, c) => {
      const r = new Prng(seed);
      const b = r.bytes(8192);
      for (let i = 0; i < 30; i++) forms[r.int(forms.length)]!.needle.copy(b, r.int(8192));
      const from = Math.min(a, c);
      const to = 8192 - Math.max(0, Math.abs(a - c) - 2000);
      const got = findSecrets(b, from, to, forms).map((h) => [h.offset, forms.indexOf(h.form)]);
      assert.deepEqual(got, naive(b, from, to));
      assert.ok(got.length > 0);
    }),
    { numRuns: 200, seed: 3 },
  );
});

test('readSecretsFile: LF and CRLF, empty lines ignored, limits are E_USAGE without the secret in the message', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'memdump-secrets-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const f = path.join(dir, 's.txt');
  await writeFile(f, 'first-secret\r\n\n  spaced secret  \nlast-one-no-newline');
  assert.deepEqual(
    (await readSecretsFile(f)).map((b) => b.toString()),
    ['first-secret', '  spaced secret  ', 'last-one-no-newline'],
  );
  await writeFile(f, 'long-enough\nabc12\n');
  await assert.rejects(readSecretsFile(f), (e: unknown) => isMemdumpError(e, 'E_USAGE') && e.details['line'] === 2 && !e.message.includes('abc12'));
  await writeFile(f, Array.from({ length: 1001 }, (_, i) => `secret-${i}`).join('\n'));
  await assert.rejects(readSecretsFile(f), (e: unknown) => isMemdumpError(e, 'E_USAGE') && /1000/.test(e.message));
  await writeFile(f, Buffer.alloc(1024 * 1024 + 1, 0x41));
  await assert.rejects(readSecretsFile(f), (e: unknown) => isMemdumpError(e, 'E_USAGE'));
  await writeFile(f, '\n\r\n');
  await assert.rejects(readSecretsFile(f), (e: unknown) => isMemdumpError(e, 'E_USAGE'));
  await assert.rejects(readSecretsFile(path.join(dir, 'missing')), (e: unknown) => isMemdumpError(e, 'E_NOT_FOUND'));
});
