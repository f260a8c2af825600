import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MemdumpError, errnoOf, hex } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { type Digest, type HashResult, Hasher, parseDigests } from '../core/hasher.js';
import type { Report } from '../core/report-schema.js';
import { e01MediaDigests } from '../formats/e01.js';
import { openImage } from '../formats/registry.js';
import type { FormatName } from '../formats/types.js';
import { verifyReportSignature } from '../crypto/sign.js';
import { REPORT_SUFFIX, SIGNATURE_SUFFIX, parseReport } from './report.js';

const READ = 8 << 20;

/**
 * Hash one file, or the pieces of a segment set (E01 .E01/.E02…, split raw .001/.002…) as one stream in order,
 * exactly as the acquisition hashed its output.
 */
export async function hashFile(paths: string | readonly string[], digests: readonly Digest[], windowSize: bigint, windowDigest: Digest | undefined, onProgress?: (done: bigint, total: bigint) => void): Promise<HashResult> {
  const list = typeof paths === 'string' ? [paths] : paths;
  const hasher = new Hasher({ digests, windowSize, ...(windowDigest ? { windowDigest } : {}) });
  try {
    const files: RandomAccessFile[] = [];
    try {
      for (const p of list) files.push(await RandomAccessFile.open(p));
      const total = files.reduce((t, f) => t + f.size, 0n);
      let done = 0n;
      for (const file of files) {
        for (let pos = 0n; pos < file.size; ) {
          const b = await file.readAt(pos, READ);
          if (b.length === 0) break;
          await hasher.update(b);
          pos += BigInt(b.length);
          done += BigInt(b.length);
          onProgress?.(done, total);
        }
      }
    } finally {
      for (const f of files) await f.close();
    }
    return await hasher.digest();
  } catch (e) {
    await hasher.close();
    throw e;
  }
}

/**
 * The files whose concatenation the report hashed: the pieces it lists (looked up beside FILE by name, so a set
 * copied elsewhere still verifies), else an E01 set as the reader finds it, else FILE alone.
 */
async function pieces(file: string, r: Report | undefined, e01Segments: readonly string[] | undefined): Promise<string[]> {
  const listed = r?.outputs.filter((o) => o.role === 'evidence' || o.role === 'segment') ?? [];
  // a split set of one piece (OUT.001) is still named by its pieces, not by FILE
  // (only a piece named after FILE: a report checked against a renamed copy must hash the copy, not the original)
  const onePiece = listed.length === 1 && listed[0]!.complete && /^\.\d{3,}$/.test(basename(listed[0]!.path).slice(basename(file).length)) && basename(listed[0]!.path).startsWith(basename(file));
  if (listed.length > 1 || onePiece) {
    return listed.map((o) => join(dirname(file), basename(o.path)));
  }
  return e01Segments && e01Segments.length > 1 ? [...e01Segments] : [file];
}

export interface E01Check {
  /** MD5 and SHA-1 the E01 carries in its hash/digest sections. */
  stored: { md5: string | null; sha1: string | null };
  /** Recomputed over the media as the reader decompresses it (what ewfverify does). */
  computed: { md5: string; sha1: string; bytes: string } | null;
  /** The media digests our report recorded when the E01 was written. */
  report: { md5?: string | undefined; sha1?: string | undefined; sha256?: string | undefined } | null;
  ok: boolean;
  error: string | null;
  problems: string[];
}

