/**
 * The first page of hiberfil.sys (PO_MEMORY_IMAGE) and the facts we take from it. Every offset names its source:
 *
 * - [libhibr] libyal/libhibr "Windows Hibernation File (hiberfil.sys) format" (signatures; Windows 7 field order;
 *   its Windows 7 64-bit hex sample shows PageSize u32 at 0x18, SystemTime at 0x20 and FirstTablePage u64 = 6 at
 *   0x60 — the sample, not its table, which lists the Vista fields one slot later; [ntdiff] agrees).
 * - [hibr2bin] MagnetForensics/Hibr2Bin Hiber.h / MemoryBlocks.cpp (signature values, Windows 7 tables start at
 *   page 6, Windows 8+ x64 FirstKernelRestorePage at 0x70 on Windows 10 and 0x68 before).
 * - [vol3] volatility3 framework/layers/hib.py (2024): NumPagesForLoader u64 at 0x58, FirstBootRestorePage at 0x68,
 *   FirstKernelRestorePage/KernelPagesProcessed per build: 8/8.1 0x68/0x1C8, 10 1507-1511 0x70/0x218,
 *   10 1607 0x70/0x220, 10 1703 - 11 23H2 0x70/0x230.
 * - [ntdiff] ntdiff/headers PO_MEMORY_IMAGE.h of Win7_SP1 x86/x64, WinVista_SP1 x86/x64, Win8.1_U1 x64,
 *   Win10_1607_RS1 x64: their sizes (LengthSelf 0xe0, 0x128, 0xf0, 0x140, 0x360, 0x3c8), FirstTablePage slots, and
 *   the PO_HIBER_PERF fields around KernelPagesProcessed. On 8.1 FirstBootRestorePage is at 0x60 (vol3 reads 0x68
 *   for every build, which on 8.1 is FirstKernelRestorePage); on 10 1607+ 0x60 is FirstSecureRestorePage.
 * - [leechcore] ufrisk/LeechCore leechcore_device_hibr.c HIBR_OFFSET_PROFILES: per-build offsets selected by
 *   LengthSelf (u32 at 0x0c), including HighestPhysicalPage; 32-bit Windows 8+ profiles (LengthSelf 0x2c8..0x340).
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

/**
 * Windows 8+ (x64) offsets. LengthSelf (u32 at 0x0c, the size of PO_MEMORY_IMAGE) names the build ([leechcore]
 * HIBR_OFFSET_PROFILES; [ntdiff] sizes: 8.1 0x360, 1607 0x3c8), so the table is keyed by it; the order below is
 * only the guessing order for a LengthSelf we do not know.
 */
export interface Win8Variant {
  readonly name: string;
  readonly firstBootRestorePage: number;
  readonly firstKernelRestorePage: number;
  readonly kernelPagesProcessed: number;
  /** u64 HighestPhysicalPage ([leechcore], [ntdiff] 8.1 0x330, 1607 0x388). */
  readonly highestPhysicalPage: number;
  /** u64 FirstSecureRestorePage ([ntdiff] 1607: 0x60; VBS secure kernel pages, a section we do not read). */
  readonly firstSecureRestorePage?: number;
  readonly lengthSelf: readonly number[];
}
export const LENGTH_SELF = 0x0c;
export const NUM_PAGES_FOR_LOADER = 0x58;
export const WIN8_VARIANTS: readonly Win8Variant[] = [
  // 1703 (15063) .. 11 24H2 (26100): 0x3d8 (15063-17134), 0x3e0 (17763-19041), 0x448 (20348-22621), 0x4d8 (26100)
  { name: 'win10-1703+', firstBootRestorePage: 0x68, firstKernelRestorePage: 0x70, kernelPagesProcessed: 0x230, highestPhysicalPage: 0x398, firstSecureRestorePage: 0x60, lengthSelf: [0x3d8, 0x3e0] },
  { name: 'win11-22000+', firstBootRestorePage: 0x68, firstKernelRestorePage: 0x70, kernelPagesProcessed: 0x230, highestPhysicalPage: 0x400, firstSecureRestorePage: 0x60, lengthSelf: [0x448] },
  { name: 'win11-24h2', firstBootRestorePage: 0x68, firstKernelRestorePage: 0x70, kernelPagesProcessed: 0x230, highestPhysicalPage: 0x498, firstSecureRestorePage: 0x60, lengthSelf: [0x4d8] },
  { name: 'win10-1607', firstBootRestorePage: 0x68, firstKernelRestorePage: 0x70, kernelPagesProcessed: 0x220, highestPhysicalPage: 0x388, firstSecureRestorePage: 0x60, lengthSelf: [0x3c8] },
  { name: 'win10-1507', firstBootRestorePage: 0x68, firstKernelRestorePage: 0x70, kernelPagesProcessed: 0x218, highestPhysicalPage: 0x380, lengthSelf: [0x3b0] },
  { name: 'win8', firstBootRestorePage: 0x60, firstKernelRestorePage: 0x68, kernelPagesProcessed: 0x1c8, highestPhysicalPage: 0x330, lengthSelf: [0x360] },
];
/** 32-bit Windows 8 .. 10 2004 ([leechcore] f32 profiles: 0x2c8, 0x310, 0x328, 0x338, 0x340): not read. */
export const WIN8_X86_LENGTH_SELF = { min: 0x2c8, max: 0x340 } as const;

