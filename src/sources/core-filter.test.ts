import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isMemdumpError } from '../core/errors.js';
import { type CoreSelection, DEFAULT_COREDUMP_FILTER, elfHeaderCandidates, parseCoredumpFilter, selectForCore } from './core-filter.js';
import { type Mapping, isAnonymousLike, parseMaps, parseSmaps } from './maps.js';

const CAPTURES = new URL('../../../test/fixtures/captures/', import.meta.url);
const capture = (name: string) => readFileSync(new URL(name, CAPTURES), 'utf8');
const PAGE = 4096n;
const ELF_FILES = /\/(sleep|memdump-mapper|libc\.so\.6|ld-linux-x86-64\.so\.2)$/;

/** What the caller would find by reading 4 bytes: checked against /proc/PID/map_files when the captures were made. */
function elfStarts(ms: readonly Mapping[]): Set<bigint> {
  return new Set(elfHeaderCandidates(ms).filter((m) => ELF_FILES.test(m.path)).map((m) => m.start));
}

function select(ms: readonly Mapping[], filter = DEFAULT_COREDUMP_FILTER, all = false, pageSize = PAGE): CoreSelection[] {
  return selectForCore(ms, { filter, all, pageSize, elfHeaderAt: elfStarts(ms) });
}

function at(sel: readonly CoreSelection[], start: bigint): CoreSelection {
  const s = sel.find((x) => x.mapping.start === start);
  assert.ok(s, `no mapping at 0x${start.toString(16)}`);
  return s;
}

/** vaddr -> p_filesz from the kernel's own core of the captured process. */
function kernelLoads(name: string): Map<bigint, bigint> {
  const out = new Map<bigint, bigint>();
  for (const line of capture(name).split('\n')) {
    const m = /^\s*LOAD\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)/.exec(line);
    if (m) out.set(BigInt(m[1]!), BigInt(m[2]!));
  }
  return out;
}

/** Where userland must differ from the kernel: it always dumps [vvar]/[vvar_vclock]/[vsyscall], we cannot read them. */
const UNREADABLE_FROM_USERLAND = new Set(['[vvar]', '[vvar_vclock]', '[vsyscall]']);

for (const name of ['sleep', 'mapper']) {
  test(`${name} capture: the selection equals the kernel's own core (p_filesz per PT_LOAD) except [vvar]/[vsyscall]`, () => {
    const ms = parseSmaps(capture(`${name}-debian12-6.18.smaps`));
    const kernel = kernelLoads(`${name}-debian12-6.18.core-loads`);
    const sel = select(ms);
    assert.equal(kernel.size, ms.length, 'one PT_LOAD per mapping');
    assert.deepEqual(sel.map((s) => s.mapping.start), [...kernel.keys()], 'same mappings, address order');
    for (const s of sel) {
      // by design we also dump private memfd/deleted-file mappings whole (the kernel treats them as file private)
      const m = s.mapping;
      const countedAnon = !m.shared && isAnonymousLike(m) && m.path !== '' && !m.path.startsWith('[') && m.read;
      const want = UNREADABLE_FROM_USERLAND.has(m.path) ? 0n : countedAnon ? m.end - m.start : kernel.get(m.start);
      assert.equal(s.dumpBytes, want, `0x${s.mapping.start.toString(16)} ${s.mapping.perms} ${s.mapping.path}: ${s.reason}`);
    }
  });
}

