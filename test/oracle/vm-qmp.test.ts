/**
 * `memdump vm --qmp` against a real QEMU 7.2 (TCG, no disk): the acquired memory equals QEMU's own dump taken
 * independently; memdump never pauses or resumes the guest itself, so however memdump ends (success, SIGTERM,
 * SIGHUP, SIGKILL) QEMU leaves the guest as it found it; nothing appears in the filesystem for the stream; every
 * output check runs before the guest is touched. A second monitor (g.watch) watches STOP/RESUME events and plays
 * "another operator".
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openImage } from '../../src/formats/registry.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { contentHashOf } from '../helpers/content.js';
import { findExecutable, withGuest } from '../helpers/qemu-guest.js';
import { withTmpfs } from '../helpers/tmpfs.js';
import { type BareGuest, assertQemuUsable, pauseSeen, qemuBinary, referenceDump, startBareGuest } from '../helpers/vm-qemu.js';

const skip = qemuBinary ? false : 'qemu-system-x86_64 not installed';

test('paused guest: same memory as QEMU\'s own dump, still paused, verify MATCH, vm section in the report', { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 64, paused: true, name: 'evidence-guest' });
  // a TMPDIR of its own: nothing may appear there
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  const out = join(dir, 'guest.lime');
  const r = await runCli(['vm', '--qmp', `unix:${g.sock}`, '-o', out, '--case', 'IR-6'], { env: { ...process.env, TMPDIR: tmp } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await g.status()).running, false);
  assert.equal((await g.status()).status, 'prelaunch');
  assert.deepEqual(readdirSync(tmp), [], 'nothing in TMPDIR');
  assert.deepEqual(g.watch.bufferedEvents().filter((e) => e.event === 'STOP' || e.event === 'RESUME'), [], 'a paused guest is neither stopped nor resumed');

  const ref = join(dir, 'qemu.elf');
  await referenceDump(g, ref);
  const want = await contentHashOf(ref);
  assert.equal(await contentHashOf(out), want, 'content hash of memdump vm output = QEMU dump-guest-memory');

  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
  assert.equal(report.status, 'COMPLETE');
  assert.equal(report.contentSha256, want);
  assert.equal(report.source.kind, 'vm');
  const vm = report.source.info.vm;
  assert.equal(vm.name, 'evidence-guest');
  assert.equal(vm.uuid, '5c3a3f0e-6a3b-4d1c-9a7e-0123456789ab');
  assert.match(vm.qemuVersion, /^\d+\.\d+\.\d+/);
  assert.equal(vm.memoryBytes, String(64 << 20));
  assert.equal(vm.runningBefore, false);
  assert.equal(vm.runningAfter, false);
  assert.equal(vm.statusAfter, 'prelaunch');
  assert.equal(vm.resumed, false);
  assert.equal(vm.pausedMs, null);
  assert.equal(vm.dump.status, 'completed');
  assert.ok(vm.memoryMap.length >= 1 && vm.memoryMap[0].start === '0x0');
  assert.deepEqual(report.memoryMap.acquired.map((x: { start: string }) => x.start), vm.memoryMap.map((x: { start: string }) => x.start));

  const v = await runCli(['verify', out]);
  assert.equal(v.code, 0, v.stderr + v.stdout.toString());
  assert.match(v.stdout.toString() + v.stderr, /MATCH/);

  // QEMU's notes (CPU state) travel into a format that keeps notes
  const elfOut = join(dir, 'guest.elf');
  const e = await runCli(['vm', '--qmp', g.sock, '-o', elfOut, '--format', 'elf', '-q']);
  assert.equal(e.code, 0, e.stderr);
  const img = await openImage(elfOut);
  try {
    assert.ok(img.notes.some((n) => n.name === 'CORE'), 'NT_PRSTATUS kept');
    assert.ok(img.notes.some((n) => n.name === 'QEMU'), 'QEMU CPU state note kept');
  } finally {
    await img.close();
  }
  assert.equal(await contentHashOf(elfOut), want);
});

test('running guest: QEMU pauses it for the dump and resumes it, pausedMs from its STOP/RESUME events', { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 128, paused: false });
  assert.equal((await g.status()).running, true);
  const before = g.watch.lastEventSeq;
  const out = join(dir, 'run.avml');
  const r = await runCli(['vm', '--qmp', `unix:${g.sock}`, '-o', out, '--format', 'avml', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const st = await g.status();
  assert.equal(st.running, true);
  assert.equal(st.status, 'running');
  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
  const vm = report.source.info.vm;
  assert.equal(vm.runningBefore, true);
  assert.equal(vm.runningAfter, true);
  assert.equal(vm.resumed, true);
  // the same STOP/RESUME pair the second monitor saw, timestamps and all
  assert.equal(vm.pausedMs, pauseSeen(g, before).ms);
  assert.match(vm.pausedMsFrom, /STOP and RESUME/);
  assert.equal(vm.dump.status, 'completed');
  assert.equal(report.accounting.read, String(BigInt(report.memoryMap.acquiredBytes)));
  const v = await runCli(['verify', out]);
  assert.equal(v.code, 0, v.stderr);
});

test('SIGTERM mid-dump: guest resumed, INCOMPLETE report and .partial kept, non-zero exit, QEMU usable again', { skip, timeout: 240_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 1024, paused: false });
  const out = join(dir, 'slow.lime');
  let pid = 0;
  const run = runCli(['vm', '--qmp', `unix:${g.sock}`, '-o', out, '--rate-limit', '16M', '--chunk-size', '1M'], { onSpawn: (p) => (pid = p) });
  // progress, not time: wait until the copy has really started writing guest memory
  while (!(existsSync(out + '.partial') && statSync(out + '.partial').size > 4 << 20)) await new Promise((r) => setTimeout(r, 50));
  process.kill(pid, 'SIGTERM');
  const r = await run;
  assert.notEqual(r.code, 0, r.stderr);
  assert.ok(existsSync(out + '.partial'), '.partial kept');
  assert.ok(!existsSync(out), 'no complete-looking file');
  const st = await g.status();
  assert.equal(st.running, true, 'guest resumed');
  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
  assert.equal(report.status, 'INCOMPLETE');
  assert.equal(report.source.info.vm.runningBefore, true);
  assert.equal(report.source.info.vm.runningAfter, true);
  assert.equal(report.source.info.vm.resumed, true);
  assert.equal(report.source.info.vm.dump.status, 'failed');
  assert.ok(BigInt(report.accounting.read) < 1n << 30n);
  await assertQemuUsable(g, dir);
});

/** Poll the guest's run state until it is `running` or `bound` polls have passed. */
async function runningWithin(g: BareGuest, bound = 300): Promise<boolean> {
  for (let i = 0; i < bound; i++) {
    if ((await g.status()).running) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Start a slow dump of a running guest and wait until guest memory is really being written. */
async function midDump(dir: string, g: BareGuest): Promise<{ pid: number; out: string; run: ReturnType<typeof runCli> }> {
  const out = join(dir, 'slow.lime');
  let pid = 0;
  const run = runCli(['vm', '--qmp', `unix:${g.sock}`, '-o', out, '--rate-limit', '16M', '--chunk-size', '1M'], { onSpawn: (p) => (pid = p) });
  while (!(existsSync(out + '.partial') && statSync(out + '.partial').size > 4 << 20)) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await g.status()).running, false, 'QEMU paused the guest for the dump');
  return { pid, out, run };
}

