import { promises as fsp } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { formatByName } from '../formats/registry.js';
import { deviceWarnings, runImageJob } from '../pipeline/image-job.js';
import { MIN_FAST_READ } from '../pipeline/read-policy.js';
import { fmt } from '../pipeline/space.js';
import { DeviceSource, type IoMode } from '../sources/device.js';
import { type SwapEntry, findSwapAreas } from '../sources/swaps.js';
import { type GlobalOptions, abortOnSignals, parseCount, parseSize, progressReporter, say } from './common.js';
import { type CaseOpts, type E01Opts, type HashOpts, addCaseOptions, addDiskGuardOption, addE01Options, addHashOptions, caseFieldsOf, checkE01OptionsUsed, parseDiskGuard, parseE01Options, parseHashOptions, printJobResult } from './shared-options.js';

export interface ImagingOpts extends HashOpts, CaseOpts, E01Opts {
  format: string;
  split?: string;
  retries: string;
  maxErrors?: string;
  verify?: boolean;
  io: string;
  chunkSize: string;
  rateLimit?: string;
  maxDiskUsage: string;
}

/** Options shared by `image` and `swap`. */
export function addImagingOptions(cmd: Command): void {
  cmd
    .option('-f, --format <name>', 'raw | e01', 'raw')
    .option('--split <size>', 'raw: write OUT.001, OUT.002, … of at most SIZE bytes each (e.g. 2G for FAT32 media)')
    .option('--retries <n>', 're-reads of a failing sector before it is zero-filled and recorded', '2')
    .option('--max-errors <n>', 'stop (exit 5, .partial and an INCOMPLETE report kept) when more than N sectors are unreadable; default: no limit')
    .option('--verify', 're-read the whole source after imaging and compare its hashes with the image\'s (exit 11 if the source changed)')
    .option('--io <mode>', 'auto (O_DIRECT for block devices) | direct | buffered', 'auto')
    .option('--chunk-size <size>', 'fast-path read size (1M to 256M)', '4M')
    .option('--rate-limit <rate>', 'cap the read rate, e.g. 50M (bytes per second)');
  addHashOptions(cmd);
  addE01Options(cmd);
  addDiskGuardOption(cmd);
  addCaseOptions(cmd);
}

export function parseImagingOptions(o: ImagingOpts, cmd: Command) {
  const format = o.format.toLowerCase() === 'e01' ? formatByName('e01') : o.format === 'raw' ? formatByName('raw') : undefined;
  if (!format) throw new MemdumpError('E_USAGE', `--format: "${o.format}" is not raw or e01`);
  checkE01OptionsUsed(cmd, format.name === 'e01');
  if (o.split !== undefined && format.name === 'e01') throw new MemdumpError('E_USAGE', '--split is for raw output; E01 is divided by --segment-size');
  const splitBytes = o.split === undefined ? undefined : parseSize(o.split, '--split');
  if (splitBytes !== undefined && splitBytes < 4096n) throw new MemdumpError('E_USAGE', '--split must be at least 4K');
  const chunkSize = parseSize(o.chunkSize, '--chunk-size');
  if (chunkSize < BigInt(MIN_FAST_READ) || chunkSize > 256n << 20n) throw new MemdumpError('E_USAGE', '--chunk-size must be between 1M and 256M');
  if (!['auto', 'direct', 'buffered'].includes(o.io)) throw new MemdumpError('E_USAGE', `--io: "${o.io}" is not auto, direct or buffered`);
  const { digests, windowSize } = parseHashOptions(o, { cmd, on: format.name === 'e01' });
  return {
    format,
    splitBytes,
    retries: parseCount(o.retries, '--retries', 100),
    maxErrors: o.maxErrors === undefined ? undefined : parseCount(o.maxErrors, '--max-errors', 2 ** 40),
    verify: o.verify === true,
    io: o.io as IoMode,
    chunkSize: Number(chunkSize),
    rateLimit: o.rateLimit ? Number(parseSize(o.rateLimit, '--rate-limit')) : 0,
    digests,
    windowSize,
    maxDiskUsage: parseDiskGuard(o),
    e01: format.name === 'e01' ? parseE01Options(o) : undefined,
  };
}

/** Warnings an examiner must not miss: printed even with --quiet (JSON lines with --json). */
export function warnLoudly(g: GlobalOptions, warnings: readonly string[]): void {
  for (const w of warnings) {
    process.stderr.write(g.json ? JSON.stringify({ event: 'warning', message: w }) + '\n' : `memdump: WARNING: ${escapeControl(w)}\n`);
  }
}

