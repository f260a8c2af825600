import { hostname } from 'node:os';
import type { Command } from 'commander';
import { escapeControl } from '../core/escape.js';
import { type SwapAcquired, acquireSwaps } from '../pipeline/swap-acquire.js';
import { fmt } from '../pipeline/space.js';
import { type SwapArea, findSwapAreas } from '../sources/swaps.js';
import { type GlobalOptions, abortOnSignals, progressReporter, say } from './common.js';
import { type ImagingOpts, addImagingOptions, parseImagingOptions, warnLoudly } from './image.js';
import { caseFieldsOf } from './shared-options.js';

/** swap_HOST_YYYYMMDDTHHMMSSZ */
export function defaultSwapDir(now = new Date()): string {
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'host';
  return `swap_${host}_${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

function areaSize(a: SwapArea): string {
  if (a.active) return `${fmt(a.active.sizeKiB * 1024n)} (${fmt(a.active.usedKiB * 1024n)} used)`;
  if (a.header?.lastPage) return `${fmt(BigInt(a.header.lastPage + 1) * BigInt(a.header.pageSize))} (inactive)`;
  return 'inactive';
}

function areaJson(a: SwapArea) {
  return {
    path: a.path,
    active: a.active ? { type: a.active.type, sizeKiB: a.active.sizeKiB.toString(), usedKiB: a.active.usedKiB.toString(), priority: a.active.priority, deleted: a.active.deleted } : null,
    found: a.found,
    header: a.header,
    unavailable: a.unavailable ?? null,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

function printAreas(g: GlobalOptions, areas: SwapArea[]): void {
  if (g.json) {
    process.stdout.write(JSON.stringify({ areas: areas.map(areaJson) }) + '\n');
    return;
  }
  const rows = [['AREA', 'TYPE', 'SIZE', 'FOUND BY', 'LABEL/UUID']];
  for (const a of areas) {
    rows.push([escapeControl(a.path), a.active?.type ?? '-', areaSize(a), a.unavailable ? `${a.found}; not imageable: ${a.unavailable}` : a.found, [a.header?.label, a.header?.uuid].filter((x) => x).join(' ') || '-']);
  }
  process.stdout.write(table(rows));
}

/**
 * The table of what was imaged (or, with --json, one JSON object). `memdump swap` prints it on stdout; `acquire
 * --include-swap` passes stderr, since its stdout may carry the RAM dump itself (-o -).
 */
export function printSwapTable(g: GlobalOptions, dir: string, res: SwapAcquired[], stream: NodeJS.WritableStream = process.stdout): void {
  if (g.json) {
    const areas = res.map((r) => ({ ...areaJson(r.area), status: r.status, output: r.output, report: r.reportPath, bytes: r.bytes.toString(), digests: r.digests, exitCode: r.exitCode, message: r.message }));
    stream.write(JSON.stringify(stream === process.stdout ? { dir, areas } : { event: 'swap', dir, areas }) + '\n');
    return;
  }
  if (res.length === 0) return;
  const rows = [['AREA', 'TYPE', 'SIZE', 'STATUS', 'IMAGE', 'SHA-256 / MD5']];
  for (const r of res) {
    rows.push([escapeControl(r.area.path), r.area.active?.type ?? 'inactive', fmt(r.bytes), r.status, r.output ? escapeControl(r.output) : '-', r.digests.sha256 ?? r.digests.md5 ?? escapeControl(r.message)]);
  }
  stream.write(table(rows));
  for (const r of res) if (r.message && (r.digests.sha256 || r.digests.md5)) say(g, `${r.area.path}: ${r.message}`);
}

export function registerSwap(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  const cmd = program
    .command('swap')
    .description('acquire swap areas (the swap/pagefile dump): every active swap device and file in /proc/swaps, each with hashes, log and report')
    .option('-o, --output <dir>', 'new directory for the images (0700; default swap_HOST_YYYYMMDDTHHMMSSZ)')
    .option('--all', 'also inactive swap areas: block devices with a swap or hibernation signature, and swap entries in /etc/fstab')
    .option('--list', 'only list the areas that would be acquired');
  addImagingOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Without --all: every area listed in /proc/swaps (partitions, files, zram), read with O_DIRECT: the kernel writes
swap around the page cache, so a buffered read could return stale pages. An active area keeps changing while it is
read (pages go in and out); quiesce the host or accept that the image is not a point-in-time copy (the report says so).

--all adds what an examiner expects "all swap" to mean beyond the active areas:
  * every block device or partition whose first page carries a swap signature (SWAPSPACE2) but is not active: it
    still holds the pages written before swapoff or shutdown;
  * every area carrying a hibernation signature (S1SUSPEND, S2SUSPEND, ULSUSPEND, LINHIB0001): a hibernation
    image, i.e. the RAM of the hibernated system;
  * every swap entry of /etc/fstab (device, UUID=, LABEL=, or file) that is not active.
A swap file deleted while active ("(deleted)" in /proc/swaps) has no path to open: it is listed, not imaged.

One image, OUT.report.json and OUT.log per area; a table of what was imaged on stdout (--json for machines).

Examples:
  sudo memdump swap -o /mnt/evidence/swap
  sudo memdump swap --all --list
  sudo memdump swap --all --format e01 --case IR-42`,
  );
  cmd.action(async (o: ImagingOpts & { output?: string; all?: boolean; list?: boolean }) => {
    const g = globals();
    const p = parseImagingOptions(o, cmd);
    if (o.list) {
      printAreas(g, await findSwapAreas({ all: o.all === true }));
      return;
    }
    const dir = o.output ?? defaultSwapDir();
    const sig = abortOnSignals();
    try {
      const res = await acquireSwaps({
        dir,
        all: o.all === true,
        argv: process.argv.slice(1),
        caseFields: caseFieldsOf(o),
        digests: p.digests,
        windowSize: p.windowSize,
        maxDiskUsage: p.maxDiskUsage,
        retries: p.retries,
        verify: p.verify,
        format: p.format,
        chunkSize: p.chunkSize,
        rateLimit: p.rateLimit,
        io: p.io,
        signal: sig.signal,
        ...(p.maxErrors !== undefined ? { maxErrors: p.maxErrors } : {}),
        ...(p.e01 ? { e01: p.e01 } : {}),
        ...(p.splitBytes !== undefined ? { splitBytes: p.splitBytes } : {}),
        onArea: (area, output) => {
          say(g, `imaging swap ${area.path} (${areaSize(area)}; ${area.found}) to ${output}`);
          return progressReporter(g, 'swap');
        },
      });
      if (res.areas.length === 0) say(g, `no ${o.all ? '' : 'active '}swap area found${o.all ? '' : ' (/proc/swaps is empty; --all also looks for inactive ones)'}; nothing written`);
      for (const r of res.areas) warnLoudly(g, r.warnings.filter((w) => /READ-WRITE/.test(w)));
      printSwapTable(g, res.dir, res.areas);
      setExit(res.exitCode);
    } finally {
      sig.dispose();
    }
  });
}
