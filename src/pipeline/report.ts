import { MemdumpError } from '../core/errors.js';
import { escapeDeep } from '../core/escape.js';
import { hostIdentity, peakRss, toolIdentity } from '../core/host.js';
import { type Range, rangeToJson, totalLength } from '../core/ranges.js';
import { type DeliveryReport, type E01Report, type ImageReport, type ProcessReport, REPORT_SCHEMA_ID, type RegionReport, type Report, reportSchema } from '../core/report-schema.js';
import type { FormatSpec } from '../formats/types.js';
import { writeFileExclusive } from '../sinks/exclusive.js';
import type { SourceAttempt } from '../sources/types.js';
import type { CopyResult } from './copy.js';

export const REPORT_SUFFIX = '.report.json';
export const LOG_SUFFIX = '.log';
/** The detached signature beside a report: REPORT.json.sig. */
export const SIGNATURE_SUFFIX = '.sig';

export interface CaseFields {
  case?: string | undefined;
  examiner?: string | undefined;
  evidence?: string | undefined;
  notes?: string | undefined;
}

/**
 * One file written. A segment set (E01 .E01/.E02…, split OUT.001/.002…) is one entry per piece, in order: role
 * 'evidence' for the first, 'segment' for the others, and sha256 null when there is more than one piece, because
 * the report's `hashes` are over the concatenation of all pieces in order (what `cat` of the set gives).
 */
export interface OutputEntry {
  role: string;
  path: string;
  bytes: bigint;
  complete: boolean;
  sha256: string | null;
}

export interface ContextEntry {
  name: string;
  path: string | null;
  bytes: bigint;
  sha256: string | null;
  error: string | null;
}

export interface ReportInput {
  command: Report['command'];
  argv: readonly string[];
  caseFields: CaseFields;
  root?: string;
  start: Date;
  startMono: number;
  source: { kind: string; path: string; attempts: readonly SourceAttempt[]; lockdown: string | undefined; info: Record<string, unknown> };
  ram: readonly Range[];
  acquired: readonly Range[];
  format: FormatSpec;
  copy: CopyResult;
  contentSha256: string | null;
  outputs: OutputEntry[];
  context: ContextEntry[];
  options: Record<string, unknown>;
  warnings: string[];
  process?: ProcessReport | undefined;
  regions?: RegionReport[] | undefined;
  e01?: E01Report | undefined;
  image?: ImageReport | undefined;
  delivery?: DeliveryReport | undefined;
}

/** Options whose value is a credential: never kept in a report or a log. */
const SECRET_OPTIONS = new Set(['--token', '--client-key-pass']);

/**
 * The command line as the report keeps it: a token typed on it and the signature part of a pre-signed URL are
 * credentials, and a report travels (to the receiver, into case files), so they are replaced.
 */
export function redactArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0 && SECRET_OPTIONS.has(a.slice(0, eq))) out.push(a.slice(0, eq) + '=[redacted]');
    else if (SECRET_OPTIONS.has(a) && i + 1 < argv.length) out.push(a, '[redacted]'), i++;
    else out.push(/(^|=)https?:\/\/[^\s?#]*\?/i.test(a) ? a.slice(0, a.indexOf('?')) + '?[redacted]' : a);
  }
  return out;
}

const s = (v: bigint) => v.toString();
const h = (v: bigint) => '0x' + v.toString(16);

