import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Digest } from '../core/hasher.js';
import { ERROR_EXIT } from '../core/errors.js';
import { totalLength } from '../core/ranges.js';
import type { RegionReport, Report } from '../core/report-schema.js';
import { formatByName } from '../formats/registry.js';
import { writeFileExclusive, mkdirExclusive } from '../sinks/exclusive.js';
import { FileSink } from '../sinks/file.js';
import type { Mapping } from '../sources/maps.js';
import { ProcessSource } from '../sources/process.js';
import { type CopyResult, copyMemory } from './copy.js';
import { type JobResult, runJob } from './job.js';
import { coreLayout, processJob, snapshotProcess, type ProcessSnapshot } from './process-dump.js';
import { gatherProcessReport } from './process-report.js';
import type { PolicyOptions } from './read-policy.js';
import { type RegionSelectors, type SelectedRegion, addGrepHits, grepRegions, selectRegions } from './regions.js';
import { buildReport, type CaseFields, writeReportFiles } from './report.js';
import { checkSpace } from './space.js';
import { type Finding, findSuspicious } from './suspicious.js';

const h = (v: bigint) => '0x' + v.toString(16);
/** Index of rsp in user_regs_struct (r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ...). */
const RSP = 19;

export interface RegionsOptions {
  pid: number;
  procRoot: string;
  selectors: RegionSelectors;
  /** raw = one file per region in a new directory; lime/elf = one container file. */
  format: 'raw' | 'lime' | 'elf';
  output: string;
  freeze: boolean;
  digests: readonly Digest[];
  windowSize: bigint;
  maxDiskUsage: number;
  policy: PolicyOptions;
  argv: readonly string[];
  caseFields: CaseFields;
  options: Record<string, unknown>;
}

/** Stack pointers from ptrace, or from /proc/PID/task/TID/syscall for threads blocked in a syscall. */
async function stackPointers(snap: ProcessSnapshot, procRoot: string, pid: number): Promise<Map<number, bigint>> {
  const out = new Map<number, bigint>();
  for (const t of snap.freeze.threads) {
    if (t.regs) {
      out.set(t.tid, t.regs.readBigUInt64LE(RSP * 8));
      continue;
    }
    const text = await readFile(`${procRoot}/${pid}/task/${t.tid}/syscall`, 'utf8').catch(() => '');
    const f = text.trim().split(/\s+/);
    if (f.length >= 9 && /^0x[0-9a-f]+$/.test(f[f.length - 2]!)) out.set(t.tid, BigInt(f[f.length - 2]!));
  }
  return out;
}

/** A reader for the selection logic: undefined for memory that cannot be read. */
function readerFor(source: ProcessSource): (addr: bigint, length: number) => Promise<Buffer | undefined> {
  return async (addr, length) => {
    const buf = Buffer.allocUnsafe(length);
    try {
      const n = await source.read(addr, buf, length);
      return n > 0 ? buf.subarray(0, n) : undefined;
    } catch {
      return undefined;
    }
  };
}

function label(r: SelectedRegion): string {
  const reason = (r.reasons[0] ?? 'region').replace(/^grep .*/, 'grep');
  const base = (r.mapping?.path.split('/').pop() || reason).replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 40);
  return `${h(r.start)}-${h(r.end)}_${base}`;
}

/** `--suspicious`: list, never dump. The threads are held only while the page heads are scanned. */
export async function listSuspicious(pid: number, procRoot: string, freeze: boolean): Promise<{ findings: Finding[]; mappings: Mapping[]; stoppedMs: number | null }> {
  const snap = await snapshotProcess(pid, procRoot, freeze, undefined, false);
  try {
    const source = await ProcessSource.open(pid, snap.mappings.filter((m) => m.read).slice(0, 1), procRoot);
    try {
      const findings = await findSuspicious(snap.mappings, readerFor(source));
      snap.freeze.release();
      return { findings, mappings: snap.mappings, stoppedMs: snap.freeze.info().stoppedMs };
    } finally {
      await source.close();
    }
  } finally {
    snap.freeze.release();
  }
}

