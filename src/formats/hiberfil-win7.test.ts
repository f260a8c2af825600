import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PAGE, assertTruth, defaultMap, expectCode, writeHiberfil } from '../../test/fixtures/hiberfil.js';
import { tempDir } from '../../test/helpers/cli.js';
import { openImage } from './registry.js';

test('Windows 7 tables chain: 300 separate pages (x64, 255 per table) and 600 (x86, 511 per table) need two tables', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-');
  for (const [layout, n] of [['win7-x64', 300], ['win7-x86', 600]] as const) {
    const map = Array.from({ length: n }, (_, i) => [16 + i * 2, 1] as const);
    const path = join(dir, `${layout}.sys`);
    writeHiberfil(path, { seed: 4, layout, map });
    const img = await openImage(path);
    try {
      assert.equal(img.details['tables'], 2);
      await assertTruth(img, 4, map);
    } finally {
      await img.close();
    }
  }
});

test('an image with no pages is E_CORRUPT; a Windows 10 file with a stray Xpress signature still opens as Windows 10', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-empty-');
  const w7 = join(dir, 'w7.sys');
  writeHiberfil(w7, { seed: 3, layout: 'win7-x64' });
  const b7 = readFileSync(w7);
  b7.writeUInt32LE(0, 6 * PAGE + 8); // first table's EntryCount
  writeFileSync(w7, b7);
  await expectCode(openImage(w7), 'E_CORRUPT', /no pages/);
  for (const lengthSelf of [undefined, 0]) {
    const path = join(dir, `w10-${lengthSelf ?? 'known'}.sys`);
    const fx = writeHiberfil(path, { seed: 9, layout: 'win10', map: [[0x100, 600]], kinds: ['stored'], ...(lengthSelf === undefined ? {} : { lengthSelf }) });
    const b = readFileSync(path);
    Buffer.from('8181787072657373', 'hex').copy(b, 4 * PAGE); // slack page before the boot section
    writeFileSync(path, b);
    const img = await openImage(path);
    try {
      assert.equal(img.details['layout'], 'win8+');
      assert.equal(img.details['pages'], fx.pages);
    } finally {
      await img.close();
    }
  }
});

test('Windows 7 x86 FirstTablePage is read at 0x4c (0x50 holds PerfInfo.IoTicks), Vista x86 at 0x50', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-x86-');
  for (const [layout, slot] of [['win7-x86', 0x4c], ['vista-x86', 0x50]] as const) {
    const path = join(dir, `${layout}.sys`);
    writeHiberfil(path, { seed: 5, layout });
    const b = readFileSync(path);
    // tables 36 pages further in: beyond the reader's page scan, so only the right header slot finds them
    const moved = Buffer.concat([b.subarray(0, 6 * PAGE), Buffer.alloc(36 * PAGE), b.subarray(6 * PAGE)]);
    moved.writeUInt32LE(42, slot);
    if (layout === 'win7-x86') moved.writeUInt32LE(3, 0x50);
    writeFileSync(path, moved);
    const img = await openImage(path);
    try {
      assert.equal(img.details['layoutVariant'], layout);
      assert.equal(img.details['firstTablePage'], '0x2a');
      assert.equal(img.details['firstTablePageFrom'], 'header');
      await assertTruth(img, 5, defaultMap(5));
    } finally {
      await img.close();
    }
  }
});

