import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';

const hasGcore = spawnSync('sh', ['-c', 'command -v gcore && command -v gdb'], { stdio: 'ignore' }).status === 0;

/** A real process core, written by gdb's gcore from a live child (the kernel's own path needs core_pattern, which tests never touch). */
function gcoreOfChild(dir: string, t: { after: (f: () => void) => void }): { pid: number; core: Buffer } {
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  const pid = child.pid!;
  execFileSync('gcore', ['-o', join(dir, 'gc'), String(pid)], { stdio: 'ignore' });
  return { pid, core: readFileSync(join(dir, `gc.${pid}`)) };
}

const digest = (alg: string, b: Buffer) => createHash(alg).update(b).digest('hex');

test('a gcore core piped through core-handler is stored byte-exact, hashed like md5sum/sha256sum, and verifies', { skip: !hasGcore && 'gcore not installed' }, async (t) => {
  const dir = tempDir(t);
  const { pid, core } = gcoreOfChild(dir, t);
  const out = join(dir, 'crash');
  execFileSync('mkdir', [out]);
  const r = await runCli(['--json', 'core-handler', String(pid), 'sleep', '1700000000', '--dir', out], { stdin: core });
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.toString());
  const path = join(out, `sleep_${pid}_1700000000.core`);
  assert.equal(j.path, path);
  assert.equal(j.status, 'COMPLETE');
  assert.ok(readFileSync(path).equals(core), 'stored bytes equal the input');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(j.digests.md5, execFileSync('md5sum', [path], { encoding: 'utf8' }).split(' ')[0]);
  assert.equal(j.digests.sha1, digest('sha1', core));
  assert.equal(j.digests.sha256, execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0]);
  const rep = JSON.parse(readFileSync(path + '.report.json', 'utf8'));
  assert.equal(rep.command, 'core-handler');
  assert.deepEqual(rep.source.info.proc.cmdline, ['sleep', '300'], 'the live /proc/PID context is recorded');
  assert.match(rep.source.info.proc.exe, /sleep$/);
  assert.equal(rep.source.info.expectedBytes, String(core.length), 'our ELF extent agrees with the size gdb wrote');
  assert.ok(existsSync(path + '.log'));
  const v = await runCli(['verify', path]);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout.toString(), /^MATCH/);
});

test('a truncated core gives exit 9, a .partial file and an INCOMPLETE report that verify accepts', { skip: !hasGcore && 'gcore not installed' }, async (t) => {
  const dir = tempDir(t);
  const { pid, core } = gcoreOfChild(dir, t);
  const cut = core.subarray(0, Math.floor(core.length / 2));
  const r = await runCli(['core-handler', String(pid), 'sleep', '5', '--dir', dir], { stdin: cut });
  assert.equal(r.code, 9, r.stderr);
  assert.match(r.stderr, /INCOMPLETE.*E_TRUNCATED/);
  const partial = join(dir, `sleep_${pid}_5.core.partial`);
  assert.ok(readFileSync(partial).equals(cut));
  assert.ok(!existsSync(join(dir, `sleep_${pid}_5.core`)), 'nothing complete-looking is published');
  const rep = JSON.parse(readFileSync(join(dir, `sleep_${pid}_5.core.report.json`), 'utf8'));
  assert.equal(rep.status, 'INCOMPLETE');
  const v = await runCli(['verify', partial]);
  assert.match(v.stdout.toString(), /^MATCH/);
  assert.match(v.stdout.toString(), /INCOMPLETE/);
});

test('the core_pattern that config writes runs as the kernel would run it (argv split on spaces, no shell, bare env, cwd /)', { skip: !hasGcore && 'gcore not installed' }, async (t) => {
  const dir = tempDir(t);
  const { pid, core } = gcoreOfChild(dir, t);
  const root = join(dir, 'root');
  execFileSync('mkdir', ['-p', join(root, 'proc/sys/kernel'), join(root, 'proc/sys/fs')]);
  writeFileSync(join(root, 'proc/sys/kernel/core_pattern'), 'core\n');
  writeFileSync(join(root, 'proc/sys/fs/suid_dumpable'), '0\n');
  const out = join(dir, 'cores');
  const dry = await runCli(['--json', 'config', 'coredumps', '--root', root, '--pattern', 'memdump', '--dir', out]);
  assert.equal(dry.code, 0, dry.stderr);
  const pattern: string = JSON.parse(dry.stdout.toString()).corePattern;
  assert.ok(pattern.startsWith('|') && pattern.length <= 127, pattern);
  execFileSync('mkdir', [out]);
  const argv = pattern.slice(1).split(' ').map((w) => w.replace('%P', String(pid)).replace('%e', 'sleep').replace('%t', '1700000001'));
  const r = spawnSync(argv[0]!, argv.slice(1), { input: core, cwd: '/', env: { HOME: '/', TERM: 'linux', PATH: '/sbin:/bin:/usr/sbin:/usr/bin' } });
  assert.equal(r.status, 0, r.stderr.toString());
  assert.ok(readFileSync(join(out, `sleep_${pid}_1700000001.core`)).equals(core));
  const v = await runCli(['verify', join(out, `sleep_${pid}_1700000001.core`)]);
  assert.match(v.stdout.toString(), /^MATCH/);
});

test('bad arguments are usage errors and write nothing', async (t) => {
  const dir = tempDir(t);
  const r = await runCli(['core-handler', 'x', 'sleep', '5', '--dir', dir], { stdin: Buffer.from('abc') });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /E_USAGE/);
  assert.deepEqual(readdirSync(dir), []);
});

test('a process name that looks like an option ("-h", "--dir=/x") is stored like any other: the pattern puts "--" before %P %e %t', { skip: !hasGcore && 'gcore not installed' }, async (t) => {
  const dir = tempDir(t);
  const { pid, core } = gcoreOfChild(dir, t);
  const out = join(dir, 'crash');
  execFileSync('mkdir', [out]);
  for (const name of ['-h', '--dir=/tmp']) {
    const r = await runCli(['core-handler', '--dir', out, '--', String(pid), name, '1700000000'], { stdin: core });
    assert.equal(r.code, 0, r.stderr);
  }
  const stored = readdirSync(out).filter((f) => f.endsWith('.core'));
  assert.equal(stored.length, 2, `both cores kept inside --dir: ${stored}`);
  for (const f of stored) assert.ok(readFileSync(join(out, f)).equals(core));
});
