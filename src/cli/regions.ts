import type { Command } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { dumpRegions, listSuspicious } from '../pipeline/regions-dump.js';
import { type RegionSelectors, parseGrepArg, parseRangeArg } from '../pipeline/regions.js';
import { assertProcess } from '../sources/proc-info.js';
import { type GlobalOptions, abortOnSignals, say } from './common.js';
import { parsePid, processName } from './process.js';
import { type CaseOpts, type HashOpts, addCaseOptions, addDiskGuardOption, addHashOptions, caseFieldsOf, parseDiskGuard, parseHashOptions } from './shared-options.js';

interface RegionsOpts extends HashOpts, CaseOpts {
  output?: string;
  format: string;
  stack?: boolean;
  heap?: boolean;
  anonExec?: boolean;
  rwx?: boolean;
  memfd?: boolean;
  module: string[];
  range: string[];
  grep: string[];
  suspicious?: boolean;
  freeze: boolean;
  maxDiskUsage: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerRegions(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  const cmd = program
    .command('regions')
    .argument('<pid>', 'process id')
    .description('cut chosen regions out of a live process (stacks, heap, injected code, modules, ranges, grep hits), or list suspicious ones')
    .option('--stack', 'every thread\'s stack')
    .option('--heap', 'the [heap] and glibc\'s per-thread arena heaps')
    .option('--anon-exec', 'anonymous executable memory (the classic sign of injected code; JIT runtimes have it too)')
    .option('--rwx', 'mappings that are readable, writable and executable at once')
    .option('--memfd', 'memfd mappings')
    .option('--module <name>', 'mappings of a file by name (libc matches libc.so.6), with its .bss; repeatable', collect, [])
    .option('--range <start-end>', 'an address range: 0xSTART-0xEND or 0xSTART+SIZE; repeatable', collect, [])
    .option('--grep <pattern>', 'mappings containing this text, or hex:DEADBEEF bytes; repeatable', collect, [])
    .option('--suspicious', 'list regions that look injected (nothing is dumped)')
    .option('-f, --format <name>', 'raw (one file per region in a new directory) | lime | elf (one file)', 'raw')
    .option('-o, --output <path>', 'output directory (raw) or file (lime, elf); default NAME_PID_YYYYMMDDTHHMMSSZ.regions or .lime/.core')
    .option('--no-freeze', 'do not hold the threads stopped during the copy');
  addHashOptions(cmd);
  addDiskGuardOption(cmd);
  addCaseOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  memdump regions 1234 --suspicious                      # list anonymous/memfd executable, RWX, deleted-exec, ELF in anon memory
  memdump regions 1234 --stack --heap -o case42-regions  # one .raw file per region + regions.json + report
  memdump regions 1234 --anon-exec --rwx --format elf -o injected.core   # one gdb-loadable core of just those
  memdump regions 1234 --grep 'BEGIN RSA PRIVATE KEY' --grep hex:4d5a9000
  memdump regions 1234 --module libssl --range 0x7f0000000000+64K`,
  );
  cmd.action(async (pidText: string, o: RegionsOpts) => {
    const g = globals();
    const pid = parsePid(pidText);
    await assertProcess(pid);
    if (pid === process.pid) throw new MemdumpError('E_USAGE', 'memdump cannot dump itself');
    if (o.suspicious) {
      const r = await listSuspicious(pid, '/proc', o.freeze);
      const rows = r.findings.map((f) => ({ start: '0x' + f.start.toString(16), end: '0x' + f.end.toString(16), perms: f.perms, path: f.path, kind: f.kind, detail: f.detail }));
      if (g.json) process.stdout.write(JSON.stringify({ pid, findings: rows, stoppedMs: r.stoppedMs }) + '\n');
      else if (rows.length === 0) process.stdout.write(`no suspicious regions in process ${pid} (${r.mappings.length} mappings checked)\n`);
      else for (const f of rows) process.stdout.write(escapeControl(`${f.start}-${f.end} ${f.perms} ${f.kind.padEnd(12)} ${f.path || '[anon]'}  ${f.detail}`) + '\n');
      return;
    }
    if (!['raw', 'lime', 'elf'].includes(o.format)) throw new MemdumpError('E_USAGE', `--format must be raw, lime or elf (got "${o.format}")`);
    const selectors: RegionSelectors = {
      stack: o.stack === true,
      heap: o.heap === true,
      heapArenas: o.heap === true,
      anonExec: o.anonExec === true,
      rwx: o.rwx === true,
      memfd: o.memfd === true,
      modules: o.module,
      ranges: o.range.map(parseRangeArg),
      grep: o.grep.map(parseGrepArg),
    };
    const any = selectors.stack || selectors.heap || selectors.anonExec || selectors.rwx || selectors.memfd || o.module.length + o.range.length + o.grep.length > 0;
    if (!any) throw new MemdumpError('E_USAGE', 'choose what to cut out: --stack, --heap, --anon-exec, --rwx, --memfd, --module, --range or --grep (or --suspicious to list)');
    const format = o.format as 'raw' | 'lime' | 'elf';
    const output = o.output ?? (await processName(pid, format === 'raw' ? 'regions' : format === 'elf' ? 'core' : 'lime'));
    const sig = abortOnSignals();
    try {
      const result = await dumpRegions({
        pid,
        procRoot: '/proc',
        selectors,
        format,
        output,
        freeze: o.freeze,
        ...parseHashOptions(o),
        maxDiskUsage: parseDiskGuard(o),
        policy: { signal: sig.signal },
        argv: process.argv.slice(1),
        caseFields: caseFieldsOf(o),
        options: { format, freeze: o.freeze, stack: selectors.stack, heap: selectors.heap, anonExec: selectors.anonExec, rwx: selectors.rwx, memfd: selectors.memfd, module: o.module, range: o.range, grep: o.grep },
      });
      for (const w of result.report.warnings) say(g, `warning: ${w}`);
      if (g.json) process.stdout.write(JSON.stringify({ status: result.report.status, output, report: result.reportPath ?? null, regions: result.regions }) + '\n');
      else {
        if (!g.quiet) for (const r of result.regions) process.stderr.write(escapeControl(`  ${r.start}-${r.end} ${r.perms} ${r.path || '[anon]'} — ${r.reasons.join('; ')}${r.file ? ' → ' + r.file : ''}`) + '\n');
        const rep = result.report;
        if (!g.quiet || rep.status !== 'COMPLETE') {
          process.stderr.write(`${rep.status}: ${result.regions.length} region(s), ${rep.accounting.read} bytes read, ${rep.accounting.zeroFilled} zero-filled → ${output}\n`);
          if (result.reportPath) process.stderr.write(`  report  ${result.reportPath}\n`);
          if (rep.failure) process.stderr.write(`  failure ${rep.failure.code}: ${rep.failure.message}\n`);
        }
      }
      setExit(result.exitCode);
    } finally {
      sig.dispose();
    }
  });
}
