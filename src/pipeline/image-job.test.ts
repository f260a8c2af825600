import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../../test/helpers/cli.js';
import { SectorFaultSource } from '../../test/helpers/sector-source.js';
import { formatByName } from '../formats/registry.js';
import { type ImageJobOptions, runImageJob } from './image-job.js';
import { parseReport } from './report.js';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function job(src: SectorFaultSource, output: string, over: Partial<ImageJobOptions> = {}): ImageJobOptions {
  return {
    command: 'image',
    argv: ['memdump', 'image', src.path],
    caseFields: { case: 'T-1' },
    source: src,
    device: src.facts(),
    format: formatByName('raw'),
    output,
    digests: ['md5', 'sha256'],
    windowSize: 1n << 16n,
    maxDiskUsage: 100,
    retries: 2,
    verify: false,
    chunkSize: 1 << 20,
    ...over,
  };
}

test('bad sectors: retried, zero-filled, listed exactly in the report and the dc3dd-style log', async (t) => {
  const dir = tempDir(t);
  const src = new SectorFaultSource('/dev/fault0', 3n * 1024n * 1024n + 1000n);
  // a lone sector, a run of three, a run with a different errno right after it, and the partial last sector
  for (const s of [100n, 4990n]) src.bad.set(s, 'EIO');
  for (const s of [2048n, 2049n, 2050n]) src.bad.set(s, 'EIO');
  src.bad.set(2051n, 'ENXIO');
  const last = src.size / 512n;
  src.bad.set(last, 'EIO');
  // marginal sectors after the hard one at 4990 (so that the sector-by-sector path meets them first): one recovers
  // on the first re-read, one on the second, one never within --retries 2
  src.flaky.set(5000n, 1);
  src.flaky.set(5001n, 2);
  src.flaky.set(5002n, 3);
  const out = join(dir, 'disk.raw');
  const r = await runImageJob(job(src, out));
  assert.equal(r.exitCode, 0);
  const img = readFileSync(out);
  const want = src.expected();
  for (const s of [100n, 2048n, 2049n, 2050n, 2051n, 4990n, 5002n]) want.fill(0, Number(s * 512n), Number(s * 512n + 512n));
  want.fill(0, Number(last * 512n));
  assert.ok(img.equals(want), 'bad sectors are zeros, everything else is the source');

  const rep = parseReport(readFileSync(out + '.report.json', 'utf8'), 'report');
  assert.deepEqual(
    rep.readErrors.map((e) => [e.start, e.end, e.errno, e.pages]),
    [
      ['0xc800', '0xca00', 'EIO', 1],
      ['0x100000', '0x100600', 'EIO', 3],
      ['0x100600', '0x100800', 'ENXIO', 1],
      ['0x26fc00', '0x26fe00', 'EIO', 1],
      ['0x271400', '0x271600', 'EIO', 1],
      [`0x${(last * 512n).toString(16)}`, `0x${src.size.toString(16)}`, 'EIO', 1],
    ],
  );
  assert.equal(rep.image?.sectors.bad, '8');
  assert.equal(rep.image?.sectors.in, String(last + 1n));
  assert.equal(rep.image?.sectors.out, String(last + 1n));
  assert.equal(rep.image?.sectors.retriesPerSector, 2);
  assert.equal(rep.image?.device.type, 'block');
  assert.equal(rep.accounting.zeroFilled, String(7 * 512 + Number(src.size % 512n)));
  assert.equal(rep.hashes?.digests.md5, md5(img));
  // re-reads: 2 for each of the 8 sectors that stay bad, 1 and 2 for the two that recover
  const retries = rep.source.info.retries as { reReads: number; recoveredSectors: number; recovered: string[] };
  assert.equal(retries.reReads, 8 * 2 + 1 + 2);
  assert.equal(retries.recoveredSectors, 2);
  assert.deepEqual(retries.recovered, ['sector 5000 on re-read 1 (after EIO)', 'sector 5001 on re-read 2 (after EIO)']);

  const log = readFileSync(out + '.log', 'utf8');
  assert.match(log, /---- imaging log \(dc3dd style\) ----/);
  assert.match(log, new RegExp(`device size: ${last}\\+1 sectors \\(probed\\), ${src.size} bytes`));
  assert.match(log, new RegExp(`   ${last}\\+1 sectors in \\(${last} sectors \\+ ${src.size % 512n} bytes in\\)`));
  assert.match(log, /   8 bad sectors replaced by zeros\n      EIO, sector 100 \(1 sector\(s\), bytes 0xc800-0xca00\)\n      EIO, sectors 2048 - 2050 \(3 sector\(s\)/);
  assert.match(log, /      ENXIO, sector 2051 /);
  assert.match(log, /      EIO, sector 5002 /);
  assert.match(log, /19 re-read\(s\) of failing sectors \(up to 2 per sector\); 2 sector\(s\) recovered by a re-read/);
  assert.match(log, new RegExp(`   ${md5(img)} \\(md5\\)`));
  assert.match(log, /memdump completed at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000/);
});

test('--retries 0 zero-fills at the first failure: a marginal sector counts as bad; --retries 1 recovers it', async (t) => {
  const dir = tempDir(t);
  const make = () => {
    const s = new SectorFaultSource('/dev/fault1', 64n * 1024n);
    s.bad.set(6n, 'EIO');
    s.flaky.set(7n, 1);
    return s;
  };
  const a = make();
  const r0 = await runImageJob(job(a, join(dir, 'r0.raw'), { retries: 0 }));
  assert.equal(r0.exitCode, 0);
  assert.equal(r0.report.image?.sectors.bad, '2');
  assert.equal((r0.report.source.info.retries as { reReads: number }).reReads, 0);
  assert.ok(readFileSync(join(dir, 'r0.raw')).subarray(7 * 512, 8 * 512).equals(Buffer.alloc(512)));
  const b = make();
  const r1 = await runImageJob(job(b, join(dir, 'r1.raw'), { retries: 1 }));
  assert.equal(r1.report.image?.sectors.bad, '1');
  assert.deepEqual(r1.report.readErrors.map((e) => e.start), ['0xc00']);
  assert.ok(readFileSync(join(dir, 'r1.raw')).subarray(7 * 512, 8 * 512).equals(b.expected(7n * 512n, 8n * 512n)));
});

test('--max-errors N: N bad sectors are zero-filled, the next one stops the copy with .partial and an INCOMPLETE report', async (t) => {
  const dir = tempDir(t);
  const src = new SectorFaultSource('/dev/fault2', 4n * 1024n * 1024n);
  for (const s of [10n, 20n, 30n, 4000n, 4001n]) src.bad.set(s, 'EIO');
  const out = join(dir, 'stop.raw');
  const r = await runImageJob(job(src, out, { maxErrors: 3, retries: 1 }));
  assert.equal(r.exitCode, 5);
  assert.ok(!existsSync(out), 'nothing complete-looking');
  const partial = readFileSync(out + '.partial');
  assert.equal(partial.length, 4000 * 512, 'the partial image ends exactly before the sector that exceeded the limit');
  const want = src.expected(0n, 4000n * 512n);
  for (const s of [10, 20, 30]) want.fill(0, s * 512, s * 512 + 512);
  assert.ok(partial.equals(want));
  const rep = parseReport(readFileSync(out + '.report.json', 'utf8'), 'report');
  assert.equal(rep.status, 'INCOMPLETE');
  assert.equal(rep.failure?.code, 'E_TOO_MANY_ERRORS');
  assert.match(rep.failure?.message ?? '', /unreadable at 0x1f4000 \(EIO\) after 3 bad page\(s\) zero-filled; the limit is 3/);
  assert.equal(rep.failure?.lastGoodOffset, String(4000 * 512));
  assert.equal(rep.readErrors.length, 3);
  assert.equal(rep.image?.sectors.bad, '3');
  assert.equal(rep.image?.sectors.maxErrors, '3');
  assert.equal(rep.image?.sectors.out, '4000');
  assert.equal(rep.hashes?.digests.sha256, sha256(partial));
  const a = rep.accounting;
  assert.equal(BigInt(a.read) + BigInt(a.zeroFilled) + BigInt(a.skipped), BigInt(a.requested));
  assert.equal(a.zeroFilled, String(3 * 512));
  assert.equal(rep.outputs[0]?.complete, false);
  const log = readFileSync(out + '.log', 'utf8');
  assert.match(log, /memdump aborted at .*: E_TOO_MANY_ERRORS: /);
  assert.match(log, /partial image kept: .*stop\.raw\.partial \(2048000 bytes\)/);
});

test('--max-errors 0 stops at the first bad sector; a clean source is unaffected by the limit', async (t) => {
  const dir = tempDir(t);
  const clean = new SectorFaultSource('/dev/fault3', 256n * 1024n);
  const ok = await runImageJob(job(clean, join(dir, 'clean.raw'), { maxErrors: 0 }));
  assert.equal(ok.exitCode, 0);
  assert.ok(readFileSync(join(dir, 'clean.raw')).equals(clean.expected()));
  const badAtZero = new SectorFaultSource('/dev/fault4', 256n * 1024n);
  badAtZero.bad.set(0n, 'EIO');
  const r = await runImageJob(job(badAtZero, join(dir, 'zero.raw'), { maxErrors: 0 }));
  assert.equal(r.exitCode, 5);
  assert.equal(readFileSync(join(dir, 'zero.raw.partial')).length, 0);
});

test('--verify: "source unchanged" when the second read matches; SOURCE CHANGED (exit 11) when it does not', async (t) => {
  const dir = tempDir(t);
  const same = new SectorFaultSource('/dev/fault5', 1n << 20n);
  same.bad.set(77n, 'EIO');
  const r1 = await runImageJob(job(same, join(dir, 'same.raw'), { verify: true, digests: ['md5', 'sha1', 'sha256'] }));
  assert.equal(r1.exitCode, 0);
  const v1 = r1.report.image?.verify;
  assert.equal(v1?.sourceChanged, false);
  assert.match(v1?.message ?? '', /^source unchanged: md5, sha1, sha256 of a second full read equal the image's; the second read zero-filled 1 unreadable sector\(s\)/);
  assert.deepEqual(v1?.sourceDigests, v1?.imageDigests);
  assert.equal(v1?.imageDigests.md5, md5(readFileSync(join(dir, 'same.raw'))));

  const changing = new SectorFaultSource('/dev/fault6', 1n << 20n);
  const out = join(dir, 'changed.raw');
  const r2 = await runImageJob(job(changing, out, { verify: true, beforeVerify: () => void changing.generation++ }));
  assert.equal(r2.exitCode, 11);
  const rep = parseReport(readFileSync(out + '.report.json', 'utf8'), 'report');
  assert.equal(rep.status, 'COMPLETE', 'the image itself is complete');
  assert.equal(rep.image?.verify?.sourceChanged, true);
  assert.match(rep.image?.verify?.message ?? '', /^SOURCE CHANGED during or after imaging: md5, sha256 of a second full read differ/);
  assert.equal(rep.image?.verify?.sourceDigests.md5, md5(changing.expected()), 'the source digests are of the new content');
  assert.notEqual(rep.image?.verify?.imageDigests.md5, rep.image?.verify?.sourceDigests.md5);
  const log = readFileSync(out + '.log', 'utf8');
  assert.match(log, /verification \(second full read of the source\): SOURCE CHANGED/);
  assert.match(log, /\[MISMATCH: image [0-9a-f]{32}\]/);
});

test('--verify interrupted during the second read: NOT VERIFIED, exit 130, the image itself COMPLETE', async (t) => {
  const dir = tempDir(t);
  const src = new SectorFaultSource('/dev/fault8', 2n << 20n);
  const ac = new AbortController();
  const r = await runImageJob(job(src, join(dir, 'i.raw'), { verify: true, signal: ac.signal, beforeVerify: () => ac.abort() }));
  assert.equal(r.exitCode, 130);
  assert.equal(r.report.status, 'COMPLETE');
  assert.equal(r.report.image?.verify?.sourceChanged, false);
  assert.match(r.report.image?.verify?.message ?? '', /^NOT VERIFIED: the second read failed \(E_INTERRUPTED/);
  assert.ok(readFileSync(join(dir, 'i.raw')).equals(src.expected()));
});

test('E01 output: the media digests are the image digests verify compares with; media type fixed/removable', async (t) => {
  let e01;
  try {
    e01 = formatByName('e01');
  } catch {
    t.skip('the E01 writer is not registered yet');
    return;
  }
  const dir = tempDir(t);
  // not a multiple of 512: E01 pads the last sector, verification pads the second read the same way
  const src = new SectorFaultSource('/dev/fault7', 200n * 1024n + 100n);
  src.bad.set(3n, 'EIO');
  const r = await runImageJob(job(src, join(dir, 'disk.E01'), { format: e01, verify: true, device: src.facts({ removable: true }), digests: ['md5', 'sha1', 'sha256'], e01: { compression: 'fast', segmentBytes: 0n } }));
  assert.equal(r.exitCode, 0, JSON.stringify(r.report.failure));
  const rep = r.report;
  assert.equal(rep.e01?.mediaType, 'removable');
  const media = src.expected();
  media.fill(0, 3 * 512, 4 * 512);
  const padded = Buffer.concat([media, Buffer.alloc(512 - 100)]);
  assert.equal(rep.e01?.mediaDigests.md5, md5(padded));
  assert.equal(rep.image?.verify?.sourceChanged, false, rep.image?.verify?.message);
  assert.match(rep.image?.verify?.message ?? '', /padded with 412 zero bytes/);
  assert.equal(rep.image?.sectors.bad, '1');
  assert.deepEqual(rep.e01?.errorRuns, [{ firstSector: '3', sectors: '1' }]);
});

test('refuses -o - and an output that is the source itself', async (t) => {
  const dir = tempDir(t);
  const src = new SectorFaultSource(join(dir, 'disk.img'), 4096n);
  await assert.rejects(runImageJob(job(src, '-')), { code: 'E_USAGE' });
  await assert.rejects(runImageJob(job(src, join(dir, 'disk.img'), { device: src.facts({ type: 'file' }) })), { code: 'E_USAGE' });
});
