import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CrashOptions, assertImageMatches as assertMatches, crashDump, crashTruth, patched as patch, writeCrashDump } from '../../test/fixtures/wincrash.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { openCrashFile, openCrashBytes } from '../../test/helpers/wincrash-open.js';
import { openImage } from './registry.js';
import { wincrash } from './wincrash.js';

const VARIANTS: { name: string; o: CrashOptions }[] = [
  { name: '64-bit full', o: { bits: 64, layout: 'full', kdbg: 'plain' } },
  { name: '64-bit bitmap FDMP', o: { bits: 64, layout: 'bitmap', summary: 'FDMP', kdbg: 'encoded' } },
  { name: '64-bit bitmap SDMP', o: { bits: 64, layout: 'bitmap', summary: 'SDMP', maxRuns: 40, maxRunPages: 6 } },
  { name: '32-bit full PAE', o: { bits: 32, layout: 'full', pae: true, kdbg: 'plain' } },
  { name: '32-bit full non-PAE', o: { bits: 32, layout: 'full', pae: false, kdbg: 'plain' } },
  { name: '32-bit bitmap', o: { bits: 32, layout: 'bitmap', kdbg: 'encoded' } },
  { name: '64-bit RDMP /f', o: { bits: 64, layout: 'rdmp', rdmpType: 10, kdbg: 'plain' } },
  { name: '64-bit RDMP /k', o: { bits: 64, layout: 'rdmp', rdmpType: 8 } },
  { name: '64-bit RDMP /f listed in descending PFN order', o: { bits: 64, layout: 'rdmp', rdmpType: 10, rdmpReversed: true, kdbg: 'plain' } },
  { name: '64-bit RDMP /k listed in descending PFN order', o: { bits: 64, layout: 'rdmp', rdmpType: 8, rdmpReversed: true } },
  { name: '64-bit old summary (SUMMARY_DUMP64)', o: { bits: 64, layout: 'summary-old', kdbg: 'plain' } },
  { name: '32-bit old summary (SUMMARY_DUMP32)', o: { bits: 32, layout: 'summary-old', kdbg: 'encoded', maxRuns: 30 } },
];

