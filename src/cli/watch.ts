import { mkdirSync } from 'node:fs';
import { constants } from 'node:os';
import type { Command } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { dumpProcess } from '../pipeline/process-dump.js';
import { type WatchEvent, type WatchTarget, watch } from '../pipeline/watch.js';
import type { SampleTrigger } from '../pipeline/watch-sample.js';
import { parseCoredumpFilter } from '../sources/core-filter.js';
import { type GlobalOptions, parseSize, say } from './common.js';
import { parsePid } from './process.js';
import { type CaseOpts, type HashOpts, addCaseOptions, addDiskGuardOption, addHashOptions, caseFieldsOf, parseDiskGuard, parseHashOptions } from './shared-options.js';

interface WatchOpts extends HashOpts, CaseOpts {
  pid?: string;
  name?: string;
  pgid?: string;
  cpuAbove?: string;
  cpuBelow?: string;
  for: string;
  rssAbove?: string;
  rssBelow?: string;
  threadsAbove?: string;
  fdsAbove?: string;
  timer?: string;
  exitOnCrash?: boolean;
  signal?: string;
  count: string;
  spacing: string;
  interval: string;
  output: string;
  all?: boolean;
  filter?: string;
  environ?: boolean;
  maxDiskUsage: string;
}

function num(text: string, what: string, min: number, integer = false): number {
  const v = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    throw new MemdumpError('E_USAGE', `${what}: "${text}" must be ${integer ? 'an integer' : 'a number'} ≥ ${min}`);
  }
  return v;
}

/** SIGUSR1, USR1 or 10. */
export function parseSignal(text: string): number {
  const sigs = constants.signals as Record<string, number>;
  const numeric = /^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 64;
  const name = numeric ? `signal ${text}` : text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
  const n = numeric ? Number(text) : sigs[name];
  if (n === undefined) throw new MemdumpError('E_USAGE', `--signal: "${text}" is not a signal name or number`);
  if (n === sigs['SIGKILL'] || n === sigs['SIGSTOP']) throw new MemdumpError('E_USAGE', `--signal: ${name} cannot be intercepted`);
  return n;
}

