import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PAGE, defaultMap, expectCode, truthHash, writeHiberfil } from '../../test/fixtures/hiberfil.js';
import { tempDir } from '../../test/helpers/cli.js';
import { contentHash } from '../pipeline/info.js';
import { openImage } from './registry.js';

// Which Windows 8+ build's offsets are used: the one LengthSelf names, or (unknown LengthSelf) a guess that never
// trades a failed plausible build for a later one.

const WIN8_LAYOUTS = [
  ['win10-1507', 'win10-1507', '0x3b0'],
  ['win10', 'win10-1703+', '0x3e0'],
  ['win10-1607', 'win10-1607', '0x3c8'],
  ['win8', 'win8', '0x360'],
] as const;

test('LengthSelf picks the Windows 8+ build: no page is lost to another build whose slots hold plausible numbers', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-build-');
  for (const [layout, variant, lengthSelf] of WIN8_LAYOUTS) {
    const path = join(dir, `${layout}.sys`);
    const fx = writeHiberfil(path, { seed: 41, layout });
    const img = await openImage(path);
    try {
      assert.equal(img.details['pages'], fx.pages, `${layout}: every page indexed`);
      assert.equal(img.details['layoutVariant'], variant, layout);
      assert.equal(img.details['layoutChosenBy'], 'LengthSelf');
      assert.equal(img.details['lengthSelf'], lengthSelf);
      assert.equal(await contentHash(img), truthHash(41, defaultMap(41)));
    } finally {
      await img.close();
    }
  }
});

test('an unknown LengthSelf is guessed, and said so; the guess still finds every page of each build', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-guess-');
  for (const [layout, variant] of WIN8_LAYOUTS) {
    const path = join(dir, `${layout}.sys`);
    const fx = writeHiberfil(path, { seed: 42, layout, lengthSelf: 0x777 });
    const img = await openImage(path);
    try {
      assert.equal(img.details['pages'], fx.pages, layout);
      // 1703+ and the 11 builds share every offset but HighestPhysicalPage's
      if (variant !== 'win10-1703+') assert.equal(img.details['layoutVariant'], variant, layout);
      assert.equal(img.details['layoutChosenBy'], 'guess');
      assert.equal(img.details['lengthSelf'], '0x777');
    } finally {
      await img.close();
    }
  }
});

test('a truncated Windows 10 file is E_TRUNCATED, never a smaller image under another build (known or guessed LengthSelf)', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-cut-');
  for (const lengthSelf of [undefined, 0]) {
    const path = join(dir, `cut-${lengthSelf ?? 'known'}.sys`);
    const fx = writeHiberfil(path, { seed: 11, layout: 'win10', map: [[0x100, 2000]], chainDepth: 2, ...(lengthSelf === undefined ? {} : { lengthSelf }) });
    truncateSync(path, Math.floor(fx.fileSize * 0.6));
    // the 1607 slot (0x220) holds SecurePagesProcessed, the 1507 slot (0x218) DeviceResumeTime: both walk "cleanly"
    await expectCode(openImage(path), 'E_TRUNCATED');
  }
});

test('HighestPhysicalPage bounds the page counts and page numbers of a known build', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-hpp-');
  const path = join(dir, 'w10.sys');
  writeHiberfil(path, { seed: 12, layout: 'win10' });
  const b = readFileSync(path);
  const top = defaultMap(12).at(-1)!;
  const low = Buffer.from(b);
  low.writeBigUInt64LE(BigInt(top[0]), 0x398); // a page above it is saved
  writeFileSync(path, low);
  await expectCode(openImage(path), 'E_CORRUPT', /above the highest physical page/);
  const few = Buffer.from(b);
  few.writeBigUInt64LE(3n, 0x398); // fewer pages in the machine than KernelPagesProcessed
  writeFileSync(path, few);
  await expectCode(openImage(path), 'E_CORRUPT', /KernelPagesProcessed \(\d+\) is more than the machine's 4 pages/);
});

test('32-bit Windows 8+ and Vista x64 headers are E_UNSUPPORTED by LengthSelf', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-unsup-');
  for (const lengthSelf of [0x2c8, 0x310, 0x328, 0x338, 0x340]) {
    // [leechcore] x86 profile: PageSize 0x14, NumPagesForLoader 0x48, boot/kernel restore pages u32 at 0x50/0x54
    const b = Buffer.alloc(40 * PAGE);
    b.write('HIBR', 0, 'latin1');
    b.writeUInt32LE(lengthSelf, 0x0c);
    b.writeUInt32LE(PAGE, 0x14);
    b.writeBigUInt64LE(16n, 0x48);
    b.writeUInt32LE(7, 0x50);
    b.writeUInt32LE(20, 0x54);
    for (const [pg, first] of [[7, 0x10], [20, 0x200]] as const) {
      b.writeUInt32LE(3 | ((16 * PAGE) << 8), pg * PAGE);
      b.writeUInt32LE((first << 4) | 7, pg * PAGE + 4);
      b.writeUInt32LE(((first + 8) << 4) | 3, pg * PAGE + 8);
      b.writeUInt32LE(((first + 12) << 4) | 3, pg * PAGE + 12);
    }
    const path = join(dir, `x86-${lengthSelf}.sys`);
    writeFileSync(path, b);
    await expectCode(openImage(path), 'E_UNSUPPORTED', /32-bit Windows 8\/10 hibernation files are not supported/);
  }
  const path = join(dir, 'vista64.sys');
  writeHiberfil(path, { seed: 1, layout: 'win7-x64', lengthSelf: 0x140 });
  await expectCode(openImage(path), 'E_UNSUPPORTED', /Vista x64/);
});