/**
 * Windows 7 FirstTablePage and where Cr3 sits ([vol2]). [ntdiff] Win7 SP1: x64 LengthSelf 0x128, FirstTablePage
 * u64 at 0x60; x86 LengthSelf 0xe0, FirstTablePage u32 at 0x4c (0x50 is PerfInfo.IoTicks there). Vista SP1 x86
 * (LengthSelf 0xf0) keeps FirstTablePage at 0x50 (TotalPages sits at 0x4c).
 */
export const WIN7_X64 = { pageSize: 0x18, systemTime: 0x20, firstTablePage: 0x60, cr3: 2 * PAGE_SIZE + 0x10, lengthSelf: 0x128 } as const;
export const WIN7_X86 = { pageSize: 0x14, systemTime: 0x18, firstTablePage: 0x4c, cr3: 2 * PAGE_SIZE + 0x2d4, lengthSelf: 0xe0 } as const;
export const VISTA_X86 = { firstTablePage: 0x50, lengthSelf: 0xf0 } as const;
/** [ntdiff] Vista SP1 x64 (FirstTablePage at 0x68): its table layout is not one we parse. */
export const VISTA_X64_LENGTH_SELF = 0x140;

export interface HiberHeader {
  readonly signature: string;
  /** x64 puts PageSelf as a u64 at 0x10, so PageSize moves from 0x14 to 0x18. */
  readonly arch: 'x64' | 'x86';
  readonly imageType: number;
  readonly pageSize: number;
  readonly systemTime: string | null;
  /** PO_MEMORY_IMAGE size (u32 at 0x0c): selects the build's offsets. */
  readonly lengthSelf: number;
  readonly page: ByteReader;
}

export function archOfLengthSelf(n: number): 'x64' | 'x86' | undefined {
  if (n === WIN7_X86.lengthSelf || n === VISTA_X86.lengthSelf || (n >= WIN8_X86_LENGTH_SELF.min && n <= WIN8_X86_LENGTH_SELF.max)) return 'x86';
  if (n === WIN7_X64.lengthSelf || n === VISTA_X64_LENGTH_SELF || WIN8_VARIANTS.some((v) => v.lengthSelf.includes(n))) return 'x64';
  return undefined;
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
  if (isAllZero(page)) {
    // detect() claims such a file only from the tables behind the zero page; say so, raw memory can look like that
    throw resumedError('the header page is all zeros (taken for a hibernation file only because hibernation tables follow it; if this is raw memory, open it with --input-format raw)', { signature: null, detectedBy: 'wiped-header heuristic' });
  }
  const signature = signatureOf(page);
  if (!isKnownSignature(signature)) {
    throw new MemdumpError('E_UNKNOWN_FORMAT', `hiberfil: unknown signature ${JSON.stringify(signature)}`, { details: { signature } });
  }
  if ((OTHER_SIGNATURES as readonly string[]).includes(signature)) {
    throw new MemdumpError('E_UNSUPPORTED', `hiberfil: signature "${signature}" marks a file that holds no hibernated memory image`, { details: { signature } });
  }
  const lengthSelf = r.u32(LENGTH_SELF);
  // a known LengthSelf says the word size outright; otherwise the page size's slot does
  const known = archOfLengthSelf(lengthSelf);
  const x64 = known !== 'x86' && r.u32(WIN7_X64.pageSize) === PAGE_SIZE;
  const x86 = !x64 && known !== 'x64' && r.u32(WIN7_X86.pageSize) === PAGE_SIZE;
  if (!x64 && !x86) {
    throw new MemdumpError('E_UNSUPPORTED', `hiberfil: page size is neither 4096 at 0x18 (x64) nor at 0x14 (x86)`, {
      details: { signature, at0x14: r.u32(0x14), at0x18: r.u32(0x18) },
    });
  }
  const arch = x64 ? 'x64' : 'x86';
  const fields = x64 ? WIN7_X64 : WIN7_X86;
  return { signature, arch, imageType: r.u32(4), pageSize: PAGE_SIZE, systemTime: filetime(r.u64(fields.systemTime)), lengthSelf, page: r };
}

/** Cheap check used by detect(): a known signature and a 4096 page size in one of the two places. */
export function looksLikeHeader(head: Buffer): boolean {
  if (head.length < 0x100 || !isKnownSignature(signatureOf(head))) return false;
  return head.readUInt32LE(WIN7_X64.pageSize) === PAGE_SIZE || head.readUInt32LE(WIN7_X86.pageSize) === PAGE_SIZE;
}
