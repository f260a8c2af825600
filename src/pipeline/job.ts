import { createHash } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { ContentHasher } from '../core/content-hash.js';
import { ERROR_EXIT, MemdumpError } from '../core/errors.js';
import type { Digest } from '../core/hasher.js';
import { type Range, totalLength } from '../core/ranges.js';
import type { E01Report, ImageReport, ProcessReport, RegionReport, Report } from '../core/report-schema.js';
import { CHUNK_SIZE } from '../formats/e01-layout.js';
import { flatOffsets } from '../formats/flat.js';
import { SIDECAR_SUFFIX, sidecarFor } from '../formats/sidecar.js';
import type { FormatSpec, ImageNote, MediaDescription } from '../formats/types.js';
import { assertAbsent, writeFileExclusive } from '../sinks/exclusive.js';
import { FileSink } from '../sinks/file.js';
import { SegmentedFileSink } from '../sinks/segmented.js';
import { StdoutSink } from '../sinks/stdout.js';
import type { OutputSink } from '../sinks/types.js';
import type { PhysicalSource, SourceAttempt } from '../sources/types.js';
import { collectContext } from './context.js';
import { type CopyResult, copyMemory } from './copy.js';
import type { PolicyOptions } from './read-policy.js';
import { type CaseFields, type ContextEntry, LOG_SUFFIX, type OutputEntry, REPORT_SUFFIX, buildReport, e01Section, serializeReport, writeReportFiles } from './report.js';
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

/**
 * Estimated container size, for the disk-space guard (AVML counted uncompressed: its ratio is unknown in advance).
 * E01 stores the padded media (offset = address): the data is counted uncompressed, holes of zeros as the few dozen
 * bytes a deflated zero chunk takes (all of it with --compression none), plus chunk tables and per-segment headers.
 */
export function estimateSize(format: FormatSpec, runs: readonly Range[], media?: MediaDescription): bigint {
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
    case 'e01': {
      const chunk = BigInt(CHUNK_SIZE);
      const end = runs.length ? runs[runs.length - 1]!.end : 0n;
      const chunks = (end + chunk - 1n) / chunk;
      const holes = end - data;
      const stored = media?.compression === 'none' ? chunks * chunk : data + (holes / chunk + BigInt(runs.length)) * 128n;
      // table + table2 entries and an uncompressed chunk's adler32: at most 12 bytes a chunk; headers ~ a few KiB a segment
      const segments = media?.segmentBytes ? stored / media.segmentBytes + 2n : 1n;
      return stored + chunks * 16n + segments * (64n << 10n);
    }
    default:
      return data;
  }
}

/** The E01 media description when the caller gives none: memory, the case fields, the source as description. */
export function defaultMedia(o: Pick<JobOptions, 'caseFields' | 'source'>, acquired: Date): MediaDescription {
  // E01 header values are tab-separated lines: control characters would shift the fields after them
  const line = (v: string | undefined) => (v === undefined ? null : v.replace(/[\x00-\x1f\x7f]/g, ' '));
  return {
    type: 'memory',
    caseNumber: line(o.caseFields.case),
    examiner: line(o.caseFields.examiner),
    evidenceNumber: line(o.caseFields.evidence),
    notes: line(o.caseFields.notes),
    description: line(`${o.source.kind} ${o.source.path}`)!,
    acquired,
    compression: 'fast',
    segmentBytes: 0n,
  };
}

/** Where the output goes: an E01 path always ends in .E01 (the segment names continue from it). */
export function outputPath(output: string, format: FormatSpec): string {
  if (output === '-') return '-';
  const out = resolve(output);
  return format.name === 'e01' && !/\.e01$/i.test(out) ? out + '.E01' : out;
}

