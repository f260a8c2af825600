import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCode, expectCodeAsync } from '../../test/helpers/expect-code.js';
import { checkToken, issueToken, parseDuration, readTokens, revokeToken, withTokensLock } from './tokens.js';

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

const run = promisify(execFile);
const MODULE = new URL('./tokens.js', import.meta.url).href;

/** One separate process per call, all started together: the race of concurrent `receive --issue/--revoke-token`. */
function inProcesses(path: string, calls: string[]): Promise<unknown> {
  return Promise.all(
    calls.map((call) =>
      run(process.execPath, ['--input-type=module', '-e', `import * as m from ${JSON.stringify(MODULE)}; await m.${call};`], { env: { ...process.env, TOKENS: path } }),
    ),
  );
}

test('concurrent issue and revoke from separate processes lose no update (lock file)', async (t) => {
  const path = join(tempDir(t), 'tokens.json');
  const n = 12;
  await inProcesses(path, Array.from({ length: n }, (_, i) => `issueToken(process.env.TOKENS, { case: 'C${i}', ttlMs: 3600000 })`));
  const issued = await readTokens(path);
  assert.deepEqual(issued.map((x) => x.case).sort(), Array.from({ length: n }, (_, i) => `C${i}`).sort());
  // every printed "revoked" must hold: revoke all of them at once, with new issues racing in between
  await inProcesses(path, [
    ...issued.map((x) => `revokeToken(process.env.TOKENS, '${x.id}')`),
    ...Array.from({ length: 4 }, (_, i) => `issueToken(process.env.TOKENS, { case: 'LATE${i}', ttlMs: 3600000 })`),
  ]);
  const after = await readTokens(path);
  assert.equal(after.length, n + 4);
  for (const x of after) assert.equal(Boolean(x.revoked), !x.case.startsWith('LATE'), x.case);
  assert.ok(!existsSync(path + '.lock'), 'the lock is released');
});

test('a held lock makes writers wait; a stale one (crashed holder) is taken over', async (t) => {
  const path = join(tempDir(t), 'tokens.json');
  const order: string[] = [];
  let release!: () => void;
  const held = withTokensLock(path, () => new Promise<void>((r) => (release = r)).then(() => void order.push('holder done')));
  await new Promise((r) => setTimeout(r, 20));
  const waiting = issueToken(path, { case: 'W', ttlMs: 60_000 }).then(() => void order.push('issued'));
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(order, []);
  release();
  await Promise.all([held, waiting]);
  assert.deepEqual(order, ['holder done', 'issued']);
  // a lock file left by a process that died an hour ago
  writeFileSync(path + '.lock', '99999 old\n');
  const old = new Date(Date.now() - 3_600_000);
  utimesSync(path + '.lock', old, old);
  await issueToken(path, { case: 'X', ttlMs: 60_000 });
  assert.deepEqual((await readTokens(path)).map((x) => x.case), ['W', 'X']);
  assert.ok(!existsSync(path + '.lock'));
});
