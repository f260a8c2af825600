import type { Command } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { parseCoredumpFilter } from '../sources/core-filter.js';
import { dumpProcess } from '../pipeline/process-dump.js';
import { assertProcess, parseStat, readText } from '../sources/proc-info.js';
import { type GlobalOptions, abortOnSignals, defaultName, parseSize, progressReporter, say } from './common.js';
import { type DeliveryOpts, addDeliveryOptions, describeDestination, parseDeliveryOptions } from './delivery-options.js';
import { type CaseOpts, type HashOpts, addCaseOptions, addDiskGuardOption, addHashOptions, caseFieldsOf, parseDiskGuard, parseHashOptions, printJobResult } from './shared-options.js';

interface ProcessOpts extends HashOpts, CaseOpts, DeliveryOpts {
  output?: string;
  all?: boolean;
  filter?: string;
  freeze: boolean;
  environ?: boolean;
  rateLimit?: string;
  maxDiskUsage: string;
  report?: string;
}

export function parsePid(text: string): number {
  if (!/^[1-9][0-9]{0,9}$/.test(text)) throw new MemdumpError('E_USAGE', `"${text}" is not a process id`);
  return Number(text);
}

/** NAME_PID_YYYYMMDDTHHMMSSZ: the process name keeps dumps of several processes apart in one folder. */
export async function processName(pid: number, ext: string): Promise<string> {
  let comm = 'process';
  try {
    comm = parseStat(await readText(`/proc/${pid}/stat`), pid).comm.replace(/[^A-Za-z0-9._-]/g, '_') || 'process';
  } catch {
    // the name is a convenience; the dump itself will report a vanished process
  }
  return defaultName(ext).replace(/^[^_]*_/, `${comm}_${pid}_`);
}

export function registerProcess(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  const cmd = program
    .command('process')
    .argument('<pid>', 'process id')
    .description('dump one live process as an ELF core that gdb loads (all threads\' registers, memory, hashes and a report)')
    .option('-o, --output <path>', 'output file, or - for standard output (default NAME_PID_YYYYMMDDTHHMMSSZ.core)')
    .option('--all', 'dump every readable mapping whole (file-backed code and data too), not just what coredump_filter selects')
    .option('--filter <hex>', 'use this coredump_filter instead of /proc/PID/coredump_filter (bits: 0 anon private, 1 anon shared, 2 file private, 3 file shared, 4 ELF headers, 5/6 hugetlb)')
    .option('--no-freeze', 'do not hold the threads stopped during the copy (they stop only to read registers); the image may be inconsistent')
    .option('--environ', 'put the environment in the report (it often holds secrets)')
    .option('--rate-limit <rate>', 'cap the read rate, e.g. 200M (bytes per second)')
    .option('--report <path>', 'with -o -: write the report here instead of standard error');
  addHashOptions(cmd);
  addDiskGuardOption(cmd);
  addCaseOptions(cmd);
  addDeliveryOptions(cmd, true);
  cmd.addHelpText(
    'after',
    `
Examples:
  memdump process $$ -o shell.core && memdump verify shell.core    # your own shell, no root needed
  gdb /usr/sbin/nginx -c nginx_1234_20261122T101500Z.core          # what gdb sees: threads, registers, backtraces
  sudo memdump process 1234 --all --case IR-42                     # every readable mapping, also file-backed ones
  sudo memdump process 1234 --no-freeze --digests sha256           # a service that must not stop
  sudo memdump process 1234 --to tls://collector:9443 --pin sha256/… --token-file case.token --recipient age1…`,
  );
  cmd.action(async (pidText: string, o: ProcessOpts) => {
    const g = globals();
    const pid = parsePid(pidText);
    await assertProcess(pid);
    if (pid === process.pid) throw new MemdumpError('E_USAGE', 'memdump cannot dump itself (it would stop its own threads)');
    const filter = o.filter === undefined ? undefined : parseCoredumpFilter(o.filter, '--filter');
    const { digests, windowSize } = parseHashOptions(o);
    if (o.to && o.output) throw new MemdumpError('E_USAGE', 'give either -o (a file or -) or --to (a network destination), not both');
    const dial = new AbortController();
    const delivery = parseDeliveryOptions(o, o.to, dial.signal);
    const output = o.to ?? o.output ?? (await processName(pid, 'core'));
    say(g, `dumping process ${pid} to ${describeDestination(output)}${o.freeze ? ' (threads held for the copy)' : ' (not frozen)'}`);
    const sig = abortOnSignals();
    sig.signal.addEventListener('abort', () => dial.abort(), { once: true });
    try {
      const progress = progressReporter(g, 'process');
      const result = await dumpProcess({
        pid,
        output,
        procRoot: '/proc',
        all: o.all === true,
        filter,
        freeze: o.freeze,
        environ: o.environ === true,
        digests,
        windowSize,
        maxDiskUsage: parseDiskGuard(o),
        rateLimit: o.rateLimit ? Number(parseSize(o.rateLimit, '--rate-limit')) : 0,
        policy: { signal: sig.signal },
        argv: process.argv.slice(1),
        caseFields: caseFieldsOf(o),
        reportPath: o.report,
        options: { all: o.all === true, filter: o.filter ?? null, freeze: o.freeze, environ: o.environ === true, digests, hashWindow: windowSize.toString(), rateLimit: o.rateLimit ?? null },
        ...(progress ? { onProgress: progress } : {}),
        ...(delivery ? { delivery } : {}),
      });
      const p = result.report.process;
      if (p) {
        say(g, `threads ${p.threads.length}, registers ${p.freeze.registers}${p.freeze.registersError ? ` (${p.freeze.registersError})` : ''}; ${p.freeze.stoppedMs === null ? "never stopped" : `stopped ${p.freeze.stoppedMs} ms`}`);
      }
      printJobResult(g, result);
      setExit(result.exitCode);
    } finally {
      sig.dispose();
    }
  });
}
