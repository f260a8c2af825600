import { promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ERROR_EXIT, MemdumpError } from '../core/errors.js';
import type { Digest } from '../core/hasher.js';
import type { ImageReport } from '../core/report-schema.js';
import type { FormatSpec, MediaDescription } from '../formats/types.js';
import { devIdOf } from '../sources/block-geometry.js';
import type { DeviceFacts } from '../sources/device.js';
import { isReadWrite } from '../sources/device-mounts.js';
import type { SwapEntry } from '../sources/swaps.js';
import type { PhysicalSource } from '../sources/types.js';
import type { CopyResult } from './copy.js';
import { type RetryStats, appendLog, ceilDiv, renderImageLog } from './image-log.js';
import { verifySource } from './image-verify.js';
import { type JobResult, runJob } from './job.js';
import type { RetryEvent } from './read-policy.js';
import { type CaseFields, LOG_SUFFIX, REPORT_SUFFIX } from './report.js';

/** `memdump image`: a device or file to raw or E01, dc3dd-style (retries, zero-filled bad sectors, verify). */
export interface ImageJobOptions {
  command: 'image' | 'swap';
  argv: readonly string[];
  caseFields: CaseFields;
  /** Usually a DeviceSource; tests pass a fault-injecting source with made-up facts. */
  source: PhysicalSource;
  device: DeviceFacts;
  /** The /proc/swaps line when imaging an active swap area. */
  swap?: SwapEntry | null;
  format: FormatSpec;
  output: string;
  digests: readonly Digest[];
  windowSize: bigint;
  maxDiskUsage: number;
  splitBytes?: bigint;
  e01?: { compression: 'none' | 'fast' | 'best'; segmentBytes: bigint };
  /** Re-reads of a failing sector before it is zero-filled. */
  retries: number;
  /** Stop (E_TOO_MANY_ERRORS) rather than zero-fill more than this many sectors; undefined = no limit. */
  maxErrors?: number;
  verify: boolean;
  chunkSize?: number;
  rateLimit?: number;
  signal?: AbortSignal;
  warnings?: string[];
  options?: Record<string, unknown>;
  onProgress?: (done: bigint, total: bigint) => void;
  /** Runs after the copy, before the verification read (tests change the source here). */
  beforeVerify?: () => Promise<void> | void;
}

export interface ImageJobResult extends JobResult {
  logPath: string | undefined;
  /** Loud warnings for the terminal (mounted read-write, active swap, …); also in the report. */
  warnings: string[];
}

/** The source as the report sees it: the device facts and the retry counts, filled in during the copy. */
class ImagingSource implements PhysicalSource {
  readonly kind = 'device' as const;
  constructor(
    private readonly inner: PhysicalSource,
    readonly info: Record<string, unknown>,
  ) {}
  get path() { return this.inner.path; }
  get ranges() { return this.inner.ranges; }
  get pageSize() { return this.inner.pageSize; }
  get notes() { return this.inner.notes; }
  read(addr: bigint, buf: Buffer, length: number) { return this.inner.read(addr, buf, length); }
  close() { return this.inner.close(); }
}

/** Refuse an output that would land on the source: the source file itself, or a filesystem on the device (or a partition of it). */
export async function assertOutputOffSource(device: DeviceFacts, output: string): Promise<void> {
  const out = resolve(output);
  const src = await fsp.realpath(device.path).catch(() => resolve(device.path));
  const dir = await fsp.realpath(dirname(out)).catch(() => dirname(out));
  const names = [out, out + '.partial', out + REPORT_SUFFIX, out + LOG_SUFFIX].map((p) => join(dir, basename(p)));
  if (names.includes(src) || (src.startsWith(join(dir, basename(out)) + '.') && /\.\d{3,}(\.partial)?$/.test(src))) {
    throw new MemdumpError('E_USAGE', `the output ${output} is the source ${device.path} (or one of its pieces); choose another -o`);
  }
  const st = await fsp.stat(dir, { bigint: true }).catch(() => undefined);
  if (st && device.related.includes(devIdOf(st.dev))) {
    throw new MemdumpError('E_USAGE', `the output directory ${dir} is on ${device.path} itself (device ${devIdOf(st.dev)}); imaging would write to the evidence. Write to another disk.`);
  }
}

/** Facts worth shouting about before and after imaging. */
export function deviceWarnings(device: DeviceFacts, swap: SwapEntry | null | undefined, command: 'image' | 'swap'): string[] {
  const w: string[] = [];
  for (const m of device.mounts) {
    if (isReadWrite(m)) w.push(`SOURCE IS MOUNTED READ-WRITE at ${m.mountPoint} (${m.fsType}, ${m.options}): the filesystem may change while it is imaged; unmount it or remount read-only first`);
  }
  if (swap && command === 'image') w.push(`${device.path} is active swap: the kernel writes to it while it is read; the image is not a point-in-time copy`);
  if (swap && command === 'swap') w.push(`active swap (${swap.usedKiB} KiB in use): pages may be written while it is read`);
  return w;
}

// E01 header values are tab-separated lines: a control character in a path or a case field would shift the fields
const oneLine = (v: string | null | undefined) => (v === undefined || v === null ? null : v.replace(/[\x00-\x1f\x7f]/g, ' '));

