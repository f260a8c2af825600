/**
 * Detection is exclusive: a file of each format is claimed by its own reader and by no other, so the order of
 * READERS never decides what a file is. A reader whose detect() grew too greedy (the hibernation reader's
 * wiped-header check, a VMware magic that matches guest data) fails here with the name of the file it stole.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RandomAccessFile } from '../../src/core/file.js';
import { HEAD_BYTES, READERS, openImage } from '../../src/formats/registry.js';
import type { FormatName } from '../../src/formats/types.js';
import { sparseImage } from '../fixtures/generate.js';
import { writeHiberfil } from '../fixtures/hiberfil.js';
import { writeKdumpFile } from '../fixtures/kdump.js';
import { writeVBoxCore } from '../fixtures/vbox.js';
import { writeVmware } from '../fixtures/vmware.js';
import { crashTruth, writeCrashDump } from '../fixtures/wincrash.js';
import { tempDir } from '../helpers/cli.js';
import { writeWith } from '../helpers/job.js';
import { MemorySource } from '../helpers/memory-source.js';

async function claimants(path: string): Promise<string[]> {
  const f = await RandomAccessFile.open(path);
  try {
    const head = await f.readAt(0n, HEAD_BYTES);
    return READERS.filter((r) => r.detect(head, f.size)).map((r) => r.name);
  } finally {
    await f.close();
  }
}

test('every format is claimed by its own reader only, and openImage agrees', async (t) => {
  const dir = tempDir(t, 'memdump-detect-');
  const samples: { path: string; format: FormatName; magic: boolean }[] = [];
  const mem = new MemorySource(sparseImage(11, { pageAligned: true }));
  for (const f of ['lime', 'avml', 'elf'] as const) samples.push({ path: (await writeWith(mem, f, dir, `s.${f}`)).path, format: f, magic: true });
  // its own base name: a segment set named s would also own s.ELF (E01, …, E99, EAA, …, ELF, …)
  samples.push({ path: (await writeWith(mem, 'e01', dir, 'ewf')).path + '.E01', format: 'e01', magic: true });
  samples.push({ path: (await writeWith(mem, 'padded', dir, 's.padded')).path, format: 'padded', magic: false });

  const kd = join(dir, 'vmcore.kdump');
  await writeKdumpFile(kd, { seed: 3, maxMapnr: 64, compression: 'zlib' });
  samples.push({ path: kd, format: 'kdump', magic: true });
  const kdFlat = join(dir, 'vmcore.flat');
  await writeKdumpFile(kdFlat, { seed: 4, maxMapnr: 64, compression: 'zlib' }, true);
  samples.push({ path: kdFlat, format: 'kdump', magic: true });

  for (const [name, o] of [
    ['full64.dmp', { bits: 64, layout: 'full' }],
    ['bitmap64.dmp', { bits: 64, layout: 'bitmap', summary: 'FDMP' }],
    ['full32.dmp', { bits: 32, layout: 'full', pae: true }],
  ] as const) {
    const p = join(dir, name);
    writeCrashDump(p, crashTruth(5, o));
    samples.push({ path: p, format: 'wincrash', magic: true });
  }
  for (const layout of ['win7-x64', 'win10'] as const) {
    const p = join(dir, `${layout}.hiberfil.sys`);
    writeHiberfil(p, { seed: 6, layout });
    samples.push({ path: p, format: 'hiberfil', magic: true });
  }
  const vm = writeVmware(dir, { seed: 7, name: 'guest' });
  samples.push({ path: vm.state, format: 'vmware', magic: true });
  samples.push({ path: vm.vmem!, format: 'vmware', magic: false });
  const vbox = join(dir, 'vbox.core');
  writeVBoxCore(vbox, { seed: 8 });
  samples.push({ path: vbox, format: 'elf', magic: true });

  for (const s of samples) {
    const claimed = await claimants(s.path);
    assert.deepEqual(claimed, s.magic ? [s.format] : [], `${s.path}: claimed by ${claimed.join(', ') || 'nobody'}`);
    const img = await openImage(s.path);
    try {
      assert.equal(img.format, s.format, s.path);
      assert.ok(img.runs.length > 0, `${s.path} has memory`);
    } finally {
      await img.close();
    }
  }
});

test('random, zero and text files are claimed by nobody', async (t) => {
  const dir = tempDir(t, 'memdump-detect-neg-');
  const cases: [string, Buffer][] = [
    ['zeros', Buffer.alloc(1 << 20)],
    ['text', Buffer.from('Linux version 6.1.0 (memdump) #1 SMP\n'.repeat(30000))],
  ];
  let x = 0x1234567;
  for (let i = 0; i < 20; i++) {
    const b = Buffer.alloc(256 * 1024);
    for (let k = 0; k < b.length; k += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b.writeInt32LE(x | 0, k);
    }
    cases.push([`random-${i}`, b]);
  }
  for (const [name, bytes] of cases) {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    assert.deepEqual(await claimants(p), [], name);
  }
});
