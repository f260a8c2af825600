import { createHash } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { ContentHasher } from '../core/content-hash.js';
import { ERROR_EXIT } from '../core/errors.js';
import type { Digest } from '../core/hasher.js';
import { type Range, totalLength } from '../core/ranges.js';
import type { ImageReport, ProcessReport, RegionReport, Report } from '../core/report-schema.js';
import { flatOffsets } from '../formats/flat.js';
import { SIDECAR_SUFFIX, sidecarFor } from '../formats/sidecar.js';
import type { FormatSpec, ImageNote, MediaDescription } from '../formats/types.js';
import { writeFileExclusive } from '../sinks/exclusive.js';
import { FileSink } from '../sinks/file.js';
import { StdoutSink } from '../sinks/stdout.js';
import type { OutputSink } from '../sinks/types.js';
import type { PhysicalSource, SourceAttempt } from '../sources/types.js';
import { collectContext } from './context.js';
import { type CopyResult, copyMemory } from './copy.js';
import type { PolicyOptions } from './read-policy.js';
import { type CaseFields, type ContextEntry, type OutputEntry, buildReport, serializeReport, writeReportFiles } from './report.js';
import { checkSpace } from './space.js';

export interface JobOptions {
  command: Report['command'];
  argv: readonly string[];
  caseFields: CaseFields;
  root: string;
  source: PhysicalSource;
  attempts: readonly SourceAttempt[];
  lockdown: string | undefined;
  ram: readonly Range[];
  notes: readonly ImageNote[];
  format: FormatSpec;
  /** '-' = standard output. */
  output: string;
  digests: readonly Digest[];
  windowSize: bigint;
  rateLimit: number;
  maxDiskUsage: number;
  policy: PolicyOptions;
  /** Write the volatile context directory (acquire from a live host). */
  context: { iomemText: string | undefined } | undefined;
  /** Where the report goes when the output is stdout; default: standard error. */
  reportPath: string | undefined;
  contentHash: boolean;
  warnings: string[];
  options: Record<string, unknown>;
  onProgress?: (done: bigint, total: bigint) => void;
  /** Runs as soon as the copy ends, before anything else (a process freeze is released here). */
  afterCopy?: () => void;
  /** The live process's context for the report, gathered after the copy. */
  processReport?: (copy: CopyResult) => Promise<ProcessReport>;
  /** `memdump regions` into one container: what was cut out. */
  regions?: RegionReport[];
  /** What the media is (E01 header fields and media type); default: memory, from caseFields and the source. */
  media?: MediaDescription;
  /** Split the output into OUT.001, OUT.002, … of at most this many bytes (raw/padded; `image --split`). */
  splitBytes?: bigint;
  /** Write FILE.map.json for formats without a map of their own (default true; `image` of a disk has no map to keep). */
  sidecarMap?: boolean;
  /** `memdump image` / `memdump swap`: the device section of the report, gathered after the copy. */
  imageReport?: (copy: CopyResult) => Promise<ImageReport>;
}

export interface JobResult {
  report: Report;
  reportPath: string | undefined;
  exitCode: number;
}

/** Estimated container size, for the disk-space guard (AVML counted uncompressed: its ratio is unknown in advance). */
export function estimateSize(format: FormatSpec, runs: readonly Range[]): bigint {
  const data = totalLength(runs);
  switch (format.name) {
    case 'padded':
      return runs.length ? runs[runs.length - 1]!.end : 0n;
    case 'lime':
      return data + 32n * BigInt(runs.length);
    case 'avml':
      return data + (data / (16n << 20n) + BigInt(runs.length)) * 64n + data / 1000n;
    case 'elf':
      return data + 4096n + 56n * BigInt(runs.length);
    default:
      return data;
  }
}

export async function runJob(o: JobOptions): Promise<JobResult> {
  const start = new Date();
  const startMono = performance.now();
  const toStdout = o.output === '-';
  const out = toStdout ? '-' : resolve(o.output);
  if (!toStdout) await checkSpace(dirname(out), estimateSize(o.format, o.source.ranges) + (1n << 20n), o.maxDiskUsage);
  const sink: OutputSink = toStdout ? new StdoutSink() : await FileSink.create(out);

  const content = o.contentHash ? new ContentHasher(o.source.ranges) : undefined;
  const copy = await copyMemory({
    source: o.source,
    format: o.format,
    sink,
    notes: o.notes,
    digests: o.digests,
    windowSize: o.windowSize,
    policy: o.policy,
    rateLimit: o.rateLimit,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    ...(content ? { onData: (addr: bigint, chunk: Buffer) => content.update(addr, chunk) } : {}),
  });
  o.afterCopy?.();

  const outputs: OutputEntry[] = [
    {
      role: 'evidence',
      path: copy.receipt.complete ? copy.receipt.path : (copy.receipt.partialPath ?? copy.receipt.path),
      bytes: copy.receipt.bytes,
      complete: copy.receipt.complete,
      sha256: copy.hash?.digests.sha256 ?? null,
    },
  ];
  const warnings = [...o.warnings];
  if (copy.status === 'COMPLETE' && o.format.needsSidecarMap) {
    const kind = o.format.name as 'raw' | 'padded';
    const map = JSON.stringify(sidecarFor(kind, { runs: o.source.ranges, notes: o.notes }, flatOffsets(kind, o.source.ranges)), null, 1) + '\n';
    if (toStdout) warnings.push(`the ${kind} map is only in this report (memoryMap.acquired): stdout has no place for ${SIDECAR_SUFFIX}`);
    else {
      await writeFileExclusive(out + SIDECAR_SUFFIX, map);
      outputs.push({ role: 'map', path: out + SIDECAR_SUFFIX, bytes: BigInt(Buffer.byteLength(map)), complete: true, sha256: createHash('sha256').update(map).digest('hex') });
    }
  }
  let context: ContextEntry[] = [];
  if (o.context && !toStdout) {
    try {
      context = await collectContext(out + '.context', o.root, o.context.iomemText, o.notes);
    } catch (e) {
      warnings.push(`context not kept: ${(e as Error).message}`);
    }
  }

  const report = buildReport({
    command: o.command,
    argv: o.argv,
    caseFields: o.caseFields,
    root: o.root,
    start,
    startMono,
    source: { kind: o.source.kind, path: o.source.path, attempts: o.attempts, lockdown: o.lockdown, info: o.source.info },
    ram: o.ram,
    acquired: o.source.ranges,
    format: o.format,
    copy,
    contentSha256: content && copy.status === 'COMPLETE' ? content.digest() : null,
    outputs,
    context,
    options: o.options,
    warnings,
    process: o.processReport ? await o.processReport(copy) : undefined,
    regions: o.regions,
  });

  let reportPath: string | undefined;
  if (toStdout) {
    const text = serializeReport(report);
    if (o.reportPath) {
      await writeFileExclusive(o.reportPath, text);
      reportPath = o.reportPath;
    } else process.stderr.write(text);
  } else {
    try {
      reportPath = (await writeReportFiles(out, report)).report;
    } catch (e) {
      // a full disk must not cost the record of what happened: the report goes to stderr instead
      process.stderr.write(`memdump: could not write the report beside ${out} (${(e as Error).message}); here it is:\n${serializeReport(report)}`);
    }
  }

  const exitCode = copy.status === 'COMPLETE' ? 0 : (ERROR_EXIT[copy.failure!.code] ?? 1);
  return { report, reportPath, exitCode };
}
