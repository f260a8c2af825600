import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { RandomAccessFile } from '../core/file.js';
import { contentHash } from '../pipeline/info.js';
import { openImage } from './registry.js';
import { vmware } from './vmware.js';
import { BANNER, TWO_REGIONS, buildVmware, mutateFields, stateFileOf, tagBytes, truthImage, writeVmware } from '../../test/fixtures/vmware.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { FORMAT_CODES, classify, openAndReadAll } from '../../test/helpers/fuzz.js';
import { Prng } from '../../test/helpers/prng.js';


async function assertTruth(path: string, runs: readonly { start: bigint; end: bigint }[], data: readonly Buffer[]): Promise<Record<string, unknown>> {
  const img = await openImage(path);
  try {
    assert.equal(img.format, 'vmware');
    assert.deepEqual(img.runs, runs);
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i]!;
      assert.ok((await img.read(r.start, Number(r.end - r.start))).equals(data[i]!), `run ${i} bytes`);
    }
    // a read across a page boundary inside the last run
    const last = runs[runs.length - 1]!;
    assert.ok((await img.read(last.start + 4000n, 200)).equals(data[runs.length - 1]!.subarray(4000, 4200)));
    assert.equal(await contentHash(img), await contentHash(truthImage(runs, data)));
    return img.details;
  } finally {
    await img.close();
  }
}

/** Offset of a tag's value: the tag whose name is `name` (no indices unless given). */
function tagValueAt(b: Buffer, name: string, nindx = 0): number {
  const i = b.indexOf(Buffer.from(name, 'latin1'));
  assert.ok(i > 2 && b[i - 1] === name.length, `tag ${name} not found`);
  return i + name.length + nindx * 4;
}

test('vmss + vmem: two regions, one above 4 GiB stored right after the first, map and bytes equal the truth', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 1 });
  assert.equal(f.runs[1]!.start, 0x100000000n);
  const d = await assertTruth(f.state, f.runs, f.data);
  assert.equal(d['memoryIn'], 'vmem');
  assert.equal(d['memory'], f.vmem);
  assert.equal(d['cpus'], 2);
  assert.equal(d['magic'], '0xbed2bed2');
  assert.deepEqual(d['groups'], ['Checkpoint', 'cpu', 'Vga', 'memory', 'Snapshot']);
  assert.deepEqual(d['regions'], [
    { physical: '0x0-0x28000', memoryOffset: '0x0', pages: '40' },
    { physical: '0x100000000-0x100018000', memoryOffset: '0x28000', pages: '24' },
  ]);
  // the .vmem alone names its state file as the companion, and opens to the same map
  assert.equal(await vmware.companionOf!(f.vmem!), f.state);
  await assertTruth(f.vmem!, f.runs, f.data);
});

test('regions stored out of physical order, with a hole, map right', async (t) => {
  const dir = tempDir(t);
  const regions = [
    { ppn: 0x140000n, pageNum: 0n, pages: 8 },
    { ppn: 0n, pageNum: 8n, pages: 16 },
    { ppn: 0x100n, pageNum: 30n, pages: 5 }, // pages 24-29 of the file belong to nothing
  ];
  const f = writeVmware(dir, { seed: 2, regions, cpus: 1 });
  assert.deepEqual(f.runs.map((r) => r.start), [0n, 0x100000n, 0x140000000n]);
  const d = await assertTruth(f.state, f.runs, f.data);
  assert.equal(d['cpus'], 1);
});

test('vmsn with embedded memory, old (32-bit size) and other magics, flat memory without regions', async (t) => {
  const dir = tempDir(t);
  const cases = [
    { seed: 3, embedded: true },
    { seed: 4, embedded: true, magic: 0xbed2bed0 },
    { seed: 5, magic: 0xbed2bed0, ext: 'vmsn' as const },
    { seed: 6, magic: 0xbad1bad1 },
    { seed: 7, magic: 0xbed3bed3, embedded: true, regions: null },
    { seed: 8, regions: null, flatPages: 33 },
  ];
  for (const c of cases) {
    const f = writeVmware(dir, { ...c, name: `g${c.seed}` });
    const d = await assertTruth(f.state, f.runs, f.data);
    assert.equal(d['memoryIn'], c.embedded ? 'embedded' : 'vmem', `seed ${c.seed}`);
    assert.equal(d['magic'], '0x' + (c.magic ?? 0xbed2bed2).toString(16));
    if (c.regions === null) assert.match(String(d['map']), /^flat/);
  }
});