test('sleep capture, default filter 0x33: concrete entries and reasons', () => {
  const sel = select(parseSmaps(capture('sleep-debian12-6.18.smaps')));
  const expect = (start: bigint, bytes: bigint, reason: RegExp) => {
    const s = at(sel, start);
    assert.equal(s.dumpBytes, bytes, `0x${start.toString(16)} ${s.mapping.path}: ${s.reason}`);
    assert.match(s.reason, reason);
  };
  expect(0x7ffc23cfb000n, 0x21000n, /^anon private \(filter bit 0\)$/); // [stack]
  expect(0x5595b14ab000n, 0x21000n, /^anon private/); // [heap]
  expect(0x7fa51a2a1000n, 0xd000n, /^anon private/); // rw-p, no name
  expect(0x7fa51a2c2000n, 0x2000n, /^vdso \(always dumped\)$/);
  expect(0x7fa51a2bc000n, 0n, /VM_DONTDUMP \(dd\)/); // [vvar]
  expect(0x7fa51a2c0000n, 0n, /dd|io/); // [vvar_vclock]
  expect(0xffffffffff600000n, 0n, /not readable/); // [vsyscall] --xp
  expect(0x55959e21f000n, PAGE, /^ELF header page \(bit 4\)$/); // /usr/bin/sleep
  expect(0x7fa51a0cc000n, PAGE, /^ELF header page/); // libc
  expect(0x7fa51a2c4000n, PAGE, /^ELF header page/); // ld.so
  expect(0x7fa51a0f2000n, 0n, /^file private not selected$/); // libc text
  expect(0x7fa51a29b000n, 0x4000n, /^written file private \(filter bit 0\)$/); // libc RELRO, COW pages
  expect(0x7fa51a06c000n, 0n, /^file private not selected$/); // locale file at offset 0: not ELF
  expect(0x7fa51a2b2000n, 0n, /^file shared not selected \(bit 3\)$/); // gconv cache, r--s
});

test('filter bits move the concrete entries they govern, and only those', () => {
  const ms = parseSmaps(capture('sleep-debian12-6.18.smaps'));
  const base = select(ms);
  const diff = (other: readonly CoreSelection[]) =>
    other.filter((s, i) => s.dumpBytes !== base[i]!.dumpBytes).map((s) => `${s.mapping.start.toString(16)}=${s.dumpBytes.toString(16)}`);
  // bit 2: all private file mappings whole (ELF header pages grow to the whole mapping)
  const b2 = select(ms, 0x37);
  assert.equal(at(b2, 0x7fa51a0f2000n).dumpBytes, 0x156000n);
  assert.equal(at(b2, 0x7fa51a0cc000n).dumpBytes, 0x26000n);
  assert.equal(at(b2, 0x7fa51a06c000n).dumpBytes, 0x57000n);
  assert.equal(at(b2, 0x7fa51a2b2000n).dumpBytes, 0n, 'shared file still not');
  // bit 3: the shared gconv cache, nothing else
  assert.deepEqual(diff(select(ms, 0x3b)), ['7fa51a2b2000=7000']);
  // no bit 4: the three ELF header pages go, nothing else
  assert.deepEqual(diff(select(ms, 0x23)), ['55959e21f000=0', '7fa51a0cc000=0', '7fa51a2c4000=0']);
  // no bit 0: every private anonymous or written mapping goes; vdso and ELF headers stay
  const nb0 = select(ms, 0x32);
  assert.ok(nb0.every((s) => s.dumpBytes === 0n || /vdso|ELF header/.test(s.reason)), nb0.map((s) => s.reason).join('; '));
  assert.equal(at(nb0, 0x7ffc23cfb000n).reason, 'anon private not selected (bit 0)');
  // filter 0: only what is always dumped
  assert.deepEqual(select(ms, 0).filter((s) => s.dumpBytes > 0n).map((s) => s.mapping.path), ['[vdso]']);
});

test('--all dumps every readable mapping whole except VM_IO; unreadable stays 0', () => {
  const sel = select(parseSmaps(capture('mapper-debian12-6.18.smaps')), 0, true);
  for (const s of sel) {
    const m = s.mapping;
    const want = !m.read || m.vmFlags?.includes('io') ? 0n : m.end - m.start;
    assert.equal(s.dumpBytes, want, `${m.path} ${m.perms}: ${s.reason}`);
  }
  assert.equal(at(sel, 0x7e0000030000n).dumpBytes, 0x4000n, 'MADV_DONTDUMP memory too');
  assert.equal(at(sel, 0x7e0000030000n).reason, 'all readable (--all)');
  assert.equal(at(sel, 0x7e0000020000n).dumpBytes, 0n, 'PROT_NONE guard');
  assert.match(at(sel, 0x7f05200fa000n).reason, /VM_IO/);
});

