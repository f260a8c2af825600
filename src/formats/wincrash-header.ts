/**
 * The fixed header of a Windows kernel crash dump: DUMP_HEADER32 (0x1000 bytes, "PAGEDUMP") and DUMP_HEADER64
 * (0x2000 bytes, "PAGEDU64").
 *
 * Offsets come from the struct definitions in Microsoft's mindumpdef.h (Windows SDK: DUMP_HEADER32 / DUMP_HEADER64,
 * DMP_PHYSICAL_MEMORY_BLOCK_SIZE_* = 700, DMP_CONTEXT_RECORD_SIZE_32 = 1200 / _64 = 3000, DMP_RESERVED_0_SIZE_32 =
 * 1760, _64 = 4008) with C alignment applied, and were checked field by field against Volatility 3
 * (symbols/windows/crash.json for 32-bit: DumpType 3976, RequiredDumpSpace 4000, SystemUpTime 4024, SystemTime 4032,
 * Comment 2080) and kdmp-parser-rs (src/structs.rs Header64, whose padding after PhysicalMemoryBlockBuffer and after
 * DumpType was found by its author in nt!IoFillDumpHeader: ContextRecord at 0x348, DumpType at 0xF98) and QEMU's
 * packed WinDumpHeader64 (include/qemu/win_dump_defs.h), which spells the padding out.
 */
import { ByteReader, corrupt } from '../core/bytes.js';
import { hex } from '../core/errors.js';

export const PAGE_SIZE = 0x1000;
export const SIGNATURE_PAGE = 0x45474150; // "PAGE"
export const VALID_DUMP32 = 0x504d5544; // "DUMP"
export const VALID_DUMP64 = 0x34365544; // "DU64"
export const HEADER32_SIZE = 0x1000;
export const HEADER64_SIZE = 0x2000;
/** Both PhysicalMemoryBlockBuffer fields are 700 bytes (mindumpdef.h). */
export const PHYS_BLOCK_BYTES = 700;
/**
 * In the 64-bit header the 8-byte alignment of ContextRecord leaves 704 bytes (0x88..0x348): room for 43 runs, and
 * QEMU's dump-guest-memory win-dmp writer (include/qemu/win_dump_defs.h: Run[43], PhysicalMemoryBlockBuffer[704])
 * fills all of them, so we read them too.
 */
export const PHYS_BLOCK_BYTES64 = 704;

/** Field offsets, one table per header width (see the file comment for where each comes from). */
export const OFF32 = {
  majorVersion: 0x08,
  minorVersion: 0x0c,
  directoryTableBase: 0x10,
  pfnDataBase: 0x14,
  psLoadedModuleList: 0x18,
  psActiveProcessHead: 0x1c,
  machineImageType: 0x20,
  numberProcessors: 0x24,
  bugCheckCode: 0x28,
  bugCheckParameters: 0x2c, // 4 x u32
  versionUser: 0x3c, // char[32]
  paeEnabled: 0x5c, // u8
  kdSecondaryVersion: 0x5d, // u8
  kdDebuggerDataBlock: 0x60,
  physicalMemoryBlock: 0x64, // NumberOfRuns u32, NumberOfPages u32, Run[] { BasePage u32, PageCount u32 }
  exception: 0x7d0, // EXCEPTION_RECORD32: ExceptionCode +0, ExceptionAddress +0xc
  comment: 0x820, // char[128], after ContextRecord (0x320) and EXCEPTION_RECORD32 (0x7d0, 80 bytes)
  attributes: 0x8a0,
  bootId: 0x8a4,
  dumpType: 0xf88,
  productType: 0xf94,
  writerStatus: 0xf9c,
  requiredDumpSpace: 0xfa0, // u64
  systemUpTime: 0xfb8, // u64, 100 ns units
  systemTime: 0xfc0, // u64 FILETIME
} as const;

