import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { crashDump, crashTruth } from '../../test/fixtures/wincrash.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { openCrashFile, openCrashBytes, sparseFile } from '../../test/helpers/wincrash-open.js';
import { wincrash } from './wincrash.js';
import { MAX_RDMP_METADATA } from './wincrash-rdmp.js';

test('RDMP range lists: MetadataSize is capped and must be whole ranges, and a range of 0 pages ends the list', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  const truth = crashTruth(5, { bits: 64, layout: 'rdmp', rdmpType: 10 });
  const head = Buffer.from(crashDump(truth).subarray(0, 0x2030));
  const path = join(dir, 'rdmp.dmp');
  const withMeta = (meta: bigint, size: number) => {
    const h = Buffer.from(head);
    h.writeBigUInt64LE(meta, 0x2010);
    h.writeBigUInt64LE(0x2020n + meta, 0x2018);
    h.writeBigUInt64LE(1n, 0x2028);
    sparseFile(path, [[0, h]], size);
    return openCrashFile(path);
  };
  // 1 GiB of {0, 0} ranges: before the cap and the 0-page rule this walked the whole file, 16 bytes at a time
  const big = await expectCodeAsync(withMeta(BigInt(2 ** 30 - 0x2020 - 4096), 2 ** 30), 'E_TOO_LARGE');
  assert.equal(big.details['offset'], '0x2010');
  await expectCodeAsync(withMeta(BigInt(MAX_RDMP_METADATA + 16), 2 ** 26), 'E_TOO_LARGE');
  await expectCodeAsync(withMeta(0x18n, 0x4000), 'E_CORRUPT');
  await expectCodeAsync(withMeta(0x8n, 0x4000), 'E_CORRUPT');
  // within the cap: 16 MiB of {0, 0} ranges end at the first one, and the dump holds no pages
  const empty = await expectCodeAsync(withMeta(BigInt(2 ** 24), 2 ** 24 + 0x3000), 'E_CORRUPT');
  assert.match(empty.message, /holds no memory pages/);

  // a 0-page range in the middle of a /f list ends it there, like the end of the list
  const t2 = crashTruth(6, { bits: 64, layout: 'rdmp', rdmpType: 10, maxRuns: 6 });
  assert.ok(t2.runs.length >= 2);
  const b = crashDump(t2);
  b.writeBigUInt64LE(0n, 0x2030 + 16 + 8);
  const img = await openCrashBytes(dir, 'zero.dmp', b);
  try {
    assert.deepEqual(img.runs, t2.runs.slice(0, 1));
    assert.match(String((img.details['layout'] as Record<string, unknown>)['warning']), /TotalNumberOfPages/);
  } finally {
    await img.close();
  }
});

test('RDMP ranges that overlap once sorted are E_CORRUPT', async (t) => {
  const dir = tempDir(t, 'memdump-wincrash-');
  const truth = crashTruth(11, { bits: 64, layout: 'rdmp', rdmpType: 8, maxRuns: 4, rdmpReversed: true });
  assert.ok(truth.runs.length >= 2);
  const b = crashDump(truth);
  // the second listed range (lower PFNs) grows into the first listed one
  const firstPfn = b.readBigUInt64LE(0x2030);
  const secondPfn = b.readBigUInt64LE(0x2040);
  b.writeBigUInt64LE(firstPfn - secondPfn + 1n, 0x2048);
  const e = await expectCodeAsync(openCrashBytes(dir, 'overlap.dmp', b), 'E_CORRUPT');
  assert.match(e.message, /overlaps/);
});
