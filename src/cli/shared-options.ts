import type { Command } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { type Digest, parseDigests } from '../core/hasher.js';
import type { MediaDescription } from '../formats/types.js';
import type { JobResult } from '../pipeline/job.js';
import type { CaseFields } from '../pipeline/report.js';
import { type GlobalOptions, parsePercent, parseSize } from './common.js';

export interface HashOpts {
  digests: string;
  hashWindow: string;
}

export interface CaseOpts {
  case?: string;
  examiner?: string;
  evidence?: string;
  notes?: string;
}

export function addHashOptions(cmd: Command): void {
  cmd
    .option('--digests <list>', 'digests over the output bytes, computed in parallel in one pass (E01 output: sha256 unless given; the media MD5/SHA-1/SHA-256 are always computed)', 'md5,sha1,sha256')
    .option('--hash-window <size>', 'piecewise window hashes (SHA-256 when chosen) every SIZE bytes; 0 = none', '64M');
}

/**
 * `e01` (with the command, to see whether --digests was typed): E01 output carries MD5 and SHA-1 of the media
 * inside and the report adds its SHA-256, so the digest over the segment files as written defaults to SHA-256
 * alone. Three more digests over the compressed bytes cost ~12% of E01 throughput and prove nothing extra.
 */
export function parseHashOptions(o: HashOpts, e01?: { cmd: Command; on: boolean }): { digests: Digest[]; windowSize: bigint } {
  const digests = e01?.on && e01.cmd.getOptionValueSource('digests') === 'default' ? 'sha256' : o.digests;
  return { digests: parseDigests(digests), windowSize: o.hashWindow === '0' ? 0n : parseSize(o.hashWindow, '--hash-window') };
}

export function addDiskGuardOption(cmd: Command): void {
  cmd.option('--max-disk-usage <percent>', 'refuse to start if the output would fill its filesystem beyond this', '95');
}

export function parseDiskGuard(o: { maxDiskUsage: string }): number {
  return parsePercent(o.maxDiskUsage, '--max-disk-usage');
}

export function caseFieldsOf(o: CaseOpts): CaseFields {
  return { case: o.case, examiner: o.examiner, evidence: o.evidence, notes: o.notes };
}

export function addCaseOptions(cmd: Command): void {
  cmd
    .option('--case <text>', 'case number for the report')
    .option('--examiner <text>', 'examiner name for the report')
    .option('--evidence <text>', 'evidence number for the report')
    .option('--notes <text>', 'free-text notes for the report');
}

export interface E01Opts {
  compression: string;
  segmentSize: string;
}

/** E01 output choices, shared by every command that can write `--format e01`. */
export function addE01Options(cmd: Command): void {
  cmd
    .option('--compression <level>', 'E01 chunk compression: none | fast | best (deflate level 0, 1, 9)', 'fast')
    .option('--segment-size <size>', 'E01: start a new segment file (.E02, .E03, …) before one exceeds SIZE; 0 = one file', '1500M');
}

export function parseE01Options(o: E01Opts): { compression: 'none' | 'fast' | 'best'; segmentBytes: bigint } {
  if (!['none', 'fast', 'best'].includes(o.compression)) throw new MemdumpError('E_USAGE', `--compression: "${o.compression}" is not one of none, fast, best`);
  const segmentBytes = o.segmentSize === '0' ? 0n : parseSize(o.segmentSize, '--segment-size');
  // a segment must hold its headers and at least one chunk group; ewfacquire's own floor is 1 MiB
  if (segmentBytes !== 0n && segmentBytes < 1n << 20n) throw new MemdumpError('E_USAGE', '--segment-size must be at least 1M (or 0 for one file)');
  return { compression: o.compression as 'none' | 'fast' | 'best', segmentBytes };
}

/**
 * --compression and --segment-size have defaults, so only their source tells whether the user typed them: typed
 * with another format they would silently do nothing.
 */
export function checkE01OptionsUsed(cmd: Command, e01: boolean): void {
  if (e01) return;
  for (const [key, flag] of [['compression', '--compression'], ['segmentSize', '--segment-size']] as const) {
    if (cmd.getOptionValueSource(key) === 'cli') throw new MemdumpError('E_USAGE', `${flag} applies to E01 output only (--format e01 / --to e01)`);
  }
}

// E01 header values are tab-separated lines: a tab or newline typed into --notes would shift every later field
const oneLine = (v: string | undefined): string | null => (v === undefined ? null : v.replace(/[\x00-\x1f\x7f]/g, ' '));

/** What an E01 header says about the media: the case fields, a description, the compression and segment size. */
export function e01MediaOf(c: CaseOpts, e: { compression: 'none' | 'fast' | 'best'; segmentBytes: bigint }, description: string, type: MediaDescription['type'] = 'memory'): MediaDescription {
  return {
    type,
    caseNumber: oneLine(c.case),
    examiner: oneLine(c.examiner),
    evidenceNumber: oneLine(c.evidence),
    notes: oneLine(c.notes),
    description: oneLine(description)!,
    acquired: new Date(),
    compression: e.compression,
    segmentBytes: e.segmentBytes,
  };
}

export function printJobResult(g: GlobalOptions, r: JobResult): void {
  const rep = r.report;
  const evidence = rep.outputs.find((o) => o.role === 'evidence');
  const pieces = rep.outputs.filter((o) => o.role === 'evidence' || o.role === 'segment');
  if (g.json) {
    process.stdout.write(
      JSON.stringify({
        status: rep.status,
        failure: rep.failure,
        output: evidence?.path ?? null,
        bytes: evidence?.bytes ?? null,
        ...(pieces.length > 1 ? { segments: pieces.map((o) => ({ path: o.path, bytes: o.bytes })) } : {}),
        report: r.reportPath ?? null,
        hashes: rep.hashes?.digests ?? null,
        readErrors: rep.readErrors.length,
        accounting: rep.accounting,
      }) + '\n',
    );
    return;
  }
  if (g.quiet && rep.status === 'COMPLETE') return;
  const lines = [`${rep.status}: ${evidence?.path ?? '?'} (${evidence?.bytes ?? 0} bytes) in ${(rep.time.durationMs / 1000).toFixed(1)} s`];
  if (pieces.length > 1) lines.push(`  + ${pieces.length - 1} more piece(s) up to ${pieces[pieces.length - 1]!.path}; hashes are over all ${pieces.length} in order`);
  if (rep.hashes) for (const [k, v] of Object.entries(rep.hashes.digests)) lines.push(`  ${k.padEnd(7)} ${v}`);
  lines.push(`  read ${rep.accounting.read} bytes, zero-filled ${rep.accounting.zeroFilled}, skipped ${rep.accounting.skipped}; ${rep.readErrors.length} read-error run(s)`);
  if (r.reportPath) lines.push(`  report  ${r.reportPath}`);
  if (rep.failure) lines.push(`  failure ${rep.failure.code}: ${rep.failure.message} (last good offset ${rep.failure.lastGoodOffset}; partial data kept)`);
  process.stderr.write(lines.join('\n') + '\n');
}