export const OFF64 = {
  majorVersion: 0x08,
  minorVersion: 0x0c,
  directoryTableBase: 0x10,
  pfnDataBase: 0x18,
  psLoadedModuleList: 0x20,
  psActiveProcessHead: 0x28,
  machineImageType: 0x30,
  numberProcessors: 0x34,
  bugCheckCode: 0x38,
  bugCheckParameters: 0x40, // 4 x u64 (u32 BugCheckCode is padded to 8)
  versionUser: 0x60,
  kdDebuggerDataBlock: 0x80,
  physicalMemoryBlock: 0x88, // NumberOfRuns u32, pad, NumberOfPages u64, Run[] { BasePage u64, PageCount u64 }
  exception: 0xf00, // EXCEPTION_RECORD64: ExceptionCode +0, ExceptionAddress +0x10
  dumpType: 0xf98, // after ContextRecord (0x348) and EXCEPTION_RECORD64 (0xf00, 0x98 bytes)
  requiredDumpSpace: 0xfa0,
  systemTime: 0xfa8,
  comment: 0xfb0,
  systemUpTime: 0x1030,
  productType: 0x1040,
  writerStatus: 0x1048,
  kdSecondaryVersion: 0x104d,
  attributes: 0x1050,
  bootId: 0x1054,
} as const;

/**
 * Windows fills the whole header with "PAGE" before writing the fields it knows (DUMP_WRITER_STATUS_UNINITIALIZED is
 * this value), so a field added after the writer was built (Attributes, BootId, WriterStatus, SystemUpTime ...), or
 * one that raw2dmp-style converters never set, still holds the fill: it means "absent", not a value.
 */
export const FILL32 = SIGNATURE_PAGE;
export const FILL64 = 0x4547415045474150n;

/** DUMP_FILE_ATTRIBUTES (mindumpdef.h), bit i named ATTRIBUTE_NAMES[i]. */
export const ATTRIBUTE_NAMES = [
  'HiberCrash',
  'DumpDevicePowerOff',
  'InsufficientDumpfileSize',
  'KernelGeneratedTriageDump',
  'LiveDumpGeneratedDump',
  'DumpIsGeneratedOffline',
  'FilterDumpFile',
  'EarlyBootCrash',
  'EncryptedDumpData',
  'DecryptedDump',
] as const;
/** The page data is encrypted (only the secure header is plain). */
export const ATTR_ENCRYPTED = 1 << 8;
/** Set by decryption software on a dump that was encrypted and no longer is: EncryptedDumpData stays set beside it. */
export const ATTR_DECRYPTED = 1 << 9;
export const ATTR_INSUFFICIENT_SIZE = 1 << 2;

/** Names of the set DUMP_FILE_ATTRIBUTES bits; unnamed bits as "bit N". */
export function attributeFlags(a: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < 32; i++) if ((a >>> i) & 1) out.push(ATTRIBUTE_NAMES[i] ?? `bit ${i}`);
  return out;
}

export interface PhysicalMemoryRun {
  readonly basePage: bigint;
  readonly pageCount: bigint;
}

export interface PhysicalMemoryBlock {
  readonly numberOfRuns: number;
  readonly numberOfPages: bigint;
  /** The runs the 700-byte buffer can hold (NumberOfRuns may claim more: the caller decides what that means). */
  readonly runs: readonly PhysicalMemoryRun[];
  /** How many runs fit in the buffer: 43 (64-bit), 86 (32-bit). */
  readonly capacity: number;
}

