import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RandomAccessFile } from '../core/file.js';
import { contentHash } from '../pipeline/info.js';
import { type CrashOptions, type CrashTruth, crashDump, crashTruth, truthImage, writeCrashDump } from '../../test/fixtures/wincrash.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { Prng } from '../../test/helpers/prng.js';
import { openImage } from './registry.js';
import type { MemoryImage } from './types.js';
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
];

async function openFile(path: string): Promise<MemoryImage> {
  const file = await RandomAccessFile.open(path);
  try {
    return await wincrash.open(file, { path });
  } catch (e) {
    await file.close();
    throw e;
  }
}

async function assertMatches(img: MemoryImage, t: CrashTruth, label: string): Promise<void> {
  assert.equal(img.format, 'wincrash', label);
  assert.deepEqual(img.runs, t.runs, `${label}: runs`);
  for (let i = 0; i < t.runs.length; i++) {
    const r = t.runs[i]!;
    assert.ok((await img.read(r.start, t.data[i]!.length)).equals(t.data[i]!), `${label}: run ${i} bytes`);
  }
  // reads that start and end mid-page, inside one run and across none
  const p = new Prng(t.runs.length);
  for (let k = 0; k < 20; k++) {
    const i = p.int(t.runs.length);
    const r = t.runs[i]!;
    const len = Number(r.end - r.start);
    const off = p.int(len);
    const n = 1 + p.int(len - off);
    assert.ok((await img.read(r.start + BigInt(off), n)).equals(t.data[i]!.subarray(off, off + n)), `${label}: read ${off}+${n} of run ${i}`);
  }
  assert.equal(await contentHash(img), await contentHash(truthImage(t)), `${label}: content hash`);
}

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
        assert.equal(d['os'], `Windows ${truth.minorVersion}`, label);
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
  const img = await openFile(path);
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
  const img = await openFile(path);
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
    { name: 'last page missing', bytes: full64.subarray(0, full64.length - 4096), code: 'E_TRUNCATED', message: /need file bytes/ },
    { name: 'run beyond the file', bytes: patch(full64, (b) => b.writeBigUInt64LE(b.readBigUInt64LE(0xa0) + 1000n, 0xa0)), code: 'E_TRUNCATED' },
    { name: 'more runs than the header holds', bytes: patch(full64, (b) => b.writeUInt32LE(44, 0x88)), code: 'E_CORRUPT', message: /at most 43/ },
    { name: '32-bit: more runs than the header holds', bytes: patch(full32, (b) => b.writeUInt32LE(87, 0x64)), code: 'E_CORRUPT', message: /at most 86/ },
    { name: 'no runs', bytes: patch(full64, (b) => b.writeUInt32LE(0, 0x88)), code: 'E_CORRUPT' },
    { name: 'run before the previous one', bytes: twoRuns(full64, [100n, 5n], [50n, 5n]), code: 'E_CORRUPT', message: /overlaps or precedes/ },
    { name: 'run past 2^64', bytes: patch(full64, (b) => b.writeBigUInt64LE(0xfffffffffffffn, 0x98)), code: 'E_CORRUPT' },
    { name: 'bitmap claims more pages than the file holds', bytes: patch(bitmap, (b) => b.fill(0xff, 0x2038, 0x2038 + 16)), code: 'E_TRUNCATED' },
    { name: 'bitmap longer than the file', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(BigInt(b.length) * 8n, 0x2030)), code: 'E_TRUNCATED' },
    { name: 'bitmap beyond the size limit', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(1n << 40n, 0x2030)), code: 'E_TOO_LARGE' },
    { name: 'empty bitmap', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(0n, 0x2030)), code: 'E_CORRUPT' },
    { name: 'page data inside the bitmap', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(0x2040n, 0x2020)), code: 'E_CORRUPT', message: /inside the bitmap/ },
    { name: 'page data past the end', bytes: patch(bitmap, (b) => b.writeBigUInt64LE(1n << 50n, 0x2020)), code: 'E_TRUNCATED' },
    { name: 'summary signature', bytes: patch(bitmap, (b) => b.write('XDMP', 0x2000, 'latin1')), code: 'E_CORRUPT', message: /SDMP\/FDMP/ },
    { name: 'summary ValidDump', bytes: patch(bitmap, (b) => b.write('DUMB', 0x2004, 'latin1')), code: 'E_CORRUPT' },
    { name: 'summary cut short', bytes: bitmap.subarray(0, 0x2020), code: 'E_TRUNCATED' },
    { name: 'triage dump', bytes: patch(full64, (b) => b.writeUInt32LE(4, 0xf98)), code: 'E_UNSUPPORTED', message: /triage/ },
    { name: 'header-only dump', bytes: patch(full64, (b) => b.writeUInt32LE(3, 0xf98)), code: 'E_UNSUPPORTED', message: /header-only/ },
    { name: 'unknown dump type', bytes: patch(full64, (b) => b.writeUInt32LE(77, 0xf98)), code: 'E_UNSUPPORTED', message: /DumpType 77/ },
    { name: '32-bit summary dump', bytes: patch(full32, (b) => b.writeUInt32LE(2, 0xf88)), code: 'E_UNSUPPORTED', message: /32-bit kernel summary/ },
    { name: 'encrypted dump', bytes: patch(full64, (b) => b.writeUInt32LE(1 << 8, 0x1050)), code: 'E_UNSUPPORTED', message: /encrypted/ },
    { name: 'RDMP type without an RDMP header', bytes: patch(full64, (b) => b.writeUInt32LE(8, 0xf98)), code: 'E_CORRUPT', message: /RDMP/ },
    { name: 'minidump', bytes: minidump(), code: 'E_UNSUPPORTED', message: /minidump \(MDMP\)/ },
  ];
  for (const c of cases) {
    writeFileSync(path, c.bytes);
    const e = await expectCodeAsync(openImage(path), c.code);
    if (c.message) assert.match(e.message, c.message, c.name);
  }
});

function patch(b: Buffer, f: (b: Buffer) => void): Buffer {
  const c = Buffer.from(b);
  f(c);
  return c;
}

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
