import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, tempDir } from '../helpers/cli.js';
import { runGdb } from '../helpers/gdb.js';
import { type BehavingTarget, startBehaving, startTarget, targetParked, targetToolsMissing, taskStatus } from '../helpers/target.js';

/**
 * `memdump watch` against real `target --behave` processes: each target changes at a moment it reports
 * (CLOCK_REALTIME ms, the clock the report's times use), the watch must dump after that moment, within the
 * trigger's window (with generous slack: this is an order check, not a benchmark), the core must load in gdb and
 * the target must be left running untraced.
 */

const missing = targetToolsMissing(['gcc', 'gdb']);
const opts = missing ? { skip: missing } : {};
/** Allowance for a loaded test machine on top of a trigger's own window. */
const SLACK_MS = 15_000;

interface DumpLine {
  event: 'dump';
  pid: number;
  comm: string;
  trigger: string;
  detail: string;
  triggeredAt: string;
  output: string;
  reportPath: string;
  status: string;
  exitCode: number;
}

interface ReportLike {
  status: string;
  time: { start: string; end: string };
  options: Record<string, unknown>;
  process: { pid: number; threads: { tid: number; registers: boolean }[]; fds: unknown[] | null };
}

function startWatch(args: string[], cwd: string) {
  const child = spawn(process.execPath, [CLI, '--json', 'watch', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const dumps = () =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as DumpLine);
  const waitStderr = async (re: RegExp) => {
    while (!re.test(stderr)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`watch exited before ${re}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { child, done, dumps, stderr: () => stderr, waitStderr };
}

async function untraced(pid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const st = await taskStatus(pid, pid);
    assert.ok(st, `process ${pid} is gone`);
    // R (a burning target) or S: anything but a stop
    if (st.tracerPid === 0 && (st.state === 'S' || st.state === 'R')) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`process ${pid} left traced or stopped: ${JSON.stringify(await taskStatus(pid, pid))}`);
}

/** The dump's files exist, its report is COMPLETE for `pid`, and gdb loads the core with that LWP. */
async function checkDump(d: DumpLine, target: BehavingTarget): Promise<ReportLike> {
  assert.equal(d.pid, target.pid);
  assert.equal(d.exitCode, 0);
  assert.ok(existsSync(d.output), d.output);
  assert.match(d.output, new RegExp(`/[A-Za-z0-9.-]+_${d.trigger}_\\d{8}T\\d{6}Z(-\\d+)?\\.${target.pid}\\.core$`));
  const rep = JSON.parse(readFileSync(d.reportPath, 'utf8')) as ReportLike;
  assert.equal(rep.status, 'COMPLETE');
  assert.equal(rep.process.pid, target.pid);
  assert.deepEqual(rep.options['watch'], { trigger: d.trigger, detail: d.detail, triggeredAt: d.triggeredAt }, 'the report says why it was taken');
  const g = await runGdb(target.exe, d.output, ['info threads']);
  assert.match(g.out, new RegExp(`LWP ${target.pid}\\b`), g.out);
  return rep;
}

/** Run one sampling watch to its end and return its dumps, checked. */
async function sampled(t: { after(fn: () => unknown): void }, target: BehavingTarget, args: string[], count = 1) {
  const dir = tempDir(t);
  const w = startWatch(['--pid', String(target.pid), '--interval', '0.2', '-o', dir, ...args], dir);
  const r = await w.done;
  assert.equal(r.code, 0, w.stderr());
  const dumps = w.dumps();
  assert.equal(dumps.length, count, w.stderr());
  const reps = [];
  for (const d of dumps) reps.push(await checkDump(d, target));
  await untraced(target.pid);
  return { dumps, reps, dir };
}

const ms = (iso: string) => Date.parse(iso);

test('watch --cpu-above --for: dumps once the burn has lasted --for, not while the process idles', opts, async (t) => {
  const target = await startBehaving(t, 'burn', 1000, 0);
  // 20%: the burn is ~100% of a CPU alone, and still well above 20% when the machine is shared with other tests
  const { dumps, reps } = await sampled(t, target, ['--cpu-above', '20', '--for', '1']);
  const go = target.events().find((e) => e.event === 'go')!.t;
  const at = ms(dumps[0]!.triggeredAt);
  // the first hot interval may start up to one interval before the burn
  assert.ok(at >= go + 1000 - 200, `triggered ${at - go} ms after the burn began; --for 1 needs ≥ 800`);
  assert.ok(at <= go + 1000 + 2 * 200 + SLACK_MS, `triggered ${at - go} ms after the burn began`);
  assert.ok(ms(reps[0]!.time.start) >= at - 1000);
  assert.match(dumps[0]!.detail, /^cpu \d+\.\d% for /);
});

test('watch --cpu-below: dumps after the busy process goes idle', opts, async (t) => {
  const target = await startBehaving(t, 'burn', 0, 1500);
  const { dumps } = await sampled(t, target, ['--cpu-below', '10', '--for', '0.6']);
  const stop = target.events().find((e) => e.event === 'stop')!.t;
  const at = ms(dumps[0]!.triggeredAt);
  assert.ok(at >= stop, `triggered ${stop - at} ms before the burn ended`);
  assert.ok(at <= stop + 600 + 400 + SLACK_MS);
});

test('watch --rss-above: dumps after the process grows past the threshold', opts, async (t) => {
  const target = await startBehaving(t, 'grow', 800, 96);
  const { dumps, reps } = await sampled(t, target, ['--rss-above', '64M']);
  const go = target.events().find((e) => e.event === 'go')!.t;
  assert.ok(ms(dumps[0]!.triggeredAt) >= go);
  assert.ok(ms(dumps[0]!.triggeredAt) <= go + SLACK_MS);
  assert.equal(reps[0]!.status, 'COMPLETE');
});

test('watch --rss-below: fires at once for a small process', opts, async (t) => {
  const target = await startBehaving(t, 'idle', 0);
  const { dumps } = await sampled(t, target, ['--rss-below', '1G']);
  assert.match(dumps[0]!.detail, /^rss \d+ bytes/);
});

test('watch --threads-above: dumps after threads are started, and the core holds them all', opts, async (t) => {
  const target = await startBehaving(t, 'threads', 800, 5);
  const { dumps, reps } = await sampled(t, target, ['--threads-above', '3']);
  const go = target.events().find((e) => e.event === 'go')!.t;
  assert.ok(ms(dumps[0]!.triggeredAt) >= go);
  assert.ok(reps[0]!.process.threads.length > 3);
  assert.ok(reps[0]!.process.threads.every((x) => x.registers));
});

test('watch --fds-above: dumps after the process opens descriptors', opts, async (t) => {
  const target = await startBehaving(t, 'fds', 800, 40);
  const { dumps } = await sampled(t, target, ['--fds-above', '30']);
  const go = target.events().find((e) => e.event === 'go')!.t;
  assert.ok(ms(dumps[0]!.triggeredAt) >= go);
  assert.match(dumps[0]!.detail, /^\d+ open fds/);
});

test('watch --timer -n 2 -s: two dumps, spaced, with distinct names', opts, async (t) => {
  const target = await startBehaving(t, 'idle', 0);
  const { dumps } = await sampled(t, target, ['--timer', '0.4', '-n', '2', '-s', '0.5'], 2);
  const [a, b] = [ms(dumps[0]!.triggeredAt), ms(dumps[1]!.triggeredAt)];
  // the second needs the -s pause and then the timer again
  assert.ok(b - a >= 900 - 50, `dumps ${b - a} ms apart`);
  assert.notEqual(dumps[0]!.output, dumps[1]!.output);
  assert.equal(dumps[0]!.trigger, 'timer');
});

test('watch --name: waits for a process that does not exist yet', opts, async (t) => {
  const dir = tempDir(t);
  const name = `wt${process.pid % 100000}x`;
  const w = startWatch(['--name', name, '--timer', '0.2', '--interval', '0.2', '-o', dir], dir);
  await w.waitStderr(/waiting for a process named/);
  const target = await startBehaving(t, 'idle', 0, undefined, { comm: name });
  const r = await w.done;
  assert.equal(r.code, 0, w.stderr());
  const d = w.dumps();
  assert.equal(d.length, 1);
  assert.equal(d[0]!.comm, name);
  await checkDump(d[0]!, target);
  assert.ok(readdirSync(dir).some((f) => f.startsWith(`${name}_timer_`)));
});

test('watch --pgid: the member that crosses the threshold is dumped', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startBehaving(t, 'threads', 500, 4, { group: true });
  const w = startWatch(['--pgid', String(target.pid), '--threads-above', '2', '--interval', '0.2', '-o', dir], dir);
  const r = await w.done;
  assert.equal(r.code, 0, w.stderr());
  const d = w.dumps();
  assert.equal(d.length, 1);
  await checkDump(d[0]!, target);
});

for (const how of ['segv', 'abort'] as const) {
  test(`watch --exit-on-crash (${how}): the core shows the fatal signal and the process still dies of it`, opts, async (t) => {
    const dir = tempDir(t);
    const target = await startBehaving(t, `${how}-on-usr2`, 0);
    const w = startWatch(['--pid', String(target.pid), '--exit-on-crash', '-o', dir], dir);
    await w.waitStderr(/watching \d+/);
    assert.notEqual((await taskStatus(target.pid, target.pid))?.tracerPid, 0, 'traced while watching');
    // SIGUSR2 has a handler: it must pass through (not a crash), and the target then crashes
    process.kill(target.pid, 'SIGUSR2');
    const r = await w.done;
    assert.equal(r.code, 0, w.stderr());
    const ex = await target.exited;
    const sig = how === 'segv' ? 'SIGSEGV' : 'SIGABRT';
    assert.equal(ex.signal, sig, 'the process died of its own signal, re-delivered');
    const d = w.dumps();
    assert.equal(d.length, 1, w.stderr());
    assert.equal(d[0]!.trigger, 'crash');
    const crashAt = target.events().find((e) => e.event === 'crash')!.t;
    assert.ok(ms(d[0]!.triggeredAt) >= crashAt);
    await checkDump(d[0]!, target);
    const g = await runGdb(target.exe, d[0]!.output, ['bt']);
    assert.match(g.out, new RegExp(`Program terminated with signal ${sig}`), g.out);
    assert.match(g.out, how === 'segv' ? /in crash \(/ : /abort/, g.out);
  });
}

test('watch --signal SIGUSR1: dumps on receipt, then the program still gets the signal; untraced after', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startBehaving(t, 'sigusr1', 0);
  const w = startWatch(['--pid', String(target.pid), '--signal', 'SIGUSR1', '-n', '2', '-s', '0', '-o', dir], dir);
  await w.waitStderr(/watching \d+/);
  process.kill(target.pid, 'SIGUSR1');
  await target.waitEvent('sigusr1');
  while (w.dumps().length < 1) await new Promise((r) => setTimeout(r, 20));
  process.kill(target.pid, 'SIGUSR1');
  const r = await w.done;
  assert.equal(r.code, 0, w.stderr());
  const d = w.dumps();
  assert.equal(d.length, 2);
  for (const x of d) {
    assert.equal(x.trigger, 'signal');
    await checkDump(x, target);
  }
  // both signals reached the program's handler: the watch held them, never swallowed them
  for (let i = 0; i < 500 && target.events().filter((e) => e.event === 'sigusr1').length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(target.events().filter((e) => e.event === 'sigusr1').length, 2);
  await untraced(target.pid);
});

test('watch ends on SIGINT: a traced process is detached and runs on', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startBehaving(t, 'sigusr1', 0);
  const w = startWatch(['--pid', String(target.pid), '--signal', 'SIGUSR1', '-o', dir], dir);
  await w.waitStderr(/watching \d+/);
  assert.equal((await taskStatus(target.pid, target.pid))?.tracerPid, w.child.pid);
  w.child.kill('SIGINT');
  const r = await w.done;
  assert.equal(r.code, 130, w.stderr());
  await untraced(target.pid);
  // still alive and responsive: a signal reaches its handler
  process.kill(target.pid, 'SIGUSR1');
  await target.waitEvent('sigusr1');
  assert.equal(w.dumps().length, 0);
});

test('watch ends on SIGINT while sampling, and refuses a watch without a trigger', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startBehaving(t, 'idle', 0);
  const w = startWatch(['--pid', String(target.pid), '--cpu-above', '90', '--interval', '0.2', '-o', dir], dir);
  await w.waitStderr(/watching \d+/);
  w.child.kill('SIGINT');
  const r = await w.done;
  assert.equal(r.code, 130, w.stderr());
  await untraced(target.pid);
  const none = startWatch(['--pid', String(target.pid), '-o', dir], dir);
  assert.equal((await none.done).code, 2);
  assert.match(none.stderr(), /E_USAGE/);
});

test('watch --exit-on-crash on a process someone else traces: E_PERMISSION, and it is left as it was', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startTarget(t, ['--traced', '--threads', '1']);
  const w = startWatch(['--pid', String(target.pid), '--exit-on-crash', '-o', dir], dir);
  const r = await w.done;
  assert.equal(r.code, 4, w.stderr());
  assert.match(w.stderr(), /E_PERMISSION/);
  const p = await targetParked(target.pid, target.tids);
  assert.ok(p.ok, p.why);
  assert.equal((await taskStatus(target.pid, target.pid))?.tracerPid, target.info.tracerPid);
  assert.equal((await taskStatus(target.pid, target.tids[1]!))?.tracerPid, 0, 'the worker thread we could seize is released');
});

test('watch --exit-on-crash: a core-dumping signal the process ignores is not a crash (passed through, no dump)', opts, async (t) => {
  const dir = tempDir(t);
  // SIG_IGN survives exec: sleep ignores SIGQUIT, yet the kernel still shows the signal to a tracer
  const target = spawn('bash', ['-c', 'trap "" QUIT; exec sleep 60'], { stdio: 'ignore' });
  t.after(() => target.kill('SIGKILL'));
  const pid = target.pid!;
  for (let i = 0; i < 200 && !/^sleep/.test(readFileSync(`/proc/${pid}/comm`, 'utf8')); i++) await new Promise((r) => setTimeout(r, 10));
  const w = startWatch(['--pid', String(pid), '--exit-on-crash', '-o', dir], dir);
  await w.waitStderr(/watching \d+/);
  process.kill(pid, 'SIGQUIT');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(w.dumps().length, 0, w.stderr());
  assert.match((await taskStatus(pid, pid))?.state ?? '', /^[SR]/, 'the process runs on after the ignored SIGQUIT');
  w.child.kill('SIGINT');
  await w.done;
  await untraced(pid);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.core')), []);
});
