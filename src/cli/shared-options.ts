import type { Command } from 'commander';
import { type Digest, parseDigests } from '../core/hasher.js';
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
    .option('--digests <list>', 'digests over the output bytes, computed in parallel in one pass', 'md5,sha1,sha256')
    .option('--hash-window <size>', 'piecewise window hashes (SHA-256 when chosen) every SIZE bytes; 0 = none', '64M');
}

export function parseHashOptions(o: HashOpts): { digests: Digest[]; windowSize: bigint } {
  return { digests: parseDigests(o.digests), windowSize: o.hashWindow === '0' ? 0n : parseSize(o.hashWindow, '--hash-window') };
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

export function printJobResult(g: GlobalOptions, r: JobResult): void {
  const rep = r.report;
  const evidence = rep.outputs.find((o) => o.role === 'evidence');
  if (g.json) {
    process.stdout.write(
      JSON.stringify({ status: rep.status, failure: rep.failure, output: evidence?.path ?? null, bytes: evidence?.bytes ?? null, report: r.reportPath ?? null, hashes: rep.hashes?.digests ?? null, readErrors: rep.readErrors.length, accounting: rep.accounting }) + '\n',
    );
    return;
  }
  if (g.quiet && rep.status === 'COMPLETE') return;
  const lines = [`${rep.status}: ${evidence?.path ?? '?'} (${evidence?.bytes ?? 0} bytes) in ${(rep.time.durationMs / 1000).toFixed(1)} s`];
  if (rep.hashes) for (const [k, v] of Object.entries(rep.hashes.digests)) lines.push(`  ${k.padEnd(7)} ${v}`);
  lines.push(`  read ${rep.accounting.read} bytes, zero-filled ${rep.accounting.zeroFilled}, skipped ${rep.accounting.skipped}; ${rep.readErrors.length} read-error run(s)`);
  if (r.reportPath) lines.push(`  report  ${r.reportPath}`);
  if (rep.failure) lines.push(`  failure ${rep.failure.code}: ${rep.failure.message} (last good offset ${rep.failure.lastGoodOffset}; partial data kept)`);
  process.stderr.write(lines.join('\n') + '\n');
}