test('every variant opens through openImage and gives the truth: runs, bytes, content hash and header fields', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  for (const v of VARIANTS) {
    for (const seed of [1, 2, 3]) {
      const truth = crashTruth(seed, v.o);
      const path = join(dir, `${v.name.replace(/\W+/g, '-')}-${seed}.dmp`);
      const bytes = writeCrashDump(path, truth);
      const label = `${v.name} seed ${seed}`;
      const img = await openImage(path);
      try {
        await assertMatches(img, truth, label);
        const d = img.details;
        assert.equal(d['windowsBuild'], `build ${truth.minorVersion}`, label);
        assert.equal(d['os'], undefined, label);
        // the fixture, like Windows before Attributes existed, leaves the "PAGE" fill there
        assert.equal(d['attributes'], 'absent (header fill)', label);
        assert.equal(d['bootId'], undefined, label);
        assert.equal(d['truncatedPages'], undefined, label);
        assert.equal(d['warning'], undefined, label);
        assert.match(String(d['build']), new RegExp(`^free build ${truth.minorVersion} `), label);
        assert.equal(d['machine'], truth.bits === 64 ? 'AMD64 (0x8664)' : 'i386 (0x14c)', label);
        assert.equal(d['processors'], truth.numberProcessors, label);
        assert.equal(String(d['bugcheck']).split(' ')[0], '0x' + truth.bugCheckCode.toString(16), label);
        if (truth.bugCheckCode === 0xe2) assert.equal(d['bugcheck'], '0xe2 MANUALLY_INITIATED_CRASH', label);
        assert.deepEqual(d['bugcheckParameters'], truth.bugCheckParameters.map((x) => '0x' + x.toString(16)), label);
        assert.equal(d['directoryTableBase'], '0x' + truth.directoryTableBase.toString(16), label);
        assert.equal(d['pfnDataBase'], '0x' + truth.pfnDataBase.toString(16), label);
        assert.equal(d['psLoadedModuleList'], '0x' + truth.psLoadedModuleList.toString(16), label);
        assert.equal(d['psActiveProcessHead'], '0x' + truth.psActiveProcessHead.toString(16), label);
        assert.equal(d['kdDebuggerDataBlock'], '0x' + truth.kdDebuggerDataBlock.toString(16), label);
        assert.equal(d['kdSecondaryVersion'], truth.kdSecondaryVersion, label);
        assert.equal(d['comment'], truth.comment, label);
        assert.equal(d['requiredDumpSpace'], String(bytes.length), label);
        assert.equal(d['systemTime'], new Date(Number(truth.systemTime / 10_000n) - 11_644_473_600_000).toISOString().replace('Z', (truth.systemTime % 10_000n).toString().padStart(4, '0') + 'Z'), label);
        assert.equal(d['pae'], truth.bits === 32 ? truth.pae : undefined, label);
        const pmb = d['physicalMemoryBlock'] as { numberOfRuns: number; numberOfPages: string; runs: string[] };
        assert.equal(pmb.numberOfRuns, truth.runs.length, label);
        assert.equal(pmb.numberOfPages, String(truth.data.reduce((s, b) => s + b.length / 4096, 0)), label);
        assert.deepEqual(pmb.runs, truth.runs.map((r) => `0x${(r.start / 4096n).toString(16)}+0x${((r.end - r.start) / 4096n).toString(16)}`), label);
        const layout = d['layout'] as Record<string, unknown>;
        assert.equal(layout['warning'], undefined, `${label}: ${String(layout['warning'])}`);
        if (v.o.layout === 'bitmap') {
          assert.equal(layout['summary'], truth.summary, label);
          assert.match(String(d['dumpType']), new RegExp(`^bitmap full \\(5\\), ${truth.summary}$`), label);
        } else if (v.o.layout === 'rdmp') {
          assert.equal(d['dumpType'], v.o.rdmpType === 10 ? 'complete memory (.dump /f) (10), RDMP' : 'kernel memory (.dump /k) (8), RDMP', label);
          assert.equal(layout['rangeOrder'] !== undefined, !!v.o.rdmpReversed && truth.runs.length > 1, label);
        } else if (v.o.layout === 'summary-old') {
          assert.equal(d['dumpType'], 'summary (kernel memory dump) (2), SDMP', label);
          assert.equal(layout['summaryLayout'], `old SUMMARY_DUMP${truth.bits} (32-bit fields)`, label);
        } else assert.equal(d['dumpType'], 'full (complete memory dump) (1)', label);
        const state = String(d['kdDebuggerDataBlockState']);
        if (v.o.kdbg === 'plain') assert.match(state, /^plain \(KDBG tag at physical 0x[0-9a-f]+, size 0x340\)$/, label);
        else if (v.o.kdbg === 'encoded') assert.match(state, /^encoded or damaged/, label);
        // the file offset of each run's first byte is where the page data says it is
        const off = img.fileOffsetOf!(truth.runs[0]!.start)!;
        assert.ok(bytes.subarray(Number(off), Number(off) + 4096).equals(truth.data[0]!.subarray(0, 4096)), `${label}: fileOffsetOf`);
        assert.equal(img.firstAddressIn!(off, off + 1n), truth.runs[0]!.start, `${label}: firstAddressIn`);
        assert.equal(img.firstAddressIn!(0n, 0x1000n), undefined, `${label}: header bytes hold no memory`);
        await expectCodeAsync(img.read(truth.runs[0]!.end, 1), 'E_CORRUPT');
      } finally {
        await img.close();
      }
    }
  }
});