test('mapper capture: shared memory by kind, untouched and MADV_DONTDUMP anonymous memory, deleted files', () => {
  const ms = parseSmaps(capture('mapper-debian12-6.18.smaps'));
  const reason = (sel: readonly CoreSelection[], start: bigint) => `${at(sel, start).dumpBytes.toString(16)} ${at(sel, start).reason}`;
  const d = select(ms);
  assert.equal(reason(d, 0x7e0000010000n), '0 anon private never written');
  assert.equal(reason(d, 0x7e0000020000n).startsWith('0 not readable'), true);
  assert.equal(reason(d, 0x7e0000030000n), '0 VM_DONTDUMP (dd)');
  assert.equal(reason(d, 0x7e0000040000n), '4000 anon shared (filter bit 1)'); // /dev/zero (deleted)
  assert.equal(reason(d, 0x7e0000060000n), '4000 anon shared (filter bit 1)'); // memfd
  assert.equal(reason(d, 0x7e00000e0000n), '4000 anon shared (filter bit 1)'); // SysV
  assert.equal(reason(d, 0x7e00000c0000n), '4000 anon shared (filter bit 1)'); // deleted file: i_nlink 0
  assert.equal(reason(d, 0x7e0000080000n), '0 file shared not selected (bit 3)');
  assert.equal(reason(d, 0x7e0000070000n), '4000 written file private (filter bit 0)'); // private memfd, COW page
  assert.equal(reason(d, 0x7e00000b0000n), '0 file private not selected'); // offset 0 but not ELF
  assert.equal(reason(d, 0x7e00000d0000n), '4000 memfd/deleted-file private, counted as anonymous (filter bit 0)'); // deleted, never written
  const noShared = select(ms, 0x31);
  assert.equal(reason(noShared, 0x7e0000040000n), '0 anon shared not selected (bit 1)');
  assert.equal(reason(select(ms, 0x3b), 0x7e0000080000n), '4000 file shared (filter bit 3)');
  // a deleted file's private mapping follows bit 0 (counted as anonymous), not bit 2
  assert.equal(reason(select(ms, 0x36), 0x7e00000d0000n), '0 memfd/deleted-file private, counted as anonymous not selected (bit 0)');
});

test('elfHeaderCandidates: readable private file mappings at offset 0, nothing anonymous, shared or deleted', () => {
  const ms = parseSmaps(capture('mapper-debian12-6.18.smaps'));
  assert.deepEqual(
    elfHeaderCandidates(ms).map((m) => m.path),
    ['/tmp/cap2/memdump-mapper', '/tmp/cap/data file\nline2.bin', '/tmp/cap/data file\nline2.bin', '/usr/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'],
  );
});

test('an ELF header page is one page of the caller\'s size, never more than the mapping', () => {
  const ms = parseSmaps(capture('sleep-debian12-6.18.smaps'));
  const sel = select(ms, DEFAULT_COREDUMP_FILTER, false, 0x4000n);
  assert.equal(at(sel, 0x7fa51a0cc000n).dumpBytes, 0x4000n); // libc: 0x26000 long
  assert.equal(at(sel, 0x55959e21f000n).dumpBytes, 0x2000n); // sleep: 2 pages of 4 KiB
});

