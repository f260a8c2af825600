import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { type Sample, type SampleTrigger, TriggerState, cpuPercent, sampleProcess } from './watch-sample.js';
import { dumpName } from './watch.js';

const sample = (at: number, cpuUs: bigint, more: Partial<Sample> = {}): Sample => ({ at, comm: 'x', pgrp: 1, cpuUs, rssBytes: 0n, threads: 1, fds: 3, ...more });

test('cpuPercent is CPU time over wall time of the interval, not a lifetime average', () => {
  // a process that used 1000 s of CPU in its life but 0.1 s in the last second is at 10%
  assert.equal(cpuPercent(sample(5000, 1_000_000_000n), sample(6000, 1_000_100_000n)), 10);
  assert.equal(cpuPercent(sample(0, 0n), sample(500, 1_000_000n)), 200);
  assert.equal(cpuPercent(sample(7, 0n), sample(7, 5n)), 0);
});

test('a CPU condition fires only after holding for --for, counted from the start of its first interval', () => {
  const trig: SampleTrigger = { kind: 'cpu-above', percent: 50 };
  const st = new TriggerState([trig], 1000, 0);
  const s = [sample(0, 0n), sample(200, 10_000n), sample(400, 200_000n), sample(600, 390_000n), sample(800, 580_000n), sample(1000, 770_000n), sample(1200, 960_000n), sample(1400, 1_150_000n)];
  const fired: number[] = [];
  for (let i = 1; i < s.length; i++) if (st.update(s[i - 1], s[i]!)) fired.push(s[i]!.at);
  // hot from the interval starting at 200; 1000 ms later is 1200
  assert.deepEqual(fired, [1200, 1400]);
});

test('a break in the condition restarts the run; rearm forgets it', () => {
  const trig: SampleTrigger = { kind: 'threads-above', count: 3 };
  const st = new TriggerState([trig], 500, 0);
  const th = (at: number, n: number) => sample(at, 0n, { threads: n });
  assert.equal(st.update(undefined, th(0, 5)), undefined);
  assert.equal(st.update(undefined, th(300, 2)), undefined);
  assert.equal(st.update(undefined, th(600, 5)), undefined);
  assert.equal(st.update(undefined, th(1000, 5)), undefined);
  assert.equal(st.update(undefined, th(1100, 5))?.since, 600);
  st.rearm(1100);
  assert.equal(st.update(undefined, th(1200, 5)), undefined);
});

test('rss, fds and the timer', () => {
  const st = new TriggerState([{ kind: 'rss-below', bytes: 100n }, { kind: 'fds-above', count: 10 }, { kind: 'timer', seconds: 2 }], 0, 1000);
  assert.equal(st.update(undefined, sample(1500, 0n, { rssBytes: 200n, fds: null })), undefined, 'unreadable fds never fire');
  assert.equal(st.update(undefined, sample(1600, 0n, { rssBytes: 50n }))?.trigger.kind, 'rss-below');
  assert.equal(st.update(undefined, sample(1700, 0n, { rssBytes: 200n, fds: 11 }))?.trigger.kind, 'fds-above');
  assert.equal(st.update(undefined, sample(2900, 0n, { rssBytes: 200n }))?.trigger.kind, undefined);
  assert.equal(st.update(undefined, sample(3000, 0n, { rssBytes: 200n }))?.trigger.kind, 'timer');
});

test('property: a sustained condition fires exactly when a run of true samples spans --for', () => {
  fc.assert(
    fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 60 }), fc.integer({ min: 0, max: 2000 }), (bits, forMs) => {
      const st = new TriggerState([{ kind: 'fds-above', count: 0 }], forMs, 0);
      let runStart: number | undefined;
      for (let i = 0; i < bits.length; i++) {
        const at = i * 100;
        const f = st.update(undefined, sample(at, 0n, { fds: bits[i] ? 1 : 0 }));
        runStart = bits[i] ? (runStart ?? at) : undefined;
        const expect = runStart !== undefined && at - runStart >= forMs;
        if (Boolean(f) !== expect) return false;
      }
      return true;
    }),
  );
});

test('sampleProcess reads stat/status/fd, and says undefined for a vanished process', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'watch-proc-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(root, '42', 'fd'), { recursive: true });
  for (const fd of ['0', '1', '2', '7']) writeFileSync(join(root, '42', 'fd', fd), '');
  writeFileSync(join(root, '42', 'stat'), '42 (a (b) c) S 1 42 42 0 -1 4194560 0 0 0 0 150 50 0 0 20 0 3 0 1 0 0');
  writeFileSync(join(root, '42', 'status'), 'Name:\tx\nVmRSS:\t   2048 kB\nThreads:\t3\n');
  const s = await sampleProcess(42, root);
  assert.ok(s);
  assert.equal(s.comm, 'a (b) c');
  assert.equal(s.cpuUs, 2_000_000n);
  assert.equal(s.rssBytes, 2048n * 1024n);
  assert.equal(s.threads, 3);
  assert.equal(s.fds, 4);
  assert.equal(await sampleProcess(43, root), undefined);
});

test('dumpName: NAME_TRIGGER_TIMESTAMP.PID.core, unique within a second, name made safe', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'watch-name-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const when = new Date(Date.UTC(2026, 10, 22, 10, 15, 0, 123));
  const a = dumpName(dir, 'my svc/1', 'cpu-above', 77, when);
  assert.equal(a, join(dir, 'my_svc_1_cpu-above_20261122T101500Z.77.core'));
  writeFileSync(a, '');
  assert.equal(dumpName(dir, 'my svc/1', 'cpu-above', 77, when), join(dir, 'my_svc_1_cpu-above_20261122T101500Z-2.77.core'));
});