export async function dumpRegions(o: RegionsOptions): Promise<JobResult & { regions: RegionReport[] }> {
  const start = new Date();
  const startMono = performance.now();
  const snap = await snapshotProcess(o.pid, o.procRoot, o.freeze, undefined, false);
  try {
    const probe = await ProcessSource.open(o.pid, snap.mappings.filter((m) => m.read).slice(0, 1), o.procRoot);
    const sel = selectRegions(snap.mappings, o.selectors, { stackPointers: await stackPointers(snap, o.procRoot, o.pid), pid: o.pid });
    let regions = sel.regions;
    if (o.selectors.grep.length > 0) regions = addGrepHits(regions, snap.mappings, await grepRegions(snap.mappings, o.selectors.grep, readerFor(probe)));
    await probe.close();
    const warnings = [...sel.warnings];
    if (regions.length === 0) warnings.push('no region matched the selectors');
    const ranges = regions.map((r) => ({ start: r.start, end: r.end }));
    const entry = (r: SelectedRegion, file: string | null, c: CopyResult | undefined): RegionReport => ({
      start: h(r.start),
      end: h(r.end),
      perms: r.mapping?.perms ?? '',
      path: r.mapping?.path ?? '',
      reasons: r.reasons,
      file,
      bytes: (r.end - r.start).toString(),
      digests: { ...(c?.hash?.digests ?? {}) },
      zeroFilled: (c?.accounts.reduce((t, a) => t + a.zeroFilled, 0n) ?? 0n).toString(),
    });
    const processReport = (src: string) => gatherProcessReport(o.pid, o.procRoot, snap, src, [], { environ: false });

    if (o.format !== 'raw') {
      const source = await ProcessSource.open(o.pid, ranges, o.procRoot);
      try {
        const format =
          o.format === 'elf'
            ? (await coreLayout(o.pid, o.procRoot, snap, regions.map((r) => ({ mapping: { ...(r.mapping as Mapping), start: r.start, end: r.end }, dumpBytes: r.end - r.start })))).format
            : formatByName('lime');
        const result = await runJob(
          processJob({
            command: 'regions',
            snap,
            source,
            ...o,
            format,
            warnings,
            rateLimit: 0,
            reportPath: undefined,
            processReport: () => processReport(source.path),
            regions: regions.map((r) => entry(r, null, undefined)),
          }),
        );
        return { ...result, regions: result.report.regions ?? [] };
      } finally {
        await source.close();
      }
    }

    // one raw file per region, each hashed on its own, in a directory that must not exist yet
    const dir = resolve(o.output);
    // the same guard runJob applies to one container: the region files plus a page of slack for the listings
    await checkSpace(dirname(dir), totalLength(ranges) + (1n << 20n), o.maxDiskUsage);
    await mkdirExclusive(dir);
    const raw = formatByName('raw');
    const entries: RegionReport[] = [];
    const copies: CopyResult[] = [];
    let path = `process_vm_readv(${o.pid})`;
    for (const r of regions) {
      const file = join(dir, `${label(r)}.raw`);
      const source = await ProcessSource.open(o.pid, [{ start: r.start, end: r.end }], o.procRoot);
      path = source.path;
      try {
        const c = await copyMemory({ source, format: raw, sink: await FileSink.create(file), notes: [], digests: o.digests, windowSize: o.windowSize, policy: { ...o.policy, fatal: new Set(['ESRCH']) } });
        copies.push(c);
        entries.push(entry(r, c.status === 'COMPLETE' ? file : (c.receipt.partialPath ?? file), c));
        if (c.status !== 'COMPLETE') break;
      } finally {
        await source.close();
      }
    }
    snap.freeze.release();
    const failed = copies.find((c) => c.status !== 'COMPLETE');
    const combined: CopyResult = {
      status: failed ? 'INCOMPLETE' : 'COMPLETE',
      ...(failed?.failure ? { failure: failed.failure } : {}),
      accounts: copies.flatMap((c) => c.accounts),
      errorRuns: copies.flatMap((c) => c.errorRuns),
      hash: undefined,
      receipt: { path: dir, bytes: copies.reduce((t, c) => t + c.receipt.bytes, 0n), complete: !failed },
    };
    const listing = JSON.stringify({ pid: o.pid, comm: snap.stat.comm, taken: start.toISOString(), regions: entries }, null, 1) + '\n';
    await writeFileExclusive(join(dir, 'regions.json'), listing);
    const report: Report = buildReport({
      command: 'regions',
      argv: o.argv,
      caseFields: o.caseFields,
      start,
      startMono,
      source: { kind: 'process', path, attempts: [{ source: 'process', path, ok: true }], lockdown: undefined, info: { pid: o.pid, addressSpace: 'virtual' } },
      ram: snap.mappings.map((m) => ({ start: m.start, end: m.end })),
      acquired: ranges,
      format: raw,
      copy: combined,
      contentSha256: null,
      outputs: entries.map((e, i) => ({ role: 'region', path: e.file ?? '', bytes: copies[i]?.receipt.bytes ?? 0n, complete: copies[i]?.status === 'COMPLETE', sha256: e.digests.sha256 ?? null })),
      context: [],
      options: o.options,
      warnings,
      process: await processReport(path),
      regions: entries,
    });
    const written = await writeReportFiles(join(dir, 'regions'), report);
    const exitCode = failed ? (ERROR_EXIT[failed.failure?.code ?? 'E_INTERNAL'] ?? 1) : 0;
    return { report, reportPath: written.report, exitCode, regions: entries };
  } finally {
    snap.freeze.release();
  }
}
