/**
 * The first page of hiberfil.sys (PO_MEMORY_IMAGE) and the facts we take from it. Every offset names its source:
 *
 * - [libhibr] libyal/libhibr "Windows Hibernation File (hiberfil.sys) format" (signatures; Windows 7 field order;
 *   its Windows 7 64-bit hex sample shows PageSize u32 at 0x18, SystemTime at 0x20 and FirstTablePage u64 = 6 at
 *   0x60 — the sample, not its table, which lists the Vista fields one slot later).
 * - [hibr2bin] MagnetForensics/Hibr2Bin Hiber.h / MemoryBlocks.cpp (signature values, Windows 7 tables start at
 *   page 6, Windows 8+ x64 FirstKernelRestorePage at 0x70 on Windows 10 and 0x68 before).
 * - [vol3] volatility3 framework/layers/hib.py (2024): NumPagesForLoader u64 at 0x58, FirstBootRestorePage at 0x68,
 *   FirstKernelRestorePage/KernelPagesProcessed per build: 8/8.1 0x68/0x1C8, 10 1507-1511 0x70/0x218,
 *   10 1607 0x70/0x220, 10 1703 - 11 23H2 0x70/0x230.
 * - [ntdiff] ntdiff/headers Win8.1_U1 x64 PO_MEMORY_IMAGE.h: on 8.1 FirstBootRestorePage is at 0x60 (vol3 reads
 *   0x68 for every build, which on 8.1 is FirstKernelRestorePage); on 10+ 0x60 is FirstSecureRestorePage.
 * - [vol2] volatility 2 addrspaces/hibernate.py: KPROCESSOR_STATE at page 2 (x64: SpecialRegisters first, Cr3 at
 *   +0x10; x86: after the 0x2cc-byte CONTEXT, Cr3 at +0x2d4).
 */
import { ByteReader } from '../core/bytes.js';
import { MemdumpError } from '../core/errors.js';

export const PAGE_SIZE = 4096;

/** Signatures of a live image ([libhibr], [hibr2bin]); "wake"/"WAKE" are written once the system resumed. */
export const LIVE_SIGNATURES = ['hibr', 'HIBR', 'RSTR', 'rstr'] as const;
export const RESUMED_SIGNATURES = ['wake', 'WAKE'] as const;
export const OTHER_SIGNATURES = ['link', 'BRKP', 'HORM'] as const;
const ALL_SIGNATURES: readonly string[] = [...LIVE_SIGNATURES, ...RESUMED_SIGNATURES, ...OTHER_SIGNATURES];

/** Windows 8+ (x64) offsets, tried newest first ([vol3], [ntdiff]). */
export interface Win8Variant {
  readonly name: string;
  readonly firstBootRestorePage: number;
  readonly firstKernelRestorePage: number;
  readonly kernelPagesProcessed: number;
}
export const NUM_PAGES_FOR_LOADER = 0x58;
export const WIN8_VARIANTS: readonly Win8Variant[] = [
  { name: 'win10-1703+', firstBootRestorePage: 0x68, firstKernelRestorePage: 0x70, kernelPagesProcessed: 0x230 },
  { name: 'win10-1607', firstBootRestorePage: 0x68, firstKernelRestorePage: 0x70, kernelPagesProcessed: 0x220 },
  { name: 'win10-1507', firstBootRestorePage: 0x68, firstKernelRestorePage: 0x70, kernelPagesProcessed: 0x218 },
  { name: 'win8', firstBootRestorePage: 0x60, firstKernelRestorePage: 0x68, kernelPagesProcessed: 0x1c8 },
];

/** Windows 7 FirstTablePage ([libhibr] sample for x64; the x86 table's slot for x86) and where Cr3 sits ([vol2]). */
export const WIN7_X64 = { pageSize: 0x18, systemTime: 0x20, firstTablePage: 0x60, cr3: 2 * PAGE_SIZE + 0x10 } as const;
export const WIN7_X86 = { pageSize: 0x14, systemTime: 0x18, firstTablePage: 0x50, cr3: 2 * PAGE_SIZE + 0x2d4 } as const;

export interface HiberHeader {
  readonly signature: string;
  /** x64 puts PageSelf as a u64 at 0x10, so PageSize moves from 0x14 to 0x18. */
  readonly arch: 'x64' | 'x86';
  readonly imageType: number;
  readonly pageSize: number;
  readonly systemTime: string | null;
  readonly page: ByteReader;
}

export function signatureOf(head: Buffer): string {
  return head.length >= 4 ? head.subarray(0, 4).toString('latin1') : '';
}

export function isKnownSignature(sig: string): boolean {
  return ALL_SIGNATURES.includes(sig);
}

export function isAllZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** FILETIME (100 ns ticks since 1601) as ISO text; null when zero or outside what Date can show. */
export function filetime(v: bigint): string | null {
  if (v === 0n) return null;
  const ms = Number(v / 10000n) - 11644473600000;
  const d = new Date(ms);
  return Number.isFinite(d.getTime()) && Math.abs(ms) < 8.64e15 ? d.toISOString() : null;
}

/** The error for a header Windows has wiped: the file no longer holds a hibernated system. */
export function resumedError(what: string, details: Record<string, unknown> = {}, cause?: unknown): MemdumpError {
  return new MemdumpError(
    'E_UNSUPPORTED',
    `hiberfil: ${what}: Windows wipes the hibernation header when the system resumes from the file, so the memory it held is gone (the pages left behind are stale and cannot be placed); acquire memory from the running system instead`,
    { details: { reason: 'resumed', ...details }, ...(cause === undefined ? {} : { cause }) },
  );
}

export function parseHeader(page: Buffer): HiberHeader {
  const r = new ByteReader(page, 0n, 'hiberfil header');
  if (isAllZero(page)) throw resumedError('the header page is all zeros', { signature: null });
  const signature = signatureOf(page);
  if (!isKnownSignature(signature)) {
    throw new MemdumpError('E_UNKNOWN_FORMAT', `hiberfil: unknown signature ${JSON.stringify(signature)}`, { details: { signature } });
  }
  if ((OTHER_SIGNATURES as readonly string[]).includes(signature)) {
    throw new MemdumpError('E_UNSUPPORTED', `hiberfil: signature "${signature}" marks a file that holds no hibernated memory image`, { details: { signature } });
  }
  const x64 = r.u32(WIN7_X64.pageSize) === PAGE_SIZE;
  const x86 = r.u32(WIN7_X86.pageSize) === PAGE_SIZE;
  if (!x64 && !x86) {
    throw new MemdumpError('E_UNSUPPORTED', `hiberfil: page size is neither 4096 at 0x18 (x64) nor at 0x14 (x86)`, {
      details: { signature, at0x14: r.u32(0x14), at0x18: r.u32(0x18) },
    });
  }
  const arch = x64 ? 'x64' : 'x86';
  const fields = x64 ? WIN7_X64 : WIN7_X86;
  return { signature, arch, imageType: r.u32(4), pageSize: PAGE_SIZE, systemTime: filetime(r.u64(fields.systemTime)), page: r };
}

/** Cheap check used by detect(): a known signature and a 4096 page size in one of the two places. */
export function looksLikeHeader(head: Buffer): boolean {
  if (head.length < 0x100 || !isKnownSignature(signatureOf(head))) return false;
  return head.readUInt32LE(WIN7_X64.pageSize) === PAGE_SIZE || head.readUInt32LE(WIN7_X86.pageSize) === PAGE_SIZE;
}
