import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { expectCode, expectCodeAsync } from '../../test/helpers/expect-code.js';
import { MAX_LABEL, caseDirectory, evidenceName, extensionFor, sanitizeLabel, utcStamp } from './naming.js';

test('labels only ever contain [A-Za-z0-9._-], never start with a dot, are bounded and never empty', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (s) => {
      const l = sanitizeLabel(s);
      assert.match(l, /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/);
      assert.ok(l.length <= MAX_LABEL);
      assert.notEqual(l, '..');
    }),
    { numRuns: 2000, seed: 7 },
  );
  assert.equal(sanitizeLabel('../../etc/passwd'), '_.._etc_passwd');
  assert.equal(sanitizeLabel('..'), 'unknown');
  assert.equal(sanitizeLabel('a\u0000b'), 'a_b');
  assert.equal(sanitizeLabel('IR-2291.host_a'), 'IR-2291.host_a');
  assert.equal(sanitizeLabel(42), 'unknown');
});

test('extensions come from a whitelist', () => {
  assert.equal(extensionFor('lime', []), 'lime');
  assert.equal(extensionFor('lime', ['gzip']), 'lime.gz');
  assert.equal(extensionFor('lime', ['zstd', 'age']), 'lime.zst.age');
  assert.equal(extensionFor('e01', []), 'E01');
  assert.equal(extensionFor('../../x', []), 'bin');
  assert.equal(extensionFor(undefined, undefined), 'bin');
  expectCode(() => extensionFor('raw', ['../sh']), 'E_UNSUPPORTED');
  expectCode(() => extensionFor('raw', ['gzip', 'gzip', 'gzip', 'gzip', 'gzip']), 'E_UNSUPPORTED');
});

test('evidence names: host-UTC-random.ext', () => {
  const n = evidenceName('web/01', 'lime', ['age'], new Date(Date.UTC(2026, 0, 2, 3, 4, 5)));
  assert.match(n, /^web_01-20260102T030405Z-[0-9a-f]{8}\.lime\.age$/);
  assert.equal(utcStamp(new Date(Date.UTC(2026, 10, 22, 23, 59, 59, 999))), '20261122T235959Z');
});

test('case directory: 0700, inside the root, and a planted symlink is refused', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'memdump-naming-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const d = await caseDirectory(root, '../../evil');
  assert.equal(d, join(root, '_.._evil'));
  assert.equal(statSync(d).mode & 0o777, 0o700);
  assert.equal(await caseDirectory(root, '../../evil'), d, 'an existing case directory is reused');
  const outside = join(root, 'outside');
  mkdirSync(outside);
  symlinkSync(outside, join(root, 'CASE'));
  await expectCodeAsync(caseDirectory(root, 'CASE'), 'E_DEST_SYMLINK');
});
