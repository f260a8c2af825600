import { constants, promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ERROR_EXIT, MemdumpError, isMemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { type Digest, Hasher, zeroPieces } from '../core/hasher.js';
import type { ImageReport, Report } from '../core/report-schema.js';
import { formatByName } from '../formats/registry.js';
import type { FormatSpec, MediaDescription } from '../formats/types.js';
import { mkdirExclusive } from '../sinks/exclusive.js';
import { type DeviceFacts, DeviceSource, type IoMode, devIdOf, isReadWrite } from '../sources/device.js';
import { type SwapArea, type SwapEntry, findSwapAreas } from '../sources/swaps.js';
import type { PhysicalSource } from '../sources/types.js';
import type { CopyResult } from './copy.js';
import { type JobResult, runJob } from './job.js';
import { type PolicyOptions, type RetryEvent, newAccount, readRange } from './read-policy.js';
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

/** Recorded re-reads of failing sectors (the report's source.info.retries). */
interface RetryStats {
  reReads: number;
  recoveredSectors: number;
  recovered: string[];
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

type Digests = { [K in Digest]?: string | undefined };

/** The E01 writer's media digests and padding from its summary; undefined when it has none. */
function e01Media(copy: CopyResult): { digests: Digests; pad: bigint } | undefined {
  const s = copy.writerSummary as { mediaDigests?: Digests; storedBytes?: unknown; mediaBytes?: unknown } | undefined;
  if (!s?.mediaDigests) return undefined;
  const big = (v: unknown) => (typeof v === 'bigint' ? v : typeof v === 'string' || typeof v === 'number' ? BigInt(v) : 0n);
  const pad = big(s.storedBytes) - big(s.mediaBytes);
  return { digests: s.mediaDigests, pad: pad > 0n ? pad : 0n };
}

/** Read the whole source a second time and hash it exactly as the image was hashed. */
async function hashSource(o: ImageJobOptions, pad: bigint): Promise<{ digests: Digests; bad: number }> {
  const hasher = new Hasher({ digests: o.digests, windowSize: 0n });
  let bad = 0;
  try {
    const policy: PolicyOptions = { errorRetries: o.retries, ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}), ...(o.signal ? { signal: o.signal } : {}) };
    for (const r of o.source.ranges) {
      for await (const chunk of readRange(o.source, r, newAccount(r), () => bad++, policy)) await hasher.update(chunk);
    }
    for (const z of zeroPieces(pad)) await hasher.update(z);
    return { digests: (await hasher.digest()).digests, bad };
  } catch (e) {
    await hasher.close();
    throw e;
  }
}

type VerifyResult = NonNullable<ImageReport['verify']> & { errorCode?: string };

async function verifySource(o: ImageJobOptions, copy: CopyResult): Promise<VerifyResult> {
  const e01 = o.format.name === 'e01' ? e01Media(copy) : undefined;
  const imageDigests: Digests = o.format.name === 'e01' ? (e01?.digests ?? {}) : { ...(copy.hash?.digests ?? {}) };
  try {
    await o.beforeVerify?.();
    const { digests: sourceDigests, bad } = await hashSource(o, e01?.pad ?? 0n);
    const common = o.digests.filter((d) => imageDigests[d] && sourceDigests[d]);
    if (common.length === 0) {
      return { sourceDigests, imageDigests, sourceChanged: false, message: `NOT VERIFIED: the image has no ${o.digests.join('/')} digest to compare with` };
    }
    const differ = common.filter((d) => imageDigests[d] !== sourceDigests[d]);
    const pad = e01?.pad ? ` (source padded with ${e01.pad} zero bytes to whole sectors, as E01 stores it)` : '';
    const badNote = bad ? `; the second read zero-filled ${bad} unreadable sector(s) as the first did` : '';
    if (differ.length === 0) return { sourceDigests, imageDigests, sourceChanged: false, message: `source unchanged: ${common.join(', ')} of a second full read equal the image's${pad}${badNote}` };
    return {
      sourceDigests,
      imageDigests,
      sourceChanged: true,
      message: `SOURCE CHANGED during or after imaging: ${differ.join(', ')} of a second full read differ from the image's${pad}${bad ? `; the second read found ${bad} unreadable sector(s)` : ''}`,
    };
  } catch (e) {
    const err = isMemdumpError(e) ? e : new MemdumpError('E_SOURCE_READ', (e as Error).message);
    return { sourceDigests: {}, imageDigests, sourceChanged: false, message: `NOT VERIFIED: the second read failed (${err.code}: ${err.message})`, errorCode: err.code };
  }
}