test('companions: .vmss preferred, NAME-SnapshotN.vmem pairs with its .vmsn, a lone .vmem is flat memory from 0', async (t) => {
  const dir = tempDir(t);
  const snap = writeVmware(dir, { seed: 9, name: 'win-Snapshot3', ext: 'vmsn' });
  assert.equal(await vmware.companionOf!(snap.vmem!), snap.state);
  await assertTruth(snap.vmem!, snap.runs, snap.data);
  const both = writeVmware(dir, { seed: 10, name: 'both' });
  writeFileSync(join(dir, 'both.vmsn'), buildVmware({ seed: 11, embedded: true }).stateBytes);
  assert.equal(await vmware.companionOf!(both.vmem!), both.state);
  assert.equal(await vmware.companionOf!(both.state), undefined);
  const lone = join(dir, 'lone.vmem');
  const bytes = new Prng(12).bytes(5 * 4096 + 100);
  writeFileSync(lone, bytes);
  const d = await assertTruth(lone, [{ start: 0n, end: BigInt(bytes.length) }], [bytes]);
  assert.equal(d['stateFile'], null);
  assert.match(String(d['map']), /no \.vmss\/\.vmsn/);
});

test('a state file without its .vmem: E_NOT_FOUND naming the path expected', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 13, name: 'gone' });
  rmSync(f.vmem!);
  const e = await expectCodeAsync(openImage(f.state), 'E_NOT_FOUND');
  assert.equal(e.details['expected'], f.vmem);
  assert.ok(e.message.includes(f.vmem!), e.message);
});

test('damaged files fail with coded errors at the right place', async (t) => {
  const dir = tempDir(t);
  const base = writeVmware(dir, { seed: 14, name: 'base' });
  const emb = buildVmware({ seed: 15, embedded: true });
  const put = async (b: Buffer, name = 'x.vmss'): Promise<string> => {
    const p = join(dir, name);
    writeFileSync(p, b);
    writeFileSync(p.replace(/\.vm..$/, '.vmem'), base.memory);
    return p;
  };
  const edit = (src: Buffer, fn: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(src);
    fn(b);
    return b;
  };
  // the .vmem is cut short of the last region
  writeFileSync(base.vmem!, base.memory.subarray(0, base.memory.length - 4096));
  await expectCodeAsync(openImage(base.state), 'E_TRUNCATED', 0x28000n);
  // regionsCount says 3, two regions exist
  await expectCodeAsync(openImage(await put(edit(base.stateBytes, (b) => b.writeUInt32LE(3, tagValueAt(b, 'regionsCount'))))), 'E_CORRUPT');
  // regionsCount beyond the cap
  await expectCodeAsync(openImage(await put(edit(base.stateBytes, (b) => b.writeUInt32LE(0xffffffff, tagValueAt(b, 'regionsCount'))))), 'E_TOO_LARGE');
  // the first region moved onto the second
  const ov = buildVmware({ seed: 14, regions: [TWO_REGIONS[0]!, { ppn: 0x20n, pageNum: 40n, pages: 24 }] });
  await expectCodeAsync(openImage(await put(ov.stateBytes)), 'E_CORRUPT');
  // no "memory" group
  await expectCodeAsync(openImage(await put(edit(base.stateBytes, (b) => b.write('MEMORY', b.indexOf('memory\0'), 'latin1')))), 'E_CORRUPT', 0xcn);
  // the group table ends past the file
  await expectCodeAsync(openImage(await put(base.stateBytes.subarray(0, 300))), 'E_TRUNCATED', 12n);
  // the memory group's tags start past the end of the file
  const memEntry = base.stateBytes.indexOf('memory\0') + 64;
  await expectCodeAsync(openImage(await put(edit(base.stateBytes, (b) => b.writeBigUInt64LE(1n << 40n, memEntry)))), 'E_TRUNCATED', 1n << 40n);
  // the embedded Memory block claims more than the file holds
  const memTag = emb.stateBytes.indexOf(Buffer.from('\x06Memory', 'latin1')) - 1;
  await expectCodeAsync(openImage(await put(edit(emb.stateBytes, (b) => b.writeBigUInt64LE(1n << 33n, memTag + 2 + 6 + 8)), 'e.vmsn')), 'E_TRUNCATED', BigInt(memTag));
  // ... or is compressed
  await expectCodeAsync(openImage(await put(edit(emb.stateBytes, (b) => (b[memTag] = (2 << 6) | 62)), 'c.vmsn')), 'E_UNSUPPORTED');
  // the file ends inside a tag
  const cut = tagValueAt(base.stateBytes, 'regionSize', 1);
  await expectCodeAsync(openImage(await put(base.stateBytes.subarray(0, cut + 2))), 'E_TRUNCATED');
  // detect: only the known magics with a sane group table
  const ok = base.stateBytes.subarray(0, 4096);
  assert.ok(vmware.detect(ok, BigInt(base.stateBytes.length)));
  assert.ok(!vmware.detect(edit(ok, (b) => b.writeUInt32LE(0xbed1bed1, 0)), BigInt(base.stateBytes.length)));
  assert.ok(!vmware.detect(edit(ok, (b) => b.writeUInt32LE(1 << 20, 8)), BigInt(base.stateBytes.length)));
  assert.ok(!vmware.detect(ok.subarray(0, 50), 50n));
  assert.ok(!vmware.detect(edit(ok, (b) => b.fill(0, 12, 13)), BigInt(base.stateBytes.length)));
  // --input-format vmware on something else
  const other = join(dir, 'other.bin');
  writeFileSync(other, Buffer.alloc(4096, 1));
  const file = await RandomAccessFile.open(other);
  try {
    await expectCodeAsync(vmware.open(file, { path: other }), 'E_UNKNOWN_FORMAT');
  } finally {
    await file.close();
  }
});

