/**
 * The tag walk on hostile and damaged groups, through openImage: a flood of tags costs bounded memory, the cpu
 * group is walked only as far as numVCPUs and vCPU 0's CR3, and damage there never hides the memory.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { openImage } from './registry.js';
import { regionTagBytes, stateFileOf, tagBytes, tagFlood, u32, writeVmware, imageDetails as details } from '../../test/fixtures/vmware.js';
import { tempDir } from '../../test/helpers/cli.js';

const FORMAT_CODES = new Set(['E_TRUNCATED', 'E_CORRUPT', 'E_TOO_LARGE', 'E_UNKNOWN_FORMAT', 'E_UNSUPPORTED']);

/** Peak RSS above the level before `fn`, sampled while it runs and once after. */
async function rssGrowth(fn: () => Promise<void>): Promise<number> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 1);
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, process.memoryUsage().rss) - before;
}

test('a damaged cpu group does not make the memory unreadable: it is reported as cpusProblem', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 42, name: 'cpu' });
  const cpuEntry = f.stateBytes.indexOf('cpu\0') + 64;
  const cases: [string, Buffer][] = [];
  const past = Buffer.from(f.stateBytes);
  past.writeBigUInt64LE(1n << 40n, cpuEntry); // the cpu tags lie past the end of the file
  cases.push(['past the end', past]);
  const header = Buffer.from(f.stateBytes);
  header.writeBigUInt64LE(4n, cpuEntry); // inside the file header
  cases.push(['in the header', header]);
  // a gpregs block whose size runs past the end of the file, after numVCPUs
  const big = Buffer.from(f.stateBytes);
  const gp = big.indexOf(Buffer.from('\x06gpregs', 'latin1')) + 7 + 4;
  big.writeBigUInt64LE(1n << 40n, gp);
  cases.push(['a block past the end', big]);
  for (const [label, bytes] of cases) {
    writeFileSync(f.state, bytes);
    const { runs, d } = await details(f.state);
    assert.deepEqual(runs, f.runs, label);
    assert.match(String(d['cpusProblem']), /cpu group unreadable: .*offset 0x/, label);
    assert.doesNotThrow(() => JSON.stringify(d));
  }
  assert.equal((await details(f.state)).d['cpus'], 2, 'numVCPUs came before the damage');
});

test('cpu:numVCPUs beyond 2^53 is reported as a string with cpusProblem, never as a rounded number', async (t) => {
  const dir = tempDir(t);
  const st = stateFileOf([
    { name: 'memory', tags: regionTagBytes([{ ppn: 0n, pageNum: 0n, pages: 4 }]) },
    { name: 'cpu', tags: tagBytes({ name: 'cpu:numVCPUs', value: { size: 8, v: (1n << 64n) - 1n } }) },
  ]);
  writeFileSync(join(dir, 'n.vmss'), st);
  writeFileSync(join(dir, 'n.vmem'), Buffer.alloc(4 * 4096, 3));
  const { d } = await details(join(dir, 'n.vmss'));
  assert.equal(d['cpus'], '18446744073709551615');
  assert.match(String(d['cpusProblem']), /not a plausible CPU count/);
});

test('tag flood: a state file of 2^20 minimal tags per group opens or fails with a code, with bounded memory', async (t) => {
  const dir = tempDir(t);
  const n = (1 << 20) - 8;
  const flood = tagFlood(n);
  const regions = regionTagBytes([{ ppn: 0n, pageNum: 0n, pages: 1 }]);
  writeFileSync(join(dir, 'mem.vmss'), stateFileOf([{ name: 'memory', tags: Buffer.concat([regions, flood]) }, { name: 'cpu', tags: flood }]));
  writeFileSync(join(dir, 'cpu.vmss'), stateFileOf([{ name: 'memory', tags: regions }, { name: 'cpu', tags: flood }]));
  for (const name of ['mem', 'cpu']) writeFileSync(join(dir, `${name}.vmem`), Buffer.alloc(4096, 9));
  let outcome = '';
  const memGrowth = await rssGrowth(async () => {
    try {
      await (await openImage(join(dir, 'mem.vmss'))).close();
      outcome = 'opened';
    } catch (e) {
      assert.ok(e instanceof MemdumpError && FORMAT_CODES.has(e.code), String(e));
      outcome = e.code;
    }
  });
  let cpuDetails: Record<string, unknown> = {};
  const cpuGrowth = await rssGrowth(async () => {
    cpuDetails = (await details(join(dir, 'cpu.vmss'))).d;
  });
  t.diagnostic(`memory-group flood: ${outcome}, RSS +${(memGrowth / 2 ** 20).toFixed(1)} MiB; cpu-group flood: RSS +${(cpuGrowth / 2 ** 20).toFixed(1)} MiB`);
  assert.equal(outcome, 'E_TOO_LARGE');
  assert.match(String(cpuDetails['cpusProblem']), /more than 65536 tags/);
  assert.ok(memGrowth < 64 * 2 ** 20, `memory-group flood grew RSS by ${memGrowth} bytes`);
  assert.ok(cpuGrowth < 64 * 2 ** 20, `cpu-group flood grew RSS by ${cpuGrowth} bytes`);
});

test('the cpu walk stops once numVCPUs and CR3 of vCPU 0 are known (what follows is never read)', async (t) => {
  const dir = tempDir(t);
  const cpu = Buffer.concat([
    tagBytes({ name: 'CR64', indices: [1, 3], value: { size: 8, v: 0x2222000n } }),
    tagBytes({ name: 'cpu:numVCPUs', value: u32(2) }),
    tagBytes({ name: 'CR64', indices: [0, 3], value: { size: 8, v: 0x1ab000n } }),
    tagFlood(1000),
  ]);
  // the cpu group is last and the file ends inside its 1000th flood tag: walking on would be E_TRUNCATED
  const full = stateFileOf([{ name: 'memory', tags: regionTagBytes([{ ppn: 0n, pageNum: 0n, pages: 2 }]) }, { name: 'cpu', tags: cpu }]);
  writeFileSync(join(dir, 's.vmss'), full.subarray(0, full.length - 4));
  writeFileSync(join(dir, 's.vmem'), Buffer.alloc(2 * 4096, 1));
  const { d } = await details(join(dir, 's.vmss'));
  assert.equal(d['cpus'], 2);
  assert.equal(d['cr3'], '0x1ab000');
  assert.equal(d['cpusProblem'], undefined);
  // CR3 of the default fixture (CR64[0][3] after other tags of vCPU 0), and CR64 as a block of CR0-CR4 (crash)
  const f = writeVmware(dir, { seed: 43, name: 'cr' });
  assert.equal((await details(f.state)).d['cr3'], '0x' + f.cr3.toString(16));
  const crs = Buffer.alloc(72);
  crs.writeBigUInt64LE(0x80050033n, 0);
  crs.writeBigUInt64LE(0x7654000n, 24);
  writeFileSync(
    join(dir, 'b.vmss'),
    stateFileOf([
      { name: 'cpu', tags: Buffer.concat([tagBytes({ name: 'cpu:numVCPUs', value: u32(1) }), tagBytes({ name: 'CR64', indices: [0], value: { block: crs, pad: 3 } })]) },
      { name: 'memory', tags: regionTagBytes([{ ppn: 0n, pageNum: 0n, pages: 2 }]) },
    ]),
  );
  writeFileSync(join(dir, 'b.vmem'), Buffer.alloc(2 * 4096, 1));
  assert.equal((await details(join(dir, 'b.vmss'))).d['cr3'], '0x7654000');
});

