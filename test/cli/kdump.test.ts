/**
 * `memdump info` and `memdump convert` on kdump files through the real CLI: the content hash info prints is the
 * one every converted container (lime, elf, padded) carries, the bytes equal the fixture's truth, VMCOREINFO rides
 * into the ELF, and an incomplete dump is announced in both output modes.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openImage } from '../../src/formats/registry.js';
import { contentHash } from '../../src/pipeline/info.js';
import { kdumpFixture } from '../fixtures/kdump.js';
import { runCli, tempDir } from '../helpers/cli.js';

test('memdump info and convert on a flattened mixed-compression kdump', async (t) => {
  const dir = tempDir(t, 'memdump-cli-kdump-');
  const { bytes, truth } = await kdumpFixture({ seed: 1234, maxMapnr: 700, compression: 'mixed', vmcoreinfo: 'OSRELEASE=6.1.0-cli\nPAGESIZE=4096\n' }, 'shuffled');
  const src = join(dir, 'vmcore.flat');
  writeFileSync(src, bytes);
  const r = await runCli(['info', src, '--json', '--content-hash']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout.toString());
  assert.equal(info.format, 'kdump');
  assert.equal(info.details.flattened, true);
  assert.equal(info.details.release, '6.1.0-fixture');
  assert.equal(info.details.incomplete, false);
  assert.equal(info.ranges.count, truth.runs.length);
  assert.equal(BigInt(info.ranges.totalBytes), BigInt(truth.pfns.length * 4096));
  assert.ok(info.notes.includes('VMCOREINFO/0 (34 bytes)'), info.notes.join(', '));
  assert.ok(info.details.pageCompressionSeen.length >= 4, info.details.pageCompressionSeen);

  for (const to of ['lime', 'elf', 'padded']) {
    const out = join(dir, `out.${to}`);
    const c = await runCli(['convert', src, out, '--to', to, '-q']);
    assert.equal(c.code, 0, c.stderr);
    const img = await openImage(out);
    try {
      assert.equal(await contentHash(img), info.contentSha256, `hash after --to ${to}`);
      if (to !== 'padded') assert.deepEqual(img.runs, truth.runs);
      if (to === 'elf') assert.equal(img.notes.find((n) => n.name === 'VMCOREINFO')?.desc.toString(), 'OSRELEASE=6.1.0-cli\nPAGESIZE=4096\n');
      const pfn = truth.pfns[truth.pfns.length >> 1]!;
      assert.ok((await img.read(BigInt(pfn) * 4096n, 4096)).equals(truth.page(pfn)), `page ${pfn} after --to ${to}`);
    } finally {
      await img.close();
    }
  }
});

test('memdump info announces an incomplete kdump', async (t) => {
  const dir = tempDir(t, 'memdump-cli-kdump-inc-');
  const { bytes } = await kdumpFixture({ seed: 77, maxMapnr: 300, incomplete: 40 });
  const src = join(dir, 'vmcore');
  writeFileSync(src, bytes);
  const human = await runCli(['info', src]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout.toString(), /INCOMPLETE DUMP/);
  assert.match(human.stderr, /^memdump: WARNING: INCOMPLETE DUMP/m, 'said on stderr, not only in the table');
  const info = JSON.parse((await runCli(['info', src, '--json'])).stdout.toString());
  assert.equal(info.details.incomplete, true);
  assert.equal(BigInt(info.ranges.totalBytes), 40n * 4096n);
  // a conversion keeps the doubt: the new file's report says where its input came up short
  const out = join(dir, 'vmcore.lime');
  const c = await runCli(['convert', src, out, '--to', 'lime', '-q']);
  assert.equal(c.code, 0, c.stderr);
  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8')) as { warnings: string[] };
  assert.ok(report.warnings.some((w) => /INCOMPLETE DUMP/.test(w)), JSON.stringify(report.warnings));
});