for (const sig of ['SIGKILL', 'SIGHUP'] as const) {
  test(`${sig} mid-dump: QEMU resumes the guest itself, QEMU usable again`, { skip, timeout: 240_000 }, async (t) => {
    const dir = tempDir(t);
    const g = await startBareGuest(t, dir, { memMiB: 1024, paused: false });
    const { pid, out, run } = await midDump(dir, g);
    process.kill(pid, sig);
    const r = await run;
    if (sig === 'SIGKILL') assert.equal(r.signal, 'SIGKILL');
    else {
      assert.notEqual(r.code, 0, r.stderr);
      assert.match(r.stderr, /SIGHUP received/);
      const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
      assert.equal(report.status, 'INCOMPLETE');
      assert.equal(report.source.info.vm.runningAfter, true);
    }
    assert.ok(!existsSync(out), 'no complete-looking file');
    assert.equal(await runningWithin(g), true, 'the guest runs again');
    await assertQemuUsable(g, dir);
  });
}

test('QEMU killed mid-dump: even with -q, a warning on stderr and exit 5; the report says QEMU exited', { skip, timeout: 240_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 1024, paused: false });
  const out = join(dir, 'gone.lime');
  const run = runCli(['vm', '--qmp', `unix:${g.sock}`, '-o', out, '--rate-limit', '16M', '--chunk-size', '1M', '-q']);
  while (!(existsSync(out + '.partial') && statSync(out + '.partial').size > 4 << 20)) await new Promise((r) => setTimeout(r, 50));
  g.child.kill('SIGKILL');
  const r = await run;
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /WARNING: QEMU exited during the dump/);
  const vm = JSON.parse(readFileSync(out + '.report.json', 'utf8')).source.info.vm;
  assert.equal(vm.qemuExited, true);
  assert.equal(vm.runningAfter, null);
  assert.match(vm.guestWarning, /QEMU exited/);
});

