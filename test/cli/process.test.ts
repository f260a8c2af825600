import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, runCli, tempDir } from '../helpers/cli.js';
import { startTarget, targetParked, targetToolsMissing, taskStatus } from '../helpers/target.js';

const missing = targetToolsMissing(['gcc']);
const opts = missing ? { skip: missing } : {};

interface ReportLike {
  status: string;
  failure: { code: string } | null;
  warnings: string[];
  process: {
    pid: number;
    exe: { path: string; sha256: string | null };
    cmdline: string[];
    freeze: { requested: boolean; registers: string; registersError: string | null; heldForCopy: boolean; stoppedMs: number | null };
    threads: { tid: number; registers: boolean }[];
    mappings: { start: string; path: string; dumped: string; reason: string }[];
    fds: { fd: number; target: string }[] | null;
    environ: string[] | null;
    coredumpFilter: { value: string; source: string };
  };
}

const readReport = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as ReportLike;

/** True once every listed thread sits in a ptrace stop ("t (tracing stop)"). */
async function allTracingStopped(pid: number, tids: readonly number[]): Promise<boolean> {
  for (const tid of tids) if ((await taskStatus(pid, tid))?.state !== 't') return false;
  return true;
}

async function waitFor(cond: () => Promise<boolean>, what: string, limitMs = 60000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Start memdump on a slow copy (rate-limited) and hand back the child once the target is frozen. */
function startSlowDump(args: string[], cwd: string, stdoutFd?: number) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return { child, done, stderr: () => stderr };
}

test('process: a default dump is 0600, hashes verify, the report holds the context, and the threads run on untraced', opts, async (t) => {
  const dir = tempDir(t);
  process.env['MEMDUMP_TEST_SECRET'] = 'hunter2-not-for-reports';
  const target = await startTarget(t, ['--threads', '2']);
  delete process.env['MEMDUMP_TEST_SECRET'];
  const r = await runCli(['process', String(target.pid)], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const core = readdirSync(dir).find((f) => /^target_\d+_\d{8}T\d{6}Z\.core$/.test(f));
  assert.ok(core, `default name NAME_PID_UTC.core, got ${readdirSync(dir).join(', ')}`);
  assert.equal(statSync(join(dir, core)).mode & 0o777, 0o600);
  const v = await runCli(['verify', join(dir, core)]);
  assert.equal(v.code, 0, v.stderr);

  const rep = readReport(join(dir, core + '.report.json'));
  assert.equal(rep.status, 'COMPLETE');
  assert.equal(rep.process.pid, target.pid);
  assert.deepEqual(rep.process.threads.map((x) => x.tid), target.tids);
  assert.ok(rep.process.threads.every((x) => x.registers));
  assert.equal(rep.process.freeze.registers, 'ptrace');
  assert.equal(rep.process.freeze.heldForCopy, true);
  assert.ok(rep.process.freeze.stoppedMs !== null && rep.process.freeze.stoppedMs > 0);
  assert.equal(rep.process.exe.sha256, createHash('sha256').update(readFileSync(target.exe)).digest('hex'));
  assert.equal(rep.process.cmdline[0], target.exe);
  assert.deepEqual(rep.process.coredumpFilter, { value: '0x33', source: 'proc' });
  assert.equal(rep.process.environ, null, 'the environment stays out unless --environ');
  assert.ok(!readFileSync(join(dir, core + '.report.json'), 'utf8').includes('hunter2'));
  assert.ok(rep.process.fds && rep.process.fds.some((f) => f.fd === 2), 'open descriptors listed');
  const stackMap = rep.process.mappings.find((m) => m.path === '[stack]');
  assert.ok(stackMap && BigInt(stackMap.dumped) > 0n);
  const vvar = rep.process.mappings.find((m) => m.path === '[vvar]');
  if (vvar) assert.equal(vvar.dumped, '0');
  assert.ok((await targetParked(target.pid, target.tids, { untraced: true })).ok, 'threads back in pause(), no tracer');

  const withEnv = await runCli(['process', String(target.pid), '-o', join(dir, 'env.core'), '--environ', '--all']);
  assert.equal(withEnv.code, 0, withEnv.stderr);
  const rep2 = readReport(join(dir, 'env.core.report.json'));
  assert.ok(rep2.process.environ?.includes('MEMDUMP_TEST_SECRET=hunter2-not-for-reports'));
  assert.equal(rep2.process.coredumpFilter.source, 'all');
  assert.ok(statSync(join(dir, 'env.core')).size > statSync(join(dir, core)).size, '--all dumps file-backed mappings too');
});

test('process: --filter overrides coredump_filter (bit 2 adds file-private mappings)', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startTarget(t, ['--threads', '1']);
  for (const [name, filter] of [['a.core', '0x33'], ['b.core', '0x37']] as const) {
    const r = await runCli(['process', String(target.pid), '-o', join(dir, name), '--filter', filter, '--digests', 'sha256']);
    assert.equal(r.code, 0, r.stderr);
  }
  const a = readReport(join(dir, 'a.core.report.json'));
  const b = readReport(join(dir, 'b.core.report.json'));
  assert.equal(b.process.coredumpFilter.value, '0x37');
  const libcText = (rep: ReportLike) => rep.process.mappings.find((m) => /libc\.so/.test(m.path) && m.reason.length > 0 && m.start && BigInt(m.dumped) >= 0n && !/ELF header/.test(m.reason) && m.path.includes('libc'));
  assert.ok(libcText(a));
  const dumpedFile = (rep: ReportLike) => rep.process.mappings.filter((m) => m.path.startsWith('/') && BigInt(m.dumped) > 4096n).length;
  assert.ok(dumpedFile(b) > dumpedFile(a), `file-private mappings dumped: ${dumpedFile(a)} with 0x33, ${dumpedFile(b)} with 0x37`);
  const bad = await runCli(['process', String(target.pid), '-o', join(dir, 'c.core'), '--filter', 'zz']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /E_USAGE/);
});