test('a multi-GiB .vmem is opened without reading it: memory stays flat', async (t) => {
  const dir = tempDir(t);
  const gib = 1n << 30n;
  const pages = (n: bigint): number => Number(n / 4096n);
  // 3 GiB below the hole and 3 GiB from 4 GiB: a 6 GiB sparse .vmem
  const f = buildVmware({ seed: 16, stateOnly: true, regions: [{ ppn: 0n, pageNum: 0n, pages: pages(3n * gib) }, { ppn: 0x100000n, pageNum: BigInt(pages(3n * gib)), pages: pages(3n * gib) }] });
  writeFileSync(join(dir, 'big.vmss'), f.stateBytes);
  const fd = openSync(join(dir, 'big.vmem'), 'w');
  ftruncateSync(fd, Number(6n * gib));
  const marker = Buffer.from('marker above 4 GiB');
  writeSync(fd, marker, 0, marker.length, Number(3n * gib + 12345n));
  closeSync(fd);
  const before = process.memoryUsage().rss;
  const img = await openImage(join(dir, 'big.vmem'));
  try {
    assert.deepEqual(img.runs, [
      { start: 0n, end: 3n * gib },
      { start: 4n * gib, end: 7n * gib },
    ]);
    assert.ok((await img.read(4n * gib + 12345n, marker.length)).equals(marker));
    assert.ok((await img.read(3n * gib - 4096n, 4096)).equals(Buffer.alloc(4096)));
  } finally {
    await img.close();
  }
  const grew = process.memoryUsage().rss - before;
  t.diagnostic(`RSS growth opening a 6 GiB .vmem: ${(grew / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(grew < 64 * 2 ** 20, `RSS grew ${grew} bytes`);
});

// ---------------------------------------------------------------------------------------------------------------
// Mutation fuzzing in the style of test/property/parser-fuzz.test.ts

test('fuzz VMware: mutated state files (and cut .vmem files) open and read, or fail with a format error code', async (t) => {
  const dir = tempDir(t, 'memdump-fuzz-vmware-');
  const bases = [
    buildVmware({ seed: 20 }),
    buildVmware({ seed: 21, embedded: true, magic: 0xbed2bed0 }),
    buildVmware({ seed: 22, regions: [{ ppn: 0x100000n, pageNum: 0n, pages: 3 }, { ppn: 1n, pageNum: 3n, pages: 4 }], cpus: 1 }),
  ];
  const counts = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), async (seed) => {
      const p = new Prng(seed);
      const base = bases[p.int(bases.length)]!;
      const { buf, steps } = mutateFields(base.stateBytes, base.fields, p);
      writeFileSync(join(dir, 'case.tmp'), buf);
      renameSync(join(dir, 'case.tmp'), join(dir, 'case.vmss'));
      const cutVmem = p.int(8) === 0;
      writeFileSync(join(dir, 'case.vmem'), cutVmem ? base.memory.subarray(0, p.int(base.memory.length)) : base.memory);
      const label = `vmware seed ${seed} [${steps.join(', ')}${cutVmem ? ', vmem cut' : ''}]`;
      const outcome = await classify(label, FORMAT_CODES, () => openAndReadAll(join(dir, 'case.vmss'), label));
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    }),
    { numRuns: 600, endOnFailure: true },
  );
  t.diagnostic(`vmware: ${[...counts].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.ok(counts.size >= 3, 'the mutations reached too few outcomes');
});

test('the truth banner sits above 4 GiB in the default fixture', () => {
  const f = buildVmware({ seed: 1 });
  assert.ok(f.data[1]!.includes(BANNER));
});

// ---------------------------------------------------------------------------------------------------------------
// Layout corner cases found in review (each failed against the first version of the reader); companions are tested
// in vmware-files.test.ts, the tag walk in vmware-tags.test.ts.

test('a region past the end of the .vmem says which byte it needs and how many the file has', async (t) => {
  const dir = tempDir(t);
  const f = writeVmware(dir, { seed: 52, name: 'cut' });
  writeFileSync(f.vmem!, f.memory.subarray(0, f.memory.length - 4096));
  const e = await expectCodeAsync(openImage(f.state), 'E_TRUNCATED', 0x28000n);
  assert.equal(e.message, `VMware memory region at physical 0x100000000 is stored up to byte 0x40000 of ${f.vmem}, which holds only ${f.memory.length - 4096} bytes at offset 0x28000`);
});

test('fileOffsetOf and firstAddressIn name the bytes in the .vmem or in the embedded Memory block', async (t) => {
  const dir = tempDir(t);
  const regions = [
    { ppn: 0x140000n, pageNum: 0n, pages: 8 },
    { ppn: 0n, pageNum: 8n, pages: 16 },
    { ppn: 0x100n, pageNum: 30n, pages: 5 }, // pages 24-29 of the .vmem belong to nothing
  ];
  for (const embedded of [false, true]) {
    const f = writeVmware(dir, { seed: 53, regions, embedded, name: embedded ? 'emb' : 'sep' });
    const file = readFileSync(embedded ? f.state : f.vmem!);
    const img = await openImage(f.state);
    try {
      for (const r of img.runs) {
        for (const a of [r.start, r.start + 17n, r.end - 1n]) {
          const off = img.fileOffsetOf!(a)!;
          assert.ok(file.subarray(Number(off), Number(off) + 1).equals(await img.read(a, 1)), `byte at ${a}`);
          assert.equal(img.firstAddressIn!(off, off + 1n), a);
        }
        assert.equal(img.fileOffsetOf!(r.end), r.end === 0x18000n ? undefined : img.fileOffsetOf!(r.end));
      }
      const base = embedded ? img.fileOffsetOf!(0x140000000n)! : 0n;
      assert.equal(img.fileOffsetOf!(0x10000n), undefined);
      assert.equal(img.firstAddressIn!(base + 24n * 4096n, base + 30n * 4096n), undefined);
      assert.equal(img.firstAddressIn!(base + 24n * 4096n, base + 30n * 4096n + 1n), 0x100000n);
      assert.equal(img.firstAddressIn!(base + 2n * 4096n + 5n, base + 40n * 4096n), 0n, 'the lowest address stored in the window');
      if (embedded) assert.equal(img.firstAddressIn!(0n, 12n), undefined, 'the header holds no memory');
    } finally {
      await img.close();
    }
  }
});

test('a Memory block whose two sizes differ is read as crash reads it (the smaller size), an empty in-memory size sends to the .vmem', async (t) => {
  const dir = tempDir(t);
  const mem = new Prng(54).bytes(8 * 4096);
  const put = (name: string, memSize: bigint, block = mem): string => {
    writeFileSync(join(dir, `${name}.vmsn`), stateFileOf([{ name: 'memory', tags: tagBytes({ name: 'Memory', indices: [0, 0], value: { block, pad: 5, memSize } }) }]));
    return join(dir, `${name}.vmsn`);
  };
  for (const [name, memSize, bytes] of [['more', 16n * 4096n, 8 * 4096], ['less', 4n * 4096n, 4 * 4096]] as const) {
    const d = await assertTruth(put(name, memSize), [{ start: 0n, end: BigInt(bytes) }], [mem.subarray(0, bytes)]);
    assert.equal(d['memoryIn'], 'embedded');
    assert.match(String(d['memoryBlockNote']), new RegExp(`32768 bytes on disk but ${memSize} in memory; the first ${bytes} are read`));
  }
  const p = put('zero', 0n, Buffer.alloc(4096, 7));
  writeFileSync(join(dir, 'zero.vmem'), mem);
  const d = await assertTruth(p, [{ start: 0n, end: BigInt(mem.length) }], [mem]);
  assert.equal(d['memoryIn'], 'vmem');
});
