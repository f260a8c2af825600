import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { doctorRoot, statusText } from '../helpers/doctor-root.js';

function fixture(t: { after: (fn: () => void) => void }, change: Parameters<typeof doctorRoot>[2] = {}) {
  const dir = tempDir(t);
  const out = join(dir, 'out');
  mkdirSync(out);
  return { root: doctorRoot(join(dir, 'root'), out, change), out };
}

test('doctor: one aligned line per check, why/fix lines under WARN and FAIL, exit 0', async (t) => {
  const { root, out } = fixture(t, { files: { 'proc/sys/kernel/yama/ptrace_scope': '3\n' } });
  const r = await runCli(['doctor', '--root', root, '--output-dir', out, '--assume-euid', '0']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.toString().split('\n');
  const checks = lines.filter((l) => /^(OK|WARN|FAIL) /.test(l));
  assert.equal(checks.length, 21);
  // the summary column starts at the same offset on every line
  const col = checks.map((l) => /^(\S+\s+\S+\s+)/.exec(l)![1]!.length);
  assert.equal(new Set(col).size, 1);
  const yama = lines.findIndex((l) => l.startsWith('FAIL  yama'));
  assert.ok(yama >= 0);
  assert.match(lines[yama + 1]!, /^\s+why: no process, not even root/);
  assert.match(lines[yama + 2]!, /^\s+fix: acquire physical memory instead/);
  assert.match(r.stdout.toString(), /\n\d+ OK, 2 WARN, 1 FAIL\n$/);
});

test('doctor --json prints the array of {id,status,summary,reason,fix}', async (t) => {
  const { root, out } = fixture(t, { files: { 'proc/self/status': statusText(0n) } });
  const r = await runCli(['doctor', '--json', '--root', root, '--output-dir', out, '--assume-euid', '1000']);
  assert.equal(r.code, 0, r.stderr);
  const arr = JSON.parse(r.stdout.toString()) as Record<string, string>[];
  assert.ok(Array.isArray(arr));
  for (const x of arr) assert.deepEqual(Object.keys(x).sort(), ['fix', 'id', 'reason', 'status', 'summary']);
  const priv = arr.find((x) => x.id === 'privileges')!;
  assert.equal(priv.status, 'FAIL');
  assert.match(priv.summary!, /euid 1000/);
});

test('doctor --strict: exit 1 on any FAIL, 0 when the worst is WARN', async (t) => {
  const bad = fixture(t, { lockdown: 'confidentiality' });
  const r1 = await runCli(['doctor', '--strict', '-q', '--root', bad.root, '--output-dir', bad.out, '--assume-euid', '0']);
  assert.equal(r1.code, 1);
  assert.match(r1.stdout.toString(), /FAIL  lockdown/);
  const r2 = await runCli(['doctor', '--root', bad.root, '--output-dir', bad.out, '--assume-euid', '0']);
  assert.equal(r2.code, 0);
  const good = fixture(t);
  const r3 = await runCli(['doctor', '--strict', '--root', good.root, '--output-dir', good.out, '--assume-euid', '0']);
  assert.equal(r3.code, 0, r3.stdout.toString());
  assert.match(r3.stdout.toString(), /, 0 FAIL\n$/);
});

test('doctor on the live host: exit 0, well-formed JSON', async (t) => {
  const dir = tempDir(t);
  const r = await runCli(['doctor', '--json', '--output-dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  const arr = JSON.parse(r.stdout.toString()) as { id: string; status: string }[];
  assert.ok(arr.length > 15);
  for (const x of arr) assert.ok(['OK', 'WARN', 'FAIL'].includes(x.status));
  const text = await runCli(['doctor', '--output-dir', dir]);
  assert.equal(text.code, 0, text.stderr);
});

test('doctor --help documents --strict and the exit status; bad --assume-euid is a usage error', async () => {
  const h = await runCli(['doctor', '--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout.toString(), /--strict/);
  assert.match(h.stdout.toString(), /Exit status: 0 whatever was found/);
  assert.doesNotMatch(h.stdout.toString(), /assume-euid/);
  const bad = await runCli(['doctor', '--assume-euid', 'root']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /E_USAGE/);
});
