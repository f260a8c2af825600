import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { isSortedDisjoint, totalLength } from '../core/ranges.js';
import { fakeRoot, kcoreByte, writeFakeKcore } from '../../test/fixtures/generate.js';
import { tempDir } from '../../test/helpers/cli.js';
import { KcoreSource } from './kcore.js';

const RAM = [
  { start: 0x1000n, end: 0x9fc00n },
  { start: 0x100000n, end: 0x500000n },
];

test('each physical byte comes out once, from the direct map; the kernel-text alias is not used twice', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'kcore');
  writeFakeKcore(path, { ram: RAM, textPaddr: 0x200000n, textSize: 0x100000n, dataBase: 1n << 40n, withVmcoreinfo: true });
  const src = await KcoreSource.open(path, RAM);
  try {
    assert.deepEqual(src.ranges, RAM);
    assert.ok(isSortedDisjoint(src.ranges));
    assert.equal(totalLength(src.ranges), totalLength(RAM));
    assert.deepEqual(src.info.viaOtherSegments, []);
    // bytes inside the text alias come from the direct map (0xEE would mean the text segment was read)
    const buf = Buffer.alloc(4096);
    assert.equal(await src.read(0x200000n, buf, 4096), 4096);
    for (let i = 0; i < 4096; i++) assert.equal(buf[i], kcoreByte(0x200000n + BigInt(i)));
    // offsets beyond 2^32 (here 2^40) are read at the right place
    assert.equal(await src.read(0x9fbfcn, buf, 4096), 4, 'a read stops at the end of its segment');
    assert.equal(src.notes[0]?.name, 'VMCOREINFO');
  } finally {
    await src.close();
  }
});

test('RAM that only the text segment covers is taken from it, and RAM in no segment is reported', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'kcore');
  writeFakeKcore(path, { ram: [{ start: 0x100000n, end: 0x200000n }], textPaddr: 0x200000n, textSize: 0x100000n, dataBase: 0x400000n, withVmcoreinfo: false });
  const ram = [{ start: 0x100000n, end: 0x400000n }];
  const src = await KcoreSource.open(path, ram);
  try {
    assert.deepEqual(src.ranges, [{ start: 0x100000n, end: 0x300000n }]);
    assert.equal(src.info.ramNotInKcoreBytes, String(0x100000));
    const b = Buffer.alloc(16);
    await src.read(0x200000n, b, 16);
    assert.deepEqual(b, Buffer.alloc(16, 0xee));
  } finally {
    await src.close();
  }
});

test('pre-4.11 kcore (p_paddr 0) is refused clearly', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'kcore');
  writeFakeKcore(path, { ram: RAM, textPaddr: 0x200000n, textSize: 0x1000n, dataBase: 0x100000n, withVmcoreinfo: false, zeroPaddr: true });
  await assert.rejects(KcoreSource.open(path, RAM), (e: { code: string; message: string }) => e.code === 'E_UNSUPPORTED' && /4\.11/.test(e.message));
});

test('fake root tree builds', (t) => {
  const dir = tempDir(t);
  fakeRoot(dir, { ram: RAM, textPaddr: 0x200000n, textSize: 0x1000n, dataBase: 0x100000n, withVmcoreinfo: true });
});
