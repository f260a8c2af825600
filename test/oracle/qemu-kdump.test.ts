/**
 * The kdump reader on real third-party files: a paused 64 MiB QEMU machine (no kernel needed) dumped with
 * dump-guest-memory as ELF and as every kdump-* format query-dump-guest-memory-capability lists (QEMU 7.2 on
 * Debian 12 is built with zlib only: kdump-lzo and kdump-snappy are "not available", and are reported skipped).
 * Each kdump must hold exactly the ELF's memory (content hash) and notes, survive `convert --to lime` and
 * `--to elf`, and our virtual reassembly of QEMU's flattened stream must equal what makedumpfile -R writes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RandomAccessFile } from '../../src/core/file.js';
import { type Range, normalize } from '../../src/core/ranges.js';
import { encodeNote } from '../../src/formats/elf-parse.js';
import { elfCoreHeader } from '../../src/formats/elf.js';
import { isFlattened, openFlattened } from '../../src/formats/kdump-flat.js';
import { openImage } from '../../src/formats/registry.js';
import type { MemoryImage } from '../../src/formats/types.js';
import { contentHash } from '../../src/pipeline/info.js';
import { pageContent } from '../fixtures/kdump.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { findExecutable } from '../helpers/qemu-guest.js';
import { startBareGuest } from '../helpers/vm-qemu.js';

const qemu = findExecutable('qemu-system-x86_64');
const makedumpfile = findExecutable('makedumpfile');
const KDUMP_FORMATS = ['kdump-zlib', 'kdump-lzo', 'kdump-snappy'];
const BLOB_AT = 0x1000000;
const BLOB_PAGES = 4096;

async function hashOf(path: string): Promise<{ hash: string; notes: string[]; runs: string }> {
  const img = await openImage(path);
  try {
    return { hash: await contentHash(img), notes: img.notes.map((n) => `${n.name}/${n.type}/${n.desc.toString('hex')}`), runs: JSON.stringify(normalize(img.runs), (_, v) => (typeof v === 'bigint' ? v.toString(16) : v)) };
  } finally {
    await img.close();
  }
}

test('QEMU dump-guest-memory kdump formats read as the same memory as its ELF dump', { skip: qemu ? false : 'qemu-system-x86_64 not installed', timeout: 300_000 }, async (t) => {
  const dir = tempDir(t, 'memdump-qemu-kdump-');
  // seeded pages (random, text, repeated, zero) loaded into guest RAM, so the dumps hold more than zeros
  const blob = join(dir, 'blob.bin');
  const pages = Array.from({ length: BLOB_PAGES }, (_, i) => pageContent(0x51, i, 4096));
  writeFileSync(blob, Buffer.concat(pages));
  const g = await startBareGuest(t, dir, { memMiB: 64, paused: true, extraArgs: ['-device', `loader,file=${blob},addr=${BLOB_AT},force-raw=on`] });
  const qmp = await g.qmp();
  const caps = await qmp.execute<{ formats: string[] }>('query-dump-guest-memory-capability');
  const elf = join(dir, 'qemu.elf');
  await qmp.execute('dump-guest-memory', { paging: false, protocol: `file:${elf}`, format: 'elf' }, 300_000);
  const dumps: string[] = [];
  for (const f of KDUMP_FORMATS) {
    if (!caps.formats.includes(f)) {
      t.diagnostic(`${f}: not offered by this QEMU (capabilities: ${caps.formats.join(', ')})`);
      continue;
    }
    const out = join(dir, `qemu.${f}`);
    await qmp.execute('dump-guest-memory', { paging: false, protocol: `file:${out}`, format: f }, 300_000);
    dumps.push(out);
  }
  qmp.close();
  assert.ok(dumps.length > 0, 'QEMU offered no kdump format');

  const want = await hashOf(elf);
  for (const dump of dumps) {
    const r = await runCli(['info', dump, '--json', '--content-hash']);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout.toString());
    assert.equal(info.format, 'kdump');
    assert.equal(info.details.flattened, true, 'QEMU 7.2 writes kdump flattened');
    assert.equal(info.details.blockSize, 4096);
    assert.equal(info.details.incomplete, false);
    assert.equal(info.contentSha256, want.hash, `${dump}: content hash differs from the ELF dump's`);
    assert.ok(BigInt(info.ranges.totalBytes) >= 64n << 20n); // RAM, plus the BIOS ROM QEMU dumps too
    const img = await openImage(dump);
    try {
      const b = await img.read(BigInt(BLOB_AT), BLOB_PAGES * 4096);
      for (let i = 0; i < BLOB_PAGES; i++) assert.ok(b.subarray(i * 4096, (i + 1) * 4096).equals(pages[i]!), `guest page ${i} of the loaded blob`);
    } finally {
      await img.close();
    }
    const got = await hashOf(dump);
    assert.equal(got.runs, want.runs, 'same physical layout');
    assert.deepEqual(got.notes, want.notes, 'same notes (CPU state)');
    t.diagnostic(`${dump}: ${info.fileSize} bytes, ${info.details.flattenedRecords} records, pages ${info.details.pageCompressionSeen}`);

    for (const to of ['lime', 'elf']) {
      const out = join(dir, `${to}-of-${dump.split('.').pop()}.${to}`);
      const c = await runCli(['convert', dump, out, '--to', to, '-q', '--json']);
      assert.equal(c.code, 0, c.stderr);
      const conv = await hashOf(out);
      assert.equal(conv.hash, want.hash, `content hash after convert --to ${to}`);
      if (to === 'elf') assert.deepEqual(conv.notes, want.notes, 'notes carried into the ELF');
    }

    if (makedumpfile) {
      // makedumpfile -R rebuilds the plain file: our virtual reassembly must equal it, and it must read the same
      const plain = join(dir, 'rebuilt.kdump');
      const fd = openSync(dump, 'r');
      const rr = spawnSync(makedumpfile, ['-R', plain], { stdio: [fd, 'pipe', 'pipe'] });
      closeSync(fd);
      assert.equal(rr.status, 0, rr.stderr.toString());
      const rebuilt = readFileSync(plain);
      assert.ok(!isFlattened(rebuilt));
      const f = await RandomAccessFile.open(dump);
      try {
        const virt = await openFlattened(f);
        assert.equal(virt.size, BigInt(rebuilt.length));
        assert.ok((await virt.read(0n, rebuilt.length, 'all')).equals(rebuilt), 'reassembly equals makedumpfile -R');
      } finally {
        await f.close();
      }
      const p = await hashOf(plain);
      assert.equal(p.hash, want.hash, 'plain (makedumpfile -R) kdump reads the same');
    } else {
      t.diagnostic('makedumpfile not installed: reassembly not compared with makedumpfile -R');
    }
  }
});

/**
 * makedumpfile itself as the writer: it reads an ELF vmcore (ours, built here) and writes kdump-compressed files,
 * LZO (-l) and zlib (-c), plain and flattened (-F) — the LZO path QEMU 7.2 on Debian cannot produce. makedumpfile
 * needs a little kernel to believe in: a VMCOREINFO note naming init_uts_ns, init_top_pgt and mem_map, a utsname
 * and page tables (PML4 -> PDPT -> 2 MiB pages) for the kernel mapping, all placed in the first pages of memory.
 * Dump level 0 and 1 need no struct page data; level 1 turns zero pages into one shared zero page.
 */
