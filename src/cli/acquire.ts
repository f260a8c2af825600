import { hostname } from 'node:os';
import type { Command } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { formatByName } from '../formats/registry.js';
import { acquireSwaps } from '../pipeline/swap-acquire.js';
import { layerSuffix, layersOf } from '../delivery/plan.js';
import { outputPath, runJob } from '../pipeline/job.js';
import { MIN_FAST_READ } from '../pipeline/read-policy.js';
import { fmt } from '../pipeline/space.js';
import { SOURCE_CHOICES, type SourceChoice, selectSource } from '../sources/select.js';
import { type GlobalOptions, abortOnSignals, defaultName, parseSize, progressReporter, say } from './common.js';
import { type DeliveryOpts, addDeliveryOptions, describeDestination, parseDeliveryOptions } from './delivery-options.js';
import { defaultSwapDir, printSwapTable } from './swap.js';
import {
  type CaseOpts,
  type E01Opts,
  type HashOpts,
  addCaseOptions,
  addDiskGuardOption,
  addE01Options,
  addHashOptions,
  caseFieldsOf,
  checkE01OptionsUsed,
  e01MediaOf,
  parseDiskGuard,
  parseE01Options,
  parseHashOptions,
  printJobResult,
} from './shared-options.js';

interface AcquireOpts extends HashOpts, CaseOpts, E01Opts, DeliveryOpts {
  output?: string;
  format: string;
  allowRaw?: boolean;
  source: string;
  input?: string;
  iomem?: string;
  root: string;
  rateLimit?: string;
  maxDiskUsage: string;
  chunkSize: string;
  context: boolean;
  report?: string;
  includeSwap?: boolean;
}

