import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { treeSnapshot } from '../../src/config/tree-snapshot.js';
import { CLI, runCli, tempDir } from '../helpers/cli.js';

const SYSTEMD_PATTERN = '|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\n';

function fakeRoot(t: { after: (f: () => void) => void }, corePattern: string): string {
  const root = tempDir(t, 'memdump-cli-cfg-');
  mkdirSync(join(root, 'proc/sys/kernel'), { recursive: true });
  mkdirSync(join(root, 'proc/sys/fs'), { recursive: true });
  mkdirSync(join(root, 'etc/sysctl.d'), { recursive: true });
  writeFileSync(join(root, 'proc/sys/kernel/core_pattern'), corePattern);
  writeFileSync(join(root, 'proc/sys/fs/suid_dumpable'), '0\n');
  writeFileSync(join(root, 'etc/sysctl.d/10-local.conf'), 'vm.swappiness=1');
  chmodSync(join(root, 'etc/sysctl.d/10-local.conf'), 0o600);
  return root;
}

test('config coredumps: dry run shows the diff and changes nothing; apply, apply again, revert, revert again', async (t) => {
  const root = fakeRoot(t, 'core\n');
  const before = await treeSnapshot(root);
  const dry = await runCli(['config', 'coredumps', '--root', root, '--pattern', 'memdump']);
  assert.equal(dry.code, 0, dry.stderr);
  const text = dry.stdout.toString();
  const pattern = `|${process.execPath} ${CLI} core-handler -- %P %e %t`;
  for (const s of ['dry run', '+++ /etc/systemd/system.conf.d/50-memdump-coredump.conf', '+DefaultLimitCORE=infinity', `+kernel.core_pattern = ${pattern}`, `"core" → ${JSON.stringify(pattern)}`, '"0" → "2"', 'directory /var/crash: absent → created, mode 0700', 'run: systemctl daemon-reexec']) {
    assert.ok(text.includes(s), `missing ${s} in\n${text}`);
  }
  assert.deepEqual(await treeSnapshot(root), before, 'the dry run wrote nothing');

  const apply = await runCli(['config', 'coredumps', '--root', root, '--pattern', 'memdump', '--apply']);
  assert.equal(apply.code, 0, apply.stderr);
  assert.match(apply.stdout.toString(), /did not run systemctl daemon-reexec: not run: --root .* is not the live host/);
  assert.equal(readFileSync(join(root, 'proc/sys/kernel/core_pattern'), 'utf8'), pattern + '\n');
  const applied = await treeSnapshot(root);
  const again = await runCli(['--json', 'config', 'coredumps', '--root', root, '--pattern', 'memdump', '--apply']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout.toString()).alreadyApplied, true);
  assert.deepEqual(await treeSnapshot(root), applied);

  const revert = await runCli(['config', 'coredumps', '--root', root, '--revert']);
  assert.equal(revert.code, 0, revert.stderr);
  assert.deepEqual(await treeSnapshot(root), before, 'revert is byte-exact');
  const twice = await runCli(['config', 'coredumps', '--root', root, '--revert']);
  assert.equal(twice.code, 3);
  assert.match(twice.stderr, /E_NOT_FOUND: nothing to revert/);
});

test('config coredumps respects systemd-coredump unless --override, and revert puts its pattern back', async (t) => {
  const root = fakeRoot(t, SYSTEMD_PATTERN);
  const before = await treeSnapshot(root);
  const kept = await runCli(['config', 'coredumps', '--root', root, '--apply']);
  assert.equal(kept.code, 0, kept.stderr);
  assert.match(kept.stdout.toString(), /note: systemd-coredump handles core dumps.*--override/);
  assert.equal(readFileSync(join(root, 'proc/sys/kernel/core_pattern'), 'utf8'), SYSTEMD_PATTERN);
  assert.equal((await runCli(['config', 'coredumps', '--root', root, '--revert'])).code, 0);
  assert.deepEqual(await treeSnapshot(root), before);

  const over = await runCli(['config', 'coredumps', '--root', root, '--apply', '--override', '--pattern', '/srv/cores']);
  assert.equal(over.code, 0, over.stderr);
  assert.equal(readFileSync(join(root, 'proc/sys/kernel/core_pattern'), 'utf8'), '/srv/cores/core.%e.%p.%t\n');
  assert.equal((await runCli(['config', 'coredumps', '--root', root, '--revert'])).code, 0);
  assert.deepEqual(await treeSnapshot(root), before);
  assert.equal(readFileSync(join(root, 'proc/sys/kernel/core_pattern'), 'utf8'), SYSTEMD_PATTERN);
});

test('config history: dry run, apply and revert in a throw-away root; usage errors', async (t) => {
  const root = tempDir(t, 'memdump-cli-hist-');
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc/bash.bashrc'), 'PS1=x\n');
  const before = await treeSnapshot(root);
  const dry = await runCli(['config', 'history', '--root', root, '--bashrc']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout.toString(), /\+\+\+ \/etc\/profile\.d\/memdump-history\.sh/);
  assert.match(dry.stdout.toString(), /\+\s+HISTTIMEFORMAT='%F-%R '/);
  assert.match(dry.stdout.toString(), /note: zsh/);
  assert.equal((await runCli(['config', 'history', '--root', root, '--bashrc', '--apply'])).code, 0);
  assert.match(readFileSync(join(root, 'etc/bash.bashrc'), 'utf8'), /memdump-history\.sh/);
  assert.equal((await runCli(['config', 'history', '--root', root, '--revert'])).code, 0);
  assert.deepEqual(await treeSnapshot(root), before);
  const both = await runCli(['config', 'history', '--root', root, '--apply', '--revert']);
  assert.equal(both.code, 2);
  const badPattern = await runCli(['config', 'coredumps', '--root', root, '--pattern', 'relative/dir']);
  assert.equal(badPattern.code, 2);
  assert.match(badPattern.stderr, /E_USAGE/);
});