export interface CrashHeader {
  readonly bits: 32 | 64;
  readonly headerSize: number;
  readonly majorVersion: number;
  readonly minorVersion: number;
  readonly directoryTableBase: bigint;
  readonly pfnDataBase: bigint;
  readonly psLoadedModuleList: bigint;
  readonly psActiveProcessHead: bigint;
  readonly machineImageType: number;
  readonly numberProcessors: number;
  readonly bugCheckCode: number;
  readonly bugCheckParameters: readonly [bigint, bigint, bigint, bigint];
  /** null when empty or still the "PAGE" fill. */
  readonly versionUser: string | null;
  readonly kdDebuggerDataBlock: bigint;
  /** 32-bit only: the dump was taken with PAE paging (physical addresses beyond 4 GiB possible). */
  readonly paeEnabled: boolean | undefined;
  readonly kdSecondaryVersion: number;
  readonly physicalMemoryBlock: PhysicalMemoryBlock;
  readonly dumpType: number;
  readonly requiredDumpSpace: bigint;
  readonly systemTime: bigint;
  /** undefined when the field still holds the "PAGE" fill (writers before Windows XP, converters). */
  readonly systemUpTime: bigint | undefined;
  /** null when the field is the "PAGE" fill. */
  readonly comment: string | null;
  /** undefined when the field holds the "PAGE" fill: the writer predates it (see FILL32). */
  readonly attributes: number | undefined;
  readonly bootId: number | undefined;
  readonly productType: number | undefined;
  readonly writerStatus: number | undefined;
  readonly exceptionCode: number | undefined;
  readonly exceptionAddress: bigint | undefined;
}

const FILL_BYTES = Buffer.from('PAGE', 'latin1');
const opt32 = (v: number): number | undefined => (v === FILL32 ? undefined : v);
const opt64 = (v: bigint): bigint | undefined => (v === FILL64 ? undefined : v);

/** A char[] field as text: null when it is entirely the "PAGE" fill (Volatility 2 special-cases the same). */
function text(r: ByteReader, off: number, max: number): string | null {
  const raw = r.bytes(off, max);
  let fill = true;
  for (let i = 0; i < max && fill; i++) fill = raw[i] === FILL_BYTES[i & 3];
  return fill ? null : r.cstr(off, max);
}

/** 32 or 64 for a "PAGEDUMP" / "PAGEDU64" signature, else undefined. */
export function headerBits(head: Buffer): 32 | 64 | undefined {
  if (head.length < 8 || head.readUInt32LE(0) !== SIGNATURE_PAGE) return undefined;
  const v = head.readUInt32LE(4);
  return v === VALID_DUMP32 ? 32 : v === VALID_DUMP64 ? 64 : undefined;
}

/** Parse the fixed header from its first headerSize bytes (the caller reads 0x1000 or 0x2000 bytes). */
export function parseCrashHeader(buf: Buffer): CrashHeader {
  const bits = headerBits(buf);
  if (bits === undefined) throw corrupt('not a Windows crash dump header (no PAGEDUMP / PAGEDU64 signature)', 0n);
  const r = new ByteReader(buf, 0n, `Windows crash dump header (${bits}-bit)`);
  const headerSize = bits === 64 ? HEADER64_SIZE : HEADER32_SIZE;
  r.bytes(0, headerSize); // E_TRUNCATED now rather than half-way through the fields
  const is64 = bits === 64;
  const o = is64 ? OFF64 : OFF32;
  // pointers and the bugcheck parameters are the machine's word; everything else has one width in both headers
  const word = (off: number): bigint => (is64 ? r.u64(off) : BigInt(r.u32(off)));
  return {
    bits,
    headerSize,
    majorVersion: r.u32(o.majorVersion),
    minorVersion: r.u32(o.minorVersion),
    directoryTableBase: word(o.directoryTableBase),
    pfnDataBase: word(o.pfnDataBase),
    psLoadedModuleList: word(o.psLoadedModuleList),
    psActiveProcessHead: word(o.psActiveProcessHead),
    machineImageType: r.u32(o.machineImageType),
    numberProcessors: r.u32(o.numberProcessors),
    bugCheckCode: r.u32(o.bugCheckCode),
    bugCheckParameters: [0, 1, 2, 3].map((i) => word(o.bugCheckParameters + (is64 ? 8 : 4) * i)) as [bigint, bigint, bigint, bigint],
    versionUser: text(r, o.versionUser, 32),
    kdDebuggerDataBlock: word(o.kdDebuggerDataBlock),
    paeEnabled: is64 ? undefined : r.u8(OFF32.paeEnabled) !== 0,
    kdSecondaryVersion: r.u8(o.kdSecondaryVersion),
    physicalMemoryBlock: is64
      ? parseBlock64(r.sub(o.physicalMemoryBlock, PHYS_BLOCK_BYTES64, 'PhysicalMemoryBlock'))
      : parseBlock32(r.sub(o.physicalMemoryBlock, PHYS_BLOCK_BYTES, 'PhysicalMemoryBlock')),
    dumpType: r.u32(o.dumpType),
    requiredDumpSpace: r.u64(o.requiredDumpSpace),
    systemTime: r.u64(o.systemTime),
    systemUpTime: opt64(r.u64(o.systemUpTime)),
    comment: text(r, o.comment, 128),
    attributes: opt32(r.u32(o.attributes)),
    bootId: opt32(r.u32(o.bootId)),
    productType: opt32(r.u32(o.productType)),
    writerStatus: opt32(r.u32(o.writerStatus)),
    exceptionCode: opt32(r.u32(o.exception)),
    // EXCEPTION_RECORD64 keeps the address at +0x10, EXCEPTION_RECORD32 at +0x0c
    exceptionAddress: is64 ? opt64(r.u64(o.exception + 0x10)) : r.u32(o.exception + 0xc) === FILL32 ? undefined : word(o.exception + 0xc),
  };
}

