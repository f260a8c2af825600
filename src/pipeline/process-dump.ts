import { readFile } from 'node:fs/promises';
import type { Digest } from '../core/hasher.js';
import type { Range } from '../core/ranges.js';
import type { ProcessReport } from '../core/report-schema.js';
import type { ElfSegment } from '../formats/elf.js';
import { type CoreThread, permsToFlags, processCoreFormat, coreNotes } from '../formats/process-core.js';
import type { FormatSpec } from '../formats/types.js';
import { type CoreSelection, elfHeaderCandidates, parseCoredumpFilter, selectForCore } from '../sources/core-filter.js';
import { Freeze } from '../sources/freeze.js';
import { type Mapping, readMappings } from '../sources/maps.js';
import { nativeAvailable } from '../sources/native.js';
import { hexMask, parseStat, parseStatus, readText } from '../sources/proc-info.js';
import { ProcessSource } from '../sources/process.js';
import type { CaseFields } from './report.js';
import { gatherProcessReport } from './process-report.js';
import type { DeliveryPlan } from '../delivery/plan.js';
import { type JobOptions, type JobResult, runJob } from './job.js';
import type { PolicyOptions } from './read-policy.js';

export interface ProcessDumpOptions {
  pid: number;
  output: string;
  procRoot: string;
  /** Dump every readable mapping. */
  all: boolean;
  /** Overrides /proc/PID/coredump_filter. */
  filter: number | undefined;
  freeze: boolean;
  environ: boolean;
  digests: readonly Digest[];
  windowSize: bigint;
  maxDiskUsage: number;
  rateLimit: number;
  policy: PolicyOptions;
  argv: readonly string[];
  caseFields: CaseFields;
  reportPath: string | undefined;
  options: Record<string, unknown>;
  onProgress?: (done: bigint, total: bigint) => void;
  delivery?: DeliveryPlan;
}

/** What the frozen (or briefly stopped) process looked like: threads, registers, mappings, notes. */
export interface ProcessSnapshot {
  freeze: Freeze;
  mappings: Mapping[];
  smaps: boolean;
  filter: { value: number; source: 'proc' | 'option' | 'all' };
  threads: CoreThread[];
  stat: ReturnType<typeof parseStat>;
  status: Record<string, string>;
}

/**
 * Stop the threads (ptrace), read registers, then maps/smaps while still stopped so the map matches the
 * memory we are about to copy. Without --freeze the threads are let go right after the registers.
 */
export async function snapshotProcess(pid: number, procRoot: string, freeze: boolean, filterOverride: number | undefined, all: boolean): Promise<ProcessSnapshot> {
  nativeAvailable();
  const f = await Freeze.capture(pid, freeze);
  try {
    const { mappings, smaps } = await readMappings(pid, procRoot);
    const stat = parseStat(await readText(`${procRoot}/${pid}/stat`), pid);
    const status = parseStatus(await readText(`${procRoot}/${pid}/status`));
    const filter = all
      ? { value: 0x1ff, source: 'all' as const }
      : filterOverride !== undefined
        ? { value: filterOverride, source: 'option' as const }
        : { value: parseCoredumpFilter(await readText(`${procRoot}/${pid}/coredump_filter`).catch(() => '33'), 'coredump_filter'), source: 'proc' as const };
    const threads: CoreThread[] = [];
    for (const t of f.threads) {
      if (t.error === 'thread exited') continue;
      let ts = stat;
      let tstatus = status;
      try {
        ts = parseStat(await readText(`${procRoot}/${pid}/task/${t.tid}/stat`), t.tid);
        tstatus = parseStatus(await readText(`${procRoot}/${pid}/task/${t.tid}/status`));
      } catch {
        // the thread exited after it was listed; keep the process-wide values
      }
      threads.push({
        tid: t.tid,
        regs: t.regs,
        fpregs: t.fpregs,
        xstate: t.xstate,
        cursig: t.pendingSignal,
        sigpend: hexMask(tstatus['SigPnd']),
        sighold: hexMask(tstatus['SigBlk']),
        utimeUs: ts.utimeUs,
        stimeUs: ts.stimeUs,
      });
    }
    return { freeze: f, mappings, smaps, filter, threads, stat, status };
  } catch (e) {
    f.release();
    throw e;
  }
}

export async function elfHeaderStarts(source: ProcessSource, mappings: readonly Mapping[]): Promise<Set<bigint>> {
  const out = new Set<bigint>();
  const b = Buffer.alloc(4);
  for (const m of elfHeaderCandidates(mappings)) {
    try {
      if ((await source.read(m.start, b, 4)) === 4 && b.readUInt32BE(0) === 0x7f454c46) out.add(m.start);
    } catch {
      // unreadable first page: no ELF header page for it
    }
  }
  return out;
}