export function mediaFor(o: Pick<ImageJobOptions, 'device' | 'caseFields' | 'e01'>, start: Date): MediaDescription {
  const d = o.device;
  return {
    type: d.type === 'block' && d.removable ? 'removable' : 'fixed',
    caseNumber: oneLine(o.caseFields.case),
    examiner: oneLine(o.caseFields.examiner),
    evidenceNumber: oneLine(o.caseFields.evidence),
    notes: oneLine(o.caseFields.notes),
    description: oneLine([d.path, d.model, d.serial ? `serial ${d.serial}` : null].filter((x) => x).join(' '))!,
    acquired: start,
    ...(o.e01 ? { compression: o.e01.compression, segmentBytes: o.e01.segmentBytes } : {}),
  };
}

/** Image one device or file through runJob; never throws for a read failure (the report says INCOMPLETE). */
export async function runImageJob(o: ImageJobOptions): Promise<ImageJobResult> {
  const start = new Date();
  if (o.output === '-') throw new MemdumpError('E_USAGE', `${o.command} writes files (the log and the report sit beside them); -o - is not supported`);
  await assertOutputOffSource(o.device, o.output);
  const warnings = [...(o.warnings ?? []), ...deviceWarnings(o.device, o.swap, o.command)];
  const retries: RetryStats = { reReads: 0, recoveredSectors: 0, recovered: [] };
  const ss = BigInt(o.device.sectorSize);
  const onRetry = (r: RetryEvent) => {
    retries.reReads++;
    if (r.recovered) {
      retries.recoveredSectors++;
      if (retries.recovered.length < 1000) retries.recovered.push(`sector ${r.address / ss} on re-read ${r.attempt} (after ${r.errno})`);
    }
  };
  const info: Record<string, unknown> = { ...o.source.info, retries };
  const source = new ImagingSource(o.source, info);
  let verify: ImageReport['verify'] = null;
  let verifyError: string | undefined;
  let outBytes = 0n;
  let copyMs = 0;
  const started = performance.now();
  const imageReport = async (copy: CopyResult): Promise<ImageReport> => {
    copyMs = performance.now() - started;
    const inBytes = copy.accounts.reduce((t, a) => t + a.read + a.zeroFilled, 0n);
    // an interrupted E01 drops the chunks still queued for compression: count what its tables really hold
    outBytes = o.format.name === 'e01' ? (copy.status === 'COMPLETE' ? inBytes : (copy.mediaWritten ?? 0n)) : copy.receipt.bytes;
    if (o.verify && copy.status === 'COMPLETE') {
      const { errorCode, ...v } = await verifySource(o, copy);
      verify = v;
      verifyError = errorCode;
    }
    const mounted = o.device.mounts.find(isReadWrite) ?? o.device.mounts[0];
    return {
      device: {
        path: o.device.path,
        type: o.device.type,
        bytes: o.device.bytes.toString(),
        sectorSize: o.device.sectorSize,
        mounted: mounted ? { mountPoint: mounted.mountPoint, options: mounted.options, readWrite: isReadWrite(mounted) } : null,
        swap: o.swap ? { type: o.swap.type, sizeKiB: o.swap.sizeKiB.toString(), usedKiB: o.swap.usedKiB.toString(), priority: o.swap.priority } : null,
      },
      sectors: {
        in: ceilDiv(inBytes, ss).toString(),
        out: ceilDiv(outBytes, ss).toString(),
        bad: copy.errorRuns.reduce((t, r) => t + r.pages, 0).toString(),
        retriesPerSector: o.retries,
        maxErrors: o.maxErrors === undefined ? null : String(o.maxErrors),
      },
      split: o.splitBytes ? { bytes: o.splitBytes.toString(), files: (copy.receipt.segments ?? []).map((s) => ({ path: s.path, bytes: s.bytes.toString() })) } : null,
      verify,
    };
  };
  const result = await runJob({
    command: o.command,
    argv: o.argv,
    caseFields: o.caseFields,
    root: '/',
    source,
    attempts: [{ source: 'device', path: o.device.path, ok: true }],
    lockdown: undefined,
    ram: source.ranges,
    notes: [],
    format: o.format,
    output: o.output,
    digests: o.digests,
    windowSize: o.windowSize,
    rateLimit: o.rateLimit ?? 0,
    maxDiskUsage: o.maxDiskUsage,
    policy: {
      errorRetries: o.retries,
      onRetry,
      // the device went away (unplugged): zero-filling the rest sector by sector would only hide that
      fatal: new Set(['ENODEV']),
      ...(o.maxErrors !== undefined ? { badPageLimit: { limit: o.maxErrors, count: 0 } } : {}),
      ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    },
    context: undefined,
    reportPath: undefined,
    contentHash: false,
    warnings,
    options: { ...(o.options ?? {}), retries: o.retries, maxErrors: o.maxErrors ?? null, verify: o.verify, io: o.device.io },
    media: mediaFor(o, start),
    ...(o.splitBytes ? { splitBytes: o.splitBytes } : {}),
    sidecarMap: false,
    imageReport,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  let exitCode = result.exitCode;
  const v = verify as ImageReport['verify'];
  if (exitCode === 0 && v?.sourceChanged) exitCode = ERROR_EXIT.E_VERIFY_MISMATCH!;
  // an image that could not be verified as asked is not a success (Ctrl-C during the second read: 130)
  else if (exitCode === 0 && verifyError) exitCode = ERROR_EXIT[verifyError as string] ?? 1;
  let logPath: string | undefined;
  if (result.reportPath) {
    logPath = result.reportPath.slice(0, -REPORT_SUFFIX.length) + LOG_SUFFIX;
    await appendLog(logPath, renderImageLog(result.report, o.device, outBytes, copyMs));
  }
  return { ...result, exitCode, logPath, warnings };
}