test('a read that spans two runs adjacent in memory and in the file coalesces them into one run', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  const truth = crashTruth(9, { bits: 64, layout: 'full', maxRuns: 1, maxRunPages: 8 });
  const path = join(dir, 'split.dmp');
  const bytes = crashDump(truth);
  // describe the one run as two PhysicalMemoryBlock runs that touch: the reader must merge them
  const pages = (truth.runs[0]!.end - truth.runs[0]!.start) / 4096n;
  bytes.writeUInt32LE(2, 0x88);
  bytes.writeBigUInt64LE(truth.runs[0]!.start / 4096n, 0x98);
  bytes.writeBigUInt64LE(3n, 0xa0);
  bytes.writeBigUInt64LE(truth.runs[0]!.start / 4096n + 3n, 0xa8);
  bytes.writeBigUInt64LE(pages - 3n, 0xb0);
  writeFileSync(path, bytes);
  const img = await openCrashFile(path);
  try {
    await assertMatches(img, truth, 'split run');
  } finally {
    await img.close();
  }
});

test('a 64-bit full dump with 43 runs (all QEMU win-dmp writes, one more than 700 bytes hold) reads in full', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  const truth = crashTruth(43, { bits: 64, layout: 'full', maxRuns: 400, maxRunPages: 1 });
  assert.ok(truth.runs.length >= 43);
  truth.runs = truth.runs.slice(0, 43);
  truth.data = truth.data.slice(0, 43);
  const path = join(dir, 'q.dmp');
  writeCrashDump(path, truth);
  const img = await openCrashFile(path);
  try {
    await assertMatches(img, truth, '43 runs');
  } finally {
    await img.close();
  }
});