export function registerAcquire(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  const cmd = program
    .command('acquire')
    .description('acquire all physical RAM of this Linux host (/proc/kcore, /dev/crash or /dev/mem) with hashes and a report')
    .option('-o, --output <path>', 'output file, or - for standard output (default HOSTNAME_YYYYMMDDTHHMMSSZ.<ext>; e01: .E01 is appended if missing)')
    .option('-f, --format <name>', 'lime | padded | raw | elf | avml | e01', 'lime')
    .option('--allow-raw', 'permit --format raw (it stores no addresses; the map goes to FILE.map.json)')
    .option('-s, --source <name>', 'auto | kcore | crash | mem | file', 'auto')
    .option('--input <path>', 'with --source file: an image file read as physical memory (file offset = address)')
    .option('--iomem <path>', 'use this /proc/iomem capture instead of the live one')
    .option('--root <dir>', 'root of the /proc, /sys, /dev tree to read (testing, mounted images)', '/')
    .option('--rate-limit <rate>', 'cap the read rate, e.g. 50M (bytes per second) so a production host keeps serving')
    .option('--chunk-size <size>', 'fast-path read size (at least 1M)', '4M')
    .option('--no-context', 'do not keep iomem, kallsyms, modules, VMCOREINFO, uname, cmdline, os-release beside the dump')
    .option('--report <path>', 'with -o -: write the report here instead of standard error')
    .option('--include-swap', 'after the RAM dump, image every active swap area into OUTPUT.swap/ (one image, report and log each), as FTK Imager\'s "include pagefile" does');
  addHashOptions(cmd);
  addDiskGuardOption(cmd);
  addCaseOptions(cmd);
  addE01Options(cmd);
  addDeliveryOptions(cmd, true);
  cmd.addHelpText(
    'after',
    `
Examples:
  sudo memdump acquire                                  # LiME file HOSTNAME_<UTC>.lime in the current directory
  sudo memdump acquire -o /mnt/usb/host.lime --case IR-42 --examiner "A. Analyst"
  sudo memdump acquire --format avml -o host.avml --rate-limit 100M
  sudo memdump acquire --format e01 -o /mnt/usb/host --case IR-42 --examiner "A. Analyst" --evidence 7
                                                        # host.E01, host.E02, … (1500M each; ewfverify host.E01)
  ssh host sudo memdump acquire -o - --report /tmp/r.json > host.lime
  sudo memdump acquire --to tls://collector:9443 --pin sha256/… --token-file case.token --recipient age1…
                                                        # straight to memdump receive, encrypted; nothing on local disk
  sudo memdump acquire --to s3-presigned:manifest.json --compress gzip   # object storage, no credentials on the host
  sudo memdump acquire -o host.lime --include-swap       # + host.lime.swap/ with every active swap area
  memdump acquire --source file --input disk.img --iomem iomem.txt -o test.lime`,
  );
  cmd.action(async (o: AcquireOpts) => {
    const g = globals();
    const format = formatByName(o.format);
    if (format.name === 'raw' && !o.allowRaw) {
      throw new MemdumpError('E_RAW_NEEDS_OPT_IN', 'raw output loses every physical address; add --allow-raw if that is what you want (a FILE.map.json keeps the map)');
    }
    const e01 = format.name === 'e01';
    checkE01OptionsUsed(cmd, e01);
    const e01Opts = e01 ? parseE01Options(o) : undefined;
    const chunkSize = parseSize(o.chunkSize, '--chunk-size');
    if (chunkSize < BigInt(MIN_FAST_READ) || chunkSize > 256n << 20n) throw new MemdumpError('E_USAGE', '--chunk-size must be between 1M and 256M');
    const { digests, windowSize } = parseHashOptions(o, { cmd, on: e01 });
    if (!SOURCE_CHOICES.includes(o.source as SourceChoice)) throw new MemdumpError('E_USAGE', `unknown source "${o.source}" (choose from ${SOURCE_CHOICES.join(', ')})`);
    const selected = await selectSource({
      choice: o.source as SourceChoice,
      root: o.root,
      ...(o.input ? { input: o.input } : {}),
      ...(o.iomem ? { iomemPath: o.iomem } : {}),
    });
    for (const a of selected.attempts) if (!a.ok) say(g, `source ${a.source} not used: ${a.reason}`);
    if (o.to && o.output) throw new MemdumpError('E_USAGE', 'give either -o (a file or -) or --to (a network destination), not both');
    const sig0 = new AbortController();
    const delivery = parseDeliveryOptions(o, o.to, sig0.signal);
    if (o.to && o.includeSwap) throw new MemdumpError('E_USAGE', '--include-swap writes local images; with --to, send each swap area with memdump image instead');
    const output = o.to ?? o.output ?? defaultName(format.extension);
    say(g, `acquiring ${fmt(selected.source.ranges.reduce((t, r) => t + r.end - r.start, 0n))} from ${selected.source.kind} (${selected.source.path}) to ${o.to ? describeDestination(o.to) : outputPath(output, format, layerSuffix(layersOf(delivery)))} as ${format.name}`);
    const sig = abortOnSignals();
    sig.signal.addEventListener('abort', () => sig0.abort(), { once: true });
    try {
      const progress = progressReporter(g, 'acquire');
      const result = await runJob({
        command: 'acquire',
        argv: process.argv.slice(1),
        caseFields: caseFieldsOf(o),
        root: o.root,
        source: selected.source,
        attempts: selected.attempts,
        lockdown: selected.lockdown,
        ram: selected.ram,
        notes: selected.source.notes,
        format,
        output,
        digests,
        windowSize,
        rateLimit: o.rateLimit ? Number(parseSize(o.rateLimit, '--rate-limit')) : 0,
        maxDiskUsage: parseDiskGuard(o),
        policy: { chunkSize: Number(chunkSize), signal: sig.signal },
        context: o.context ? { iomemText: selected.iomemText } : undefined,
        reportPath: o.report,
        contentHash: false,
        warnings: [],
        options: {
          format: format.name,
          source: o.source,
          digests,
          hashWindow: windowSize.toString(),
          rateLimit: o.rateLimit ?? null,
          chunkSize: chunkSize.toString(),
          ...(e01Opts ? { compression: e01Opts.compression, segmentSize: e01Opts.segmentBytes.toString() } : {}),
        },
        ...(e01Opts ? { media: e01MediaOf(o, e01Opts, `physical memory of ${hostname()} via ${selected.source.kind} ${selected.source.path}`) } : {}),
        ...(progress ? { onProgress: progress } : {}),
        ...(delivery ? { delivery } : {}),
      });
      printJobResult(g, result);
      let swapExit = 0;
      if (o.includeSwap) {
        // RAM first: swap changes slowly, RAM does not. Swap is read with O_DIRECT (see image-job.ts).
        const swaps = await acquireSwaps({
          dir: output === '-' ? defaultSwapDir() : outputPath(output, format) + '.swap',
          all: false,
          root: o.root,
          argv: process.argv.slice(1),
          caseFields: caseFieldsOf(o),
          digests,
          windowSize,
          maxDiskUsage: parseDiskGuard(o),
          retries: 2,
          verify: false,
          chunkSize: Number(chunkSize),
          signal: sig.signal,
          onArea: (a, out) => (say(g, `imaging swap ${a.path} to ${out}`), progressReporter(g, 'swap')),
        });
        if (swaps.areas.length === 0) say(g, 'no active swap area (/proc/swaps is empty): nothing to add');
        printSwapTable(g, swaps.dir, swaps.areas, process.stderr); // stderr: stdout may carry the dump (-o -)
        swapExit = swaps.exitCode;
      }
      setExit(result.exitCode || swapExit);
    } finally {
      sig.dispose();
      await selected.source.close();
    }
  });
}
