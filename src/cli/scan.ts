import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { ERROR_EXIT, MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import type { FormatName } from '../formats/types.js';
import { fmt } from '../pipeline/space.js';
import { auditSecrets } from '../scan/audit.js';
import { openProcessInput, openScanInput, type ScanInput } from '../scan/input.js';
import { ScanOutput } from '../scan/output.js';
import { DEFAULT_CHUNK, DEFAULT_OVERLAP, newTotals, runScan } from '../scan/run.js';
import { SCANNERS, selectScanners } from '../scan/scanners/index.js';
import { readSecretsFile, secretForms } from '../scan/secret.js';
import { FEATURE_KINDS } from '../scan/types.js';
import { MAX_CONTAINERS_PER_WINDOW, MAX_HITS_PER_KIND } from '../scan/window.js';
import { compileYara, loadYaraSources } from '../scan/yara.js';
import { abortOnSignals, parseCount, parseSize, progressReporter, say, type GlobalOptions } from './common.js';
import { parsePid } from './process.js';

/** Warnings reach stderr even with -q: they say the output is not the whole answer. */
function warn(text: string): void {
  process.stderr.write(`memdump: WARNING: ${text}\n`);
}

/** Exit status of --find-secret when a secret is still in memory (0 when none is). */
export const EXIT_SECRET_FOUND = 16;

interface ScanCliOptions {
  output?: string;
  pid?: string;
  inputFormat?: string;
  scanners?: string;
  yara?: string[];
  maxDepth: string;
  maxDecoded: string;
  workers?: string;
  chunkSize?: string;
  findSecret?: string;
  list?: boolean;
}

async function openInput(file: string | undefined, o: ScanCliOptions): Promise<ScanInput> {
  if (o.pid !== undefined) {
    if (file !== undefined) throw new MemdumpError('E_USAGE', 'give an input file or --pid PID, not both');
    return openProcessInput(parsePid(o.pid));
  }
  if (file === undefined) throw new MemdumpError('E_USAGE', 'nothing to scan: give an input file or --pid PID');
  return openScanInput(file, o.inputFormat as FormatName | 'plain' | undefined);
}

export function registerScan(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  program
    .command('scan')
    .description('find features (emails, URLs, card numbers, keys, history, …) and YARA matches in a dump, a plain file or a live process, or audit a process for known secrets')
    .argument('[input]', 'a memory image in any format memdump reads, or a plain file (pagefile.sys, a swap image)')
    .option('-o, --output <dir>', 'output directory (new or empty): one feature file and histogram per kind, yara.txt, scan.json')
    .option('--pid <pid>', 'scan a live process (read-only, not stopped); addresses are virtual')
    .option('--input-format <name>', 'read the input as this format, or "plain" for a file without a container (offsets are file offsets)')
    .option('--scanners <list>', `scanners or feature kinds, comma separated; "-x" removes one (default all): ${SCANNERS.map((s) => s.name).join(',')}`)
    .option('--yara <rules>', 'YARA rules file or directory of .yar/.yara files (repeatable)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--max-depth <n>', 'container levels to decode (gzip, zlib, zip, base64); 0 scans only what is there', '4')
    .option('--max-decoded <size>', 'bytes one container may decode to (more is cut and counted)', '16M')
    .option('--workers <n>', 'worker threads (default: one per CPU)')
    .option('--chunk-size <size>', 'bytes each worker scans at a time', String(DEFAULT_CHUNK))
    .option('--find-secret <@file>', 'audit: report where the secrets in FILE (one per line) are still held, exact, UTF-16LE, base64 or hex; exit 16 if any is')
    .option('--list', 'list the scanners and the feature kinds they report')
    .addHelpText(
      'after',
      '\nExamples:\n  memdump scan host.lime -o host-scan\n  memdump scan pagefile.sys -o pf-scan --scanners email,url,ccn\n  memdump scan --pid 4242 -o app-scan --yara rules/\n  memdump scan --pid 4242 --find-secret @secrets.txt   # exit 0: none held; 16: still in memory\n\nExit status 16: --find-secret found a secret.',
    )
    .action(async (file: string | undefined, o: ScanCliOptions) => {
      const g = globals();
      if (o.list) {
        for (const s of SCANNERS) process.stdout.write(`${s.name.padEnd(10)} ${s.kinds.join(',').padEnd(42)} ${s.description}\n`);
        return;
      }
      const abort = abortOnSignals();
      try {
        if (o.findSecret !== undefined) {
          if (!o.findSecret.startsWith('@')) throw new MemdumpError('E_USAGE', '--find-secret takes @FILE (secrets on the command line would be in ps and shell history)');
          const secrets = await readSecretsFile(o.findSecret.slice(1));
          const input = await openInput(file, o);
          try {
            const progress = progressReporter(g, 'audit');
            const res = await auditSecrets(input, secretForms(secrets), { signal: abort.signal, ...(progress ? { onProgress: progress } : {}) });
            const held = new Set(res.hits.map((h) => h.secret));
            const summary = {
              input: input.description,
              secrets: secrets.length,
              held: [...held].sort((a, b) => a - b).map((i) => ({ secret: i + 1, sha256: createHash('sha256').update(secrets[i] as Buffer).digest('hex') })),
              hits: res.hits.map((h) => ({ ...h, secret: h.secret + 1 })),
              bytesScanned: res.bytesScanned.toString(),
              unreadableBytes: res.unreadableBytes.toString(),
              interrupted: res.interrupted,
            };
            if (g.json) process.stdout.write(JSON.stringify(summary) + '\n');
            else {
              for (const h of summary.hits) process.stdout.write(`secret ${h.secret}\t${h.form}\t${h.address}\t${escapeControl(h.region)}\n`);
              say(g, `${held.size} of ${secrets.length} secret(s) still in memory (${res.hits.length} place(s)); ${fmt(res.bytesScanned)} scanned${res.unreadableBytes > 0n ? `, ${fmt(res.unreadableBytes)} unreadable` : ''}`);
            }
            if (res.interrupted) setExit(130);
            else if (held.size > 0) setExit(EXIT_SECRET_FOUND);
          } finally {
            await input.close();
          }
          return;
        }
        if (o.output === undefined) throw new MemdumpError('E_USAGE', 'name the output directory with -o DIR');
        const scanners = o.scanners !== undefined ? selectScanners(o.scanners) : [...SCANNERS];
        const yaraFiles = o.yara ?? [];
        const yaraSource = yaraFiles.length > 0 ? await loadYaraSources(yaraFiles) : undefined;
        if (yaraSource !== undefined) compileYara(yaraSource, yaraFiles.join(', ')); // a syntax error is reported before anything is read
        if (scanners.length === 0 && yaraSource === undefined) throw new MemdumpError('E_USAGE', 'no scanner selected and no --yara rules: nothing to look for');
        const maxDepth = parseCount(o.maxDepth, '--max-depth', 16);
        const maxDecoded = Number(parseSize(o.maxDecoded, '--max-decoded'));
        const chunkSize = Number(parseSize(o.chunkSize ?? String(DEFAULT_CHUNK), '--chunk-size'));
        // memory is about (chunk + 1 MiB) per worker plus one, so the largest chunk keeps two workers near 512 MiB
        if (chunkSize < 65536 || chunkSize > 64 * 1024 * 1024) throw new MemdumpError('E_USAGE', '--chunk-size must be between 64K and 64M');
        const workers = o.workers !== undefined ? Math.max(1, parseCount(o.workers, '--workers', 16)) : undefined;
        const input = await openInput(file, o);
        const started = new Date();
        const t0 = performance.now();
        const kinds = FEATURE_KINDS.filter((k) => scanners.some((s) => s.kinds.includes(k)));
        try {
          const header = [`memdump scan`, `input: ${escapeControl(JSON.stringify(input.description))}`, `addressing: ${input.addressing} (${input.addressing === 'file' ? 'decimal file offsets' : 'hex addresses'}; -GZIP-n etc.: offset n in the decoded data)`];
          const out = await ScanOutput.create(o.output, kinds, header, yaraSource !== undefined);
          const progress = progressReporter(g, 'scan');
          const totals = newTotals();
          let failure: unknown;
          await runScan(input, out, {
            init: { scanners: scanners.map((s) => s.name), maxDepth, maxDecoded, maxDecodedPerWindow: Math.max(maxDecoded, 64 * 1024 * 1024), ...(yaraSource !== undefined ? { yara: { source: yaraSource, origin: yaraFiles.join(', ') } } : {}) },
            chunkSize,
            overlap: DEFAULT_OVERLAP,
            signal: abort.signal,
            ...(workers !== undefined ? { workers } : {}),
            ...(progress ? { onProgress: progress } : {}),
          }, totals).catch((e: unknown) => {
            // keep what was found: close the files, write the histograms and a scan.json that says where it stopped
            failure = e;
          });
          const features = await out.finish();
          const seconds = (performance.now() - t0) / 1000;
          const summary = {
            input: input.description,
            addressing: input.addressing,
            started: started.toISOString(),
            finished: new Date().toISOString(),
            seconds: Math.round(seconds * 1000) / 1000,
            bytesScanned: totals.bytesScanned.toString(),
            bytesPerSecond: seconds > 0 ? Math.round(Number(totals.bytesScanned) / seconds) : 0,
            complete: !totals.interrupted && failure === undefined,
            error: failure === undefined ? null : failure instanceof MemdumpError ? { code: failure.code, message: failure.message } : { code: 'E_INTERNAL', message: String(failure) },
            options: { scanners: scanners.map((s) => s.name), maxDepth, maxDecoded, chunkSize, overlap: DEFAULT_OVERLAP, yara: yaraFiles.length > 0 ? { files: yaraFiles, sha256: createHash('sha256').update(yaraSource ?? '').digest('hex') } : null },
            features,
            containers: totals.containers,
            truncatedContainers: totals.truncatedContainers,
            decodedBytes: totals.decodedBytes,
            budgetExhaustedWindows: totals.budgetExhaustedWindows,
            droppedFeatures: totals.dropped.map((d) => ({ window: d.address.toString(), features: d.features })),
            containersSkipped: totals.containersSkipped,
            scannerErrors: totals.scannerErrors.map((e) => ({ window: e.address.toString(), error: e.error })),
            histogramTruncated: out.histogramTruncated,
            yara: yaraSource !== undefined ? Object.fromEntries(out.yaraCounts) : null,
            unreadableBytes: totals.unreadableBytes.toString(),
            unreadable: totals.unreadable.map((u) => ({ start: u.start.toString(), end: u.end.toString(), region: u.region, reason: u.reason })),
          };
          await out.writeSummary(summary);
          if (failure !== undefined) throw failure;
          if (g.json) process.stdout.write(JSON.stringify(summary) + '\n');
          else if (!g.quiet) {
            const found = Object.entries(features).filter(([, t]) => t.features > 0);
            say(g, `scanned ${fmt(totals.bytesScanned)} in ${seconds.toFixed(1)} s (${fmt(BigInt(Math.round(Number(totals.bytesScanned) / Math.max(seconds, 1e-3))))}/s)${totals.unreadableBytes > 0n ? `, ${fmt(totals.unreadableBytes)} unreadable` : ''}`);
            for (const [k, t] of found) say(g, `  ${k.padEnd(20)} ${String(t.features).padStart(8)} (${t.distinct} distinct)`);
            if (yaraSource !== undefined) say(g, `  yara                 ${String([...out.yaraCounts.values()].reduce((a, b) => a + b, 0)).padStart(8)} match(es)`);
            say(g, `results in ${o.output}`);
          }
          // what was not scanned or not reported is said, and the exit status says it too
          if (totals.dropped.length > 0) {
            const n = totals.dropped.reduce((a, d) => a + Object.values(d.features).reduce((x: number, y) => x + (y ?? 0), 0), 0);
            warn(`${n} feature(s) in ${totals.dropped.length} window(s) dense with features were not reported (more than ${MAX_HITS_PER_KIND} of one kind in one window; see droppedFeatures in scan.json): scan again with --chunk-size 1M`);
            setExit(ERROR_EXIT.E_TOO_LARGE ?? 9);
          }
          if (totals.containersSkipped > 0) warn(`${totals.containersSkipped} container(s) not decoded (more than ${MAX_CONTAINERS_PER_WINDOW} in one window; containersSkipped in scan.json)`);
          if (totals.scannerErrors.length > 0) {
            warn(`a scanner failed on ${totals.scannerErrors.length} window(s) (scannerErrors in scan.json): ${escapeControl(totals.scannerErrors[0]?.error ?? '')}`);
            setExit(ERROR_EXIT.E_INTERNAL ?? 70);
          }
          if (totals.unreadableBytes > 0n) {
            warn(`${fmt(totals.unreadableBytes)} could not be read and were not scanned (unreadable in scan.json)`);
            if (input.addressing !== 'virtual') setExit(ERROR_EXIT.E_SOURCE_READ ?? 5);
          }
          if (totals.interrupted) setExit(130);
        } finally {
          await input.close();
        }
      } finally {
        abort.dispose();
      }
    });
}