async function oracleElf(dir: string): Promise<{ elf: string; vmcoreinfo: string; high: Buffer }> {
  const KERNEL_MAP = 0xffffffff80000000n;
  const low = Buffer.concat(Array.from({ length: 6144 }, (_, i) => pageContent(0x77, i, 4096))); // 24 MiB
  const high = Buffer.concat(Array.from({ length: 256 }, (_, i) => pageContent(0x78, i, 4096))); // 1 MiB at 256 MiB
  const UTS = 0x100000;
  const PML4 = 0x102000;
  Buffer.concat(['Linux', 'makedumpfile-oracle', '6.1.0-oracle', '#1 SMP', 'x86_64', '(none)'].map((s) => Buffer.from(s.padEnd(65, '\0'), 'latin1'))).copy(low, UTS);
  low.fill(0, UTS + 0x1000, PML4 + 0x3000);
  low.writeBigUInt64LE(0xffffea0000000000n, UTS + 0x1000); // what mem_map points at (never read at levels 0-1)
  low.writeBigUInt64LE(BigInt(PML4 + 0x1000) | 3n, PML4 + 511 * 8);
  low.writeBigUInt64LE(BigInt(PML4 + 0x2000) | 3n, PML4 + 0x1000 + 510 * 8);
  for (let i = 0; i < 64; i++) low.writeBigUInt64LE((BigInt(i) << 21n) | 0x83n, PML4 + 0x2000 + i * 8);
  const vmcoreinfo = [
    'OSRELEASE=6.1.0-oracle',
    'PAGESIZE=4096',
    `SYMBOL(_stext)=${(KERNEL_MAP + 0x1000000n).toString(16)}`,
    `SYMBOL(init_uts_ns)=${(KERNEL_MAP + BigInt(UTS)).toString(16)}`,
    `SYMBOL(mem_map)=${(KERNEL_MAP + BigInt(UTS + 0x1000)).toString(16)}`,
    `SYMBOL(init_top_pgt)=${(KERNEL_MAP + BigInt(PML4)).toString(16)}`,
    'OFFSET(uts_namespace.name)=0',
    'SIZE(uts_namespace)=400',
    'SIZE(page)=64',
    'OFFSET(page.flags)=0',
    'OFFSET(page._refcount)=52',
    'OFFSET(page.mapping)=24',
    'OFFSET(page.lru)=8',
    'OFFSET(page.private)=40',
    '',
  ].join('\n');
  const notes = encodeNote({ name: 'VMCOREINFO', type: 0, desc: Buffer.from(vmcoreinfo) });
  const segments = [
    { vaddr: KERNEL_MAP, paddr: 0n, filesz: BigInt(low.length), memsz: BigInt(low.length), flags: 7, align: 0n },
    { vaddr: 0n, paddr: 0x10000000n, filesz: BigInt(high.length), memsz: BigInt(high.length), flags: 7, align: 0n },
  ];
  const elf = join(dir, 'vmcore.elf');
  writeFileSync(elf, Buffer.concat([elfCoreHeader(segments, notes).header, low, high]));
  return { elf, vmcoreinfo, high };
}