test('hugetlb mappings follow bits 5 and 6 and nothing else', () => {
  const ht = (perms: string) => {
    const [m] = parseSmaps(`7f0000000000-7f0000400000 ${perms} 00000000 00:10 77 /anon_hugepage (deleted)\nAnonymous: 0 kB\nVmFlags: rd wr mr mw me ${perms.endsWith('s') ? 'sh ' : ''}ht \n`);
    return m!;
  };
  const run = (m: Mapping, filter: number) => selectForCore([m], { filter, all: false, pageSize: PAGE, elfHeaderAt: new Set() })[0]!;
  assert.equal(run(ht('rw-p'), 1 << 5).dumpBytes, 0x400000n);
  assert.equal(run(ht('rw-p'), 0x1ff & ~(1 << 5)).dumpBytes, 0n);
  assert.equal(run(ht('rw-s'), 1 << 6).dumpBytes, 0x400000n);
  assert.equal(run(ht('rw-s'), 0x1ff & ~(1 << 6)).reason, 'hugetlb shared not selected (bit 6)');
});

test('swapped-out anonymous pages count as written (the anon_vma exists) even when Anonymous is 0', () => {
  const [m] = parseSmaps('7f0000000000-7f0000004000 rw-p 00000000 00:00 0 \nAnonymous: 0 kB\nSwap: 8 kB\nVmFlags: rd wr mr mw me ac \n');
  const run = (filter: number) => selectForCore([m!], { filter, all: false, pageSize: PAGE, elfHeaderAt: new Set() })[0]!;
  assert.equal(run(0x33).dumpBytes, 0x4000n);
  assert.equal(run(0x32).dumpBytes, 0n);
});

test('without smaps: anonymous and writable private memory is assumed written, [vvar] skipped by name', () => {
  const maps = parseMaps(capture('sleep-debian12-6.18.maps'));
  const sel = select(maps);
  assert.equal(at(sel, 0x7ffc23cfb000n).dumpBytes, 0x21000n);
  assert.match(at(sel, 0x7ffc23cfb000n).reason, /no smaps: assumed written/);
  assert.equal(at(sel, 0x55959e229000n).dumpBytes, 0x1000n, 'sleep .data (rw-p)');
  assert.match(at(sel, 0x55959e229000n).reason, /writable file private/);
  assert.equal(at(sel, 0x7fa51a2bc000n).dumpBytes, 0n);
  assert.match(at(sel, 0x7fa51a2bc000n).reason, /VM_IO \(known name; no smaps\)/);
  assert.equal(at(sel, 0x7fa51a2c0000n).dumpBytes, 0n, '[vvar_vclock]');
  assert.equal(at(sel, 0x7fa51a2c2000n).dumpBytes, 0x2000n, '[vdso]');
  assert.equal(at(sel, 0x7fa51a0cc000n).dumpBytes, PAGE, 'libc ELF header');
  // RELRO was written before mprotect: smaps shows it, maps cannot (documented limit)
  assert.equal(at(sel, 0x7fa51a29b000n).dumpBytes, 0n);
  assert.equal(select(maps, 0x32).find((s) => s.mapping.path === '[heap]')!.dumpBytes, 0n);
});

test('the result is in address order with one entry per mapping whatever the input order', () => {
  const ms = parseSmaps(capture('sleep-debian12-6.18.smaps'));
  const shuffled = [...ms].reverse();
  const sel = select(shuffled);
  assert.equal(sel.length, ms.length);
  assert.deepEqual(sel.map((s) => s.mapping), ms);
});

test('parseCoredumpFilter reads the /proc form and hex from the user; anything else is E_USAGE naming the source', () => {
  assert.equal(parseCoredumpFilter('00000033\n', 'x'), 0x33);
  assert.equal(parseCoredumpFilter('0x1ff', 'x'), 0x1ff);
  assert.equal(parseCoredumpFilter('33', 'x'), 0x33);
  assert.equal(parseCoredumpFilter(' 0XfFfFfFfF ', 'x'), 0xffffffff);
  for (const bad of ['', '\n', 'zz', '-1', '0x', '0x1ffffffff', '1 2', '3.3', '0x-1', '33h']) {
    assert.throws(
      () => parseCoredumpFilter(bad, '--filter'),
      (e: unknown) => isMemdumpError(e, 'E_USAGE') && e.message.startsWith('--filter:'),
      JSON.stringify(bad),
    );
  }
});
