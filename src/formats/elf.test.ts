import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { sparseImage } from '../../test/fixtures/generate.js';
import { tempDir } from '../../test/helpers/cli.js';
import { writeWith } from '../../test/helpers/job.js';
import { MemorySink } from '../../test/helpers/memory-sink.js';
import { MemorySource } from '../../test/helpers/memory-source.js';
import type { Range } from '../core/ranges.js';
import { elf, elfHeader } from './elf.js';
import { openImage } from './registry.js';
import type { ImageNote, WritePlan } from './types.js';

const VMCOREINFO: ImageNote = { name: 'VMCOREINFO', type: 0, desc: Buffer.from('OSRELEASE=6.1.0\nPAGESIZE=4096\n') };
const hasReadelf = !spawnSync('readelf', ['--version']).error;
const NO_READELF = 'readelf (binutils) is not installed';

function readelf(args: string[]): string {
  return execFileSync('readelf', args, { encoding: 'utf8', maxBuffer: 256 << 20 });
}

/** LOAD lines of `readelf -lW`: [offset, paddr, filesz, memsz]. */
function readelfLoads(out: string): { offset: bigint; vaddr: bigint; paddr: bigint; filesz: bigint; memsz: bigint }[] {
  const rows = [];
  for (const line of out.split('\n')) {
    const m = /^\s+LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)/.exec(line);
    if (m) rows.push({ offset: BigInt(m[1]!), vaddr: BigInt(m[2]!), paddr: BigInt(m[3]!), filesz: BigInt(m[4]!), memsz: BigInt(m[5]!) });
  }
  return rows;
}

test('golden: elfHeader for 2 runs and a VMCOREINFO note is byte-exact (QEMU dump-guest-memory layout)', () => {
  const plan: WritePlan = {
    runs: [
      { start: 0x1000n, end: 0x9fc00n },
      { start: 0x100000n, end: 0x180000n },
    ],
    notes: [VMCOREINFO],
  };
  const { header, dataOffsets } = elfHeader(plan);

  // The expected bytes, built field by field from the ELF64 spec (not from src/).
  const noteOff = 64 + 3 * 56; // 232
  const note = Buffer.concat([
    Buffer.from('0b000000' + '1e000000' + '00000000', 'hex'), // namesz 11 ("VMCOREINFO\0"), descsz 30, type 0
    Buffer.from('VMCOREINFO\0\0', 'latin1'), // name padded to 4
    Buffer.from('OSRELEASE=6.1.0\nPAGESIZE=4096\n\0\0', 'latin1'), // desc padded to 4
  ]);
  assert.equal(note.length, 56);
  const want = Buffer.alloc(4096);
  Buffer.from('7f454c46020101000000000000000000', 'hex').copy(want, 0); // e_ident: ELFCLASS64, LSB, EV_CURRENT
  want.writeUInt16LE(4, 16); // ET_CORE
  want.writeUInt16LE(62, 18); // EM_X86_64
  want.writeUInt32LE(1, 20);
  want.writeBigUInt64LE(64n, 32); // e_phoff
  want.writeUInt16LE(64, 52); // e_ehsize
  want.writeUInt16LE(56, 54); // e_phentsize
  want.writeUInt16LE(3, 56); // e_phnum
  const ph = (i: number, type: number, flags: number, off: bigint, paddr: bigint, size: bigint) => {
    const o = 64 + i * 56;
    want.writeUInt32LE(type, o);
    want.writeUInt32LE(flags, o + 4);
    want.writeBigUInt64LE(off, o + 8);
    want.writeBigUInt64LE(0n, o + 16);
    want.writeBigUInt64LE(paddr, o + 24);
    want.writeBigUInt64LE(size, o + 32);
    want.writeBigUInt64LE(size, o + 40);
  };
  ph(0, 4, 0, BigInt(noteOff), 0n, 56n);
  ph(1, 1, 7, 4096n, 0x1000n, 0x9ec00n);
  ph(2, 1, 7, 4096n + 0x9ec00n, 0x100000n, 0x80000n);
  note.copy(want, noteOff);

  // field by field first, for readable failures
  assert.deepEqual(header.subarray(0, 16), want.subarray(0, 16), 'e_ident');
  assert.equal(header.readUInt16LE(16), 4, 'e_type ET_CORE');
  assert.equal(header.readUInt16LE(18), 62, 'e_machine EM_X86_64');
  assert.equal(header.readBigUInt64LE(32), 64n, 'e_phoff');
  assert.equal(header.readBigUInt64LE(40), 0n, 'e_shoff (no sections below PN_XNUM)');
  assert.equal(header.readUInt16LE(54), 56, 'e_phentsize');
  assert.equal(header.readUInt16LE(56), 3, 'e_phnum');
  assert.equal(header.readUInt32LE(64), 4, 'PT_NOTE first');
  assert.equal(header.readBigUInt64LE(64 + 8), BigInt(noteOff), 'note offset right after the program headers');
  assert.equal(header.readBigUInt64LE(64 + 32), 56n, 'note p_filesz');
  let prev = -1n;
  for (let i = 1; i <= 2; i++) {
    const o = 64 + i * 56;
    assert.equal(header.readUInt32LE(o), 1, `phdr ${i} is PT_LOAD`);
    const paddr = header.readBigUInt64LE(o + 24);
    assert.ok(paddr > prev, 'PT_LOADs in ascending p_paddr');
    prev = paddr;
    assert.equal(paddr, plan.runs[i - 1]!.start);
    assert.equal(header.readBigUInt64LE(o + 32), header.readBigUInt64LE(o + 40), 'p_filesz == p_memsz');
    assert.equal(header.readBigUInt64LE(o + 32), plan.runs[i - 1]!.end - plan.runs[i - 1]!.start);
  }
  assert.equal(header.readBigUInt64LE(64 + 56 + 8) % 4096n, 0n, 'data page-aligned');
  assert.deepEqual(dataOffsets, [4096n, 4096n + 0x9ec00n]);
  // then every byte
  assert.equal(header.length, 4096);
  assert.ok(header.equals(want), 'header bytes differ from the golden layout');
});