test("another operator's stop before memdump starts is never undone", { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 64, paused: false });
  await g.watch.execute('stop');
  const out = join(dir, 'held.lime');
  const r = await runCli(['vm', '--qmp', g.sock, '-o', out, '-q']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await g.status()).status, 'paused');
  const vm = JSON.parse(readFileSync(out + '.report.json', 'utf8')).source.info.vm;
  assert.equal(vm.runningBefore, false);
  assert.equal(vm.statusAfter, 'paused');
  assert.equal(g.watch.bufferedEvents().filter((e) => e.event === 'RESUME').length, 0);
});

test('QEMU as another user (nobody): works with no option; the stream is a pipe, no path appears anywhere', { skip: skip || (process.getuid?.() !== 0 ? 'needs root to run QEMU as nobody' : false) || (findExecutable('setpriv') ? false : 'setpriv not installed'), timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o777); // QEMU (nobody) creates its monitor sockets here
  const g = await startBareGuest(t, dir, { memMiB: 512, paused: false, uid: 65534 });
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { mode: 0o700 });
  const outDir = join(dir, 'out');
  mkdirSync(outDir, { mode: 0o700 });
  const out = join(outDir, 'other.lime');
  let pid = 0;
  const run = runCli(['vm', '--qmp', g.sock, '-o', out, '--rate-limit', '32M', '--chunk-size', '1M'], { env: { ...process.env, TMPDIR: tmp }, onSpawn: (p) => (pid = p) });
  while (!(existsSync(out + '.partial') && statSync(out + '.partial').size > 4 << 20)) await new Promise((r) => setTimeout(r, 50));
  // mid-dump: QEMU writes into a pipe; no FIFO or file of ours is open in QEMU, nothing new in TMPDIR or beside the output
  const qemuFds = readdirSync(`/proc/${g.child.pid}/fd`).map((f) => {
    try {
      return readlinkSync(`/proc/${g.child.pid}/fd/${f}`);
    } catch {
      return '';
    }
  });
  assert.ok(qemuFds.some((l) => /^pipe:/.test(l)), 'QEMU holds a pipe');
  assert.deepEqual(qemuFds.filter((l) => l.startsWith(dir) && !l.endsWith('.sock')), [], 'QEMU opened no path of ours');
  assert.deepEqual(readdirSync(tmp), []);
  assert.deepEqual(readdirSync(outDir), ['other.lime.partial']);
  void pid;
  const r = await run;
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await g.status()).running, true);
  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
  assert.equal(report.status, 'COMPLETE');
  assert.equal(report.source.info.vm.resumed, true);
  assert.equal(report.source.info.vm.dump.status, 'completed');
  const removed = await runCli(['vm', '--qmp', g.sock, '--fifo-dir', tmp, '-o', join(outDir, 'x.lime')]);
  assert.equal(removed.code, 2, '--fifo-dir is gone');
});

