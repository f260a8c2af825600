import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Runner, applyPlan, describePlan, revertState } from './apply.js';
import { SYSCTL_DROPIN, SYSTEMD_DROPIN, coredumpRevertCommands, corePatternFor, detectCrashHandlers, hostRunner, planCoredumps } from './coredumps.js';
import { treeSnapshot } from './tree-snapshot.js';

const SYSTEMD_PATTERN = '|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\n';
const HANDLER = ['/usr/bin/node', '/opt/memdump/main.js'];

function fakeRoot(t: { after: (f: () => void) => void }, corePattern = 'core\n', suid = '0\n'): string {
  const root = mkdtempSync(join(tmpdir(), 'memdump-cfg-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'proc/sys/kernel'), { recursive: true });
  mkdirSync(join(root, 'proc/sys/fs'), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'proc/sys/kernel/core_pattern'), corePattern);
  writeFileSync(join(root, 'proc/sys/fs/suid_dumpable'), suid);
  return root;
}

function recorder(): { runner: Runner; calls: string[][] } {
  const calls: string[][] = [];
  return { calls, runner: async (argv) => (calls.push([...argv]), { ran: true, code: 0, message: 'recorded' }) };
}

async function roundTrip(root: string, opts: { pattern?: string; override?: boolean; handlerDir?: string } = {}) {
  const before = await treeSnapshot(root);
  const rec = recorder();
  const plan = await planCoredumps({ root, pattern: opts.pattern ?? '/var/crash', handlerArgv: HANDLER, override: opts.override ?? false, ...(opts.handlerDir ? { handlerDir: opts.handlerDir } : {}) });
  const applied = await applyPlan(root, 'coredumps', plan.changes, rec.runner, ['test']);
  const after = await treeSnapshot(root);
  const again = await planCoredumps({ root, pattern: opts.pattern ?? '/var/crash', handlerArgv: HANDLER, override: opts.override ?? false, ...(opts.handlerDir ? { handlerDir: opts.handlerDir } : {}) });
  assert.deepEqual(again.changes, [], 'a second plan after apply is empty');
  assert.equal((await applyPlan(root, 'coredumps', again.changes, rec.runner, ['test'])).alreadyApplied, true);
  assert.deepEqual(await treeSnapshot(root), after, 'apply twice changes nothing');
  const reverted = await revertState(root, 'coredumps', rec.runner, (s) => coredumpRevertCommands(s.entries));
  assert.deepEqual(await treeSnapshot(root), before, 'revert restores the tree byte-exact');
  await assert.rejects(revertState(root, 'coredumps', rec.runner, () => []), (e: { code?: string }) => e.code === 'E_NOT_FOUND');
  return { plan, applied, reverted, after, calls: rec.calls };
}

test('plain host: apply writes drop-ins, sysctls and a 1777 /var/crash; revert removes them all', async (t) => {
  const root = fakeRoot(t);
  const { plan, calls, applied } = await roundTrip(root);
  assert.equal(plan.corePattern, '/var/crash/core.%e.%p.%t');
  assert.deepEqual(calls, [['systemctl', 'daemon-reexec'], ['systemctl', 'daemon-reexec']]);
  assert.ok(applied.state);
  assert.deepEqual(applied.state.createdDirs, ['/var', '/var/lib', '/var/lib/memdump', '/etc/systemd', '/etc/systemd/system.conf.d', '/etc/sysctl.d']);
});

test('apply really sets the values it shows', async (t) => {
  const root = fakeRoot(t);
  const plan = await planCoredumps({ root, pattern: '/srv/cores', handlerArgv: HANDLER, override: false });
  await applyPlan(root, 'coredumps', plan.changes, recorder().runner, []);
  assert.equal(readFileSync(join(root, 'proc/sys/kernel/core_pattern'), 'utf8'), '/srv/cores/core.%e.%p.%t\n');
  assert.equal(readFileSync(join(root, 'proc/sys/fs/suid_dumpable'), 'utf8'), '2\n');
  assert.equal(statSync(join(root, 'srv/cores')).mode & 0o7777, 0o1777);
  assert.match(readFileSync(join(root, SYSTEMD_DROPIN), 'utf8'), /^\[Manager\]\nDefaultLimitCORE=infinity$/m);
  assert.equal(readFileSync(join(root, SYSCTL_DROPIN), 'utf8').split('\n').filter((l) => !l.startsWith('#')).join('\n'), 'kernel.core_pattern = /srv/cores/core.%e.%p.%t\nfs.suid_dumpable = 2\n');
  assert.equal(statSync(join(root, SYSCTL_DROPIN)).mode & 0o777, 0o644);
});

test('pre-existing files with odd content and modes come back byte-exact', async (t) => {
  const root = fakeRoot(t, '/tmp/%e.core\n', '1\n');
  mkdirSync(join(root, 'etc/systemd/system.conf.d'), { recursive: true });
  writeFileSync(join(root, SYSTEMD_DROPIN), Buffer.from('[Manager]\r\nDefaultLimitCORE=0\x00\xff no newline'));
  chmodSync(join(root, SYSTEMD_DROPIN), 0o600);
  mkdirSync(join(root, 'etc/sysctl.d'));
  writeFileSync(join(root, SYSCTL_DROPIN), 'kernel.core_pattern = x\n');
  chmodSync(join(root, SYSCTL_DROPIN), 0o640);
  mkdirSync(join(root, 'var/crash'), { recursive: true });
  chmodSync(join(root, 'var/crash'), 0o2750);
  const { plan } = await roundTrip(root);
  assert.ok(plan.changes.some((c) => c.kind === 'dir' && c.path === '/var/crash'));
});

test('systemd-coredump owns core_pattern: left alone without --override, replaced and put back with it', async (t) => {
  const root = fakeRoot(t, SYSTEMD_PATTERN);
  const d = await detectCrashHandlers(root);
  assert.equal(d.handler, 'systemd-coredump');
  assert.equal(d.active, true);
  const kept = await roundTrip(root);
  assert.ok(!kept.plan.changes.some((c) => c.kind === 'sysctl' && c.key === 'kernel.core_pattern'));
  assert.match(kept.plan.notes.join(' '), /systemd-coredump.*--override/);
  assert.equal(kept.plan.corePattern, SYSTEMD_PATTERN.trim());
  const over = await roundTrip(root, { override: true, pattern: 'memdump', handlerDir: '/srv/cores' });
  assert.ok(over.plan.changes.some((c) => c.kind === 'sysctl' && c.key === 'kernel.core_pattern' && c.value === '|/usr/bin/node /opt/memdump/main.js core-handler --dir /srv/cores -- %P %e %t'));
  assert.equal(readFileSync(join(root, 'proc/sys/kernel/core_pattern'), 'utf8'), SYSTEMD_PATTERN);
});

test('apport is detected by its pattern or its files; an installed but idle apport is warned about', async (t) => {
  const root = fakeRoot(t, '|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E\n');
  assert.equal((await detectCrashHandlers(root)).handler, 'apport');
  const idle = fakeRoot(t);
  mkdirSync(join(idle, 'lib/systemd/system'), { recursive: true });
  writeFileSync(join(idle, 'lib/systemd/system/apport.service'), '[Unit]\n');
  const d = await detectCrashHandlers(idle);
  assert.deepEqual([d.handler, d.active], ['apport', false]);
  const p = await planCoredumps({ root: idle, pattern: '/var/crash', handlerArgv: HANDLER, override: false });
  assert.match(p.notes.join(' '), /apport rewrites kernel.core_pattern/);
  assert.ok(p.changes.some((c) => c.kind === 'sysctl' && c.key === 'kernel.core_pattern'));
});

test('a host changed by hand after apply is refused until reverted', async (t) => {
  const root = fakeRoot(t);
  const plan = await planCoredumps({ root, pattern: '/var/crash', handlerArgv: HANDLER, override: false });
  await applyPlan(root, 'coredumps', plan.changes, recorder().runner, []);
  writeFileSync(join(root, 'proc/sys/fs/suid_dumpable'), '0\n');
  const drift = await planCoredumps({ root, pattern: '/var/crash', handlerArgv: HANDLER, override: false });
  await assert.rejects(applyPlan(root, 'coredumps', drift.changes, recorder().runner, []), (e: { code?: string; message: string }) => e.code === 'E_USAGE' && /--revert/.test(e.message));
});

test('an offline tree without /proc/sys gets the boot-time files only, and says so', async (t) => {
  const root = fakeRoot(t);
  rmSync(join(root, 'proc'), { recursive: true });
  const { plan } = await roundTrip(root);
  assert.deepEqual(plan.changes.map((c) => c.kind), ['file', 'dir', 'file', 'command']);
  assert.match(plan.notes.join(' '), /only set at the next boot/);
});

test('a crash "directory" that is a file is refused before anything changes', async (t) => {
  const root = fakeRoot(t);
  mkdirSync(join(root, 'var'));
  writeFileSync(join(root, 'var/crash'), 'x');
  await assert.rejects(planCoredumps({ root, pattern: '/var/crash', handlerArgv: HANDLER, override: false }), (e: { code?: string }) => e.code === 'E_USAGE');
  const other = fakeRoot(t);
  mkdirSync(join(other, SYSTEMD_DROPIN), { recursive: true });
  const before = await treeSnapshot(other);
  const plan = await planCoredumps({ root: other, pattern: '/var/crash', handlerArgv: HANDLER, override: false });
  await assert.rejects(applyPlan(other, 'coredumps', plan.changes, recorder().runner, []), (e: { code?: string }) => e.code === 'E_USAGE');
  assert.deepEqual(await treeSnapshot(other), before, 'refused before the state file or anything else was written');
});

test('core_pattern limits: absolute paths, no spaces, at most 127 bytes', () => {
  assert.throws(() => corePatternFor({ pattern: 'relative', handlerArgv: HANDLER }), /absolute/);
  assert.throws(() => corePatternFor({ pattern: '/var/%e', handlerArgv: HANDLER }), /absolute directory/);
  assert.throws(() => corePatternFor({ pattern: 'memdump', handlerArgv: ['/a b/node', '/m.js'] }), /spaces/);
  assert.throws(() => corePatternFor({ pattern: 'memdump', handlerArgv: ['/usr/bin/node', '/' + 'x'.repeat(120)] }), /127/);
});

test('dry run lists every change and the command, and changes nothing', async (t) => {
  const root = fakeRoot(t);
  const before = await treeSnapshot(root);
  const plan = await planCoredumps({ root, pattern: '/var/crash', handlerArgv: HANDLER, override: false });
  const text = await describePlan(root, plan.changes);
  for (const s of [`+++ ${SYSTEMD_DROPIN}`, '+DefaultLimitCORE=infinity', `+++ ${SYSCTL_DROPIN}`, 'sysctl kernel.core_pattern (/proc/sys/kernel/core_pattern): "core" → "/var/crash/core.%e.%p.%t"', 'sysctl fs.suid_dumpable (/proc/sys/fs/suid_dumpable): "0" → "2"', 'directory /var/crash: absent → created, mode 1777', 'run: systemctl daemon-reexec']) {
    assert.ok(text.includes(s), `missing ${s} in\n${text}`);
  }
  assert.deepEqual(await treeSnapshot(root), before);
});

test('the live runner never runs anything for a --root that is not /', async () => {
  let ran = false;
  const r = await hostRunner('/tmp/x', async () => ((ran = true), { code: 0, message: '' }))(['systemctl', 'daemon-reexec']);
  assert.equal(ran, false);
  assert.equal(r.ran, false);
  const missing = await hostRunner('/', async () => ((ran = true), { code: 0, message: '' }))(['no-such-tool-memdump']);
  assert.deepEqual([ran, missing.ran, /not installed/.test(missing.message)], [false, false, true]);
});

test('paths stay inside --root: a symlinked parent, "..", and an existing directory\'s mode are refused before any change', async (t) => {
  const root = fakeRoot(t);
  const outside = mkdtempSync(join(tmpdir(), 'cfg-outside-'));
  t.after(() => rmSync(outside, { recursive: true, force: true }));
  // a mounted image whose /etc is an absolute link must not make config write the host's (here: outside's) files
  mkdirSync(join(outside, 'etc'), { recursive: true });
  rmSync(join(root, 'etc'), { recursive: true, force: true });
  symlinkSync(join(outside, 'etc'), join(root, 'etc'));
  const before = await treeSnapshot(outside);
  await assert.rejects(planCoredumps({ root, pattern: '/var/crash', handlerArgv: HANDLER, override: false }), (e: { code?: string }) => e.code === 'E_DEST_SYMLINK');
  assert.deepEqual(await treeSnapshot(outside), before);
  rmSync(join(root, 'etc'));
  mkdirSync(join(root, 'etc/sysctl.d'), { recursive: true });

  assert.throws(() => corePatternFor({ pattern: '/../outside', handlerArgv: HANDLER }), /"\." or "\.\."/);
  // an existing directory other than /var/crash keeps its mode: 1777 on /etc would hand root to any user
  mkdirSync(join(root, 'srv/keep'), { recursive: true, mode: 0o755 });
  chmodSync(join(root, 'srv/keep'), 0o755);
  await assert.rejects(planCoredumps({ root, pattern: '/srv/keep', handlerArgv: HANDLER, override: false }), /will not change the mode of an existing directory/);
  // the pipe handler runs as root: a new directory for it is private
  const pipe = await planCoredumps({ root, pattern: 'memdump', handlerDir: '/srv/cores', handlerArgv: HANDLER, override: false });
  assert.ok(pipe.changes.some((c) => c.kind === 'dir' && c.path === '/srv/cores' && c.mode === 0o700));
});