/** The core's notes and PT_LOADs for the chosen mappings. */
export async function coreLayout(pid: number, procRoot: string, snap: ProcessSnapshot, chosen: readonly { mapping: Mapping; dumpBytes: bigint }[]): Promise<{ format: FormatSpec; ranges: Range[] }> {
  const auxv = await readFile(`${procRoot}/${pid}/auxv`).catch(() => Buffer.alloc(0));
  const cmdline = await readFile(`${procRoot}/${pid}/cmdline`).catch(() => Buffer.alloc(0));
  const uid = Number((snap.status['Uid'] ?? '0').split(/\s+/)[0]);
  const gid = Number((snap.status['Gid'] ?? '0').split(/\s+/)[0]);
  const first = snap.freeze.threads.find((t) => t.siginfo);
  const files = snap.mappings.filter((m) => m.path.startsWith('/') && m.inode !== 0n).map((m) => ({ start: m.start, end: m.end, offset: m.offset, path: m.path }));
  const notes = coreNotes(
    {
      pid,
      ppid: snap.stat.ppid,
      pgrp: snap.stat.pgrp,
      sid: snap.stat.sid,
      uid,
      gid,
      state: snap.stat.state,
      nice: snap.stat.nice,
      flags: snap.stat.flags,
      comm: snap.stat.comm,
      psargs: cmdline.toString('latin1').replace(/\0+$/, '').replace(/\0/g, ' '),
      auxv,
      siginfo: first?.siginfo ?? Buffer.alloc(128),
      files,
      pageSize: 4096n,
    },
    snap.threads.length ? snap.threads : [{ tid: pid, regs: undefined, fpregs: undefined, xstate: undefined, cursig: 0, sigpend: 0n, sighold: 0n, utimeUs: 0n, stimeUs: 0n }],
  );
  const segments: ElfSegment[] = chosen.map((c) => ({
    vaddr: c.mapping.start,
    paddr: 0n,
    filesz: c.dumpBytes,
    memsz: c.mapping.end - c.mapping.start,
    flags: permsToFlags(c.mapping.perms),
    align: 4096n,
  }));
  const ranges = chosen.filter((c) => c.dumpBytes > 0n).map((c) => ({ start: c.mapping.start, end: c.mapping.start + c.dumpBytes }));
  return { format: processCoreFormat(segments, notes), ranges };
}

/** The job for copying a frozen process through the ordinary pipeline; the freeze ends as soon as the copy does. */
export function processJob(
  p: Pick<JobOptions, 'format' | 'output' | 'digests' | 'windowSize' | 'rateLimit' | 'maxDiskUsage' | 'policy' | 'argv' | 'caseFields' | 'reportPath' | 'warnings' | 'options' | 'onProgress' | 'regions' | 'media' | 'delivery'> & {
    command: 'process' | 'regions';
    snap: ProcessSnapshot;
    source: ProcessSource;
    processReport: () => Promise<ProcessReport>;
  },
): JobOptions {
  return {
    command: p.command,
    argv: p.argv,
    caseFields: p.caseFields,
    root: '/',
    source: p.source,
    attempts: [{ source: 'process', path: p.source.path, ok: true }],
    lockdown: undefined,
    ram: p.snap.mappings.map((m) => ({ start: m.start, end: m.end })),
    notes: [],
    format: p.format,
    output: p.output,
    digests: p.digests,
    windowSize: p.windowSize,
    rateLimit: p.rateLimit,
    maxDiskUsage: p.maxDiskUsage,
    // ESRCH: the process exited; zero-filling the rest of its memory page by page would be pointless
    policy: { ...p.policy, fatal: new Set(['ESRCH']) },
    context: undefined,
    reportPath: p.reportPath,
    contentHash: false,
    warnings: p.warnings,
    options: p.options,
    ...(p.onProgress ? { onProgress: p.onProgress } : {}),
    afterCopy: () => p.snap.freeze.release(),
    processReport: p.processReport,
    ...(p.regions ? { regions: p.regions } : {}),
    ...(p.media ? { media: p.media } : {}),
    ...(p.delivery ? { delivery: p.delivery } : {}),
  };
}

export async function dumpProcess(o: ProcessDumpOptions): Promise<JobResult> {
  const snap = await snapshotProcess(o.pid, o.procRoot, o.freeze, o.filter, o.all);
  let source: ProcessSource | undefined;
  try {
    // a probe source reads the ELF header pages the filter asks about before the real plan exists
    const probe = await ProcessSource.open(o.pid, snap.mappings.filter((m) => m.read).map((m) => ({ start: m.start, end: m.end })).slice(0, 1), o.procRoot);
    const elfAt = await elfHeaderStarts(probe, snap.mappings);
    await probe.close();
    const selection: CoreSelection[] = selectForCore(snap.mappings, { filter: snap.filter.value, all: o.all, pageSize: 4096n, elfHeaderAt: elfAt });
    const { format, ranges } = await coreLayout(o.pid, o.procRoot, snap, selection);
    source = await ProcessSource.open(o.pid, ranges, o.procRoot);
    const warnings: string[] = [];
    const fi = snap.freeze.info();
    if (fi.registers !== 'ptrace') warnings.push(`registers ${fi.registers === 'none' ? 'are missing' : 'are missing for some threads'}: ${fi.registersError ?? 'unknown reason'}`);
    if (!fi.heldForCopy) warnings.push('the process ran during the copy (--no-freeze or no ptrace): memory may be inconsistent between regions');
    const src = source;
    return await runJob(
      processJob({
        command: 'process',
        snap,
        source: src,
        ...o,
        format,
        warnings,
        processReport: () => gatherProcessReport(o.pid, o.procRoot, snap, src.path, selection, { environ: o.environ }),
      }),
    );
  } finally {
    snap.freeze.release();
    await source?.close();
  }
}
