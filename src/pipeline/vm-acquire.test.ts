/**
 * acquireVmQmp against a scripted QEMU stand-in (a unix-socket monitor that writes the dump into the FIFO
 * itself), for the paths a real QEMU will not take on request: a dump QEMU reports as failed after writing
 * everything, `cont` refused while QEMU winds the dump down, a dump already running, a stream that is not ELF.
 * The real-QEMU paths are in test/oracle/vm-qmp.test.ts.
 */
import assert from 'node:assert/strict';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { encodeNote } from '../formats/elf-parse.js';
import { formatByName } from '../formats/registry.js';
import { Prng } from '../../test/helpers/prng.js';
import { qemuLikeElf } from '../../test/helpers/vm-elf.js';
import { type VmJobOptions, acquireVmQmp } from './vm-acquire.js';

interface Script {
  running: boolean;
  /** What QEMU writes into the FIFO. */
  stream: Buffer;
  /** DUMP_COMPLETED status once the stream is written (or broken). */
  verdict: 'completed' | 'failed';
  /** `cont` answers "dump in process" this many times after the dump ended. */
  refuseCont: number;
  priorDumpActive: boolean;
}

async function fakeQemu(t: { after: (fn: () => void) => void }, script: Script) {
  const dir = mkdtempSync(join(tmpdir(), 'fake-qemu-'));
  const path = join(dir, 'qmp.sock');
  const seen: string[] = [];
  const state = { running: script.running, refuse: script.refuseCont, brokenPipe: false };
  const socks = new Set<Socket>();
  const server = createServer((s) => {
    socks.add(s);
    const send = (m: object) => s.write(JSON.stringify(m) + '\n');
    send({ QMP: { version: { qemu: { major: 9, minor: 9, micro: 9 }, package: 'fake' }, capabilities: [] } });
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      for (let nl; (nl = buf.indexOf('\n')) >= 0; ) {
        const cmd = JSON.parse(buf.slice(0, nl)) as { execute: string; arguments?: { protocol?: string }; id: string };
        buf = buf.slice(nl + 1);
        seen.push(cmd.execute);
        const ok = (r: unknown = {}) => send({ return: r, id: cmd.id });
        switch (cmd.execute) {
          case 'qmp_capabilities':
            ok();
            break;
          case 'query-status':
            ok({ running: state.running, status: state.running ? 'running' : 'paused' });
            break;
          case 'query-name':
            ok({ name: 'fake' });
            break;
          case 'query-uuid':
            ok({ UUID: '11111111-2222-3333-4444-555555555555' });
            break;
          case 'query-version':
            ok({ qemu: { major: 9, minor: 9, micro: 9 }, package: 'fake' });
            break;
          case 'query-memory-size-summary':
            ok({ 'base-memory': 1 << 20 });
            break;
          case 'query-dump-guest-memory-capability':
            ok({ formats: ['elf'] });
            break;
          case 'query-dump':
            ok({ status: script.priorDumpActive ? 'active' : 'none', completed: 0, total: 0 });
            break;
          case 'stop':
            state.running = false;
            ok();
            break;
          case 'cont':
            if (state.refuse-- > 0) send({ error: { class: 'GenericError', desc: 'There is a dump in process, please wait.' }, id: cmd.id });
            else {
              state.running = true;
              ok();
            }
            break;
          case 'dump-guest-memory': {
            const fifo = cmd.arguments!.protocol!.slice(5);
            const w = createWriteStream(fifo, { flags: 'w' });
            w.on('open', () => ok());
            const done = () => send({ event: 'DUMP_COMPLETED', data: { result: { status: state.brokenPipe ? 'failed' : script.verdict, completed: 0, total: script.stream.length }, ...(state.brokenPipe || script.verdict === 'failed' ? { error: 'dump: failed to save memory: Broken pipe' } : {}) } });
            w.on('error', () => {
              state.brokenPipe = true;
              done();
            });
            w.end(script.stream, () => done());
            break;
          }
          default:
            send({ error: { class: 'CommandNotFound', desc: `The command ${cmd.execute} has not been found` }, id: cmd.id });
        }
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => {
    for (const s of socks) s.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, seen, state };
}

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

test('success: complete evidence, guest resumed after a refused cont, order stop → dump → cont', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'completed', refuseCont: 2, priorDumpActive: false });
  const dir = outDir(t);
  const r = await acquireVmQmp({ qmp: `unix:${q.path}`, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal) });
  assert.equal(r.job.report.status, 'COMPLETE');
  assert.equal(r.resumeError, null);
  assert.equal(q.state.running, true);
  const cmds = q.seen.filter((c) => ['stop', 'dump-guest-memory', 'cont'].includes(c));
  assert.deepEqual(cmds, ['stop', 'dump-guest-memory', 'cont', 'cont', 'cont']);
  const vm = r.job.report.source.info['vm'] as Record<string, unknown>;
  assert.equal(vm['resumed'], true);
  assert.equal(vm['name'], 'fake');
  assert.equal(r.job.report.accounting.read, String(250_000));
});