export function buildReport(i: ReportInput): Report {
  const c = i.copy;
  const sum = (f: (a: CopyResult['accounts'][number]) => bigint) => c.accounts.reduce((t, a) => t + f(a), 0n);
  const usage = process.resourceUsage();
  const report: Report = {
    schema: REPORT_SCHEMA_ID,
    status: c.status,
    failure: c.failure
      ? { code: c.failure.code, message: c.failure.message, lastGoodOffset: s(c.failure.lastGoodOffset), lastAddress: c.failure.lastAddress === undefined ? null : h(c.failure.lastAddress) }
      : null,
    command: i.command,
    tool: toolIdentity(),
    argv: redactArgv(i.argv),
    case: {
      case: i.caseFields.case ?? null,
      examiner: i.caseFields.examiner ?? null,
      evidence: i.caseFields.evidence ?? null,
      notes: i.caseFields.notes ?? null,
    },
    host: hostIdentity(i.root),
    time: { start: i.start.toISOString(), end: new Date().toISOString(), durationMs: Math.round(performance.now() - i.startMono) },
    source: { kind: i.source.kind, path: i.source.path, attempts: i.source.attempts.map((a) => ({ ...a })), lockdown: i.source.lockdown ?? null, info: i.source.info },
    memoryMap: { ram: i.ram.map(rangeToJson), acquired: i.acquired.map(rangeToJson), acquiredBytes: s(totalLength(i.acquired)) },
    accounting: {
      requested: s(sum((a) => a.requested)),
      read: s(sum((a) => a.read)),
      zeroFilled: s(sum((a) => a.zeroFilled)),
      skipped: s(sum((a) => a.skipped)),
      ranges: c.accounts.map((a) => ({ start: h(a.range.start), end: h(a.range.end), requested: s(a.requested), read: s(a.read), zeroFilled: s(a.zeroFilled), skipped: s(a.skipped) })),
    },
    readErrors: c.errorRuns.map((r) => ({ start: h(r.start), end: h(r.end), errno: r.errno, pages: r.pages })),
    format: { name: i.format.name, description: i.format.description },
    hashes: c.hash
      ? {
          over: 'container-bytes',
          length: s(c.hash.length),
          digests: { ...c.hash.digests },
          window: { size: s(c.hash.windowSize), digest: c.hash.windowDigest, hashes: c.hash.windows },
        }
      : null,
    contentSha256: i.contentSha256,
    outputs: i.outputs.map((o) => ({ role: o.role, path: o.path, bytes: s(o.bytes), complete: o.complete, sha256: o.sha256 })),
    context: i.context.map((x) => ({ name: x.name, path: x.path, bytes: s(x.bytes), sha256: x.sha256, error: x.error })),
    options: i.options,
    warnings: i.warnings,
    resources: { peakRssBytes: s(peakRss()), cpuUserMs: Math.round(usage.userCPUTime / 1000), cpuSystemMs: Math.round(usage.systemCPUTime / 1000) },
    ...(i.process ? { process: i.process } : {}),
    ...(i.regions ? { regions: i.regions } : {}),
    ...(i.e01 ? { e01: i.e01 } : {}),
    ...(i.image ? { image: i.image } : {}),
    ...(i.delivery ? { delivery: i.delivery } : {}),
  };
  return escapeDeep(report);
}

const e01Schema = reportSchema.shape.e01.unwrap();
const DEC_FIELDS = new Set(['mediaBytes', 'storedBytes', 'chunks', 'compressedChunks', 'firstSector', 'sectors', 'bytes']);
const INT_FIELDS = new Set(['bytesPerSector', 'sectorsPerChunk']);

/** The writer speaks bigint, Buffer and number; the report speaks decimal strings and hex. */
function jsonish(v: unknown, key = ''): unknown {
  if (typeof v === 'bigint') return INT_FIELDS.has(key) ? Number(v) : v.toString();
  if (typeof v === 'number' && DEC_FIELDS.has(key) && Number.isSafeInteger(v) && v >= 0) return String(v);
  if (Buffer.isBuffer(v)) return v.toString('hex');
  if (Array.isArray(v)) return v.map((x) => jsonish(x));
  if (v && typeof v === 'object' && !(v instanceof Date)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonish(x, k)]));
  return v;
}

/**
 * report.e01 from the E01 writer's summary() and the sink's pieces (the writer does not know the file names). A
 * summary that does not fit the schema costs only this section, never the report.
 */
export function e01Section(summary: Record<string, unknown> | undefined, segments: readonly { path: string; bytes: bigint }[]): { report?: E01Report; problem?: string } {
  if (!summary) return { problem: 'the E01 writer reported no summary' };
  const candidate = { ...(jsonish(summary) as Record<string, unknown>), segments: segments.map((x) => ({ path: x.path, bytes: s(x.bytes) })) };
  const parsed = e01Schema.safeParse(candidate);
  if (!parsed.success) return { problem: `the E01 writer's summary does not match the report schema: ${parsed.error.message.slice(0, 300)}` };
  return { report: parsed.data };
}

/** Validate, then serialise. A report that does not match its schema is never written. */
export function serializeReport(r: Report): string {
  const parsed = reportSchema.safeParse(r);
  if (!parsed.success) {
    throw new MemdumpError('E_REPORT_INVALID', `internal error: report does not match its schema: ${parsed.error.message.slice(0, 500)}`);
  }
  return JSON.stringify(parsed.data, null, 2) + '\n';
}

export function parseReport(text: string, path: string): Report {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new MemdumpError('E_REPORT_INVALID', `${path} is not JSON: ${(e as Error).message}`);
  }
  const parsed = reportSchema.safeParse(json);
  if (!parsed.success) throw new MemdumpError('E_REPORT_INVALID', `${path} is not a memdump report: ${parsed.error.message.slice(0, 500)}`);
  return parsed.data;
}

