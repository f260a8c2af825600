/**
 * VMware through the CLI: `info` on the .vmem and on the state file, `convert` of .vmss (+ .vmem) and of a .vmsn
 * with embedded memory into LiME / ELF, checked against the fixture's truth with the container-independent hash.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { contentHash } from '../../src/pipeline/info.js';
import { BANNER, truthImage, writeVmware } from '../fixtures/vmware.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { contentHashOf } from '../helpers/content.js';
import { Prng } from '../helpers/prng.js';


test('memdump info X.vmem and info X.vmss: same map (RAM above 4 GiB placed by the regions), details, banner, content hash', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 31, name: 'win10-host' });
  const want = await contentHash(truthImage(f.runs, f.data));
  for (const p of [f.vmem!, f.state]) {
    const r = await runCli(['info', p, '--json', '--content-hash']);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout.toString());
    assert.equal(info.format, 'vmware');
    assert.deepEqual(info.ranges.list.map((x: { start: string; end: string }) => `${x.start}-${x.end}`), ['0x0-0x28000', '0x100000000-0x100018000']);
    assert.equal(info.contentSha256, want);
    assert.equal(info.banner.text, BANNER);
    assert.equal(info.banner.address, '0x100000080');
    assert.equal(info.details.stateFile, f.state);
    assert.equal(info.details.memoryIn, 'vmem');
    assert.equal(info.details.memory, f.vmem);
    assert.equal(info.details.cpus, 2);
    assert.equal(info.details.cr3, '0x' + f.cr3.toString(16));
    assert.equal(info.details.cpusProblem, undefined);
    assert.equal(info.details.regions.length, 2);
  }
  const text = await runCli(['info', f.state]);
  assert.equal(text.code, 0, text.stderr);
  const out = text.stdout.toString();
  assert.match(out, /^format\s+vmware$/m);
  assert.match(out, /^memoryIn\s+"vmem"$/m);
  assert.match(out, /^cpus\s+2$/m);
  assert.match(out, /^magic\s+"0xbed2bed2"$/m);
});

test('memdump convert X.vmss out.lime --to lime, and a .vmsn with embedded memory --to elf, keep the truth content hash', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 32, name: 'suspended' });
  const lime = join(dir, 'out.lime');
  const r = await runCli(['convert', f.state, lime, '--to', 'lime', '-q']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await contentHashOf(lime), await contentHash(truthImage(f.runs, f.data)));

  const s = writeVmware(dir, { seed: 33, name: 'snap-Snapshot2', embedded: true, magic: 0xbed2bed0, regions: [{ ppn: 0x100000n, pageNum: 0n, pages: 7 }, { ppn: 0n, pageNum: 7n, pages: 9 }] });
  const elf = join(dir, 'snap.elf');
  const e = await runCli(['convert', s.state, elf, '--to', 'elf', '-q']);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(await contentHashOf(elf), await contentHash(truthImage(s.runs, s.data)));
  const info = JSON.parse((await runCli(['info', s.state, '--json'])).stdout.toString());
  assert.equal(info.details.memoryIn, 'embedded');
  assert.equal(info.details.magic, '0xbed2bed0');
});

test('a state file without its .vmem fails with E_NOT_FOUND (exit 3) naming the .vmem; a lone .vmem is read flat', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 34, name: 'lost' });
  rmSync(f.vmem!);
  const r = await runCli(['info', f.state]);
  assert.equal(r.code, 3, r.stderr);
  assert.ok(r.stderr.includes(f.vmem!), r.stderr);
  const lone = join(dir, 'alone.vmem');
  const bytes = new Prng(35).bytes(3 * 4096);
  writeFileSync(lone, bytes);
  const i = await runCli(['info', lone, '--json', '--content-hash']);
  assert.equal(i.code, 0, i.stderr);
  const info = JSON.parse(i.stdout.toString());
  assert.equal(info.format, 'vmware');
  assert.equal(info.details.stateFile, null);
  assert.deepEqual(info.ranges.list.map((x: { start: string; end: string }) => `${x.start}-${x.end}`), ['0x0-0x3000']);
  assert.equal(info.contentSha256, await contentHash(truthImage([{ start: 0n, end: 3n * 4096n }], [bytes])));
});

test('a .vmem whose .vmss is a directory is refused by name (exit 3), not read flat', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 36, name: 'odd' });
  rmSync(f.state);
  mkdirSync(f.state);
  const r = await runCli(['info', f.vmem!]);
  assert.equal(r.code, 3, r.stderr);
  assert.ok(r.stderr.includes(`${f.state} is a directory`), r.stderr);
});
