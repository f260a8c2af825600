import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectCode } from '../../test/helpers/expect-code.js';
import { HEADER32_SIZE, HEADER64_SIZE, OFF32, OFF64, filetimeToIso, headerBits, parseCrashHeader, uptimeText } from './wincrash-header.js';
import { bugCheckText, dumpTypeName, machineName } from './wincrash-names.js';

/**
 * DUMP_HEADER32 / DUMP_HEADER64 member lists transcribed from mindumpdef.h, laid out here with the MSVC rules
 * (each member at a multiple of its alignment, a struct or union padded to its alignment): an independent
 * derivation of the offsets the parser hard-codes.
 */
type Member = [name: string, size: number, align: number];
const u8 = (n: string): Member => [n, 1, 1];
const u32 = (n: string): Member => [n, 4, 4];
const u64 = (n: string): Member => [n, 8, 8];
const bytes = (n: string, size: number, align = 1): Member => [n, size, align];

const HEADER64: Member[] = [
  u32('Signature'), u32('ValidDump'), u32('majorVersion'), u32('minorVersion'), u64('directoryTableBase'), u64('pfnDataBase'),
  u64('psLoadedModuleList'), u64('psActiveProcessHead'), u32('machineImageType'), u32('numberProcessors'), u32('bugCheckCode'),
  u64('bugCheckParameters'), u64('p2'), u64('p3'), u64('p4'), bytes('versionUser', 32), u64('kdDebuggerDataBlock'),
  bytes('physicalMemoryBlock', 700, 8), // union with PHYSICAL_MEMORY_DESCRIPTOR64 (ULONG64 members): 8-aligned
  bytes('ContextRecord', 3000), bytes('Exception', 152, 8), u32('dumpType'), u64('requiredDumpSpace'), u64('systemTime'),
  bytes('comment', 128), u64('systemUpTime'), u32('MiniDumpFields'), u32('SecondaryDataState'), u32('ProductType'),
  u32('SuiteMask'), u32('WriterStatus'), u8('Unused1'), u8('kdSecondaryVersion'), bytes('Unused', 2), u32('attributes'),
  u32('bootId'), bytes('_reserved0', 4008),
];

const HEADER32: Member[] = [
  u32('Signature'), u32('ValidDump'), u32('majorVersion'), u32('minorVersion'), u32('directoryTableBase'), u32('pfnDataBase'),
  u32('psLoadedModuleList'), u32('psActiveProcessHead'), u32('machineImageType'), u32('numberProcessors'), u32('bugCheckCode'),
  u32('bugCheckParameters'), u32('p2'), u32('p3'), u32('p4'), bytes('versionUser', 32), u8('paeEnabled'), u8('kdSecondaryVersion'),
  bytes('Spare3', 2), u32('kdDebuggerDataBlock'), bytes('physicalMemoryBlock', 700, 4), bytes('ContextRecord', 1200),
  bytes('Exception', 80, 4), bytes('comment', 128), u32('attributes'), u32('bootId'), bytes('_reserved0', 1760), u32('dumpType'),
  u32('MiniDumpFields'), u32('SecondaryDataState'), u32('ProductType'), u32('SuiteMask'), u32('WriterStatus'),
  u64('requiredDumpSpace'), bytes('_reserved2', 16), u64('systemUpTime'), u64('systemTime'), bytes('_reserved3', 56),
];

function layout(members: Member[]): { offsets: Record<string, number>; size: number } {
  const offsets: Record<string, number> = {};
  let at = 0;
  let maxAlign = 1;
  for (const [name, size, align] of members) {
    at = Math.ceil(at / align) * align;
    offsets[name] = at;
    at += Math.ceil(size / align) * align;
    maxAlign = Math.max(maxAlign, align);
  }
  return { offsets, size: Math.ceil(at / maxAlign) * maxAlign };
}

test('the parser offsets equal a C layout of the mindumpdef.h structs, and the structs fill 0x1000 / 0x2000 bytes', () => {
  for (const [members, off, size] of [
    [HEADER64, OFF64, HEADER64_SIZE],
    [HEADER32, OFF32, HEADER32_SIZE],
  ] as const) {
    const l = layout([...members]);
    assert.equal(l.size, size);
    for (const [name, at] of Object.entries(off)) assert.equal(at, l.offsets[name], `${name}: parser ${at.toString(16)}, C layout ${l.offsets[name]?.toString(16)}`);
  }
  // the two well-known landmarks: ContextRecord at 0x348 (64-bit, kdmp-parser-rs) and 0x320 (32-bit, Volatility 3)
  assert.equal(layout(HEADER64).offsets['ContextRecord'], 0x348);
  assert.equal(layout(HEADER32).offsets['ContextRecord'], 0x320);
});

test('headerBits and parseCrashHeader: signatures, and short or foreign headers are coded errors', () => {
  assert.equal(headerBits(Buffer.from('PAGEDU64')), 64);
  assert.equal(headerBits(Buffer.from('PAGEDUMP')), 32);
  assert.equal(headerBits(Buffer.from('PAGEDU32')), undefined);
  assert.equal(headerBits(Buffer.from('MDMP\x93\xa7\0\0')), undefined);
  expectCode(() => parseCrashHeader(Buffer.concat([Buffer.from('PAGEDU64'), Buffer.alloc(0x1000)])), 'E_TRUNCATED');
  expectCode(() => parseCrashHeader(Buffer.alloc(0x2000)), 'E_CORRUPT', 0n);
  const h = Buffer.alloc(0x1000, 'PAGE');
  h.write('DUMP', 4, 'latin1');
  h.writeUInt32LE(200, OFF32.physicalMemoryBlock); // NumberOfRuns beyond the buffer: only what fits is parsed
  const p = parseCrashHeader(h);
  assert.equal(p.physicalMemoryBlock.numberOfRuns, 200);
  assert.equal(p.physicalMemoryBlock.runs.length, 86);
  assert.equal(p.comment, 'PAGE'.repeat(32));
});

test('FILETIME, uptime and names render as an analyst expects', () => {
  assert.equal(filetimeToIso(0n), null);
  assert.equal(filetimeToIso(116_444_736_000_000_000n), '1970-01-01T00:00:00.0000000Z');
  assert.equal(filetimeToIso(133_500_000_001_234_567n), '2024-01-17T21:20:00.1234567Z');
  assert.equal(filetimeToIso((1n << 64n) - 1n), '0xffffffffffffffff');
  assert.equal(uptimeText(0n), '0 days 00:00:00.0000000');
  assert.equal(uptimeText((2n * 86400n + 3n * 3600n + 4n * 60n + 5n) * 10_000_000n + 6n), '2 days 03:04:05.0000006');
  assert.equal(bugCheckText(0xe2), '0xe2 MANUALLY_INITIATED_CRASH');
  assert.equal(bugCheckText(0xd1), '0xd1 DRIVER_IRQL_NOT_LESS_OR_EQUAL');
  assert.equal(bugCheckText(0x12345), '0x12345');
  assert.equal(dumpTypeName(5), 'bitmap full (5)');
  assert.equal(dumpTypeName(99), 'unrecognised (99)');
  assert.equal(machineName(0xaa64), 'ARM64 (0xaa64)');
});
