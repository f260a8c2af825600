import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyPlan, describePlan, revertState } from './apply.js';
import { BASHRC, BASHRC_LINE, HISTORY_DROPIN, planHistory } from './history.js';
import { treeSnapshot } from './tree-snapshot.js';

const runner = async () => ({ ran: false, code: null, message: 'no commands expected' });

function fakeRoot(t: { after: (f: () => void) => void }): string {
  const root = mkdtempSync(join(tmpdir(), 'memdump-hist-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'etc'));
  return root;
}

test('bash (the real one) gets every history setting from the drop-in in an interactive shell, none in a script', async (t) => {
  const root = fakeRoot(t);
  const p = await planHistory({ root, bashrc: false });
  await applyPlan(root, 'history', p.changes, runner, []);
  const file = join(root, HISTORY_DROPIN);
  const probe = `. ${file}; printf '%s|' "$HISTCONTROL" "$HISTIGNORE" "$HISTSIZE" "$HISTFILESIZE" "$HISTTIMEFORMAT"; shopt -q histappend && printf append; [[ -o history ]] && printf ' on'`;
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, HISTCONTROL: 'ignoreboth', HISTSIZE: '1000', HISTIGNORE: 'ls:pwd' };
  const i = spawnSync('bash', ['--norc', '--noprofile', '-i', '-c', probe], { env, encoding: 'utf8' });
  assert.equal(i.stdout, '||-1|-1|%F-%R |append on', i.stderr);
  const script = spawnSync('bash', ['--norc', '--noprofile', '-c', probe], { env, encoding: 'utf8' });
  assert.equal(script.stdout, 'ignoreboth|ls:pwd|1000|||', 'a non-interactive shell is left alone');
  for (const sh of ['dash', 'bash']) assert.equal(spawnSync(sh, ['-n', file]).status, 0, `${sh} -n accepts the drop-in`);
  assert.equal(spawnSync('dash', ['-i', '-c', `. ${file}; echo ok`], { env, encoding: 'utf8' }).stdout.trim(), 'ok', 'a POSIX sh login shell runs it without errors');
});

test('apply/revert with --bashrc: an odd bash.bashrc (no final newline, mode 0640) comes back byte-exact; twice is a no-op', async (t) => {
  const root = fakeRoot(t);
  writeFileSync(join(root, BASHRC), '# system bashrc\r\nPS1=x');
  chmodSync(join(root, BASHRC), 0o640);
  const before = await treeSnapshot(root);
  const p = await planHistory({ root, bashrc: true });
  assert.equal(p.changes.length, 2);
  const dry = await describePlan(root, p.changes);
  assert.ok(dry.includes(`+${BASHRC_LINE}`), dry);
  assert.ok(dry.includes("+      HISTTIMEFORMAT='%F-%R '"), dry);
  assert.ok(dry.includes('\\ No newline at end of file'), dry);
  await applyPlan(root, 'history', p.changes, runner, []);
  assert.equal(readFileSync(join(root, BASHRC), 'utf8'), `# system bashrc\r\nPS1=x\n${BASHRC_LINE}\n`);
  const after = await treeSnapshot(root);
  const again = await planHistory({ root, bashrc: true });
  assert.deepEqual(again.changes, []);
  assert.deepEqual(await treeSnapshot(root), after);
  await revertState(root, 'history', runner, () => []);
  assert.deepEqual(await treeSnapshot(root), before);
  await assert.rejects(revertState(root, 'history', runner, () => []), (e: { code?: string }) => e.code === 'E_NOT_FOUND');
});

test('--bashrc on a host without /etc/bash.bashrc creates nothing there and says so', async (t) => {
  const root = fakeRoot(t);
  const p = await planHistory({ root, bashrc: true });
  assert.deepEqual(p.changes.map((c) => (c.kind === 'file' ? c.path : c.kind)), [HISTORY_DROPIN]);
  assert.match(p.notes.join(' '), /bash\.bashrc does not exist/);
  assert.match(p.notes.join(' '), /zsh/);
});