test('QEMU reports the dump failed after writing every byte: INCOMPLETE, guest resumed', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'failed', refuseCont: 0, priorDumpActive: false });
  const dir = outDir(t);
  const r = await acquireVmQmp({ qmp: q.path, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal) });
  assert.equal(r.job.report.status, 'INCOMPLETE');
  assert.equal(r.job.report.failure?.code, 'E_SOURCE_READ');
  assert.match(r.job.report.failure?.message ?? '', /QEMU reports the dump failed/);
  assert.notEqual(r.job.exitCode, 0);
  assert.equal(q.state.running, true);
  assert.ok(existsSync(join(dir, 'vm.lime.partial')));
  assert.equal(JSON.parse(readFileSync(join(dir, 'vm.lime.report.json'), 'utf8')).source.info.vm.resumed, true);
});

test('a stream that is not ELF: coded error, the dump is cut off, the guest resumed', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: Buffer.alloc(4 << 20, 0x41), verdict: 'completed', refuseCont: 0, priorDumpActive: false });
  const dir = outDir(t);
  await assert.rejects(acquireVmQmp({ qmp: q.path, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal) }), (e: MemdumpError) => e.code === 'E_UNSUPPORTED');
  assert.equal(q.state.running, true);
  assert.equal(q.state.brokenPipe, true, 'QEMU saw its writes fail');
});

test('a paused guest stays paused; a dump already running is refused before anything is touched', async (t) => {
  const q = await fakeQemu(t, { running: false, stream: GOOD, verdict: 'completed', refuseCont: 0, priorDumpActive: false });
  const dir = outDir(t);
  const r = await acquireVmQmp({ qmp: q.path, signal: new AbortController().signal, job: jobInto(dir, new AbortController().signal) });
  assert.equal(r.job.report.status, 'COMPLETE');
  assert.equal(q.state.running, false);
  assert.ok(!q.seen.includes('stop') && !q.seen.includes('cont'));

  const busy = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'completed', refuseCont: 0, priorDumpActive: true });
  await assert.rejects(acquireVmQmp({ qmp: busy.path, signal: new AbortController().signal, job: jobInto(outDir(t), new AbortController().signal) }), (e: MemdumpError) => e.code === 'E_SOURCE_READ' && /already/.test(e.message));
  assert.ok(!busy.seen.includes('stop'));
  assert.equal(busy.state.running, true);
});

test('precheck failing (output exists, no space) leaves the guest untouched', async (t) => {
  const q = await fakeQemu(t, { running: true, stream: GOOD, verdict: 'completed', refuseCont: 0, priorDumpActive: false });
  await assert.rejects(
    acquireVmQmp({
      qmp: q.path,
      signal: new AbortController().signal,
      job: jobInto(outDir(t), new AbortController().signal),
      precheck: async () => {
        throw new MemdumpError('E_DEST_EXISTS', 'exists');
      },
    }),
    (e: MemdumpError) => e.code === 'E_DEST_EXISTS',
  );
  assert.ok(!q.seen.includes('stop'));
});