const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;

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
    outBytes = o.format.name === 'e01' ? (copy.status === 'COMPLETE' ? inBytes : (copy.failure?.lastAddress ?? 0n)) : copy.receipt.bytes;
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

/** Add the dc3dd-style section to the log runJob wrote (ours, 0600, just created; never through a symlink). */
async function appendLog(path: string, text: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
    await fh.write(text);
    await fh.sync();
  } catch (e) {
    process.stderr.write(`memdump: could not add the imaging log to ${path}: ${(e as Error).message}\n`);
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** "2026-11-22 01:16:22 +0000", as dc3dd writes times. */
const dcTime = (iso: string) => iso.replace('T', ' ').replace(/\.\d+Z$/, ' +0000');

function sectorsText(bytes: bigint, ss: bigint, dir: 'in' | 'out'): string {
  const full = bytes / ss;
  const part = bytes % ss;
  return part === 0n ? `${full} sectors ${dir}` : `${full}+1 sectors ${dir} (${full} sectors + ${part} bytes ${dir})`;
}

/** The dc3dd-style part of the log: start/end, sectors in/out, bad sectors, hashes, verification. Report strings are already escaped; device facts are not. */
export function renderImageLog(r: Report, device: DeviceFacts, outBytes: bigint, copyMs: number): string {
  const img = r.image;
  const ss = BigInt(device.sectorSize);
  const e = (s: string) => escapeControl(s);
  const L: string[] = ['', `---- imaging log (dc3dd style) ----`];
  L.push(`memdump ${r.tool.version} ${r.command} started at ${dcTime(r.time.start)}`);
  L.push(`command line: ${r.argv.join(' ')}`);
  L.push(`device size: ${device.bytes / ss}${device.bytes % ss ? '+1' : ''} sectors (probed), ${device.bytes} bytes`);
  L.push(`sector size: ${device.sectorSize} bytes (${device.type === 'block' ? 'probed' : 'file: assumed'})`);
  L.push(`source: ${e(device.path)} (${device.type === 'block' ? 'block device' : 'regular file'}, ${device.io}${device.removable ? ', removable' : ''}${device.model ? ', model ' + e(device.model) : ''}${device.serial ? ', serial ' + e(device.serial) : ''})`);
  const m = img?.device.mounted;
  L.push(`mounted: ${m ? `${m.mountPoint} ${m.options}${m.readWrite ? ' — READ-WRITE' : ''}` : 'no'}`);
  if (img?.device.swap) L.push(`swap: active ${img.device.swap.type}, ${img.device.swap.sizeKiB} KiB, ${img.device.swap.usedKiB} KiB used, priority ${img.device.swap.priority}`);
  const inBytes = BigInt(r.accounting.read) + BigInt(r.accounting.zeroFilled);
  // the copy alone: the report's duration also covers the verification read
  const secs = copyMs / 1000;
  L.push(`${inBytes} bytes copied (${device.bytes > 0n ? Number((inBytes * 1000n) / device.bytes) / 10 : 100}%), ${secs.toFixed(3)} s, ${secs > 0 ? (Number(inBytes) / secs / 1048576).toFixed(1) : '-'} MiB/s`);
  L.push('', `input results for ${device.type === 'block' ? 'device' : 'file'} \`${e(device.path)}':`);
  L.push(`   ${sectorsText(inBytes, ss, 'in')}`);
  L.push(`   ${img?.sectors.bad ?? 0} bad sectors replaced by zeros`);
  for (const x of r.readErrors) {
    const a = BigInt(x.start) / ss;
    const b = ceilDiv(BigInt(x.end), ss) - 1n;
    L.push(`      ${x.errno}, ${a === b ? `sector ${a}` : `sectors ${a} - ${b}`} (${x.pages} sector(s), bytes ${x.start}-${x.end})`);
  }
  const rt = r.source.info.retries as RetryStats | undefined;
  if (rt) L.push(`   ${rt.reReads} re-read(s) of failing sectors (up to ${img?.sectors.retriesPerSector ?? 0} per sector); ${rt.recoveredSectors} sector(s) recovered by a re-read`);
  for (const x of rt?.recovered ?? []) L.push(`      ${x}`);
  const content = r.format.name === 'e01' ? (r.e01?.mediaDigests ?? {}) : (r.hashes?.digests ?? {});
  for (const [k, v] of Object.entries(content)) L.push(`   ${v} (${k})${r.format.name === 'e01' ? ' media' : ''}`);
  const evid = r.outputs.filter((o) => o.role === 'evidence');
  L.push('', `output results for ${r.format.name} \`${evid[0]?.path ?? '?'}':`);
  L.push(`   ${sectorsText(outBytes, ss, 'out')}`);
  for (const f of img?.split?.files ?? []) L.push(`      ${f.path} ${f.bytes} bytes`);
  if (r.format.name === 'e01') for (const [k, v] of Object.entries(r.hashes?.digests ?? {})) L.push(`   ${v} (${k}) of the container files`);
  if (img?.verify) {
    L.push('', `verification (second full read of the source): ${img.verify.message}`);
    for (const [k, v] of Object.entries(img.verify.sourceDigests)) {
      const iv = img.verify.imageDigests[k as Digest];
      L.push(`   ${v} (${k}) source ${iv === undefined ? '' : iv === v ? '[ok]' : `[MISMATCH: image ${iv}]`}`);
    }
  }
  if (r.failure) L.push('', `memdump aborted at ${dcTime(r.time.end)}: ${r.failure.code}: ${r.failure.message}`, `   partial image kept: ${evid[0]?.path ?? '?'} (${r.failure.lastGoodOffset} bytes)`);
  else L.push('', `memdump completed at ${dcTime(r.time.end)}`);
  return L.join('\n') + '\n';
}

/** One swap area's outcome, for the table `memdump swap` prints. */
export interface SwapAcquired {
  area: SwapArea;
  output: string | null;
  reportPath: string | null;
  status: 'COMPLETE' | 'INCOMPLETE' | 'SKIPPED' | 'FAILED';
  bytes: bigint;
  /** Content digests of the image (raw: of its bytes; E01: the media digests). */
  digests: Digests;
  exitCode: number;
  message: string;
  warnings: string[];
}

export interface SwapAcquireOptions {
  /** Created 0700; must not exist. Not created when there is nothing to acquire. */
  dir: string;
  /** Also inactive swap areas (signatures on block devices, /etc/fstab). */
  all: boolean;
  argv: readonly string[];
  caseFields: CaseFields;
  digests: readonly Digest[];
  windowSize: bigint;
  maxDiskUsage: number;
  retries: number;
  maxErrors?: number;
  verify: boolean;
  /** raw (default) or e01. */
  format?: FormatSpec;
  e01?: { compression: 'none' | 'fast' | 'best'; segmentBytes: bigint };
  splitBytes?: bigint;
  chunkSize?: number;
  rateLimit?: number;
  /** Default 'direct' (swap is written around the page cache); 'buffered' only to compare. */
  io?: IoMode;
  signal?: AbortSignal;
  /** Root of /proc, /sys, /etc (tests); '/' on a live host. */
  root?: string;
  /** Called before each area is imaged; may return a progress callback. */
  onArea?: (area: SwapArea, output: string) => ((done: bigint, total: bigint) => void) | undefined;
}

/** File name for an area inside the swap directory: its path flattened ("/dev/sda2" → "dev_sda2"). */
export function swapImageName(path: string, taken: Set<string>): string {
  const base = path.replace(/^\/+/, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_').slice(0, 120) || 'swap';
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

/**
 * `memdump swap` and `acquire --include-swap`: image every active swap area (and with `all` the inactive ones)
 * into `dir`, one image, report and log per area. Swap is read with O_DIRECT: the kernel writes swap pages
 * around the page cache, so a buffered read could return stale cached pages. Never throws for one area's
 * failure: the next area is still acquired, and the result lists each.
 */
export async function acquireSwaps(o: SwapAcquireOptions): Promise<{ dir: string; areas: SwapAcquired[]; exitCode: number }> {
  const format = o.format ?? formatByName('raw');
  const areas = await findSwapAreas({ root: o.root ?? '/', all: o.all });
  const out: SwapAcquired[] = [];
  if (areas.length === 0) return { dir: o.dir, areas: out, exitCode: 0 };
  await mkdirExclusive(o.dir);
  const taken = new Set<string>();
  let exitCode = 0;
  for (const area of areas) {
    const output = join(o.dir, `${swapImageName(area.path, taken)}.${format.extension}`);
    const base: SwapAcquired = { area, output: null, reportPath: null, status: 'SKIPPED', bytes: 0n, digests: {}, exitCode: 0, message: '', warnings: [] };
    if (area.unavailable) {
      out.push({ ...base, message: area.unavailable });
      continue;
    }
    if (o.signal?.aborted) {
      out.push({ ...base, message: 'interrupted before this area' });
      exitCode ||= ERROR_EXIT.E_INTERRUPTED!;
      continue;
    }
    let src: DeviceSource | undefined;
    try {
      src = await DeviceSource.open(area.path, { root: o.root ?? '/', io: !o.io || o.io === 'auto' ? 'direct' : o.io });
      const progress = o.onArea?.(area, output);
      const r = await runImageJob({
        command: 'swap',
        argv: o.argv,
        caseFields: o.caseFields,
        source: src,
        device: src.facts,
        swap: area.active,
        format,
        output,
        digests: o.digests,
        windowSize: o.windowSize,
        maxDiskUsage: o.maxDiskUsage,
        retries: o.retries,
        verify: o.verify,
        options: { swapFound: area.found, swapHeader: area.header, all: o.all },
        ...(area.active ? {} : { warnings: [`inactive swap area (${area.found}): imaged for the pages it kept`] }),
        ...(o.maxErrors !== undefined ? { maxErrors: o.maxErrors } : {}),
        ...(o.e01 ? { e01: o.e01 } : {}),
        ...(o.splitBytes ? { splitBytes: o.splitBytes } : {}),
        ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}),
        ...(o.rateLimit ? { rateLimit: o.rateLimit } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        ...(progress ? { onProgress: progress } : {}),
      });
      const rep = r.report;
      const digests = format.name === 'e01' ? (rep.e01?.mediaDigests ?? {}) : (rep.hashes?.digests ?? {});
      const evidence = rep.outputs.find((x) => x.role === 'evidence');
      out.push({
        ...base,
        output: evidence?.path ?? output,
        reportPath: r.reportPath ?? null,
        status: rep.status,
        bytes: BigInt(rep.accounting.read) + BigInt(rep.accounting.zeroFilled),
        digests,
        exitCode: r.exitCode,
        message: rep.failure ? `${rep.failure.code}: ${rep.failure.message}` : (rep.image?.verify?.message ?? ''),
        warnings: r.warnings,
      });
      exitCode ||= r.exitCode;
    } catch (e) {
      const err = isMemdumpError(e) ? e : new MemdumpError('E_INTERNAL', (e as Error).message);
      out.push({ ...base, status: 'FAILED', exitCode: err.exitCode, message: `${err.code}: ${err.message}` });
      exitCode ||= err.exitCode;
    } finally {
      await src?.close();
    }
  }
  return { dir: o.dir, areas: out, exitCode };
}
