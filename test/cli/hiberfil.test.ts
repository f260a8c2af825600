import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openImage } from '../../src/formats/registry.js';
import { contentHash } from '../../src/pipeline/info.js';
import { defaultMap, truthHash, writeHiberfil } from '../fixtures/hiberfil.js';
import { runCli, tempDir } from '../helpers/cli.js';

for (const layout of ['win7-x64', 'win10'] as const) {
  test(`memdump info on a ${layout} hiberfil.sys: text and --json show the format, map and header fields`, async (t) => {
    const dir = tempDir(t, 'memdump-cli-hiber-');
    const path = join(dir, 'hiberfil.sys');
    const fx = writeHiberfil(path, { seed: 31, layout });
    const text = await runCli(['info', path, '--content-hash']);
    assert.equal(text.code, 0, text.stderr);
    const out = text.stdout.toString();
    assert.match(out, /^format\s+hiberfil$/m);
    assert.match(out, new RegExp(`^ranges\\s+${fx.runs.length}, `, 'm'));
    assert.match(out, /^signature\s+"HIBR"$/m);
    assert.match(out, new RegExp(`^layout\\s+"${layout === 'win10' ? 'win8\\+' : 'win7'}"$`, 'm'));
    assert.match(out, new RegExp(`^systemTime\\s+"${fx.systemTime}"$`, 'm'));
    assert.match(out, new RegExp(`^content\\s+sha256 ${truthHash(31, defaultMap(31))}$`, 'm'));

    const json = await runCli(['--json', 'info', path]);
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout.toString());
    assert.equal(r.format, 'hiberfil');
    assert.equal(r.ranges.count, fx.runs.length);
    assert.equal(BigInt(r.ranges.totalBytes), BigInt(fx.pages) * 4096n);
    assert.equal(r.details.pages, fx.pages);
    assert.equal(r.details.layoutVariant, layout === 'win10' ? 'win10-1703+' : 'win7-x64');
    assert.equal(r.details.layoutChosenBy, 'LengthSelf');
    assert.equal(r.details.lengthSelf, layout === 'win10' ? '0x3e0' : '0x128');
    if (layout === 'win7-x64') assert.equal(r.details.cr3, '0x' + fx.cr3!.toString(16));
    // the fixture's text pages carry a Linux banner: info finds it through the decompressed pages
    assert.match(r.banner.text, /^Linux version 6\.1\.0/);
  });

  test(`memdump convert ${layout} hiberfil.sys out.lime --to lime keeps every byte (content hash equals the truth's)`, async (t) => {
    const dir = tempDir(t, 'memdump-cli-hiber-');
    const path = join(dir, 'hiberfil.sys');
    writeHiberfil(path, { seed: 32, layout, shuffleKernel: true });
    const out = join(dir, 'out.lime');
    const r = await runCli(['convert', path, out, '--to', 'lime', '-q']);
    assert.equal(r.code, 0, r.stderr);
    const img = await openImage(out);
    try {
      assert.equal(img.format, 'lime');
      assert.equal(await contentHash(img), truthHash(32, defaultMap(32)));
    } finally {
      await img.close();
    }
  });
}

test('memdump info on a wiped hiberfil.sys exits with E_UNSUPPORTED and says the memory is gone', async (t) => {
  const dir = tempDir(t, 'memdump-cli-hiber-');
  const path = join(dir, 'hiberfil.sys');
  writeHiberfil(path, { seed: 33, layout: 'win10' });
  const b = readFileSync(path);
  b.fill(0, 0, 4096);
  writeFileSync(path, b);
  const r = await runCli(['--json', 'info', path]);
  assert.equal(r.code, 10, r.stderr);
  assert.match(r.stderr + r.stdout.toString(), /E_UNSUPPORTED/);
  assert.match(r.stderr + r.stdout.toString(), /memory it held is gone/);
  assert.match(r.stderr + r.stdout.toString(), /--input-format raw/);
});