/** Run makedumpfile; with -F its stream goes to `out` through stdout. */
function runMakedumpfile(args: string[], elf: string, out: string): void {
  const flat = args.includes('-F');
  const fd = flat ? openSync(out, 'w') : undefined;
  const r = spawnSync(makedumpfile!, [...args, elf, ...(flat ? [] : [out])], { stdio: ['ignore', fd ?? 'pipe', 'pipe'] });
  if (fd !== undefined) closeSync(fd);
  assert.equal(r.status, 0, `makedumpfile ${args.join(' ')}: ${r.stderr.toString()}`);
}

/** Every byte of every run of `path` equals the ELF's bytes at that address; returns the pages compared. */
async function sameAsElf(path: string, elf: MemoryImage): Promise<number> {
  const img = await openImage(path);
  let pages = 0;
  try {
    for (const r of img.runs) {
      for (let a = r.start; a < r.end; a += 1n << 20n) {
        const n = Number(r.end - a < 1n << 20n ? r.end - a : 1n << 20n);
        assert.ok((await img.read(a, n)).equals(await elf.read(a, n)), `${path}: bytes at ${a.toString(16)} differ from the ELF's`);
        pages += n / 4096;
      }
    }
  } finally {
    await img.close();
  }
  return pages;
}

test('makedumpfile -l / -c (plain and -F) dumps read as the same memory, with VMCOREINFO', { skip: makedumpfile ? false : 'makedumpfile not installed', timeout: 300_000 }, async (t) => {
  const dir = tempDir(t, 'memdump-makedumpfile-');
  const { elf, vmcoreinfo, high } = await oracleElf(dir);
  const want = await hashOf(elf);

  for (const args of [['-l', '-d', '0'], ['-c', '-d', '0'], ['-l', '-d', '1'], ['-F', '-l', '-d', '0'], ['-F', '-c', '-d', '1']]) {
    const out = join(dir, `md${args.join('')}.kdump`);
    const flat = args.includes('-F');
    runMakedumpfile(args, elf, out);
    const info = JSON.parse((await runCli(['info', out, '--json', '--content-hash'])).stdout.toString());
    assert.equal(info.format, 'kdump');
    assert.equal(info.details.flattened, flat);
    assert.equal(info.details.release, '6.1.0-oracle', 'utsname in the header is what makedumpfile read from memory');
    assert.equal(info.details.dumpLevel, Number(args[args.length - 1]));
    assert.deepEqual(info.details.status, [args.includes('-l') ? 'lzo' : 'zlib']);
    assert.equal(info.contentSha256, want.hash, `makedumpfile ${args.join(' ')}: content hash differs from the ELF's`);
    const got = await hashOf(out);
    assert.equal(got.runs, want.runs);
    const img = await openImage(out);
    try {
      assert.equal(img.notes.find((n) => n.name === 'VMCOREINFO')?.desc.toString(), vmcoreinfo);
      assert.ok((await img.read(0x10000000n, high.length)).equals(high));
    } finally {
      await img.close();
    }
    t.diagnostic(`makedumpfile ${args.join(' ')}: ${info.fileSize} bytes, pages ${info.details.pageCompressionSeen}`);
  }
});