test('outputs that cannot work are refused before dump-guest-memory: the guest is never paused', { skip: skip || (process.getuid?.() !== 0 ? 'needs root to mount a tmpfs' : false), timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 256, paused: false });
  const cases: { name: string; plant?: string; args: string[]; code: number }[] = [
    { name: 'a.lime', plant: 'a.lime.report.json', args: [], code: 6 },
    { name: 'b.lime', plant: 'b.lime.partial', args: [], code: 6 },
    { name: 'c.lime', plant: 'c.lime.log', args: [], code: 6 },
    { name: 'd.padded', plant: 'elsewhere.json', args: ['-f', 'padded', '--report', join(dir, 'elsewhere.json')], code: 6 },
  ];
  for (const c of cases) {
    if (c.plant) writeFileSync(join(dir, c.plant), 'x');
    const r = await runCli(['vm', '--qmp', g.sock, '-o', join(dir, c.name), ...c.args, '-q']);
    assert.equal(r.code, c.code, `${c.name}: ${r.stderr}`);
    assert.match(r.stderr, /E_DEST_EXISTS/);
  }
  // padded stores up to the highest address (the BIOS ROM just below 4 GiB): 4 GiB, not the 256 MiB of RAM
  await withTmpfs(t, join(dir, 'small'), '400m', async (mnt) => {
    const r = await runCli(['vm', '--qmp', g.sock, '-o', join(mnt, 'e.padded'), '-f', 'padded', '--max-disk-usage', '100', '-q']);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /E_NO_SPACE/);
    assert.deepEqual(readdirSync(mnt), []);
    // the RAM itself fits: lime works there
    const ok = await runCli(['vm', '--qmp', g.sock, '-o', join(mnt, 'e.lime'), '--max-disk-usage', '100', '-q']);
    assert.equal(ok.code, 0, ok.stderr);
  });
  const stops = g.watch.bufferedEvents().filter((e) => e.event === 'STOP');
  assert.equal(stops.length, 1, 'only the one dump that went ahead paused the guest');
  assert.equal((await g.status()).running, true);
});

test('missing socket: E_NOT_FOUND, exit 3, nothing written', { skip, timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const r = await runCli(['vm', '--qmp', `unix:${join(dir, 'nope.sock')}`, '-o', join(dir, 'x.lime')]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /E_NOT_FOUND/);
  assert.deepEqual(readdirSync(dir), []);
  const both = await runCli(['vm', '--qmp', 'x', '--libvirt', 'y']);
  assert.equal(both.code, 2);
});

test('booted Debian kernel: memdump info of the vm dump finds the "Linux version" banner; the guest keeps running', { skip, timeout: 900_000 }, async (t) => {
  const dir = tempDir(t);
  // a second monitor: the rig keeps the first one for itself, and QEMU serves one client per monitor
  const sock = join(dir, 'vm.qmp');
  await withGuest({ memoryMiB: 256, runScript: 'echo ready > /work/ready\nexit 0\n', timeoutMs: 600_000, extraArgs: ['-qmp', `unix:${sock},server,nowait`] }, async (g) => {
    assert.equal(g.exitStatus, 0, g.console.slice(-2000));
    const out = join(dir, 'linux.lime');
    const r = await runCli(['vm', '--qmp', sock, '-o', out, '-q']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await g.qmp('query-status')).running, true);
    const info = await runCli(['info', out, '--json']);
    assert.equal(info.code, 0, info.stderr);
    const banner = JSON.parse(info.stdout.toString()).banner;
    assert.ok(banner, 'banner found');
    assert.match(banner.text, /^Linux version 6\.\d+/);
    const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
    assert.equal(report.source.info.vm.resumed, true);
    assert.ok(report.source.info.vm.notes >= 1);
  });
});
