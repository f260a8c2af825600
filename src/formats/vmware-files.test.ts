/**
 * Companion files through openImage: case-insensitive names, companions that are no regular file, a .vmem that
 * is never taken for another format by its bytes nor read when compressed, and a .vmem left unread beside a state
 * file that embeds its memory.
 */
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { contentHash } from '../pipeline/info.js';
import { openImage } from './registry.js';
import { vmware } from './vmware.js';
import { truthImage, writeVmware, imageDetails as details } from '../../test/fixtures/vmware.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';

async function assertTruth(path: string, runs: readonly { start: bigint; end: bigint }[], data: readonly Buffer[]): Promise<Record<string, unknown>> {
  const img = await openImage(path);
  try {
    assert.equal(img.format, 'vmware');
    assert.deepEqual(img.runs, runs);
    assert.equal(await contentHash(img), await contentHash(truthImage(runs, data)));
    return img.details;
  } finally {
    await img.close();
  }
}

test('openImage: --input-format vmware on a .vmem uses the .vmss beside it; a .vmem is never taken for another format by its bytes', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 40, name: 'g' });
  const named = await details(f.vmem!, 'vmware');
  assert.deepEqual(named.runs, f.runs);
  assert.equal(named.d['stateFile'], f.state);
  // guest memory that looks like a hibernation file (page 0 zero, "\x81\x81xpress" at 0x2000) or LiME ("EMiL")
  const m = Buffer.from(f.memory);
  m.fill(0, 0, 4096);
  Buffer.from('8181787072657373', 'hex').copy(m, 2 * 4096);
  writeFileSync(f.vmem!, m);
  const x = await openImage(f.vmem!);
  try {
    assert.equal(x.format, 'vmware');
    assert.deepEqual(x.runs, f.runs);
    assert.ok((await x.read(0x2000n, 8)).equals(m.subarray(0x2000, 0x2008)));
  } finally {
    await x.close();
  }
  Buffer.from('EMiL', 'latin1').copy(m, 0);
  writeFileSync(f.vmem!, m);
  assert.deepEqual((await details(f.vmem!)).runs, f.runs);
});

test('openImage: a gzip-compressed .vmem (beside its .vmss or alone) is E_UNKNOWN_FORMAT naming the layer, not guest memory', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 41, name: 'z' });
  writeFileSync(f.vmem!, gzipSync(f.memory));
  for (const fmt of [undefined, 'vmware' as const]) {
    const e = await expectCodeAsync(openImage(f.vmem!, fmt), 'E_UNKNOWN_FORMAT');
    assert.equal(e.details['layer'], 'gzip');
  }
  writeFileSync(join(dir, 'alone.vmem'), gzipSync(Buffer.alloc(1 << 16, 0x41)));
  assert.equal((await expectCodeAsync(openImage(join(dir, 'alone.vmem')), 'E_UNKNOWN_FORMAT')).details['layer'], 'gzip');
});

test('companions are found without regard to case: G.VMEM beside G.vmss, x.VMSS beside x.vmem', async (t) => {
  const dir = tempDir(t);
  const g = writeVmware(dir, { seed: 44, name: 'G' });
  renameSync(g.vmem!, join(dir, 'G.VMEM'));
  for (const p of [join(dir, 'G.VMEM'), g.state]) {
    const { runs, d } = await details(p);
    assert.deepEqual(runs, g.runs, p);
    assert.equal(d['stateFile'], g.state);
    assert.equal(d['memory'], join(dir, 'G.VMEM'));
  }
  const x = writeVmware(dir, { seed: 45, name: 'x' });
  renameSync(x.state, join(dir, 'x.VMSS'));
  await assertTruth(x.vmem!, x.runs, x.data);
  await assertTruth(join(dir, 'x.VMSS'), x.runs, x.data);
  assert.equal(await vmware.companionOf!(x.vmem!), join(dir, 'x.VMSS'));
});

test('a companion that is a directory or a symlink loop is E_NOT_FOUND naming it, never a silent flat read', async (t) => {
  const dir = tempDir(t);
  // .vmem whose .vmss is not a file
  const a = writeVmware(dir, { seed: 46, name: 'a' });
  rmSync(a.state);
  mkdirSync(a.state);
  let e = await expectCodeAsync(openImage(a.vmem!), 'E_NOT_FOUND');
  assert.equal(e.details['path'], a.state);
  assert.match(e.message, /a\.vmss is a directory/);
  const b = writeVmware(dir, { seed: 47, name: 'b' });
  rmSync(b.state);
  symlinkSync('b.vmss', b.state);
  e = await expectCodeAsync(openImage(b.vmem!), 'E_NOT_FOUND');
  assert.match(e.message, /b\.vmss is a symlink loop/);
  // .vmss whose .vmem is not a file
  const c = writeVmware(dir, { seed: 48, name: 'c' });
  rmSync(c.vmem!);
  mkdirSync(c.vmem!);
  e = await expectCodeAsync(openImage(c.state), 'E_NOT_FOUND');
  assert.match(e.message, /c\.vmem is a directory/);
  assert.doesNotMatch(e.message, /not there/);
  const d = writeVmware(dir, { seed: 49, name: 'd' });
  rmSync(d.vmem!);
  symlinkSync('d.vmem', d.vmem!);
  e = await expectCodeAsync(openImage(d.state), 'E_NOT_FOUND');
  assert.match(e.message, /d\.vmem is a symlink loop/);
});

test('a .vmem beside a state file with embedded memory is flagged vmemIgnored', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 50, name: 'e', embedded: true, ext: 'vmss' });
  writeFileSync(join(dir, 'e.vmem'), Buffer.alloc(4096 * 64, 0xee));
  for (const p of [join(dir, 'e.vmem'), f.state]) {
    const d = await assertTruth(p, f.runs, f.data);
    assert.equal(d['memoryIn'], 'embedded');
    assert.equal(d['vmemIgnored'], true);
    assert.match(String(d['vmemNote']), /e\.vmem is not read/);
  }
  const alone = writeVmware(dir, { seed: 51, name: 'f', embedded: true });
  assert.equal((await details(alone.state)).d['vmemIgnored'], undefined);
});