test('golden: without notes there is no PT_NOTE and the PT_LOADs start at phdr 0', () => {
  const { header, dataOffsets } = elfHeader({ runs: [{ start: 0x2000n, end: 0x3000n }], notes: [] });
  assert.equal(header.readUInt16LE(56), 1);
  assert.equal(header.readUInt32LE(64), 1);
  assert.equal(header.readBigUInt64LE(64 + 8), 4096n);
  assert.deepEqual(dataOffsets, [4096n]);
  assert.equal(header.length, 4096);
});

test('oracle: readelf lists the same LOAD segments (PhysAddr, FileSiz) and the VMCOREINFO note as we wrote', { skip: hasReadelf ? false : NO_READELF }, async (t) => {
  const dir = tempDir(t);
  for (const seed of [3, 77, 4242]) {
    const img = sparseImage(seed, { maxRuns: 6, maxRunBytes: 100_000 });
    const { path, result } = await writeWith(new MemorySource(img, [VMCOREINFO]), 'elf', dir, `x${seed}.elf`);
    assert.equal(result.report.status, 'COMPLETE');
    const file = readFileSync(path);

    const loads = readelfLoads(readelf(['-lW', path]));
    assert.equal(loads.length, img.runs.length, `seed ${seed}: LOAD count`);
    loads.forEach((l, i) => {
      const r = img.runs[i]!;
      assert.equal(l.paddr, r.start, `seed ${seed} LOAD ${i} PhysAddr`);
      assert.equal(l.filesz, r.end - r.start, `seed ${seed} LOAD ${i} FileSiz`);
      assert.equal(l.memsz, l.filesz);
      if (i === 0) assert.equal(l.offset % 4096n, 0n, 'first LOAD page-aligned');
      // the bytes readelf says are there are the run's bytes
      const at = Number(l.offset);
      assert.ok(file.subarray(at, at + Number(l.filesz)).equals(img.data[i]!), `seed ${seed} LOAD ${i} data`);
    });

    const notes = readelf(['-nW', path]);
    assert.match(notes, /VMCOREINFO\s+0x0*1e\b/, `seed ${seed}: readelf -n shows VMCOREINFO with 30 bytes:\n${notes}`);
    assert.match(readelf(['-hW', path]), /Type:\s+CORE/);

    const ours = await openImage(path);
    try {
      assert.deepEqual(ours.runs, img.runs);
      assert.deepEqual(ours.notes.map((n) => [n.name, n.type, n.desc.toString()]), [['VMCOREINFO', 0, VMCOREINFO.desc.toString()]]);
    } finally {
      await ours.close();
    }
  }
});

