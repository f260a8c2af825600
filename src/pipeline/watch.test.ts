import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Freeze } from '../sources/freeze.js';
import type { JobResult } from './job.js';
import { sampleProcess } from './watch-sample.js';
import { type WatchEvent, type WatchOptions, findByName, groupMembers, watch } from './watch.js';

function fakeProc(t: { after(fn: () => void): void }, procs: Array<{ pid: number; comm: string; pgrp: number; argv0?: string }>): string {
  const root = mkdtempSync(join(tmpdir(), 'watch-proc-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const p of procs) {
    mkdirSync(join(root, String(p.pid), 'fd'), { recursive: true });
    writeFileSync(join(root, String(p.pid), 'stat'), `${p.pid} (${p.comm}) S 1 ${p.pgrp} ${p.pgrp} 0 -1 0 0 0 0 0 10 10 0 0 20 0 1 0 1 0 0`);
    writeFileSync(join(root, String(p.pid), 'status'), 'VmRSS:\t100 kB\nThreads:\t1\n');
    writeFileSync(join(root, String(p.pid), 'cmdline'), `${p.argv0 ?? p.comm}\0--flag\0`);
  }
  mkdirSync(join(root, 'self'));
  return root;
}

const fakeResult = (): JobResult => ({ report: { status: 'COMPLETE' } as JobResult['report'], reportPath: undefined, exitCode: 0 });

function options(root: string, over: Partial<WatchOptions>): WatchOptions {
  return {
    target: { kind: 'pid', pid: 1 },
    triggers: [],
    forSeconds: 0,
    crash: false,
    signals: [],
    count: 1,
    spacingSeconds: 0,
    intervalSeconds: 0.05,
    outputDir: root,
    procRoot: root,
    dump: async () => fakeResult(),
    signal: new AbortController().signal,
    onEvent: () => undefined,
    ...over,
  };
}

test('findByName matches comm, or argv[0] base name; a name past comm\'s 15 characters only by argv[0]/exe; groupMembers by pgrp', async (t) => {
  const root = fakeProc(t, [
    { pid: 10, comm: 'nginx', pgrp: 10 },
    { pid: 11, comm: 'averyveryverylo', pgrp: 10, argv0: '/usr/bin/averyveryverylongname' },
    { pid: 12, comm: 'python3', pgrp: 12, argv0: '/opt/app/worker.py' },
    // same 15-character comm, another program: must not be taken for pid 11
    { pid: 9, comm: 'averyveryverylo', pgrp: 9, argv0: 'averyveryverylongname-2' },
  ]);
  assert.deepEqual(await findByName('nginx', root), [10]);
  assert.deepEqual(await findByName('averyveryverylongname', root), [11]);
  assert.deepEqual(await findByName('worker.py', root), [12]);
  assert.deepEqual(await findByName('apache2', root), []);
  assert.deepEqual(await groupMembers(10, root), [10, 11]);
  // a zombie still has a stat file: it samples as gone
  writeFileSync(join(root, '12', 'stat'), '12 (python3) Z 1 12 12 0 -1 0 0 0 0 0 10 10 0 0 20 0 1 0 1 0 0');
  assert.equal(await sampleProcess(12, root), undefined);
  assert.ok(await sampleProcess(10, root));
});

test('watch: usage errors and a missing process are coded', async (t) => {
  const root = fakeProc(t, [{ pid: 10, comm: 'a', pgrp: 10 }]);
  await assert.rejects(watch(options(root, {})), { code: 'E_USAGE' });
  await assert.rejects(watch(options(root, { count: 0, triggers: [{ kind: 'timer', seconds: 0 }] })), { code: 'E_USAGE' });
  await assert.rejects(watch(options(root, { crash: true, triggers: [{ kind: 'timer', seconds: 0 }], target: { kind: 'pid', pid: 10 } })), { code: 'E_USAGE' });
  await assert.rejects(watch(options(root, { triggers: [{ kind: 'timer', seconds: 0 }], target: { kind: 'pid', pid: 99 } })), { code: 'E_NOT_FOUND' });
  await assert.rejects(watch(options(root, { triggers: [{ kind: 'timer', seconds: 0 }], target: { kind: 'pgid', pgid: 99 } })), { code: 'E_NOT_FOUND' });
});

test('watch: -n dumps through the callback, named NAME_TRIGGER_TIMESTAMP.PID.core, with one event each', async (t) => {
  const root = fakeProc(t, [{ pid: 10, comm: 'svc', pgrp: 10 }]);
  const calls: Array<[number, string]> = [];
  const events: WatchEvent[] = [];
  const r = await watch(
    options(root, {
      target: { kind: 'pid', pid: 10 },
      triggers: [{ kind: 'threads-above', count: 0 }],
      count: 3,
      dump: async (pid, out) => {
        calls.push([pid, out]);
        writeFileSync(out, '');
        return fakeResult();
      },
      onEvent: (e) => events.push(e),
    }),
  );
  assert.equal(r.reason, 'count');
  assert.equal(r.dumps.length, 3);
  assert.equal(new Set(calls.map((c) => c[1])).size, 3);
  for (const [pid, out] of calls) {
    assert.equal(pid, 10);
    assert.match(out, /\/svc_threads_\d{8}T\d{6}Z(-\d+)?\.10\.core$/);
  }
  assert.equal(events.filter((e) => e.event === 'dump').length, 3);
});

test('watch: ends with "exited" when the process disappears, and "interrupted" on abort', async (t) => {
  const root = fakeProc(t, [{ pid: 10, comm: 'svc', pgrp: 10 }]);
  const ac = new AbortController();
  const p = watch(options(root, { target: { kind: 'pid', pid: 10 }, triggers: [{ kind: 'timer', seconds: 3600 }], signal: ac.signal }));
  setTimeout(() => ac.abort(), 100);
  assert.equal((await p).reason, 'interrupted');
  const q = watch(options(root, { target: { kind: 'pid', pid: 10 }, triggers: [{ kind: 'timer', seconds: 3600 }] }));
  setTimeout(() => rmSync(join(root, '10'), { recursive: true }), 100);
  assert.equal((await q).reason, 'exited');
});

test('watch --signal on a real process: the dump sees it stopped (registers through the watcher), the signal is delivered', { skip: process.platform !== 'linux' || process.arch !== 'x64' }, async (t) => {
  // a grandchild: the tracer (this process) must not be its parent, or Node would reap its ptrace stops
  const sh = spawn('/bin/sh', ['-c', 'trap "" USR1; sleep 300 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => sh.kill('SIGKILL'));
  const pid = await new Promise<number>((resolve) => sh.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  t.after(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  });
  let captured: { tids: number[]; regs: boolean; cursig: number; state: string } | undefined;
  const ac = new AbortController();
  const r = watch(
    options('/proc', {
      target: { kind: 'pid', pid },
      signals: [18],
      outputDir: tmpdir(),
      signal: ac.signal,
      onEvent: (e) => {
        if (e.event === 'watching') process.kill(pid, 'SIGCONT');
      },
      dump: async (p) => {
        const f = await Freeze.capture(p, true);
        const state = /State:\s*(\S)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? '?';
        captured = { tids: f.threads.map((x) => x.tid), regs: f.threads.every((x) => x.regs !== undefined), cursig: f.threads[0]!.pendingSignal, state };
        f.release();
        return fakeResult();
      },
    }),
  );
  const res = await r;
  assert.equal(res.reason, 'count');
  assert.deepEqual(captured, { tids: [pid], regs: true, cursig: 18, state: 't' });
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  assert.match(status, /TracerPid:\s*0\b/);
  // released: not left stopped (just after the detach it may still be running on its way back to sleep)
  assert.match(status, /State:\s*[SR]/);
});