export function registerWatch(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  const cmd = program
    .command('watch')
    .description('wait for a condition in a live process, then dump it (full `process` core + report), like ProcDump')
    .option('--pid <pid>', 'the process to watch')
    .option('--name <name>', 'wait until a process with this name (comm, exe or argv[0] base name) appears, then watch it')
    .option('--pgid <pgid>', 'watch every process of this process group (sampling triggers)')
    .option('--cpu-above <percent>', 'CPU use above this (percent of one CPU, measured over each interval)')
    .option('--cpu-below <percent>', 'CPU use below this')
    .option('--for <seconds>', 'a CPU/memory/thread/fd condition must hold this long before it fires', '0')
    .option('--rss-above <size>', 'resident memory above SIZE (e.g. 512M)')
    .option('--rss-below <size>', 'resident memory below SIZE')
    .option('--threads-above <n>', 'more than N threads')
    .option('--fds-above <n>', 'more than N open file descriptors')
    .option('--timer <seconds>', 'dump SECONDS after the watch starts (and after each -s pause)')
    .option('--exit-on-crash', 'trace the process; dump when it is about to die of SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGQUIT, SIGSYS, SIGXCPU or SIGXFSZ with no handler, then let it die')
    .option('--signal <sig>', 'trace the process; dump when it receives SIG (name or number), then deliver SIG')
    .option('-n, --count <n>', 'number of dumps before the watch ends', '1')
    .option('-s, --spacing <seconds>', 'pause between dumps', '10')
    .option('--interval <seconds>', 'sampling period', '1')
    .option('-o, --output <dir>', 'folder for NAME_TRIGGER_YYYYMMDDTHHMMSSZ.PID.core and its report', '.')
    .option('--all', 'dump every readable mapping whole, not just what coredump_filter selects')
    .option('--filter <hex>', 'use this coredump_filter instead of /proc/PID/coredump_filter')
    .option('--environ', 'put the environment in the report (it often holds secrets)');
  addHashOptions(cmd);
  addDiskGuardOption(cmd);
  addCaseOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Sampling triggers are read from /proc every --interval; any of them fires a dump. --exit-on-crash and --signal
trace the process with ptrace instead (one tracer at a time: gdb/strace cannot attach while it is watched).
Ctrl-C ends the watch: everything is detached and the process runs on.

Examples:
  memdump watch --pid 1234 --cpu-above 90 --for 10 -n 3 -s 30 -o /var/dumps   # 3 dumps of a spinning service
  memdump watch --name myservice --rss-above 2G -o /var/dumps                   # wait for it to start, dump when it bloats
  memdump watch --pid 1234 --exit-on-crash -o /var/dumps                        # a core of the crash, with the faulting registers
  memdump watch --pid 1234 --signal SIGUSR1 -n 5 -s 0                           # dump whenever someone sends it SIGUSR1`,
  );
  cmd.action(async (o: WatchOpts) => {
    const g = globals();
    const given = [o.pid, o.name, o.pgid].filter((x) => x !== undefined).length;
    if (given !== 1) throw new MemdumpError('E_USAGE', 'give exactly one of --pid, --name, --pgid');
    const target: WatchTarget =
      o.pid !== undefined ? { kind: 'pid', pid: parsePid(o.pid) } : o.pgid !== undefined ? { kind: 'pgid', pgid: parsePid(o.pgid) } : { kind: 'name', name: o.name! };
    if (target.kind === 'pid' && target.pid === process.pid) throw new MemdumpError('E_USAGE', 'memdump cannot watch itself');
    const triggers: SampleTrigger[] = [];
    if (o.cpuAbove !== undefined) triggers.push({ kind: 'cpu-above', percent: num(o.cpuAbove.replace(/%$/, ''), '--cpu-above', 0) });
    if (o.cpuBelow !== undefined) triggers.push({ kind: 'cpu-below', percent: num(o.cpuBelow.replace(/%$/, ''), '--cpu-below', 0) });
    if (o.rssAbove !== undefined) triggers.push({ kind: 'rss-above', bytes: parseSize(o.rssAbove, '--rss-above') });
    if (o.rssBelow !== undefined) triggers.push({ kind: 'rss-below', bytes: parseSize(o.rssBelow, '--rss-below') });
    if (o.threadsAbove !== undefined) triggers.push({ kind: 'threads-above', count: num(o.threadsAbove, '--threads-above', 0, true) });
    if (o.fdsAbove !== undefined) triggers.push({ kind: 'fds-above', count: num(o.fdsAbove, '--fds-above', 0, true) });
    if (o.timer !== undefined) triggers.push({ kind: 'timer', seconds: num(o.timer, '--timer', 0) });
    const filter = o.filter === undefined ? undefined : parseCoredumpFilter(o.filter, '--filter');
    const { digests, windowSize } = parseHashOptions(o);
    const maxDiskUsage = parseDiskGuard(o);
    mkdirSync(o.output, { recursive: true });

    const ac = new AbortController();
    const onSig = (sig: NodeJS.Signals) => {
      if (ac.signal.aborted) process.exit(sig === 'SIGINT' ? 130 : 143);
      say(g, `memdump: ${sig} received; ending the watch (the process is detached and runs on)`);
      ac.abort();
    };
    process.on('SIGINT', onSig);
    process.on('SIGTERM', onSig);
    const onEvent = (e: WatchEvent) => {
      if (g.json && e.event === 'dump') process.stdout.write(JSON.stringify(e) + '\n');
      if (e.event === 'dump') say(g, `dump ${e.output} (${e.trigger}: ${e.detail}) ${e.status}`);
      else if (e.event === 'watching') say(g, `watching ${e.pids.join(', ')}`);
      else say(g, e.detail);
    };
    try {
      const r = await watch({
        target,
        triggers,
        forSeconds: num(o.for, '--for', 0),
        crash: o.exitOnCrash === true,
        signals: o.signal === undefined ? [] : o.signal.split(',').map(parseSignal),
        count: num(o.count, '-n', 1, true),
        spacingSeconds: num(o.spacing, '-s', 0),
        intervalSeconds: num(o.interval, '--interval', 0.05),
        outputDir: o.output,
        procRoot: '/proc',
        signal: ac.signal,
        onEvent,
        dump: (pid, output, why) =>
          dumpProcess({
            pid,
            output,
            procRoot: '/proc',
            all: o.all === true,
            filter,
            freeze: true,
            environ: o.environ === true,
            digests,
            windowSize,
            maxDiskUsage,
            rateLimit: 0,
            policy: { signal: ac.signal },
            argv: process.argv.slice(1),
            caseFields: caseFieldsOf(o),
            reportPath: undefined,
            options: { watch: why, all: o.all === true, filter: o.filter ?? null, environ: o.environ === true, digests, hashWindow: windowSize.toString() },
          }),
      });
      say(g, `watch ended (${r.reason}) after ${r.dumps.length} dump(s)`);
      const failed = r.dumps.find((d) => d.exitCode !== 0);
      setExit(failed ? failed.exitCode : r.reason === 'interrupted' ? 130 : 0);
    } finally {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    }
  });
}