function parseBlock64(r: ByteReader): PhysicalMemoryBlock {
  const capacity = Math.floor((PHYS_BLOCK_BYTES64 - 16) / 16);
  const numberOfRuns = r.u32(0);
  const runs: PhysicalMemoryRun[] = [];
  for (let i = 0; i < Math.min(numberOfRuns, capacity); i++) runs.push({ basePage: r.u64(16 + 16 * i), pageCount: r.u64(24 + 16 * i) });
  return { numberOfRuns, numberOfPages: r.u64(8), runs, capacity };
}

function parseBlock32(r: ByteReader): PhysicalMemoryBlock {
  const capacity = Math.floor((PHYS_BLOCK_BYTES - 8) / 8);
  const numberOfRuns = r.u32(0);
  const runs: PhysicalMemoryRun[] = [];
  for (let i = 0; i < Math.min(numberOfRuns, capacity); i++) runs.push({ basePage: BigInt(r.u32(8 + 8 * i)), pageCount: BigInt(r.u32(12 + 8 * i)) });
  return { numberOfRuns, numberOfPages: BigInt(r.u32(4)), runs, capacity };
}

/** FILETIME (100 ns since 1601-01-01 UTC) as ISO 8601, null for 0, the raw value in hex past year 9999. */
export function filetimeToIso(ft: bigint): string | null {
  if (ft === 0n) return null;
  const ms = Number(ft / 10_000n) - 11_644_473_600_000;
  const d = new Date(ms);
  if (!Number.isFinite(d.getTime()) || d.getUTCFullYear() > 9999) return hex(ft); // garbage, not a date worth printing
  const frac = (ft % 10_000n).toString().padStart(4, '0'); // keep the 100 ns digits Date drops
  return d.toISOString().replace(/Z$/, `${frac}Z`);
}

/** SystemUpTime (100 ns units) as "D days HH:MM:SS.fffffff". */
export function uptimeText(ticks: bigint): string {
  const s = ticks / 10_000_000n;
  const f = (ticks % 10_000_000n).toString().padStart(7, '0');
  const two = (n: bigint) => n.toString().padStart(2, '0');
  return `${s / 86400n} days ${two((s / 3600n) % 24n)}:${two((s / 60n) % 60n)}:${two(s % 60n)}.${f}`;
}
