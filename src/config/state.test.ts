import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Prng } from '../../test/helpers/prng.js';
import { missingDirs, restore, snapshot, writeAtomic } from './state.js';

const tmp = (t: { after: (f: () => void) => void }) => {
  const d = mkdtempSync(join(tmpdir(), 'memdump-state-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

test('snapshot + restore puts back binary content and odd modes byte-exact, and removes what was absent', async (t) => {
  const root = tmp(t);
  mkdirSync(join(root, 'etc'));
  const bytes = new Prng(3).bytes(4099);
  writeFileSync(join(root, 'etc/odd'), bytes);
  chmodSync(join(root, 'etc/odd'), 0o4751);
  const before = await snapshot(root, '/etc/odd');
  const absent = await snapshot(root, '/etc/new');
  assert.deepEqual(absent, { exists: false });
  await writeAtomic(join(root, 'etc/odd'), 'replaced\n', 0o644);
  await writeAtomic(join(root, 'etc/new'), 'created\n', 0o644);
  await restore(root, { kind: 'file', path: '/etc/odd', before, afterSha256: null });
  await restore(root, { kind: 'file', path: '/etc/new', before: absent, afterSha256: null });
  assert.deepEqual(readFileSync(join(root, 'etc/odd')), bytes);
  assert.equal(statSync(join(root, 'etc/odd')).mode & 0o7777, 0o4751);
  assert.throws(() => statSync(join(root, 'etc/new')), /ENOENT/);
});

test('a symlink in place of a config file is refused, never followed', async (t) => {
  const root = tmp(t);
  mkdirSync(join(root, 'etc'));
  symlinkSync('/etc/passwd', join(root, 'etc/link'));
  await assert.rejects(snapshot(root, '/etc/link'), (e: { code?: string }) => e.code === 'E_DEST_SYMLINK');
});

test('a FIFO where a config file should be is refused instead of blocking on it', async (t) => {
  const root = tmp(t);
  assert.equal(spawnSync('mkfifo', [join(root, 'fifo')]).status, 0);
  await assert.rejects(snapshot(root, '/fifo'), (e: { code?: string }) => e.code === 'E_USAGE');
});

test('missingDirs lists the parents mkdir -p would create, outermost first', async (t) => {
  const root = tmp(t);
  mkdirSync(join(root, 'var'));
  assert.deepEqual(await missingDirs(root, '/var/lib/memdump'), ['/var/lib', '/var/lib/memdump']);
  writeFileSync(join(root, 'file'), '');
  await assert.rejects(missingDirs(root, '/file/x'), (e: { code?: string }) => e.code === 'E_USAGE');
});
