import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { ContentHasher } from '../core/content-hash.js';
import { ERROR_EXIT, MemdumpError } from '../core/errors.js';
import type { Digest } from '../core/hasher.js';
import type { Range } from '../core/ranges.js';
import type { DeliveryReport, E01Report, ImageReport, ProcessReport, RegionReport, Report } from '../core/report-schema.js';
import { type DeliveryPlan, assertLayersFit, layerSuffix, layersOf, storedSize, wrapLayers } from '../delivery/plan.js';
import type { RemoteTarget } from '../delivery/types.js';
import { flatOffsets } from '../formats/flat.js';
import { SIDECAR_SUFFIX, sidecarFor } from '../formats/sidecar.js';
import type { FormatSpec, ImageNote, MediaDescription } from '../formats/types.js';
import { assertAbsent, writeFileExclusive } from '../sinks/exclusive.js';
import type { OutputSink } from '../sinks/types.js';
import type { PhysicalSource, SourceAttempt } from '../sources/types.js';
import { collectContext } from './context.js';
import { type CopyResult, copyMemory } from './copy.js';
import { defaultMedia, estimateSize, exactSize, openSink, outputPath } from './job-output.js';
import type { PolicyOptions } from './read-policy.js';
import { type CaseFields, type ContextEntry, LOG_SUFFIX, type OutputEntry, REPORT_SUFFIX, SIGNATURE_SUFFIX, buildReport, e01Section } from './report.js';
import { deliverReport, putSide } from './report-delivery.js';
import { checkSpace } from './space.js';

export { defaultMedia, estimateSize, exactSize, outputPath } from './job-output.js';

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
  /** Network target, transport compression, age recipients, report signing key. */
  delivery?: DeliveryPlan;
}

export interface JobResult {
  report: Report;
  reportPath: string | undefined;
  exitCode: number;
}

export async function runJob(o: JobOptions): Promise<JobResult> {
  const start = new Date();
  const startMono = performance.now();
  const layers = layersOf(o.delivery);
  assertLayersFit(o.delivery, o.format.name);
  const remote = o.delivery?.remote;
  const out = remote ? '' : outputPath(o.output, o.format, layerSuffix(layers));
  const toStdout = out === '-';
  const local = !remote && !toStdout;
  const media = o.media ?? defaultMedia(o, start);
  const warnings = [...o.warnings];
  const signKey = o.delivery?.signKey;
  if (signKey && toStdout && !o.reportPath) throw new MemdumpError('E_USAGE', '--sign-key with -o - needs --report PATH: the signature is a file beside the report');
  if (o.reportPath) await assertAbsent(o.reportPath);
  if (local) {
    // the side files are created only after the copy: a name already taken (a stale report beside new evidence,
    // a planted link) must stop the job before the first byte, not leave the evidence without its report
    const sides = [REPORT_SUFFIX, LOG_SUFFIX, ...(signKey ? [REPORT_SUFFIX + SIGNATURE_SUFFIX] : []), ...((o.sidecarMap ?? o.format.needsSidecarMap) ? [SIDECAR_SUFFIX] : []), ...(o.context ? ['.context'] : [])];
    for (const suffix of sides) await assertAbsent(out + suffix);
    await checkSpace(dirname(out), estimateSize(o.format, o.source.ranges, media) + (1n << 20n), o.maxDiskUsage);
  }
  if (remote && o.splitBytes !== undefined) throw new MemdumpError('E_USAGE', '--split writes local pieces; a network target takes one stream');

  // the target is dialled (pin checked, credentials accepted) before the first byte of memory is read
  let target: RemoteTarget | undefined;
  let base: OutputSink;
  if (remote) {
    target = await remote.open();
    try {
      const expected = storedSize(exactSize(o.format, o.source.ranges), o.delivery);
      base = await target.openEvidence({
        host: hostname(),
        source: `${o.source.kind} ${o.source.path}`,
        format: o.format.name,
        layers,
        ...(expected !== undefined ? { expectedBytes: expected } : {}),
        ...(o.caseFields.case !== undefined ? { case: o.caseFields.case } : {}),
      });
    } catch (e) {
      await target.close().catch(() => undefined);
      throw e;
    }
    if (o.format.name === 'e01' && media.segmentBytes) warnings.push('E01 sent over the network is one segment file, which may exceed --segment-size');
  } else base = await openSink(o, out, media, warnings);
  const { sink, stored } = await wrapLayers(base, o.delivery, o.format.name, o.digests.includes('sha256')).catch(async (e) => {
    await base.abort().catch(() => undefined);
    await target?.close().catch(() => undefined);
    throw e;
  });

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
  const whole = stored ? stored.stored().sha256 : (copy.hash?.digests.sha256 ?? null);
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

  const sides: Record<string, string> = {};
  const container = o.format.name === 'raw' || o.format.name === 'padded' || o.format.name === 'e01' ? o.format.name : undefined;
  if (copy.status === 'COMPLETE' && container && (o.sidecarMap ?? o.format.needsSidecarMap)) {
    // E01 stores the padded layout (media offset = physical address) but has no field for the runs themselves
    const offsets = flatOffsets(container === 'raw' ? 'raw' : 'padded', o.source.ranges);
    const map = JSON.stringify(sidecarFor(container, { runs: o.source.ranges, notes: o.notes }, offsets), null, 1) + '\n';
    const entry = (path: string): OutputEntry => ({ role: 'map', path, bytes: BigInt(Buffer.byteLength(map)), complete: true, sha256: createHash('sha256').update(map).digest('hex') });
    if (toStdout) warnings.push(`the ${container} map is only in this report (memoryMap.acquired): stdout has no place for ${SIDECAR_SUFFIX}`);
    else if (target) {
      const where = await putSide(target, 'map', Buffer.from(map), warnings);
      if (where) outputs.push(entry((sides.map = where)));
      else warnings.push(`the ${container} map is only in this report (memoryMap.acquired): ${target.describe} has no place for ${SIDECAR_SUFFIX}`);
    } else {
      await writeFileExclusive(out + SIDECAR_SUFFIX, map);
      outputs.push(entry(out + SIDECAR_SUFFIX));
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
  if (o.context && local) {
    try {
      context = await collectContext(out + '.context', o.root, o.context.iomemText, o.notes);
    } catch (e) {
      warnings.push(`context not kept: ${(e as Error).message}`);
    }
  } else if (o.context && remote) warnings.push('the volatile context directory (iomem, kallsyms, modules, …) is not sent over the network; its facts that matter are in this report');

  const storedFacts = stored ? stored.stored() : { bytes: copy.hash?.length ?? r.bytes, sha256: copy.hash?.digests.sha256 ?? null };
  const delivery: DeliveryReport | undefined =
    layers.length > 0 || target
      ? {
          target: target ? target.describe : toStdout ? 'stdout' : 'file',
          layers,
          recipients: (o.delivery?.recipients ?? []).map((x) => x.text),
          stored: { bytes: storedFacts.bytes.toString(), sha256: storedFacts.sha256 },
          remote: target ? { evidence: r.path, sides } : null,
        }
      : undefined;

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
    delivery,
  });

  const { path: reportPath, lost } = await deliverReport(o, report, { out, toStdout, target, signKey });
  const exitCode = copy.status !== 'COMPLETE' ? (ERROR_EXIT[copy.failure!.code] ?? 1) : lost ? (ERROR_EXIT[lost] ?? 1) : 0;
  return { report, reportPath, exitCode };
}