/** SOURCEBASENAME_YYYYMMDDTHHMMSSZ.ext */
export function defaultImageName(source: string, ext: string, now = new Date()): string {
  const base = basename(source).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || 'image';
  return `${base}_${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.${ext}`;
}

/** The /proc/swaps line of `path`, when it is active swap (same block device, or same file). */
async function activeSwapOf(path: string): Promise<SwapEntry | null> {
  const st = await fsp.stat(path, { bigint: true }).catch(() => undefined);
  if (!st) return null;
  for (const a of await findSwapAreas().catch(() => [])) {
    const s = await fsp.stat(a.path, { bigint: true }).catch(() => undefined);
    if (!s || !a.active) continue;
    if (st.isBlockDevice() ? s.isBlockDevice() && s.rdev === st.rdev : s.dev === st.dev && s.ino === st.ino) return a.active;
  }
  return null;
}

export function registerImage(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  const cmd = program
    .command('image')
    .argument('<source>', 'block device (/dev/sdb, /dev/nvme0n1p2, /dev/loop0) or regular file')
    .description('image a block device or file, dc3dd-style: read-only, bad sectors retried then zero-filled and listed, hashes, log and report')
    .option('-o, --output <path>', 'output file (default SOURCEBASENAME_YYYYMMDDTHHMMSSZ.raw or .E01)');
  addImagingOptions(cmd);
  cmd.addHelpText(
    'after',
    `
The source is opened read-only (O_RDONLY; block devices with O_DIRECT so errors are sector-exact and no cached
page hides the disk). A mounted read-write source is imaged, with a loud warning in the output and the report.
A sector that cannot be read is re-read --retries times, then zero-filled and listed (sector number and errno) in
the report (readErrors), the log (OUT.log, dc3dd style) and the E01 error list.

Examples:
  sudo memdump image /dev/sdb -o /mnt/evidence/sdb.raw --verify --case IR-42
  sudo memdump image /dev/sdb -o /mnt/fat32/sdb.raw --split 2G
  sudo memdump image /dev/nvme0n1 --format e01 -o disk --compression fast --segment-size 2G
  sudo memdump image /dev/sdc --retries 5 --max-errors 1000 -o failing.raw`,
  );
  cmd.action(async (sourcePath: string, o: ImagingOpts & { output?: string }) => {
    const g = globals();
    const p = parseImagingOptions(o, cmd);
    const source = await DeviceSource.open(sourcePath, { io: p.io });
    const sig = abortOnSignals();
    try {
      const output = o.output ?? defaultImageName(sourcePath, p.format.extension);
      const swap = await activeSwapOf(sourcePath);
      const f = source.facts;
      say(g, `imaging ${f.path} (${f.type === 'block' ? 'block device' : 'file'}, ${fmt(f.bytes)}, ${f.sectorSize}-byte sectors, ${f.io.split(' ')[0]} I/O) to ${output} as ${p.format.name}`);
      warnLoudly(g, deviceWarnings(f, swap, 'image'));
      const progress = progressReporter(g, 'image');
      const result = await runImageJob({
        command: 'image',
        argv: process.argv.slice(1),
        caseFields: caseFieldsOf(o),
        source,
        device: f,
        swap,
        format: p.format,
        output,
        digests: p.digests,
        windowSize: p.windowSize,
        maxDiskUsage: p.maxDiskUsage,
        retries: p.retries,
        verify: p.verify,
        chunkSize: p.chunkSize,
        rateLimit: p.rateLimit,
        signal: sig.signal,
        options: { format: p.format.name, split: p.splitBytes?.toString() ?? null, digests: p.digests, hashWindow: p.windowSize.toString(), io: p.io },
        ...(p.maxErrors !== undefined ? { maxErrors: p.maxErrors } : {}),
        ...(p.splitBytes !== undefined ? { splitBytes: p.splitBytes } : {}),
        ...(p.e01 ? { e01: p.e01 } : {}),
        ...(progress ? { onProgress: progress } : {}),
      });
      printJobResult(g, result);
      const img = result.report.image;
      if (!g.json && !g.quiet && img) {
        say(g, `  sectors in ${img.sectors.in}, out ${img.sectors.out}, bad ${img.sectors.bad} (zero-filled)${result.logPath ? `; log ${result.logPath}` : ''}`);
      }
      if (!g.json && img?.verify) process.stderr.write(`  verify  ${img.verify.message}\n`);
      setExit(result.exitCode);
    } finally {
      sig.dispose();
      await source.close();
    }
  });
}