test('process: the threads are held during the copy and released after SIGINT (partial kept, INCOMPLETE report)', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startTarget(t, ['--threads', '2', '--anon-mib', '256']);
  const run = startSlowDump(['process', String(target.pid), '-o', 'x.core', '--rate-limit', '16M', '--digests', 'md5'], dir);
  await waitFor(() => allTracingStopped(target.pid, target.tids), 'all threads in tracing stop');
  run.child.kill('SIGINT');
  const end = await run.done;
  assert.equal(end.code, 130, run.stderr());
  assert.ok(existsSync(join(dir, 'x.core.partial')), 'partial kept');
  const rep = readReport(join(dir, 'x.core.report.json'));
  assert.equal(rep.status, 'INCOMPLETE');
  assert.equal(rep.failure?.code, 'E_INTERRUPTED');
  assert.ok((await targetParked(target.pid, target.tids, { untraced: true })).ok);
});

test('process: SIGKILL of memdump mid-copy still lets the target run (the kernel detaches its tracees)', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startTarget(t, ['--threads', '2', '--anon-mib', '256']);
  const run = startSlowDump(['process', String(target.pid), '-o', 'x.core', '--rate-limit', '16M', '--digests', 'md5'], dir);
  await waitFor(() => allTracingStopped(target.pid, target.tids), 'all threads in tracing stop');
  run.child.kill('SIGKILL');
  await run.done;
  await waitFor(async () => (await targetParked(target.pid, target.tids, { untraced: true })).ok, 'target untraced after memdump died', 10000);
});

test('process: a sink that fails mid-copy (stdout on /dev/full) releases the threads and reports the failure', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startTarget(t, ['--threads', '1', '--anon-mib', '64']);
  const full = openSync('/dev/full', 'w');
  t.after(() => closeSync(full));
  const run = startSlowDump(['process', String(target.pid), '-o', '-', '--report', join(dir, 'r.json'), '--digests', 'md5'], dir, full);
  const end = await run.done;
  assert.equal(end.code, 7, run.stderr());
  const rep = readReport(join(dir, 'r.json'));
  assert.equal(rep.status, 'INCOMPLETE');
  assert.match(rep.failure?.code ?? '', /^E_(WRITE|NO_SPACE)$/);
  assert.ok((await targetParked(target.pid, target.tids, { untraced: true })).ok);
});