test('PN_XNUM: 70,000 runs give e_phnum 0xffff with the real count in section header 0; readelf and our reader agree', async (t) => {
  const N = 70_000;
  const runs: Range[] = [];
  for (let i = 0; i < N; i++) runs.push({ start: BigInt(2 * i), end: BigInt(2 * i + 1) });
  const plan: WritePlan = { runs, notes: [VMCOREINFO] };
  const sink = new MemorySink();
  const w = elf.createWriter(sink, plan);
  const byte = (i: number) => (i * 7 + 1) & 0xff;
  await w.begin();
  for (let i = 0; i < N; i++) {
    await w.beginRange(runs[i]!);
    await w.data(Buffer.from([byte(i)]));
    await w.endRange();
  }
  await w.end();
  const b = sink.bytes;
  const phnum = N + 1; // the PT_NOTE too

  assert.equal(b.readUInt16LE(56), 0xffff, 'e_phnum = PN_XNUM');
  const shoff = b.readBigUInt64LE(40);
  assert.notEqual(shoff, 0n, 'e_shoff points at section header 0');
  assert.equal(b.readUInt16LE(58), 64, 'e_shentsize');
  assert.equal(b.readUInt16LE(60), 1, 'e_shnum');
  const sh = Number(shoff);
  assert.ok(sh + 64 <= b.length);
  assert.equal(b.readUInt32LE(sh + 44), phnum, 'sh_info of section 0 = real program header count');
  assert.equal(b.readUInt32LE(sh + 4), 0, 'section 0 is SHT_NULL');
  assert.ok(sh >= 64 + phnum * 56, 'section header after the program headers');
  const firstLoad = 64 + 56;
  assert.equal(b.readUInt32LE(firstLoad), 1);
  const dataAt = Number(b.readBigUInt64LE(firstLoad + 8));
  assert.equal(dataAt % 4096, 0);
  assert.equal(b.length, dataAt + N);

  const dir = tempDir(t);
  const path = join(dir, 'xnum.elf');
  writeFileSync(path, b);

  if (hasReadelf) {
    const h = readelf(['-hW', path]);
    const m = /Number of program headers:\s+(\d+)(?:\s+\((\d+)\))?/.exec(h);
    assert.ok(m, h);
    assert.equal(Number(m[2] ?? m[1]), phnum, `readelf -h: ${m[0]}`);
    const loads = readelfLoads(readelf(['-lW', path]));
    assert.equal(loads.length, N, 'readelf -l lists every LOAD');
    assert.equal(loads[0]!.paddr, 0n);
    assert.equal(loads[N - 1]!.paddr, BigInt(2 * (N - 1)));
    assert.equal(loads[N - 1]!.offset, BigInt(dataAt + N - 1));
  } else {
    t.diagnostic(`readelf checks skipped: ${NO_READELF}`);
  }

  const img = await openImage(path);
  try {
    assert.equal(img.format, 'elf');
    assert.equal(img.runs.length, N);
    assert.deepEqual(img.runs[N - 1], runs[N - 1]);
    for (const i of [0, 1, 12_345, 65_534, 65_535, N - 1]) assert.deepEqual(await img.read(BigInt(2 * i), 1), Buffer.from([byte(i)]), `run ${i}`);
    assert.equal(img.notes[0]?.name, 'VMCOREINFO');
  } finally {
    await img.close();
  }
});
