import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCode, expectCodeAsync } from '../../test/helpers/expect-code.js';
import { checkToken, issueToken, parseDuration, readTokens, revokeToken } from './tokens.js';

test('a token is stored only as its SHA-256, 0600, and checks out for its case', async (t) => {
  const path = join(tempDir(t), 'tokens.json');
  const { token, entry } = await issueToken(path, { case: 'IR-7', ttlMs: 60_000 });
  assert.match(token, /^mdt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  const text = readFileSync(path, 'utf8');
  assert.ok(!text.includes(token.slice(21)), 'the secret is not in the file');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const r = checkToken(await readTokens(path), token);
  assert.ok(r.ok && r.entry.case === 'IR-7' && r.entry.id === entry.id);
});

test('wrong, malformed, expired and revoked tokens are refused with a reason', async (t) => {
  const path = join(tempDir(t), 'tokens.json');
  const now = new Date('2026-01-01T00:00:00Z');
  const { token } = await issueToken(path, { case: 'A', ttlMs: 1000, now });
  const tokens = await readTokens(path);
  assert.deepEqual(checkToken(tokens, token, new Date(now.getTime() + 999)).ok, true);
  assert.equal((checkToken(tokens, token, new Date(now.getTime() + 1000)) as { reason: string }).reason, 'expired');
  const flipped = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
  assert.equal((checkToken(tokens, flipped, now) as { reason: string }).reason, 'unknown');
  assert.equal((checkToken(tokens, 'mdt_0000000000000000_' + 'A'.repeat(43), now) as { reason: string }).reason, 'unknown');
  assert.equal((checkToken(tokens, 'hello', now) as { reason: string }).reason, 'malformed');
  const id = token.slice(4, 20);
  await revokeToken(path, id, now);
  assert.equal((checkToken(await readTokens(path), token, now) as { reason: string }).reason, 'revoked');
  await expectCodeAsync(revokeToken(path, 'ffffffffffffffff'), 'E_NOT_FOUND');
});

test('issuing keeps earlier tokens (atomic rewrite), a missing file is an empty list, a bad one is E_CORRUPT', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'tokens.json');
  assert.deepEqual(await readTokens(path), []);
  const a = await issueToken(path, { case: 'A', ttlMs: 60_000 });
  const b = await issueToken(path, { case: 'B', ttlMs: 60_000 });
  const all = await readTokens(path);
  assert.deepEqual(all.map((x) => x.case), ['A', 'B']);
  assert.ok(checkToken(all, a.token).ok && checkToken(all, b.token).ok);
  writeFileSync(path, '{"version":2}');
  await expectCodeAsync(readTokens(path), 'E_CORRUPT');
});

test('durations', () => {
  assert.equal(parseDuration('2h', 'x'), 7_200_000);
  assert.equal(parseDuration('120s', 'x'), 120_000);
  assert.equal(parseDuration('90', 'x'), 90_000);
  assert.equal(parseDuration('500ms', 'x'), 500);
  for (const bad of ['', '2 weeks', '-1s', '0s', '1y']) expectCode(() => parseDuration(bad, 'x'), 'E_USAGE');
});
