import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectCode } from '../../test/helpers/expect-code.js';
import { HEADER32_SIZE, HEADER64_SIZE, OFF32, OFF64, attributeFlags, filetimeToIso, headerBits, parseCrashHeader, uptimeText } from './wincrash-header.js';
import { bugCheckText, dumpTypeName, machineName, productTypeName } from './wincrash-names.js';

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
  bytes('ContextRecord', 3000), bytes('exception', 152, 8), u32('dumpType'), u64('requiredDumpSpace'), u64('systemTime'),
  bytes('comment', 128), u64('systemUpTime'), u32('MiniDumpFields'), u32('SecondaryDataState'), u32('productType'),
  u32('SuiteMask'), u32('writerStatus'), u8('Unused1'), u8('kdSecondaryVersion'), bytes('Unused', 2), u32('attributes'),
  u32('bootId'), bytes('_reserved0', 4008),
];

const HEADER32: Member[] = [
  u32('Signature'), u32('ValidDump'), u32('majorVersion'), u32('minorVersion'), u32('directoryTableBase'), u32('pfnDataBase'),
  u32('psLoadedModuleList'), u32('psActiveProcessHead'), u32('machineImageType'), u32('numberProcessors'), u32('bugCheckCode'),
  u32('bugCheckParameters'), u32('p2'), u32('p3'), u32('p4'), bytes('versionUser', 32), u8('paeEnabled'), u8('kdSecondaryVersion'),
  bytes('Spare3', 2), u32('kdDebuggerDataBlock'), bytes('physicalMemoryBlock', 700, 4), bytes('ContextRecord', 1200),
  bytes('exception', 80, 4), bytes('comment', 128), u32('attributes'), u32('bootId'), bytes('_reserved0', 1760), u32('dumpType'),
  u32('MiniDumpFields'), u32('SecondaryDataState'), u32('productType'), u32('SuiteMask'), u32('writerStatus'),
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
  assert.equal(p.comment, null, 'a Comment that is all "PAGE" fill is no comment');
});

test('fields that keep the "PAGE" header fill are absent, in both widths; written fields are read', () => {
  for (const bits of [64, 32] as const) {
    const o = bits === 64 ? OFF64 : OFF32;
    const h = Buffer.alloc(bits === 64 ? HEADER64_SIZE : HEADER32_SIZE, 'PAGE');
    h.write(bits === 64 ? 'DU64' : 'DUMP', 4, 'latin1');
    const p = parseCrashHeader(h);
    assert.equal(p.attributes, undefined, `${bits}: Attributes`);
    assert.equal(p.bootId, undefined, `${bits}: BootId`);
    assert.equal(p.productType, undefined, `${bits}: ProductType`);
    assert.equal(p.writerStatus, undefined, `${bits}: WriterStatus`);
    assert.equal(p.exceptionCode, undefined, `${bits}: ExceptionCode`);
    assert.equal(p.exceptionAddress, undefined, `${bits}: ExceptionAddress`);
    assert.equal(p.systemUpTime, undefined, `${bits}: SystemUpTime`);
    assert.equal(p.comment, null, `${bits}: Comment`);
    assert.equal(p.versionUser, null, `${bits}: VersionUser`);

    h.writeUInt32LE(0x305, o.attributes);
    h.writeUInt32LE(0x1234, o.bootId);
    h.writeUInt32LE(3, o.productType);
    h.writeUInt32LE(0, o.writerStatus);
    h.writeUInt32LE(0xc0000005, o.exception);
    if (bits === 64) h.writeBigUInt64LE(0xfffff80012345678n, o.exception + 0x10);
    else h.writeUInt32LE(0x81234567, o.exception + 0xc);
    h.writeBigUInt64LE(12345n, o.systemUpTime);
    h.write('PAGEPAGE but not only\0', o.comment, 'latin1');
    h.write('15.0\0', o.versionUser, 'latin1');
    const q = parseCrashHeader(h);
    assert.equal(q.attributes, 0x305);
    assert.deepEqual(attributeFlags(q.attributes!), ['HiberCrash', 'InsufficientDumpfileSize', 'EncryptedDumpData', 'DecryptedDump']);
    assert.equal(q.bootId, 0x1234);
    assert.equal(q.productType, 3);
    assert.equal(q.writerStatus, 0);
    assert.equal(q.exceptionCode, 0xc0000005);
    assert.equal(q.exceptionAddress, bits === 64 ? 0xfffff80012345678n : 0x81234567n);
    assert.equal(q.systemUpTime, 12345n);
    assert.equal(q.comment, 'PAGEPAGE but not only');
    assert.equal(q.versionUser, '15.0');
  }
  assert.deepEqual(attributeFlags(1 << 31), ['bit 31']);
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
  assert.equal(productTypeName(1), 'workstation (1)');
  assert.equal(productTypeName(9), 'unknown (9)');
});