/** Decompress the whole E01 media and compare its digests with those stored inside and in the report. */
async function checkE01(file: string, r: Report | undefined, onProgress?: (d: bigint, t: bigint) => void): Promise<{ check: E01Check; segments: string[] } | undefined> {
  let img;
  try {
    img = await openImage(file);
  } catch (e) {
    if (!/\.e01$/i.test(file)) return undefined;
    const msg = `${(e as { code?: string }).code ?? 'E_CORRUPT'}: ${(e as Error).message}`;
    return { check: { stored: { md5: null, sha1: null }, computed: null, report: r?.e01?.mediaDigests ?? null, ok: false, error: msg, problems: [] }, segments: [] };
  }
  try {
    if (img.format !== 'e01') return undefined;
    const d = img.details as { storedDigests?: { md5: string | null; sha1: string | null }; segments?: { path: string }[]; problems?: string[] };
    const stored = d.storedDigests ?? { md5: null, sha1: null };
    const fromReport = r?.e01?.mediaDigests ?? null;
    const segments = (d.segments ?? []).map((s) => s.path);
    let computed: E01Check['computed'] = null;
    let error: string | null = null;
    try {
      const c = await e01MediaDigests(img, onProgress);
      computed = { md5: c.md5, sha1: c.sha1, bytes: c.bytes.toString() };
    } catch (e) {
      error = `${(e as { code?: string }).code ?? 'E_CORRUPT'}: ${(e as Error).message}`;
    }
    const agrees = (want: string | null | undefined, got: string | undefined) => !want || want === got;
    const ok =
      computed !== null &&
      agrees(stored.md5, computed.md5) &&
      agrees(stored.sha1, computed.sha1) &&
      agrees(fromReport?.md5, computed.md5) &&
      agrees(fromReport?.sha1, computed.sha1) &&
      (stored.md5 !== null || stored.sha1 !== null || fromReport !== null);
    return { check: { stored, computed, report: fromReport, ok, error, problems: d.problems ?? [] }, segments };
  } finally {
    await img.close();
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
  /** Every file hashed, in order (more than one for segment sets). */
  files: string[];
  /** E01 only: the media digests stored inside the file, recomputed. */
  e01: E01Check | null;
  /**
   * A compressed or encrypted file (report.delivery.layers): what was checked is the stored bytes' SHA-256; the
   * container hashes need `memdump decrypt`, which checks them on the way out.
   */
  stored: { layers: string[]; expected: string | null; actual: string; ok: boolean } | null;
  /** REPORT.sig beside the report: Ed25519 over the report's exact bytes. */
  signature: { path: string; keyId: string | null; trusted: boolean; ok: boolean; error: string | null } | null;
}

export interface SignatureCheck {
  path: string;
  keyId: string | null;
  trusted: boolean;
  ok: boolean;
  error: string | null;
}

/**
 * The report's detached signature, when there is one (or when trusted keys demand one). Any edit of the report,
 * a signature by another key than a trusted one, or a missing signature when keys are given fails.
 */
export async function checkSignature(reportPath: string, reportText: string, trusted: readonly string[] | undefined): Promise<SignatureCheck | null> {
  const path = reportPath + SIGNATURE_SUFFIX;
  let sig: string;
  try {
    sig = await readFile(path, 'utf8');
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') return { path, keyId: null, trusted: false, ok: false, error: `cannot read ${path}: ${(e as Error).message}` };
    return trusted && trusted.length ? { path, keyId: null, trusted: false, ok: false, error: 'the report is not signed, but --trusted-key asks for a signature' } : null;
  }
  try {
    const v = verifyReportSignature(Buffer.from(reportText), sig, trusted && trusted.length ? trusted : undefined);
    return { path, keyId: v.keyId, trusted: v.trusted, ok: true, error: null };
  } catch (e) {
    return { path, keyId: null, trusted: false, ok: false, error: `${(e as { code?: string }).code ?? 'E_SIGNATURE'}: ${(e as Error).message}` };
  }
}

export async function findReport(file: string, explicit?: string): Promise<{ path: string; report: Report; text: string } | undefined> {
  const candidates = explicit ? [explicit] : [file + REPORT_SUFFIX, ...(file.endsWith('.partial') ? [file.slice(0, -'.partial'.length) + REPORT_SUFFIX] : [])];
  for (const path of candidates) {
    try {
      const text = await readFile(path, 'utf8');
      return { path, report: parseReport(text, path), text };
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' && !explicit) continue;
      if (e instanceof MemdumpError) throw e;
      throw new MemdumpError(errnoOf(e) === 'ENOENT' ? 'E_NOT_FOUND' : 'E_PERMISSION', `cannot read report ${path}: ${(e as Error).message}`);
    }
  }
  return undefined;
}

/** The report's signature check; with trusted keys asked for and no report at all, a failed one. */
export async function signatureOf(file: string, found: { path: string; text: string } | undefined, trusted: readonly string[] | undefined): Promise<SignatureCheck | null> {
  if (found) return checkSignature(found.path, found.text, trusted);
  return trusted?.length ? { path: file + REPORT_SUFFIX + SIGNATURE_SUFFIX, keyId: null, trusted: false, ok: false, error: 'no report found, so no signature to check' } : null;
}

/** What to hash to compare with a report: its digests, window size and window digest; the fallback without one. */
export function hashPlanOf(expected: Report['hashes'] | null, fallback: { digests: readonly Digest[]; windowSize: bigint }): { digests: Digest[]; windowSize: bigint; windowDigest: Digest | undefined } {
  if (!expected) return { digests: [...fallback.digests], windowSize: fallback.windowSize, windowDigest: undefined };
  return {
    digests: Object.keys(expected.digests).filter((k) => expected.digests[k as Digest]) as Digest[],
    windowSize: BigInt(expected.window.size),
    windowDigest: (expected.window.digest ?? undefined) as Digest | undefined,
  };
}

/** Recomputed hashes against the report's: every digest, the window hashes that differ, the length. */
export function compareHashes(expected: Report['hashes'] | null, actual: HashResult, digests: readonly Digest[]): { checks: Record<string, DigestCheck>; badWindows: number[]; lengthOk: boolean; ok: boolean } {
  const checks: Record<string, DigestCheck> = {};
  for (const d of digests) {
    const e = expected?.digests[d] ?? null;
    checks[d] = { expected: e, actual: actual.digests[d]!, ok: e === null || e === actual.digests[d] };
  }
  const badWindows: number[] = [];
  if (expected) {
    const n = Math.max(expected.window.hashes.length, actual.windows.length);
    for (let i = 0; i < n; i++) if (expected.window.hashes[i] !== actual.windows[i]) badWindows.push(i);
  }
  const lengthOk = !expected || BigInt(expected.length) === actual.length;
  return { checks, badWindows, lengthOk, ok: lengthOk && badWindows.length === 0 && Object.values(checks).every((c) => c.ok) };
}

export async function verify(file: string, options: { report?: string; digests?: string; windowSize?: bigint; inputFormat?: FormatName; trustedKeys?: readonly string[]; onProgress?: (d: bigint, t: bigint) => void } = {}): Promise<VerifyResult> {
  const found = await findReport(file, options.report);
  const r = found?.report;
  const signature = await signatureOf(file, found, options.trustedKeys);
  const layers = r?.delivery?.layers ?? [];
  if (r && layers.length > 0) return verifyStored(file, found!.path, r, layers, signature, options.onProgress);
  const expected = r?.hashes ?? null;
  const { digests, windowSize, windowDigest } = hashPlanOf(expected, { digests: parseDigests(options.digests ?? 'md5,sha1,sha256'), windowSize: options.windowSize ?? 64n << 20n });
  const e01 = await checkE01(file, r, options.onProgress);
  const files = await pieces(file, r, e01?.segments);
  const actual = await hashFile(files, digests, windowSize, windowDigest, options.onProgress);

  const { checks, badWindows: bad, lengthOk, ok: hashesOk } = compareHashes(expected, actual, digests);
  let firstBadWindow: VerifyResult['firstBadWindow'] = null;
  if (bad.length > 0) {
    const i = bad[0]!;
    const offset = BigInt(i) * windowSize;
    const end = offset + windowSize < actual.length ? offset + windowSize : actual.length;
    firstBadWindow = { index: i, offset: hex(offset), end: hex(end), physicalAddress: await physicalAt(file, offset, end, options.inputFormat) };
  }
  const e01Ok = !e01 || e01.check.ok;
  const signatureOk = !signature || signature.ok;
  const match = !!expected && hashesOk && e01Ok && signatureOk;
  // without a report an E01 still proves itself: the digests stored inside it are compared
  const verdict = expected ? (match ? 'MATCH' : 'MISMATCH') : e01 ? (e01Ok && signatureOk ? 'MATCH' : 'MISMATCH') : signatureOk ? 'NO_REPORT' : 'MISMATCH';
  return {
    file,
    report: found?.path ?? null,
    reportStatus: r?.status ?? null,
    verdict,
    length: { expected: expected?.length ?? null, actual: actual.length.toString(), ok: lengthOk },
    digests: checks,
    windows: { size: windowSize.toString(), digest: actual.windowDigest, count: actual.windows.length, bad },
    firstBadWindow,
    files,
    e01: e01?.check ?? null,
    stored: null,
    signature,
  };
}

/** A compressed or encrypted file: its stored bytes against report.delivery.stored (the container needs decrypting). */
async function verifyStored(file: string, reportPath: string, r: Report, layers: string[], signature: SignatureCheck | null, onProgress?: (d: bigint, t: bigint) => void): Promise<VerifyResult> {
  const want = r.delivery!.stored;
  const actual = await hashFile(file, ['sha256'], 0n, undefined, onProgress);
  const got = actual.digests.sha256!;
  const lengthOk = BigInt(want.bytes) === actual.length;
  const ok = want.sha256 !== null && want.sha256 === got && lengthOk;
  return {
    file,
    report: reportPath,
    reportStatus: r.status,
    verdict: ok && (!signature || signature.ok) ? 'MATCH' : 'MISMATCH',
    length: { expected: want.bytes, actual: actual.length.toString(), ok: lengthOk },
    digests: { sha256: { expected: want.sha256, actual: got, ok: want.sha256 === got } },
    windows: { size: '0', digest: null, count: 0, bad: [] },
    firstBadWindow: null,
    files: [file],
    e01: null,
    stored: { layers, expected: want.sha256, actual: got, ok },
    signature,
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
