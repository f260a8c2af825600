import { readFile } from 'node:fs/promises';
import { MemdumpError, errnoOf, hex } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { type Digest, type HashResult, Hasher, parseDigests } from '../core/hasher.js';
import type { Report } from '../core/report-schema.js';
import { openImage } from '../formats/registry.js';
import type { FormatName } from '../formats/types.js';
import { REPORT_SUFFIX, parseReport } from './report.js';

const READ = 8 << 20;

/** Hash a whole file exactly as the acquisition hashed its output. */
export async function hashFile(path: string, digests: readonly Digest[], windowSize: bigint, windowDigest: Digest | undefined, onProgress?: (done: bigint, total: bigint) => void): Promise<HashResult> {
  const file = await RandomAccessFile.open(path);
  const hasher = new Hasher({ digests, windowSize, ...(windowDigest ? { windowDigest } : {}) });
  try {
    for (let pos = 0n; pos < file.size; ) {
      const b = await file.readAt(pos, READ);
      if (b.length === 0) break;
      await hasher.update(b);
      pos += BigInt(b.length);
      onProgress?.(pos, file.size);
    }
    return await hasher.digest();
  } catch (e) {
    await hasher.close();
    throw e;
  } finally {
    await file.close();
  }
}

export interface DigestCheck {
  expected: string | null;
  actual: string;
  ok: boolean;
}

export interface VerifyResult {
  file: string;
  report: string | null;
  reportStatus: string | null;
  verdict: 'MATCH' | 'MISMATCH' | 'NO_REPORT';
  length: { expected: string | null; actual: string; ok: boolean };
  digests: Record<string, DigestCheck>;
  windows: { size: string; digest: string | null; count: number; bad: number[] };
  firstBadWindow: { index: number; offset: string; end: string; physicalAddress: string | null } | null;
}

export async function findReport(file: string, explicit?: string): Promise<{ path: string; report: Report } | undefined> {
  const candidates = explicit ? [explicit] : [file + REPORT_SUFFIX, ...(file.endsWith('.partial') ? [file.slice(0, -'.partial'.length) + REPORT_SUFFIX] : [])];
  for (const path of candidates) {
    try {
      return { path, report: parseReport(await readFile(path, 'utf8'), path) };
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' && !explicit) continue;
      if (e instanceof MemdumpError) throw e;
      throw new MemdumpError(errnoOf(e) === 'ENOENT' ? 'E_NOT_FOUND' : 'E_PERMISSION', `cannot read report ${path}: ${(e as Error).message}`);
    }
  }
  return undefined;
}

export async function verify(file: string, options: { report?: string; digests?: string; windowSize?: bigint; inputFormat?: FormatName; onProgress?: (d: bigint, t: bigint) => void } = {}): Promise<VerifyResult> {
  const found = await findReport(file, options.report);
  const r = found?.report;
  const expected = r?.hashes ?? null;
  const digests = expected ? (Object.keys(expected.digests).filter((k) => expected.digests[k as Digest]) as Digest[]) : parseDigests(options.digests ?? 'md5,sha1,sha256');
  const windowSize = expected ? BigInt(expected.window.size) : (options.windowSize ?? 64n << 20n);
  const windowDigest = (expected?.window.digest ?? undefined) as Digest | undefined;
  const actual = await hashFile(file, digests, windowSize, windowDigest, options.onProgress);

  const checks: Record<string, DigestCheck> = {};
  for (const d of digests) {
    const e = expected?.digests[d] ?? null;
    checks[d] = { expected: e, actual: actual.digests[d]!, ok: e === null || e === actual.digests[d] };
  }
  const bad: number[] = [];
  if (expected) {
    const n = Math.max(expected.window.hashes.length, actual.windows.length);
    for (let i = 0; i < n; i++) if (expected.window.hashes[i] !== actual.windows[i]) bad.push(i);
  }
  const lengthOk = !expected || BigInt(expected.length) === actual.length;
  let firstBadWindow: VerifyResult['firstBadWindow'] = null;
  if (bad.length > 0) {
    const i = bad[0]!;
    const offset = BigInt(i) * windowSize;
    const end = offset + windowSize < actual.length ? offset + windowSize : actual.length;
    firstBadWindow = { index: i, offset: hex(offset), end: hex(end), physicalAddress: await physicalAt(file, offset, end, options.inputFormat) };
  }
  const match = !!expected && lengthOk && bad.length === 0 && Object.values(checks).every((c) => c.ok);
  return {
    file,
    report: found?.path ?? null,
    reportStatus: r?.status ?? null,
    verdict: !expected ? 'NO_REPORT' : match ? 'MATCH' : 'MISMATCH',
    length: { expected: expected?.length ?? null, actual: actual.length.toString(), ok: lengthOk },
    digests: checks,
    windows: { size: windowSize.toString(), digest: actual.windowDigest, count: actual.windows.length, bad },
    firstBadWindow,
  };
}

/** The first physical address stored in [offset, end) of the file, when the format stores bytes plainly. */
async function physicalAt(file: string, offset: bigint, end: bigint, format?: FormatName): Promise<string | null> {
  try {
    const img = await openImage(file, format);
    try {
      const a = img.firstAddressIn?.(offset, end);
      return a === undefined ? null : hex(a);
    } finally {
      await img.close();
    }
  } catch {
    // a corrupted header is itself the mismatch; the window offset is still reported
    return null;
  }
}