async function openSink(o: JobOptions, out: string, media: MediaDescription, warnings: string[]): Promise<OutputSink> {
  const e01 = o.format.name === 'e01';
  if (o.splitBytes !== undefined) {
    if (out === '-') throw new MemdumpError('E_USAGE', 'splitting the output into pieces needs a file (-o PATH), not standard output');
    if (e01) throw new MemdumpError('E_USAGE', 'E01 output is divided into segment files by --segment-size, not --split');
    if (o.splitBytes < 1n) throw new MemdumpError('E_USAGE', 'the split size must be at least 1 byte');
  }
  if (out === '-') {
    // stdout is one stream: the E01 writer finds no newSegment() and writes a single segment
    if (e01 && media.segmentBytes && estimateSize(o.format, o.source.ranges, media) > media.segmentBytes) {
      warnings.push('E01 to standard output is written as one segment file, which may exceed --segment-size');
    }
    return new StdoutSink();
  }
  if (e01) return SegmentedFileSink.e01(out);
  if (o.splitBytes !== undefined) return SegmentedFileSink.split(out, o.splitBytes);
  return FileSink.create(out);
}

export async function runJob(o: JobOptions): Promise<JobResult> {
  const start = new Date();
  const startMono = performance.now();
  const out = outputPath(o.output, o.format);
  const toStdout = out === '-';
  const media = o.media ?? defaultMedia(o, start);
  const warnings = [...o.warnings];
  if (!toStdout) {
    // the side files are created only after the copy: a name already taken (a stale report beside new evidence,
    // a planted link) must stop the job before the first byte, not leave the evidence without its report
    const sides = [REPORT_SUFFIX, LOG_SUFFIX, ...((o.sidecarMap ?? o.format.needsSidecarMap) ? [SIDECAR_SUFFIX] : []), ...(o.context ? ['.context'] : [])];
    for (const suffix of sides) await assertAbsent(out + suffix);
    await checkSpace(dirname(out), estimateSize(o.format, o.source.ranges, media) + (1n << 20n), o.maxDiskUsage);
  }
  const sink = await openSink(o, out, media, warnings);

  const content = o.contentHash ? new ContentHasher(o.source.ranges) : undefined;
  const copy = await copyMemory({
    source: o.source,
    format: o.format,
    sink,
    notes: o.notes,
    media,
    digests: o.digests,
    windowSize: o.windowSize,
    policy: o.policy,
    rateLimit: o.rateLimit,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    ...(content ? { onData: (addr: bigint, chunk: Buffer) => content.update(addr, chunk) } : {}),
  });
  o.afterCopy?.();

  // a segment set is one output entry per piece; the report's hashes are over all pieces concatenated in order
  const r = copy.receipt;
  const pieces = r.segments ?? [{ path: r.complete ? r.path : (r.partialPath ?? r.path), bytes: r.bytes }];
  const whole = copy.hash?.digests.sha256 ?? null;
  const outputs: OutputEntry[] = pieces.map((p, i) => ({
    role: i === 0 ? 'evidence' : 'segment',
    path: p.path,
    bytes: p.bytes,
    complete: r.complete,
    sha256: pieces.length === 1 ? whole : null,
  }));

  let e01: E01Report | undefined;
  if (o.format.name === 'e01' && copy.status === 'COMPLETE') {
    const section = e01Section(copy.writerSummary, pieces);
    if (section.report) e01 = section.report;
    else warnings.push(`no e01 section in this report: ${section.problem}`);
  }

  const container = o.format.name === 'raw' || o.format.name === 'padded' || o.format.name === 'e01' ? o.format.name : undefined;
  if (copy.status === 'COMPLETE' && container && (o.sidecarMap ?? o.format.needsSidecarMap)) {
    // E01 stores the padded layout (media offset = physical address) but has no field for the runs themselves
    const offsets = flatOffsets(container === 'raw' ? 'raw' : 'padded', o.source.ranges);
    const map = JSON.stringify(sidecarFor(container, { runs: o.source.ranges, notes: o.notes }, offsets), null, 1) + '\n';
    if (toStdout) warnings.push(`the ${container} map is only in this report (memoryMap.acquired): stdout has no place for ${SIDECAR_SUFFIX}`);
    else {
      await writeFileExclusive(out + SIDECAR_SUFFIX, map);
      outputs.push({ role: 'map', path: out + SIDECAR_SUFFIX, bytes: BigInt(Buffer.byteLength(map)), complete: true, sha256: createHash('sha256').update(map).digest('hex') });
    }
  }

  let image: ImageReport | undefined;
  if (o.imageReport) {
    try {
      image = await o.imageReport(copy);
    } catch (e) {
      // the device facts are an addition; losing them must not cost the report itself
      warnings.push(`device details not gathered: ${(e as Error).message}`);
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
    e01,
    image,
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