test('damaged dumps fail with coded errors that say what is wrong', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  const path = join(dir, 'bad.dmp');
  const full64 = crashDump(crashTruth(4, { bits: 64, layout: 'full' }));
  const full32 = crashDump(crashTruth(4, { bits: 32, layout: 'full' }));
  const bitmap = crashDump(crashTruth(4, { bits: 64, layout: 'bitmap' }));
  const cases: { name: string; bytes: Buffer; code: string; message?: RegExp; offset?: bigint }[] = [
    { name: 'header cut short', bytes: full64.subarray(0, 0x1800), code: 'E_TRUNCATED' },
    { name: '32-bit header cut short', bytes: full32.subarray(0, 0x800), code: 'E_TRUNCATED' },
    { name: 'every page past the end', bytes: full64.subarray(0, 0x2000), code: 'E_TRUNCATED', message: /holds none of them/ },
    { name: 'bitmap pages all past the end', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(BigInt(b.length), 0x2020)), code: 'E_TRUNCATED', message: /holds none of them/ },
    { name: 'more runs than the header holds', bytes: patch(full64, (b) => b.writeUInt32LE(44, 0x88)), code: 'E_CORRUPT', message: /at most 43/ },
    { name: '32-bit: more runs than the header holds', bytes: patch(full32, (b) => b.writeUInt32LE(87, 0x64)), code: 'E_CORRUPT', message: /at most 86/ },
    { name: 'no runs', bytes: patch(full64, (b) => b.writeUInt32LE(0, 0x88)), code: 'E_CORRUPT' },
    { name: 'run before the previous one', bytes: twoRuns(full64, [100n, 5n], [50n, 5n]), code: 'E_CORRUPT', message: /overlaps or precedes/ },
    { name: 'run past 2^64', bytes: patch(full64, (b) => b.writeBigUInt64LE(0xfffffffffffffn, 0x98)), code: 'E_CORRUPT' },
    { name: 'bitmap longer than the file', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(BigInt(b.length) * 8n, 0x2030)), code: 'E_TRUNCATED' },
    { name: 'bitmap of 2^40 pages, past the end of the file', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(1n << 40n, 0x2030)), code: 'E_TRUNCATED' },
    { name: 'bitmap longer than a 64-bit address space', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(1n << 60n, 0x2030)), code: 'E_TOO_LARGE' },
    { name: 'empty bitmap', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(0n, 0x2030)), code: 'E_CORRUPT' },
    { name: 'page data inside the bitmap', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(0x2040n, 0x2020)), code: 'E_CORRUPT', message: /inside the bitmap/ },
    { name: 'page data past the end', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(1n << 50n, 0x2020)), code: 'E_TRUNCATED' },
    { name: 'summary signature', bytes: patch(bitmap, (b) => b.write('XDMP', 0x2000, 'latin1')), code: 'E_CORRUPT', message: /SDMP\/FDMP/ },
    { name: 'summary ValidDump', bytes: patch(bitmap, (b) => b.write('DUMB', 0x2004, 'latin1')), code: 'E_CORRUPT' },
    { name: 'summary cut short', bytes: bitmap.subarray(0, 0x2020), code: 'E_TRUNCATED' },
    { name: 'triage dump', bytes: patch(full64, (b) => b.writeUInt32LE(4, 0xf98)), code: 'E_UNSUPPORTED', message: /triage/ },
    { name: 'header-only dump', bytes: patch(full64, (b) => b.writeUInt32LE(3, 0xf98)), code: 'E_UNSUPPORTED', message: /header-only/ },
    { name: 'unknown dump type', bytes: patch(full64, (b) => b.writeUInt32LE(77, 0xf98)), code: 'E_UNSUPPORTED', message: /DumpType 77/ },
    { name: '32-bit summary dump without a summary', bytes: patch(full32, (b) => b.writeUInt32LE(2, 0xf88)), code: 'E_CORRUPT', message: /SDMP\/FDMP/ },
    { name: 'encrypted dump', bytes: patch(full64, (b) => b.writeUInt32LE(1 << 8, 0x1050)), code: 'E_UNSUPPORTED', message: /encrypted/ },
    { name: '32-bit encrypted dump', bytes: patch(full32, (b) => b.writeUInt32LE((1 << 8) | 1, 0x8a0)), code: 'E_UNSUPPORTED', message: /encrypted/ },
    { name: 'RDMP type without an RDMP header', bytes: patch(full64, (b) => b.writeUInt32LE(8, 0xf98)), code: 'E_CORRUPT', message: /RDMP/ },
    { name: 'minidump', bytes: minidump(), code: 'E_UNSUPPORTED', message: /minidump \(MDMP\)/ },
  ];
  for (const c of cases) {
    writeFileSync(path, c.bytes);
    const e = await expectCodeAsync(openImage(path), c.code);
    if (c.message) assert.match(e.message, c.message, c.name);
  }
});

function twoRuns(b: Buffer, a: [bigint, bigint], c: [bigint, bigint]): Buffer {
  return patch(b, (x) => {
    x.writeUInt32LE(2, 0x88);
    x.writeBigUInt64LE(a[0], 0x98);
    x.writeBigUInt64LE(a[1], 0xa0);
    x.writeBigUInt64LE(c[0], 0xa8);
    x.writeBigUInt64LE(c[1], 0xb0);
  });
}

/** The first bytes of a MINIDUMP_HEADER: "MDMP", Version 0xA793 | implementation word, stream count and RVA. */
function minidump(): Buffer {
  const b = Buffer.alloc(4096);
  b.write('MDMP', 0, 'latin1');
  b.writeUInt32LE(0x0000a793 | (0x4ac1 << 16), 4);
  b.writeUInt32LE(3, 8);
  b.writeUInt32LE(0x20, 12);
  return b;
}

test('a 64-bit kernel summary dump (DumpType 2, SDMP) and a live kernel dump (DumpType 6) read like bitmap dumps', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  for (const type of [2, 6]) {
    const truth = crashTruth(20 + type, { bits: 64, layout: 'bitmap', summary: 'SDMP' });
    const path = join(dir, `k${type}.dmp`);
    writeFileSync(path, patch(crashDump(truth), (b) => b.writeUInt32LE(type, 0xf98)));
    const img = await openImage(path);
    try {
      await assertMatches(img, truth, `DumpType ${type}`);
      assert.match(String(img.details['dumpType']), type === 2 ? /^summary \(kernel memory dump\) \(2\), SDMP$/ : /^bitmap kernel \(6\), SDMP$/);
    } finally {
      await img.close();
    }
  }
  assert.ok(readFileSync(join(dir, 'k2.dmp')).subarray(0, 8).equals(Buffer.from('PAGEDU64')));
});

