/**
 * acquireVmQmp against a scripted QEMU stand-in (test/helpers/vm-fake.ts: a monitor that receives the pipe's
 * descriptor with getfd and writes the dump into it), for the paths a real QEMU will not take on request: a dump
 * QEMU reports failed after writing everything, a stalled writer, a monitor that hangs up mid-dump, QEMU exiting,
 * a dump already running, a stream that is not ELF. The real-QEMU paths are in test/oracle/vm-qmp.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { encodeNote } from '../formats/elf-parse.js';
import { formatByName } from '../formats/registry.js';
import { Prng } from '../../test/helpers/prng.js';
import { qemuLikeElf } from '../../test/helpers/vm-elf.js';
import { type FakeQemu, fakeQemu, settledSeen, until } from '../../test/helpers/vm-fake.js';
import { type VmJobOptions, type VmPlan, acquireVmQmp, parseMtreeRam } from './vm-acquire.js';

function jobInto(dir: string, signal: AbortSignal): VmJobOptions {
  return {
    command: 'vm',
    argv: ['test'],
    caseFields: {},
    root: '/',
    format: formatByName('lime'),
    output: join(dir, 'vm.lime'),
    digests: ['sha256'],
    windowSize: 0n,
    rateLimit: 0,
    maxDiskUsage: 100,
    policy: { signal },
    reportPath: undefined,
    contentHash: true,
    warnings: [],
    options: {},
  };
}

const rng = new Prng(2024);
const GOOD = qemuLikeElf(
  [
    { paddr: 0n, data: rng.bytes(200_000), gap: 0 },
    { paddr: 0x100000n, data: rng.bytes(50_000), gap: 0 },
  ],
  encodeNote({ name: 'CORE', type: 1, desc: rng.bytes(64) }),
);

function outDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'vm-acq-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const control = async (q: FakeQemu) => (await settledSeen(q)).filter((c) => ['stop', 'cont', 'getfd', 'dump-guest-memory', 'closefd'].includes(c.cmd)).map((c) => c.cmd);

test('success: no stop/cont from memdump, the descriptor travels with getfd, pausedMs from STOP/RESUME timestamps', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'completed', uuid: '00000000-0000-0000-0000-000000000000' });
  const dir = outDir(t);
  const r = await acquireVmQmp({ qmp: `unix:${q.path}`, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal) });
  assert.equal(r.job.report.status, 'COMPLETE');
  assert.equal(r.guestWarning, null);
  assert.deepEqual(await control(q), ['getfd', 'dump-guest-memory']);
  assert.equal(q.seen.find((c) => c.cmd === 'getfd')!.fds, 1, 'one descriptor arrived with the getfd bytes');
  await until(() => q.state.running);
  const vm = r.job.report.source.info['vm'] as Record<string, unknown>;
  assert.equal(vm['pausedMs'], 250);
  assert.equal(vm['runningBefore'], true);
  assert.equal(vm['runningAfter'], true);
  assert.equal(vm['resumed'], true);
  assert.equal(vm['uuid'], null, 'all-zero UUID means none');
  assert.equal(r.job.report.accounting.read, String(250_000));
});

test('QEMU reports the dump failed after writing every byte: INCOMPLETE, the guest as found, no warning', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'failed' });
  const dir = outDir(t);
  const r = await acquireVmQmp({ qmp: q.path, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal) });
  assert.equal(r.job.report.status, 'INCOMPLETE');
  assert.equal(r.job.report.failure?.code, 'E_SOURCE_READ');
  assert.match(r.job.report.failure?.message ?? '', /QEMU reports the dump failed/);
  assert.notEqual(r.job.exitCode, 0);
  assert.equal(r.guestWarning, null);
  assert.ok(existsSync(join(dir, 'vm.lime.partial')));
  const vm = JSON.parse(readFileSync(join(dir, 'vm.lime.report.json'), 'utf8')).source.info.vm;
  assert.equal(vm.runningAfter, true);
  assert.equal(vm.dump.status, 'failed');
});

test('a stream that is not ELF: coded error, our end closed so QEMU sees its writes fail', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: Buffer.alloc(4 << 20, 0x41), verdict: 'completed' });
  const dir = outDir(t);
  await assert.rejects(acquireVmQmp({ qmp: q.path, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal) }), (e: MemdumpError) => e.code === 'E_UNSUPPORTED');
  await until(() => q.state.dump === 'failed');
  assert.equal(q.state.brokenPipe, true);
  assert.deepEqual(await control(q), ['getfd', 'dump-guest-memory']);
});

test('a writer that stalls: E_SOURCE_READ after the stall timeout, the pipe closed (QEMU gets EPIPE and resumes)', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'completed', stallAfter: 100_000 });
  const dir = outDir(t);
  const r = await acquireVmQmp({ qmp: q.path, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal), stallTimeoutMs: 300 });
  assert.equal(r.job.report.status, 'INCOMPLETE');
  assert.equal(r.job.report.failure?.code, 'E_SOURCE_READ');
  assert.match(String(r.job.report.source.info['streamError']), /no byte/);
  // the fake reports its state on its own stdout, not in step with the monitor
  await until(() => q.state.dump === 'failed');
  assert.equal(q.state.brokenPipe, true);
  assert.equal(r.guestWarning, null);
  const vm = r.job.report.source.info['vm'] as Record<string, unknown>;
  assert.equal(vm['runningAfter'], true);
});

test('the monitor hangs up mid-dump: memdump reconnects to confirm the dump and the guest state', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'completed', hangUpAfterDump: true });
  const dir = outDir(t);
  const r = await acquireVmQmp({ qmp: q.path, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal) });
  assert.equal(r.job.report.status, 'COMPLETE');
  assert.equal(r.guestWarning, null);
  const vm = r.job.report.source.info['vm'] as Record<string, unknown>;
  assert.equal(vm['reconnected'], true);
  assert.equal((vm['dump'] as Record<string, unknown>)['from'], 'query-dump');
  assert.equal(vm['runningAfter'], true);
  assert.equal((await settledSeen(q)).filter((c) => c.cmd === 'qmp_capabilities').length, 2);
});

test('QEMU exits mid-dump: INCOMPLETE and a warning that says "QEMU exited", never silence', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'completed', exitMidDump: true });
  const dir = outDir(t);
  const warned: string[] = [];
  const r = await acquireVmQmp({ qmp: q.path, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal), warn: (l) => warned.push(l) });
  assert.equal(r.job.report.status, 'INCOMPLETE');
  assert.match(r.guestWarning ?? '', /QEMU exited/);
  assert.equal(warned.length, 1);
  assert.match(warned[0]!, /WARNING: QEMU exited/);
  const vm = JSON.parse(readFileSync(join(dir, 'vm.lime.report.json'), 'utf8')).source.info.vm;
  assert.equal(vm.qemuExited, true);
  assert.match(vm.guestWarning, /QEMU exited/);
});

test('a thrown failure with the guest state unknown: E_SOURCE_READ (exit 5) naming both, the warning in its details', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: Buffer.alloc(1000, 0x41), verdict: 'completed', exitMidDump: true });
  const warned: string[] = [];
  await assert.rejects(
    acquireVmQmp({ qmp: q.path, signal: new AbortController().signal, job: jobInto(outDir(t), new AbortController().signal), warn: (l) => warned.push(l) }),
    (e: MemdumpError) => e.code === 'E_SOURCE_READ' && e.exitCode === 5 && /QEMU exited/.test(String(e.details['guestWarning'])) && e.details['failureCode'] === 'E_UNSUPPORTED',
  );
  assert.equal(warned.length, 1);
});

test('a paused guest stays paused; a dump already running is refused before anything is touched', async (t) => {
  const q = await fakeQemu(t, { running: false, stream: GOOD, verdict: 'completed' });
  const dir = outDir(t);
  const r = await acquireVmQmp({ qmp: q.path, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal) });
  assert.equal(r.job.report.status, 'COMPLETE');
  assert.equal(q.state.running, false);
  assert.deepEqual(await control(q), ['getfd', 'dump-guest-memory']);
  const vm = r.job.report.source.info['vm'] as Record<string, unknown>;
  assert.equal(vm['pausedMs'], null);
  assert.equal(vm['runningAfter'], false);

  const busy = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'completed', priorDumpActive: true });
  await assert.rejects(acquireVmQmp({ qmp: busy.path, signal: new AbortController().signal, job: jobInto(outDir(t), new AbortController().signal) }), (e: MemdumpError) => e.code === 'E_SOURCE_READ' && /already/.test(e.message));
  assert.deepEqual(await control(busy), []);
});

test('precheck failing (output exists, no space) sends neither getfd nor dump-guest-memory; it sees the planned map', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'completed' });
  let plan: VmPlan | undefined;
  await assert.rejects(
    acquireVmQmp({
      qmp: q.path,
      signal: new AbortController().signal,
      job: jobInto(outDir(t), new AbortController().signal),
      precheck: async (p) => {
        plan = p;
        throw new MemdumpError('E_DEST_EXISTS', 'exists');
      },
    }),
    (e: MemdumpError) => e.code === 'E_DEST_EXISTS',
  );
  assert.deepEqual(await control(q), []);
  assert.equal(plan?.memoryBytes, 1n << 20n);
  assert.equal(plan?.mapFrom, 'estimate');
});

test('parseMtreeRam: RAM and ROM of the "memory" flat view, merged; other views and I/O ignored', () => {
  const text = [
    'FlatView #0',
    ' AS "I/O", root: io',
    '  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan',
    'FlatView #1',
    ' AS "memory", root: system',
    ' AS "cpu-memory-0", root: system',
    ' Root memory region: system',
    '  0000000000000000-000000000009ffff (prio 0, ram): pc.ram',
    '  00000000000a0000-00000000000bffff (prio 1, i/o): vga-lowmem',
    '  00000000000c0000-00000000000fffff (prio 0, rom): pc.ram @00000000000c0000',
    '  0000000000100000-00000000bfffffff (prio 0, ram): pc.ram @0000000000100000',
    '  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios',
    '  0000000100000000-000000013fffffff (prio 0, ram): pc.ram @00000000c0000000',
    'FlatView #2',
    ' AS "other", root: x',
    '  0000000200000000-00000002ffffffff (prio 0, ram): elsewhere',
  ].join('\n');
  assert.deepEqual(parseMtreeRam(text), [
    { start: 0n, end: 0xa0000n },
    { start: 0xc0000n, end: 0xc0000000n },
    { start: 0xfffc0000n, end: 0x140000000n },
  ]);
});
