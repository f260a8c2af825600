import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from '../core/errors.js';
import { contentHash } from '../pipeline/info.js';
import { openImage } from './registry.js';
import { decodeVBoxCoreDescriptor, elfProducer } from './vbox-core.js';
import { buildVBoxCore, writeVBoxCore } from '../../test/fixtures/vbox.js';
import { mutateFields, truthImage } from '../../test/fixtures/vmware.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCode } from '../../test/helpers/expect-code.js';
import { Prng } from '../../test/helpers/prng.js';
import { qemuBinary, referenceDump, startBareGuest } from '../../test/helpers/vm-qemu.js';

const FORMAT_CODES = new Set(['E_TRUNCATED', 'E_CORRUPT', 'E_TOO_LARGE', 'E_UNKNOWN_FORMAT', 'E_UNSUPPORTED']);

test('a VirtualBox core: runs and bytes equal the truth, details name VirtualBox with version, revision, CPUs', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'vbox.elf');
  const c = writeVBoxCore(path, { seed: 1, major: 7, minor: 0, build: 14, revision: 161095, cpus: 3 });
  const img = await openImage(path);
  try {
    assert.equal(img.format, 'elf');
    assert.deepEqual(img.runs, c.runs);
    assert.equal(img.runs[img.runs.length - 1]!.start, 0x100000000n);
    for (let i = 0; i < c.runs.length; i++) assert.ok((await img.read(c.runs[i]!.start, c.data[i]!.length)).equals(c.data[i]!), `run ${i}`);
    assert.equal(await contentHash(img), await contentHash(truthImage(c.runs, c.data)));
    const d = img.details;
    assert.equal(d['producer'], 'VirtualBox');
    assert.equal(d['version'], '7.0.14');
    assert.equal(d['revision'], 161095);
    assert.equal(d['cpus'], 3);
    assert.equal(d['coreFormatVersion'], '0x10006');
    assert.equal(d['producerProblem'], undefined);
    assert.deepEqual(d['noteNames'], ['VBCORE', 'VBCPU']);
    assert.equal(d['loadSegments'], 3); // the MMIO range VirtualBox lists without data is no run
    assert.equal(img.notes.filter((n) => n.name === 'VBCPU' && n.type === 0xb01).length, 3);
  } finally {
    await img.close();
  }
});

test('the descriptor decoder: fields, and coded errors for short, foreign or inconsistent descriptors', () => {
  const c = buildVBoxCore({ seed: 2, major: 6, minor: 1, build: 50, revision: 161033, cpus: 4, formatVersion: 0x10000 });
  const desc = c.bytes.subarray(c.descriptorAt, c.descriptorAt + 24);
  assert.deepEqual(decodeVBoxCoreDescriptor(desc), { formatVersion: 0x10000, major: 6, minor: 1, build: 50, version: '6.1.50', revision: 161033, cpus: 4 });
  expectCode(() => decodeVBoxCoreDescriptor(desc.subarray(0, 20)), 'E_TRUNCATED');
  const bad = Buffer.from(desc);
  bad.writeUInt32LE(0xdeadbeef, 0);
  // offsets count from the descriptor, which is not the file: they must not pose as file offsets
  const e0 = expectCode(() => decodeVBoxCoreDescriptor(bad), 'E_CORRUPT');
  assert.equal(e0.details['descriptorOffset'], '0x0');
  assert.equal(e0.details['offset'], undefined);
  assert.match(e0.message, /at descriptor offset 0x0$/);
  const self = Buffer.from(desc);
  self.writeUInt32LE(4096, 8);
  const e8 = expectCode(() => decodeVBoxCoreDescriptor(self), 'E_CORRUPT');
  assert.equal(e8.details['descriptorOffset'], '0x8');
  assert.equal(e8.details['offset'], undefined);
  const short = expectCode(() => decodeVBoxCoreDescriptor(desc.subarray(0, 20)), 'E_TRUNCATED');
  assert.equal(short.details['offset'], undefined);
  assert.match(short.message, /descriptor offset 0x14/);
});