test('process: --no-freeze never holds the threads through the copy and says the image may be inconsistent', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startTarget(t, ['--threads', '2', '--anon-mib', '128']);
  const run = startSlowDump(['process', String(target.pid), '-o', 'x.core', '--no-freeze', '--rate-limit', '64M', '--digests', 'md5'], dir);
  let sawHeld = false;
  let polls = 0;
  const watch = (async () => {
    while (run.child.exitCode === null && run.child.signalCode === null) {
      polls++;
      // registers are read in a stop of a few ms; a hold for the copy would show on many polls in a row
      if (await allTracingStopped(target.pid, target.tids)) {
        await new Promise((r) => setTimeout(r, 200));
        if (await allTracingStopped(target.pid, target.tids)) sawHeld = true;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const end = await run.done;
  await watch;
  assert.equal(end.code, 0, run.stderr());
  assert.ok(polls > 10, 'the copy lasted long enough to watch');
  assert.equal(sawHeld, false);
  const rep = readReport(join(dir, 'x.core.report.json'));
  assert.equal(rep.process.freeze.heldForCopy, false);
  assert.equal(rep.process.freeze.registers, 'ptrace', 'registers are still read, in a brief stop');
  assert.ok(rep.warnings.some((w) => /inconsistent/.test(w)));
});

test('process: a target already under a tracer still gets a core, with registers missing and the reason', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startTarget(t, ['--traced']);
  const r = await runCli(['process', String(target.pid), '-o', join(dir, 't.core')]);
  assert.equal(r.code, 0, r.stderr);
  const rep = readReport(join(dir, 't.core.report.json'));
  assert.equal(rep.status, 'COMPLETE');
  assert.equal(rep.process.freeze.registers, 'none');
  assert.match(rep.process.freeze.registersError ?? '', /already traced by pid \d+/);
  assert.ok(rep.warnings.some((w) => /registers are missing/.test(w)));
  const core = readFileSync(join(dir, 't.core'));
  assert.ok(core.includes(Buffer.from(target.info.markers['heap']!.text)), 'memory is there even without registers');
});

test('process: clear errors for a missing process and a bad pid', async () => {
  const none = await runCli(['process', '4194303']);
  assert.equal(none.code, 3);
  assert.match(none.stderr, /E_NOT_FOUND/);
  const bad = await runCli(['process', '12abc']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /E_USAGE/);
});

const AS_NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
function nobodyCannotRun(): string | false {
  if (process.getuid?.() !== 0) return 'needs root to switch to nobody';
  // a checkout under a 0700 directory (mktemp -d) cannot be read by another user
  if (spawnSync('setpriv', [...AS_NOBODY, 'test', '-r', CLI]).status !== 0) return `nobody cannot read ${CLI}`;
  return false;
}

test('process: without root, a user dumps their own process and gets E_PERMISSION for another user\'s', { skip: nobodyCannotRun() }, async (t) => {
  const dir = tempDir(t);
  const { chmodSync } = await import('node:fs');
  chmodSync(dir, 0o777);
  const sh = `cd ${dir}; sleep 30 & p=$!; "${process.execPath}" "${CLI}" process $p -o own.core; echo own=$?; "${process.execPath}" "${CLI}" process 1 -o init.core; echo init=$?; kill $p`;
  const r = spawnSync('setpriv', [...AS_NOBODY, 'sh', '-c', sh], { encoding: 'utf8' });
  assert.match(r.stdout, /own=0/, r.stderr);
  assert.match(r.stdout, /init=4/, r.stderr);
  assert.match(r.stderr, /E_PERMISSION/);
  const v = await runCli(['verify', join(dir, 'own.core')]);
  assert.equal(v.code, 0, v.stderr);
});