/**
 * makedumpfile -F on a full disk leaves a stream that stops mid-record, with no end record and a header that does
 * not say "incomplete". Cut real streams where a full disk would (at 2 MiB, inside a record, just before the end
 * record): each must open, say it is incomplete, and every page it still offers must be the ELF's.
 */
test('makedumpfile -F streams cut short open as incomplete dumps whose pages are all right', { skip: makedumpfile ? false : 'makedumpfile not installed', timeout: 300_000 }, async (t) => {
  const dir = tempDir(t, 'memdump-md-cut-');
  const { elf } = await oracleElf(dir);
  const elfImg = await openImage(elf);
  t.after(() => void elfImg.close());
  const totalPages = Number(elfImg.runs.reduce((n, r) => n + (r.end - r.start), 0n) / 4096n);
  for (const args of [['-F', '-c', '-d', '0'], ['-F', '-l', '-d', '1']]) {
    const full = join(dir, `full${args.join('')}.flat`);
    runMakedumpfile(args, elf, full);
    const stream = readFileSync(full);
    const fullImg = await openImage(full);
    const dumped = fullImg.details['dumpedPages'] as number;
    await fullImg.close();
    for (const cut of [2 << 20, Math.floor(stream.length * 0.6) + 7, stream.length - 16]) {
      const path = join(dir, `cut-${cut}${args.join('')}.flat`);
      writeFileSync(path, stream.subarray(0, cut));
      const r = await runCli(['info', path, '--json']);
      assert.equal(r.code, 0, `${path}: ${r.stderr}`);
      const info = JSON.parse(r.stdout.toString());
      assert.equal(info.details.incomplete, true);
      assert.match(info.details.warning, /INCOMPLETE DUMP.*without its end record/);
      assert.ok(info.details.flattenedTruncated, JSON.stringify(info.details));
      const pages = await sameAsElf(path, elfImg);
      const missing = (info.details.missingPages ?? 0) as number;
      assert.equal(pages + missing, dumped, `${path}: pages offered + missing = pages dumped`);
      if (cut === stream.length - 16) assert.equal(pages, totalPages, 'only the end record missing: every page is there');
      else assert.ok(pages > 0 && missing > 0, `${path}: ${pages} pages kept, ${missing} missing`);
      t.diagnostic(`makedumpfile ${args.join(' ')} cut at ${cut} of ${stream.length}: ${pages} pages kept, ${missing} missing`);
    }
  }
});

/**
 * makedumpfile --split writes one slice per file. With the default split block the whole 25 MiB lands in the first
 * slice and the others are empty 28 KiB files that end right after an unpadded 2nd bitmap; with 1 MiB split
 * blocks every slice holds pages. Every file must open, say which slice it is, and the slices together must be
 * exactly the ELF's memory.
 */
test('makedumpfile --split slices (empty ones too) open, name their slice, and together equal the ELF', { skip: makedumpfile ? false : 'makedumpfile not installed', timeout: 300_000 }, async (t) => {
  const dir = tempDir(t, 'memdump-md-split-');
  const { elf } = await oracleElf(dir);
  const elfImg = await openImage(elf);
  t.after(() => void elfImg.close());
  for (const args of [['--split', '-l', '-d', '0'], ['--split', '--splitblock-size', '1024', '-c', '-d', '1']]) {
    const outs = [1, 2, 3].map((i) => join(dir, `split${args.join('')}.${i}`));
    const r = spawnSync(makedumpfile!, [...args, elf, ...outs], { stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(r.status, 0, r.stderr.toString());
    let [union, lastEnd]: [Range[], string] = [[], '0x0'];
    for (const out of outs) {
      const img = await openImage(out);
      try {
        const split = img.details['split'] as { startPfn: string; endPfn: string };
        assert.equal(split.startPfn, lastEnd, 'slices follow each other');
        lastEnd = split.endPfn;
        assert.match(String(img.details['warning']), /SPLIT DUMP.*one slice/);
        for (const run of img.runs) {
          assert.ok(run.start >= BigInt(split.startPfn) * 4096n && run.end <= BigInt(split.endPfn) * 4096n, 'runs inside the slice');
        }
        union.push(...img.runs);
        t.diagnostic(`${args.join(' ')} ${out}: ${statSync(out).size} bytes, slice ${split.startPfn}-${split.endPfn}, ${img.details['dumpedPages']} pages`);
      } finally {
        await img.close();
      }
      await sameAsElf(out, elfImg);
    }
    assert.deepEqual(normalize(union), normalize(elfImg.runs), 'the slices together hold the ELF memory');
  }
  assert.ok([1, 2, 3].some((i) => statSync(join(dir, `split--split-l-d0.${i}`)).size < 64 << 10), 'the default split left an empty slice');
});