test('a damaged descriptor or missing CPU notes do not stop the memory: reported as producerProblem', async (t) => {
  const dir = tempDir(t);
  const c = buildVBoxCore({ seed: 3, cpus: 2, cpuNotes: 1 });
  writeFileSync(join(dir, 'few.elf'), c.bytes);
  const few = await openImage(join(dir, 'few.elf'));
  assert.match(String(few.details['producerProblem']), /2 CPUs, file has 1 VBCPU/);
  await few.close();
  const b = Buffer.from(c.bytes);
  b.writeUInt32LE(0x12345678, c.descriptorAt);
  writeFileSync(join(dir, 'bad.elf'), b);
  const bad = await openImage(join(dir, 'bad.elf'));
  try {
    assert.equal(bad.details['producer'], 'VirtualBox');
    assert.match(String(bad.details['producerProblem']), /magic 0x12345678/);
    assert.match(String(bad.details['producerProblem']), /descriptor offset 0x0/);
    assert.doesNotMatch(String(bad.details['producerProblem']), /[^r] offset/);
    assert.deepEqual(bad.runs, c.runs);
  } finally {
    await bad.close();
  }
  // notes of nobody in particular: no producer
  assert.deepEqual(elfProducer([{ name: 'VMCOREINFO', type: 0, desc: Buffer.from('OSRELEASE=6.1\n') }, { name: 'CORE', type: 1, desc: Buffer.alloc(336) }]), {});
});

test('QEMU dump-guest-memory of a 2-CPU machine: producer QEMU, 2 CPUs (real qemu-system-x86_64)', { skip: qemuBinary ? false : 'qemu-system-x86_64 not installed', timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 32, paused: true, extraArgs: ['-smp', '2'] });
  const dump = join(dir, 'qemu.elf');
  await referenceDump(g, dump);
  const img = await openImage(dump);
  try {
    assert.equal(img.details['producer'], 'QEMU');
    assert.equal(img.details['cpus'], 2);
    assert.equal(img.details['qemuCpuStateVersion'], 1);
  } finally {
    await img.close();
  }
});

test('fuzz: mutated VirtualBox cores open and read or fail with a format code; details always serialise; the decoder throws only coded errors', async (t) => {
  const dir = tempDir(t, 'memdump-fuzz-vbox-');
  const bases = [buildVBoxCore({ seed: 4, cpus: 1, ranges: [{ start: 0n, size: 0x3000 }, { start: 0x5000n, size: 0x1000, mmio: true }, { start: 0x100000000n, size: 0x2000 }] }), buildVBoxCore({ seed: 5, cpus: 2, ranges: [{ start: 0x1000n, size: 0x4000 }] })];
  const counts = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), async (seed) => {
      const p = new Prng(seed);
      const base = bases[p.int(bases.length)]!;
      const { buf, steps } = mutateFields(base.bytes, base.fields, p);
      const path = join(dir, 'case.elf');
      writeFileSync(path, buf);
      const label = `vbox seed ${seed} [${steps.join(', ')}]`;
      try {
        const img = await openImage(path);
        try {
          JSON.stringify(img.details);
          for (const r of img.runs) for (let a = r.start; a < r.end; a += 0x10000n) await img.read(a, Number(r.end - a < 0x10000n ? r.end - a : 0x10000n));
        } finally {
          await img.close();
        }
        counts.set('ok', (counts.get('ok') ?? 0) + 1);
      } catch (e) {
        if (!(e instanceof MemdumpError) || !FORMAT_CODES.has(e.code)) throw new Error(`${label}: unacceptable outcome: ${e instanceof Error ? e.stack : String(e)}`);
        counts.set(e.code, (counts.get(e.code) ?? 0) + 1);
      }
    }),
    { numRuns: 400, endOnFailure: true },
  );
  t.diagnostic(`vbox: ${[...counts].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.ok(counts.size >= 2);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        decodeVBoxCoreDescriptor(Buffer.from(bytes));
      } catch (e) {
        assert.ok(e instanceof MemdumpError && (e.code === 'E_CORRUPT' || e.code === 'E_TRUNCATED'), String(e));
      }
      const d = elfProducer([{ name: 'VBCORE', type: 0xb00, desc: Buffer.from(bytes) }]);
      assert.equal(d['producer'], 'VirtualBox');
    }),
    { numRuns: 2000 },
  );
});
