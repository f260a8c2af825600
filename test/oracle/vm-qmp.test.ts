/**
 * `memdump vm --qmp` against a real QEMU (TCG, no disk): the acquired memory equals QEMU's own dump taken
 * independently, the guest's run state is restored on success and on SIGTERM, and the evidence verifies.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openImage } from '../../src/formats/registry.js';
import { contentHash } from '../../src/pipeline/info.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { findExecutable, withGuest } from '../helpers/qemu-guest.js';
import { qemuBinary, referenceDump, startBareGuest } from '../helpers/vm-qemu.js';

const skip = qemuBinary ? false : 'qemu-system-x86_64 not installed';

async function hashOf(file: string): Promise<string> {
  const img = await openImage(file);
  try {
    return await contentHash(img);
  } finally {
    await img.close();
  }
}

test('paused guest: same memory as QEMU\'s own dump, still paused, verify MATCH, vm section in the report', { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 64, paused: true, name: 'evidence-guest' });
  // a TMPDIR of its own, so the check below cannot see other tests' FIFO directories
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  const out = join(dir, 'guest.lime');
  const r = await runCli(['vm', '--qmp', `unix:${g.sock}`, '-o', out, '--case', 'IR-6'], { env: { ...process.env, TMPDIR: tmp } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await g.status()).running, false);
  assert.equal((await g.status()).status, 'prelaunch');
  assert.deepEqual(readdirSync(tmp), [], 'the private FIFO directory is removed');

  const ref = join(dir, 'qemu.elf');
  await referenceDump(g, ref);
  const want = await hashOf(ref);
  assert.equal(await hashOf(out), want, 'content hash of memdump vm output = QEMU dump-guest-memory');

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
  assert.equal(await hashOf(elfOut), want);
});

test('running guest: paused for the dump, running again afterwards, pause duration reported', { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 128, paused: false });
  assert.equal((await g.status()).running, true);
  const out = join(dir, 'run.avml');
  const r = await runCli(['vm', '--qmp', `unix:${g.sock}`, '-o', out, '--format', 'avml', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const st = await g.status();
  assert.equal(st.running, true);
  assert.equal(st.status, 'running');
  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
  const vm = report.source.info.vm;
  assert.equal(vm.runningBefore, true);
  assert.equal(vm.resumed, true);
  assert.equal(typeof vm.pausedMs, 'number');
  assert.ok(vm.pausedMs >= 0);
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
  assert.equal(report.source.info.vm.resumed, true);
  assert.equal(report.source.info.vm.dump.status, 'failed');
  assert.ok(BigInt(report.accounting.read) < 1n << 30n);
  // QEMU is not wedged: no dump in progress, and a new one works
  const c = await g.qmp();
  try {
    assert.notEqual((await c.execute<{ status: string }>('query-dump')).status, 'active');
  } finally {
    c.close();
  }
  const again = await runCli(['vm', '--qmp', g.sock, '-o', join(dir, 'again.lime'), '-q']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await g.status()).running, true);
});

test('QEMU as another user: cannot open the private FIFO → coded error naming --fifo-dir, guest resumed; with --fifo-dir it works', { skip: skip || (process.getuid?.() !== 0 ? 'needs root to run QEMU as nobody' : false) || (findExecutable('setpriv') ? false : 'setpriv not installed'), timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o777); // QEMU (nobody) creates its monitor socket here
  const g = await startBareGuest(t, dir, { memMiB: 64, paused: false, uid: 65534 });
  const out = join(dir, 'other.lime');
  const r = await runCli(['vm', '--qmp', g.sock, '-o', out]);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /E_SOURCE_READ: dump-guest-memory failed: .*Permission denied.*--fifo-dir/);
  assert.equal((await g.status()).running, true, 'resumed after the failed dump');
  assert.ok(!existsSync(out) && !existsSync(out + '.partial'));

  const share = join(dir, 'share');
  mkdirSync(share);
  chownSync(share, 0, 65534);
  chmodSync(share, 0o2770);
  const ok = await runCli(['vm', '--qmp', g.sock, '-o', out, '--fifo-dir', share, '-q']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(readdirSync(share), [], 'the FIFO is removed from --fifo-dir');
  assert.equal((await g.status()).running, true);
  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
  assert.equal(report.source.info.vm.resumed, true);
  assert.equal(report.source.info.vm.dump.status, 'completed');
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