export function renderLog(r: Report): string {
  const lines: string[] = [];
  const add = (k: string, v: unknown) => lines.push(`${k.padEnd(18)} ${String(v)}`);
  lines.push(`memdump ${r.command} — ${r.status}`);
  add('tool', `${r.tool.name} ${r.tool.version} (entry sha256 ${r.tool.entrySha256}, node ${r.tool.node})`);
  add('command line', r.argv.join(' '));
  for (const [k, v] of Object.entries(r.case)) if (v !== null) add(k, v);
  add('host', `${r.host.hostname} (boot ${r.host.bootId ?? '?'}, machine ${r.host.machineId ?? '?'}, euid ${r.host.euid})`);
  add('kernel', r.host.uname);
  add('started (UTC)', r.time.start);
  add('ended (UTC)', r.time.end);
  add('duration', `${(r.time.durationMs / 1000).toFixed(1)} s`);
  add('source', `${r.source.kind} ${r.source.path}`);
  if (r.process) {
    const p = r.process;
    add('process', `${p.pid} ${p.comm} (${p.exe.path ?? '?'}, sha256 ${p.exe.sha256 ?? p.exe.error ?? '?'})`);
    add('command line', p.cmdline.join(' '));
    add('threads', `${p.threads.length}; registers: ${p.freeze.registers}${p.freeze.registersError ? ' — ' + p.freeze.registersError : ''}`);
    add('stopped', p.freeze.stoppedMs === null ? 'never' : `${p.freeze.stoppedMs} ms (${p.freeze.heldForCopy ? 'held for the whole copy' : 'only to read registers'})`);
    add('consistency', p.freeze.consistency);
    add('coredump_filter', `${p.coredumpFilter.value} (${p.coredumpFilter.source})`);
  }
  for (const g of r.regions ?? []) add('region', `${g.start}-${g.end} ${g.perms} ${g.path || '[anon]'} — ${g.reasons.join('; ')}${g.file ? ' → ' + g.file : ''}`);
  for (const a of r.source.attempts) add(a.ok ? '  used' : '  failed', `${a.source} ${a.ok ? '' : '— ' + (a.reason ?? a.code ?? '')}`);
  if (r.source.lockdown) add('lockdown', r.source.lockdown);
  add('format', r.format.name);
  add('RAM ranges', r.memoryMap.ram.length);
  for (const x of r.memoryMap.acquired) lines.push(`  ${x.start}-${x.end} (${x.length} bytes)`);
  add('bytes requested', r.accounting.requested);
  add('bytes read', r.accounting.read);
  add('zero-filled', r.accounting.zeroFilled);
  add('skipped', r.accounting.skipped);
  add('read errors', r.readErrors.length === 0 ? 'none' : `${r.readErrors.length} run(s)`);
  for (const e of r.readErrors) lines.push(`  ${e.start}-${e.end} ${e.errno} (${e.pages} page(s))`);
  if (r.hashes) {
    for (const [k, v] of Object.entries(r.hashes.digests)) add(k, v);
    add('window hashes', `${r.hashes.window.hashes.length} × ${r.hashes.window.size} bytes (${r.hashes.window.digest ?? 'none'})`);
  }
  for (const o of r.outputs) add(`output ${o.role}`, `${o.path} ${o.bytes} bytes${o.complete ? '' : ' (INCOMPLETE)'}`);
  if (r.outputs.filter((o) => o.role === 'segment').length) add('hashes over', 'all pieces concatenated in order');
  if (r.e01) {
    const e = r.e01;
    add('E01', `${e.segments.length} segment file(s), media ${e.mediaType} ${e.mediaBytes} bytes (${e.storedBytes} stored), ${e.chunks} chunks, ${e.compression} compression (${e.compressedChunks} compressed)`);
    for (const [k, v] of Object.entries(e.mediaDigests)) add(`  E01 media ${k}`, v);
    for (const x of e.errorRuns) lines.push(`  error run: sector ${x.firstSector} + ${x.sectors}`);
  }
  if (r.image) {
    const d = r.image.device;
    add('device', `${d.path} (${d.type}, ${d.bytes} bytes, ${d.sectorSize}-byte sectors)${d.mounted ? ` mounted at ${d.mounted.mountPoint} (${d.mounted.options})` : ''}`);
    add('sectors', `in ${r.image.sectors.in}, out ${r.image.sectors.out}, bad ${r.image.sectors.bad}`);
    if (r.image.split) add('split', `${r.image.split.files.length} file(s) of at most ${r.image.split.bytes} bytes`);
    if (r.image.verify) add('verify', r.image.verify.message);
  }
  for (const c of r.context) add(`context ${c.name}`, c.error ? `not kept: ${c.error}` : `${c.path} sha256 ${c.sha256}`);
  if (r.failure) add('FAILURE', `${r.failure.code}: ${r.failure.message} (last good offset ${r.failure.lastGoodOffset})`);
  for (const w of r.warnings) add('warning', w);
  add('peak RSS', `${(Number(r.resources.peakRssBytes) / 1048576).toFixed(1)} MiB`);
  return lines.join('\n') + '\n';
}

export async function writeReportFiles(base: string, r: Report): Promise<{ report: string; log: string }> {
  const text = serializeReport(r);
  const report = base + REPORT_SUFFIX;
  const log = base + LOG_SUFFIX;
  await writeFileExclusive(report, text);
  await writeFileExclusive(log, renderLog(r));
  return { report, log };
}
