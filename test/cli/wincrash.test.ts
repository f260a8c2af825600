import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { contentHash } from '../../src/pipeline/info.js';
import { openImage } from '../../src/formats/registry.js';
import { type CrashOptions, crashDump, crashTruth, truthImage, writeCrashDump } from '../fixtures/wincrash.js';
import { runCli, tempDir } from '../helpers/cli.js';

const CASES: { name: string; o: CrashOptions }[] = [
  { name: 'full64', o: { bits: 64, layout: 'full', kdbg: 'plain' } },
  { name: 'bitmap64', o: { bits: 64, layout: 'bitmap', summary: 'SDMP' } },
  { name: 'pae32', o: { bits: 32, layout: 'full', pae: true } },
  { name: 'summary32', o: { bits: 32, layout: 'summary-old', pae: true } },
  { name: 'rdmp-reversed', o: { bits: 64, layout: 'rdmp', rdmpType: 10, rdmpReversed: true } },
];

test('memdump info X.dmp shows the crash dump fields, as text and as --json', async (t) => {
  const dir = tempDir(t, 'memdump-cli-wincrash-');
  for (const c of CASES) {
    const truth = crashTruth(31, c.o);
    const path = join(dir, `${c.name}.dmp`);
    writeCrashDump(path, truth);
    const text = await runCli(['info', path]);
    assert.equal(text.code, 0, text.stderr);
    const out = text.stdout.toString();
    assert.match(out, /^format\s+wincrash$/m, c.name);
    assert.match(out, new RegExp(`^windowsBuild "build ${truth.minorVersion}"$`, 'm'), c.name);
    assert.match(out, /^attributes\s+"absent \(header fill\)"$/m, c.name);
    assert.match(out, new RegExp(`^directoryTableBase "0x${truth.directoryTableBase.toString(16)}"$`, 'm'), c.name);
    assert.match(out, new RegExp(`^comment\\s+"${truth.comment}"$`, 'm'), c.name);
    assert.match(out, new RegExp(`^ranges\\s+${truth.runs.length}, `, 'm'), c.name);

    const j = await runCli(['--json', 'info', path, '--content-hash']);
    assert.equal(j.code, 0, j.stderr);
    const r = JSON.parse(j.stdout.toString()) as { format: string; details: Record<string, unknown>; contentSha256: string; ranges: { count: number } };
    assert.equal(r.format, 'wincrash');
    assert.equal(r.ranges.count, truth.runs.length);
    assert.equal(r.contentSha256, await contentHash(truthImage(truth)), `${c.name}: content hash`);
    const d = r.details;
    assert.equal(d['machine'], c.o.bits === 64 ? 'AMD64 (0x8664)' : 'i386 (0x14c)');
    assert.equal(d['processors'], truth.numberProcessors);
    assert.equal(String(d['bugcheck']).split(' ')[0], '0x' + truth.bugCheckCode.toString(16));
    assert.deepEqual(d['bugcheckParameters'], truth.bugCheckParameters.map((v) => '0x' + v.toString(16)));
    assert.equal(d['kdDebuggerDataBlock'], '0x' + truth.kdDebuggerDataBlock.toString(16));
    assert.equal(d['psLoadedModuleList'], '0x' + truth.psLoadedModuleList.toString(16));
    assert.equal(d['psActiveProcessHead'], '0x' + truth.psActiveProcessHead.toString(16));
    assert.match(String(d['systemTime']), /^2024-01-\d\dT[\d:.]+Z$/);
    assert.equal(d['comment'], truth.comment);
    if (c.o.bits === 32) assert.equal(d['pae'], true);
    if (c.o.kdbg === 'plain') assert.match(String(d['kdDebuggerDataBlockState']), /^plain /);
  }
});

test('memdump convert X.dmp --to lime and --to padded keep the memory: same content hash as the truth', async (t) => {
  const dir = tempDir(t, 'memdump-cli-wincrash-');
  for (const c of CASES) {
    const truth = crashTruth(32, c.o);
    const path = join(dir, `${c.name}.dmp`);
    writeCrashDump(path, truth);
    const want = await contentHash(truthImage(truth));
    for (const to of ['lime', 'padded'] as const) {
      const out = join(dir, `${c.name}.${to}`);
      const r = await runCli(['convert', path, out, '--to', to, '-q']);
      assert.equal(r.code, 0, `${c.name} -> ${to}: ${r.stderr}`);
      if (to === 'padded') assert.ok(existsSync(out + '.map.json'), 'padded output has its map beside it');
      const img = await openImage(out);
      try {
        assert.equal(img.format, to);
        assert.deepEqual(img.runs, truth.runs, `${c.name} -> ${to}: runs`);
        assert.equal(await contentHash(img), want, `${c.name} -> ${to}: content hash`);
      } finally {
        await img.close();
      }
    }
  }
});

test('memdump info on a minidump and on a triage dump names them and exits with the E_UNSUPPORTED status', async (t) => {
  const dir = tempDir(t, 'memdump-cli-wincrash-');
  const mini = join(dir, 'mini.dmp');
  const b = Buffer.alloc(4096);
  b.write('MDMP', 0, 'latin1');
  b.writeUInt32LE(0xa793, 4);
  writeFileSync(mini, b);
  const r = await runCli(['info', mini]);
  assert.equal(r.code, 10, r.stderr);
  assert.match(r.stderr, /minidump \(MDMP\)/);

  const triage = join(dir, 'triage.dmp');
  const bytes = writeCrashDump(triage, crashTruth(5, { bits: 64, layout: 'full' }));
  bytes.writeUInt32LE(4, 0xf98);
  writeFileSync(triage, bytes);
  const j = await runCli(['--json', 'info', triage]);
  assert.equal(j.code, 10, j.stderr);
  assert.match(j.stderr, /E_UNSUPPORTED/);
  assert.match(j.stderr, /triage/);
});

test('memdump info and convert on a dump cut short: the held pages convert, and info says loudly what is missing', async (t) => {
  const dir = tempDir(t, 'memdump-cli-wincrash-');
  const truth = crashTruth(33, { bits: 64, layout: 'bitmap', newFields: true, maxRuns: 5 });
  const bytes = crashDump(truth);
  const lastPages = Number((truth.runs.at(-1)!.end - truth.runs.at(-1)!.start) / 4096n);
  const path = join(dir, 'short.dmp');
  writeFileSync(path, bytes.subarray(0, bytes.length - lastPages * 4096));
  const held = { ...truth, runs: truth.runs.slice(0, -1), data: truth.data.slice(0, -1) };

  const j = await runCli(['--json', 'info', path, '--content-hash']);
  assert.equal(j.code, 0, j.stderr);
  const r = JSON.parse(j.stdout.toString()) as { details: Record<string, unknown>; contentSha256: string };
  assert.equal(r.details['truncatedPages'], lastPages);
  assert.match(String(r.details['warning']), /^INCOMPLETE: .*Windows flagged InsufficientDumpfileSize/);
  assert.equal(r.contentSha256, await contentHash(truthImage(held)));
  const text = await runCli(['info', path]);
  assert.match(text.stdout.toString(), /^warning\s+"INCOMPLETE: /m);

  const out = join(dir, 'short.lime');
  const c = await runCli(['convert', path, out, '--to', 'lime', '-q']);
  assert.equal(c.code, 0, c.stderr);
  const img = await openImage(out);
  try {
    assert.deepEqual(img.runs, held.runs);
    assert.equal(await contentHash(img), await contentHash(truthImage(held)));
  } finally {
    await img.close();
  }
});