test('the "PAGE" header fill is not a value: Attributes, SystemUpTime, Comment and VersionUser that keep it are absent', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  for (const bits of [64, 32] as const) {
    const truth = crashTruth(40 + bits, { bits, layout: 'full' });
    truth.comment = undefined;
    truth.systemUpTimeFill = true;
    const bytes = crashDump(truth);
    const o = bits === 64 ? { attributes: 0x1050, versionUser: 0x60 } : { attributes: 0x8a0, versionUser: 0x3c };
    assert.equal(bytes.toString('latin1', o.attributes, o.attributes + 8), 'PAGEPAGE', 'the fixture leaves the fill, whose bit 8 looks like EncryptedDumpData');
    bytes.write('PAGE'.repeat(8), o.versionUser, 'latin1');
    const img = await openCrashBytes(dir, `fill${bits}.dmp`, bytes);
    try {
      await assertMatches(img, truth, `${bits}-bit PAGE fill`);
      const d = img.details;
      assert.equal(d['attributes'], 'absent (header fill)');
      assert.equal(d['attributeFlags'], undefined);
      assert.equal(d['systemUpTime'], null);
      assert.equal(d['comment'], null);
      assert.equal(d['versionUser'], undefined);
      assert.equal(d['exceptionCode'], undefined);
      assert.equal(d['productType'], undefined);
      assert.equal(d['writerStatus'], undefined);
    } finally {
      await img.close();
    }
    // EncryptedDumpData refuses the dump; with DecryptedDump beside it the pages are plain and it opens
    const enc = patch(bytes, (b) => b.writeUInt32LE(0x100, o.attributes));
    await expectCodeAsync(openCrashBytes(dir, `enc${bits}.dmp`, enc), 'E_UNSUPPORTED');
    const dec = await openCrashBytes(dir, `dec${bits}.dmp`, patch(bytes, (b) => b.writeUInt32LE(0x300, o.attributes)));
    try {
      await assertMatches(dec, truth, `${bits}-bit decrypted`);
      assert.equal(dec.details['attributes'], '0x300');
      assert.deepEqual(dec.details['attributeFlags'], ['EncryptedDumpData', 'DecryptedDump']);
    } finally {
      await dec.close();
    }
  }
});

test('details carry the newer header fields: decoded Attributes, BootId, ProductType, WriterStatus, exception code and address', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  for (const bits of [64, 32] as const) {
    const truth = crashTruth(50 + bits, { bits, layout: 'full', newFields: true });
    const img = await openCrashBytes(dir, `new${bits}.dmp`, crashDump(truth));
    try {
      const d = img.details;
      assert.equal(d['attributes'], '0x14');
      assert.deepEqual(d['attributeFlags'], ['InsufficientDumpfileSize', 'LiveDumpGeneratedDump']);
      assert.equal(d['bootId'], '0x' + truth.bootId!.toString(16));
      assert.equal(d['productType'], `${['workstation', 'domain controller', 'server'][truth.productType! - 1]} (${truth.productType})`);
      assert.equal(d['writerStatus'], '0x0');
      assert.equal(d['exceptionCode'], '0x80000003');
      assert.equal(d['exceptionAddress'], '0x' + truth.exceptionAddress!.toString(16));
      assert.match(String(d['warning']), /InsufficientDumpfileSize/, 'the flag alone is worth a warning');
      assert.equal(d['truncatedPages'], undefined);
    } finally {
      await img.close();
    }
  }
});
