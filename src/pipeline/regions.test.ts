import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { preadAt } from '../core/file.js';
import { isSortedDisjoint } from '../core/ranges.js';
import { type Mapping, parseMaps } from '../sources/maps.js';
import { expectCode } from '../../test/helpers/expect-code.js';
import { fakeMem } from '../../test/helpers/fake-memory.js';
import {
  type RegionSelectors,
  type SelectedRegion,
  addGrepHits,
  describePattern,
  grepRegions,
  isGlibcArenaHeap,
  mergeRegions,
  moduleMatches,
  parseGrepArg,
  parseRangeArg,
  selectRegions,
} from './regions.js';

/** The committed captures, from dist/src/pipeline/ (npm test) or the repository root (any other outDir). */
function capturesDir(): string {
  const nearBuild = fileURLToPath(new URL('../../../test/fixtures/captures/', import.meta.url));
  return existsSync(join(nearBuild, 'regions-node20-worker.maps')) ? nearBuild : join(process.cwd(), 'test/fixtures/captures');
}

/**
 * regions-*.maps: /proc/PID/maps of processes on a Debian 12 host (kernel 6.18, glibc 2.36), taken while they
 * ran; regions-*.tasks: `TID` then /proc/PID/task/TID/syscall of every thread, taken right after (the
 * second-to-last field is the stack pointer). node20-worker: node 20 with a worker thread (libuv pool, V8
 * platform threads, two isolates' rwx code spaces); 49 of its 52 small anonymous rw-p V8 heap pages were left out.
 * python311-threads: python 3.11 with three threads that allocated (three glibc arenas); lib-dynload lines left
 * out. python311-injected: the inject script of suspicious.test.ts (anon rwx, memfd r-x, deleted file r-x).
 */
function capture(name: string): { maps: Mapping[]; sps: Map<number, bigint>; pid: number } {
  const dir = capturesDir();
  const maps = parseMaps(readFileSync(join(dir, `${name}.maps`), 'utf8'));
  const sps = new Map<number, bigint>();
  const lines = readFileSync(join(dir, `${name}.tasks`), 'utf8').trim().split('\n');
  for (const line of lines) {
    const f = line.split(' ');
    sps.set(Number(f[0]), BigInt(f[f.length - 2]!));
  }
  return { maps, sps, pid: Number(lines[0]!.split(' ')[0]) };
}

const NONE: RegionSelectors = { stack: false, heap: false, anonExec: false, rwx: false, memfd: false, modules: [], ranges: [], grep: [] };
const NO_CTX = { stackPointers: new Map<number, bigint>() };

function sel(over: Partial<RegionSelectors>): RegionSelectors {
  return { ...NONE, ...over };
}

function starts(rs: readonly { start: bigint }[]): string[] {
  return rs.map((r) => r.start.toString(16));
}

function pathOf(r: SelectedRegion): string {
  return r.mapping?.path ?? '?';
}

/** A synthetic process, one of each kind the selectors tell apart. */
const SYNTH = parseMaps(
  [
    '00400000-00401000 r--p 00000000 fe:00 100 /usr/bin/app',
    '00401000-00402000 r-xp 00001000 fe:00 100 /usr/bin/app',
    '00402000-00403000 rw-p 00002000 fe:00 100 /usr/bin/app',
    '00403000-00405000 rw-p 00000000 00:00 0',
    '01000000-01100000 rw-p 00000000 00:00 0 [heap]',
    // glibc non-main arena: 64 MiB-aligned rw-p head, ---p rest of the 64 MiB block
    '7f0000000000-7f0000021000 rw-p 00000000 00:00 0',
    '7f0000021000-7f0004000000 ---p 00000000 00:00 0',
    // a thread stack: guard page, then 8 MiB rw-p
    '7f0010000000-7f0010001000 ---p 00000000 00:00 0',
    '7f0010001000-7f0010801000 rw-p 00000000 00:00 0',
    '7f0020000000-7f0020010000 rwxp 00000000 00:00 0',
    '7f0020010000-7f0020020000 r-xp 00000000 00:00 0 [anon:v8 code]',
    '7f0020020000-7f0020021000 r-xp 00000000 00:01 77 /memfd:stage2 (deleted)',
    '7f0020021000-7f0020022000 rw-p 00000000 00:01 78 /memfd:data (deleted)',
    '7f0020022000-7f0020023000 r-xp 00000000 fe:00 555 /tmp/.x/dropped.so (deleted)',
    '7f0020023000-7f0020024000 r-xs 00000000 00:01 99 /dev/zero (deleted)',
    '7f0020024000-7f0020025000 --xp 00000000 00:00 0',
    '7f0020030000-7f0020031000 r-xp 00000000 fe:00 601 /usr/lib/x86_64-linux-gnu/libcrypto.so.3',
    '7f0020040000-7f0020041000 r-xp 00000000 fe:00 602 /opt/old/libc-2.31.so',
    '7f0030000000-7f0030026000 r--p 00000000 fe:00 339380 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f0030026000-7f003017c000 r-xp 00026000 fe:00 339380 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f003017c000-7f003017d000 ---p 0017c000 fe:00 339380 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f003017d000-7f0030181000 r--p 0017c000 fe:00 339380 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f0030181000-7f0030183000 rw-p 00180000 fe:00 339380 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f0030183000-7f0030190000 rw-p 00000000 00:00 0',
    '7f0030200000-7f0030204000 r--p 00000000 00:00 0 [vvar]',
    '7f0030204000-7f0030206000 r-xp 00000000 00:00 0 [vdso]',
    '7ffc00000000-7ffc00021000 rwxp 00000000 00:00 0 [stack]',
    'ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]',
  ].join('\n'),
);

test('--stack: the mapping holding each thread stack pointer, named by tid; [stack] for the main thread', () => {
  const sps = new Map<number, bigint>([
    [101, 0x7f0010700123n],
    [100, 0x7ffc00020000n],
  ]);
  const { regions, warnings } = selectRegions(SYNTH, sel({ stack: true }), { stackPointers: sps, pid: 100 });
  assert.deepEqual(
    regions.map((r) => [r.start.toString(16), r.end.toString(16), r.reasons]),
    [
      ['7f0010001000', '7f0010801000', ['stack of thread 101']],
      ['7ffc00000000', '7ffc00021000', ['stack of thread 100']],
    ],
  );
  assert.deepEqual(warnings, []);
});

test('--stack: a pointer at the very top of a stack (nothing pushed yet) picks that stack, not the mapping above', () => {
  const { regions } = selectRegions(SYNTH, sel({ stack: true }), { stackPointers: new Map([[7, 0x7f0010801000n]]) });
  assert.deepEqual(starts(regions), ['7f0010001000', '7ffc00000000']);
  assert.deepEqual(regions[0]!.reasons, ['stack of thread 7']);
});

test('--stack: unknown pointers fall back to [stack]; pointers in a guard page or in no mapping are warned about', () => {
  const none = selectRegions(SYNTH, sel({ stack: true }), NO_CTX);
  assert.deepEqual(starts(none.regions), ['7ffc00000000']);
  assert.match(none.regions[0]!.reasons[0]!, /^\[stack\] \(main thread; stack pointer not known\)$/);
  assert.match(none.warnings.join('\n'), /no thread stack pointers known/);

  const withPid = selectRegions(SYNTH, sel({ stack: true }), { stackPointers: new Map(), pid: 4242 });
  assert.deepEqual(withPid.regions[0]!.reasons, ['stack of thread 4242 ([stack]; stack pointer not known)']);

  const sps = new Map<number, bigint>([
    [5, 0x7f0010000800n], // guard page
    [6, 0x5000000n], // unmapped
    [4242, 0x7f0010001100n], // main thread running on another stack (sigaltstack)
  ]);
  const odd = selectRegions(SYNTH, sel({ stack: true }), { stackPointers: sps, pid: 4242 });
  assert.deepEqual(starts(odd.regions), ['7f0010001000', '7ffc00000000']);
  assert.deepEqual(odd.regions[1]!.reasons, ['[stack] (initial stack of main thread 4242; its stack pointer is elsewhere)']);
  assert.equal(odd.warnings.length, 2);
  assert.match(odd.warnings[0]!, /thread 5 .*0x7f0010000800.*not readable/);
  assert.match(odd.warnings[1]!, /thread 6: stack pointer 0x5000000 is in no mapping/);
});

test('--stack: pre-4.5 kernels name thread stacks [stack:TID]; those are taken without a pointer', () => {
  const maps = parseMaps('7f0000000000-7f0000800000 rw-p 00000000 00:00 0 [stack:4711]\n7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]\n');
  const { regions } = selectRegions(maps, sel({ stack: true }), NO_CTX);
  assert.deepEqual(
    regions.map((r) => r.reasons[0]),
    ['stack of thread 4711 ([stack:4711])', '[stack] (main thread; stack pointer not known)'],
  );
});

test('--heap is [heap] only; --heap-arenas adds glibc arena heaps, not thread stacks or the main heap twice', () => {
  const heap = selectRegions(SYNTH, sel({ heap: true }), NO_CTX);
  assert.deepEqual(starts(heap.regions), ['1000000']);
  assert.deepEqual(heap.regions[0]!.reasons, ['[heap]']);
  const arenas = selectRegions(SYNTH, sel({ heap: true, heapArenas: true }), NO_CTX);
  assert.deepEqual(starts(arenas.regions), ['1000000', '7f0000000000']);
  assert.equal(arenas.regions[1]!.end, 0x7f0000021000n);
  assert.match(arenas.regions[1]!.reasons[0]!, /glibc malloc arena/);
  const noHeap = selectRegions(parseMaps('7f0000000000-7f0000001000 rw-p 00000000 00:00 0\n'), sel({ heap: true }), NO_CTX);
  assert.deepEqual(noHeap.regions, []);
  assert.match(noHeap.warnings[0]!, /no \[heap\] mapping/);
});

test('arena rule: the 64 MiB block must start inside the rw-p part and the ---p part must reach its end', () => {
  const [a, b] = parseMaps('7f0000000000-7f0000021000 rw-p 00000000 00:00 0\n7f0000021000-7f0004000000 ---p 00000000 00:00 0\n');
  assert.ok(isGlibcArenaHeap(a!, b!));
  // merged below with other anonymous memory: still an arena (block start inside), and a ---p merged above too
  const [c, d] = parseMaps('7effff000000-7f0000021000 rw-p 00000000 00:00 0\n7f0000021000-7f0004100000 ---p 00000000 00:00 0\n');
  assert.ok(isGlibcArenaHeap(c!, d!));
  const notAligned = parseMaps('7f0000001000-7f0000021000 rw-p 00000000 00:00 0\n7f0000021000-7f0004000000 ---p 00000000 00:00 0\n');
  assert.ok(!isGlibcArenaHeap(notAligned[0]!, notAligned[1]!));
  const shortTail = parseMaps('7f0000000000-7f0000021000 rw-p 00000000 00:00 0\n7f0000021000-7f0003fff000 ---p 00000000 00:00 0\n');
  assert.ok(!isGlibcArenaHeap(shortTail[0]!, shortTail[1]!));
  const gap = parseMaps('7f0000000000-7f0000021000 rw-p 00000000 00:00 0\n7f0000022000-7f0004000000 ---p 00000000 00:00 0\n');
  assert.ok(!isGlibcArenaHeap(gap[0]!, gap[1]!));
  const named = parseMaps('7f0000000000-7f0000021000 rw-p 00000000 00:00 0 [anon:x]\n7f0000021000-7f0004000000 ---p 00000000 00:00 0\n');
  assert.ok(!isGlibcArenaHeap(named[0]!, named[1]!));
});

test('--anon-exec: anonymous, [anon:], memfd, deleted files, shared /dev/zero, executable [stack]; never [vdso]/[vsyscall]', () => {
  const { regions, warnings } = selectRegions(SYNTH, sel({ anonExec: true }), NO_CTX);
  assert.deepEqual(starts(regions), ['7f0020000000', '7f0020010000', '7f0020020000', '7f0020022000', '7f0020023000', '7ffc00000000']);
  assert.deepEqual(regions[2]!.reasons, ['anonymous executable (memfd)']);
  assert.deepEqual(regions[3]!.reasons, ['anonymous executable (deleted file)']);
  // the execute-only anonymous mapping cannot be copied: said, not silently dropped
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /--anon-exec: mapping 0x7f0020024000-0x7f0020025000 --xp \(anonymous\) is not readable/);
});

test('--rwx and --memfd', () => {
  assert.deepEqual(starts(selectRegions(SYNTH, sel({ rwx: true }), NO_CTX).regions), ['7f0020000000', '7ffc00000000']);
  const memfd = selectRegions(SYNTH, sel({ memfd: true }), NO_CTX).regions;
  assert.deepEqual(starts(memfd), ['7f0020020000', '7f0020021000']);
  assert.deepEqual(
    memfd.map((r) => r.reasons[0]),
    ['memfd stage2', 'memfd data'],
  );
});

test('--module: basename, NAME. and NAME- prefixes, exact path, deleted files; .bss follows; gaps skipped quietly', () => {
  const { regions, warnings } = selectRegions(SYNTH, sel({ modules: ['libc'] }), NO_CTX);
  assert.deepEqual(starts(regions), ['7f0020040000', '7f0030000000', '7f0030026000', '7f003017d000', '7f0030181000', '7f0030183000']);
  assert.deepEqual(regions[5]!.reasons, ['module libc (.bss of /usr/lib/x86_64-linux-gnu/libc.so.6)']);
  assert.deepEqual(warnings, []);
  const byPath = selectRegions(SYNTH, sel({ modules: ['/usr/bin/app'] }), NO_CTX).regions;
  assert.deepEqual(starts(byPath), ['400000', '401000', '402000', '403000']);
  const dropped = selectRegions(SYNTH, sel({ modules: ['dropped'] }), NO_CTX).regions;
  assert.deepEqual(starts(dropped), ['7f0020022000']);
  const none = selectRegions(SYNTH, sel({ modules: ['libfoo', 'stage2'] }), NO_CTX);
  assert.deepEqual(none.regions, []);
  assert.deepEqual(none.warnings, ['--module libfoo: no file-backed mapping matches', '--module stage2: no file-backed mapping matches']);
  expectCode(() => selectRegions(SYNTH, sel({ modules: [''] }), NO_CTX), 'E_USAGE');
});

test('moduleMatches: prefix must end at . or -, pseudo files never match', () => {
  const [m] = parseMaps('7f0000000000-7f0000001000 r-xp 00000000 fe:00 1 /usr/lib/libcrypto.so.3\n');
  assert.ok(moduleMatches(m!, 'libcrypto'));
  assert.ok(moduleMatches(m!, 'libcrypto.so'));
  assert.ok(moduleMatches(m!, 'libcrypto.so.3'));
  assert.ok(!moduleMatches(m!, 'libc'));
  assert.ok(!moduleMatches(m!, 'libcrypto.so.33'));
  assert.ok(!moduleMatches(m!, 'lib/libcrypto.so.3'));
  const [memfd] = parseMaps('7f0000000000-7f0000001000 r-xp 00000000 00:01 1 /memfd:libc (deleted)\n');
  assert.ok(!moduleMatches(memfd!, 'libc'));
  assert.ok(!moduleMatches(memfd!, '/memfd:libc'));
});

test('--range: cut per mapping, gaps and unreadable parts dropped with a warning each', () => {
  const r = parseRangeArg('0x7f0010000800-0x7f0010002000');
  const { regions, warnings } = selectRegions(SYNTH, sel({ ranges: [r] }), NO_CTX);
  assert.deepEqual(
    regions.map((x) => [x.start.toString(16), x.end.toString(16), x.reasons]),
    [['7f0010001000', '7f0010002000', ['range 0x7f0010000800-0x7f0010002000']]],
  );
  assert.deepEqual(warnings, ['--range 0x7f0010000800-0x7f0010002000: 0x7f0010000800-0x7f0010001000 (2048 bytes) is mapped but not readable; dropped']);

  // across touching mappings: one part per mapping, never one region spanning two mappings
  const across = selectRegions(SYNTH, sel({ ranges: [parseRangeArg('0x7f003017f000-0x7f0030185000'), parseRangeArg('0x7f0030190000+0x1000')] }), NO_CTX);
  assert.deepEqual(
    across.regions.map((x) => [x.start.toString(16), x.end.toString(16), pathOf(x)]),
    [
      ['7f003017f000', '7f0030181000', '/usr/lib/x86_64-linux-gnu/libc.so.6'],
      ['7f0030181000', '7f0030183000', '/usr/lib/x86_64-linux-gnu/libc.so.6'],
      ['7f0030183000', '7f0030185000', ''],
    ],
  );
  assert.deepEqual(across.warnings, ['--range 0x7f0030190000-0x7f0030191000: 0x7f0030190000-0x7f0030191000 (4096 bytes) is not mapped; dropped']);
});

test('reasons merge: overlapping ranges in one mapping become one part; a whole pick absorbs range parts', () => {
  const ranges = [parseRangeArg('0x1000010-0x1000020'), parseRangeArg('0x1000018-0x1000030'), parseRangeArg('0x1000100-0x1000200')];
  const parts = selectRegions(SYNTH, sel({ ranges }), NO_CTX).regions;
  assert.deepEqual(
    parts.map((x) => [x.start.toString(16), x.end.toString(16), x.reasons]),
    [
      ['1000010', '1000030', ['range 0x1000010-0x1000020', 'range 0x1000018-0x1000030']],
      ['1000100', '1000200', ['range 0x1000100-0x1000200']],
    ],
  );
  const withHeap = selectRegions(SYNTH, sel({ heap: true, ranges }), NO_CTX).regions;
  assert.deepEqual(
    withHeap.map((x) => [x.start.toString(16), x.end.toString(16), x.reasons]),
    [['1000000', '1100000', ['[heap]', 'range 0x1000010-0x1000020', 'range 0x1000018-0x1000030', 'range 0x1000100-0x1000200']]],
  );
});

test('every selector at once: sorted, disjoint, one entry per mapping, reasons in selector order', () => {
  const sps = new Map<number, bigint>([[100, 0x7ffc00000010n]]);
  const all = selectRegions(SYNTH, { stack: true, heap: true, heapArenas: true, anonExec: true, rwx: true, memfd: true, modules: ['libc', 'app'], ranges: [parseRangeArg('0x7ffc00000000+4K')], grep: [] }, { stackPointers: sps });
  assert.ok(isSortedDisjoint(all.regions));
  const stack = all.regions.find((r) => r.start === 0x7ffc00000000n)!;
  assert.deepEqual(stack.reasons, ['stack of thread 100', 'anonymous executable ([stack])', 'rwx', 'range 0x7ffc00000000-0x7ffc00001000']);
  assert.equal(stack.end, 0x7ffc00021000n);
  const mappingStarts = new Set(SYNTH.map((m) => m.start));
  for (const r of all.regions) assert.ok(mappingStarts.has(r.start) && r.mapping && r.end === r.mapping.end, `whole mapping ${r.start.toString(16)}`);
});

test('addGrepHits: the hit mapping is added whole, or gets the grep reason beside the others', () => {
  const base = selectRegions(SYNTH, sel({ heap: true, ranges: [parseRangeArg('0x7f0010001000+16')] }), NO_CTX).regions;
  const hits = new Map([
    [0x1000000n, { pattern: '"secret"', firstHit: 0x1000040n }],
    [0x7f0010001000n, { pattern: 'hex:dead', firstHit: 0x7f0010005000n }],
    [0x7f0020021000n, { pattern: '"secret"', firstHit: 0x7f0020021100n }],
  ]);
  const out = addGrepHits(base, SYNTH, hits);
  assert.deepEqual(
    out.map((x) => [x.start.toString(16), x.end.toString(16), x.reasons]),
    [
      ['1000000', '1100000', ['[heap]', 'grep "secret"']],
      ['7f0010001000', '7f0010801000', ['range 0x7f0010001000-0x7f0010001010', 'grep hex:dead']],
      ['7f0020021000', '7f0020022000', ['grep "secret"']],
    ],
  );
});

test('mergeRegions keeps parts of different mappings apart even when they touch', () => {
  const [a, b] = parseMaps('1000-2000 rw-p 00000000 00:00 0\n2000-3000 r--p 00000000 00:00 0\n');
  const out = mergeRegions([
    { start: 0x1800n, end: 0x2000n, mapping: a, reasons: ['x'] },
    { start: 0x2000n, end: 0x2800n, mapping: b, reasons: ['x'] },
    { start: 0x1000n, end: 0x1800n, mapping: a, reasons: ['y'] },
  ]);
  assert.deepEqual(
    out.map((x) => [x.start, x.end, x.reasons]),
    [
      [0x1000n, 0x2000n, ['y', 'x']],
      [0x2000n, 0x2800n, ['x']],
    ],
  );
});

test('parseRangeArg: START-END and START+SIZE, hex addresses with or without 0x, K/M/G sizes', () => {
  assert.deepEqual(parseRangeArg('0x7f0000000000-0x7f0000001000'), { start: 0x7f0000000000n, end: 0x7f0000001000n });
  assert.deepEqual(parseRangeArg('7f64f5c1e000-7f64f5c44000'), { start: 0x7f64f5c1e000n, end: 0x7f64f5c44000n });
  assert.deepEqual(parseRangeArg(' 0x1000 + 4096 '), { start: 0x1000n, end: 0x2000n });
  assert.deepEqual(parseRangeArg('0x1000+0x1000'), { start: 0x1000n, end: 0x2000n });
  assert.deepEqual(parseRangeArg('0x1000+4K'), { start: 0x1000n, end: 0x2000n });
  assert.deepEqual(parseRangeArg('0x1000+4kib'), { start: 0x1000n, end: 0x2000n });
  assert.deepEqual(parseRangeArg('0x0+2M'), { start: 0n, end: 2n << 20n });
  assert.deepEqual(parseRangeArg('0x0+3G'), { start: 0n, end: 3n << 30n });
  // beyond 2^53: exact, not rounded through a double
  assert.deepEqual(parseRangeArg('0xffffffffff600000-0xffffffffff601000'), { start: 0xffffffffff600000n, end: 0xffffffffff601000n });
  assert.deepEqual(parseRangeArg('0xfffffffffffff000+4K'), { start: 0xfffffffffffff000n, end: 1n << 64n });
  for (const bad of ['', '0x1000', '0x2000-0x1000', '0x1000-0x1000', '0x1000+0', '0x1000+4X', 'zz-0x10', '0x1000+-5', '0x1-0x10000000000000000', '0xfffffffffffff000+8K', '1000..2000']) {
    expectCode(() => parseRangeArg(bad), 'E_USAGE');
  }
});

test('parseGrepArg: text, hex: bytes, text: escape; empty and odd hex are usage errors', () => {
  assert.deepEqual(parseGrepArg('secret'), Buffer.from('secret'));
  assert.deepEqual(parseGrepArg('pässwort'), Buffer.from('pässwort', 'utf8'));
  assert.deepEqual(parseGrepArg('hex:DEADbeef'), Buffer.from([0xde, 0xad, 0xbe, 0xef]));
  assert.deepEqual(parseGrepArg('hex:7f 45:4c 46'), Buffer.from('\x7fELF', 'latin1'));
  assert.deepEqual(parseGrepArg('text:hex:00'), Buffer.from('hex:00'));
  for (const bad of ['', 'hex:', 'hex:abc', 'hex:zz', 'text:']) expectCode(() => parseGrepArg(bad), 'E_USAGE');
  assert.equal(describePattern(Buffer.from('say "hi"')), '"say \\"hi\\""');
  assert.equal(describePattern(Buffer.from([0x7f, 0x45])), 'hex:7f45');
});

// ---------------------------------------------------------------- grep


function anonMapping(start: bigint, length: number, perms = 'rw-p'): Mapping {
  return parseMaps(`${start.toString(16)}-${(start + BigInt(length)).toString(16)} ${perms} 00000000 00:00 0\n`)[0]!;
}

// above 2^53: every address computation must stay in bigint
const HIGH = 0xffff800000000000n;

test('grep: a pattern straddling a chunk boundary is found at its first byte', async () => {
  const mem = Buffer.alloc(64, 0x2e);
  mem.write('SECRET', 13, 'latin1'); // bytes 13..18 straddle the boundary at 16
  const { read, calls } = fakeMem(HIGH, mem);
  const hits = await grepRegions([anonMapping(HIGH, 64)], [Buffer.from('SECRET')], read, { chunkSize: 16 });
  assert.deepEqual(hits.get(HIGH), { pattern: '"SECRET"', firstHit: HIGH + 13n });
  // chunk-aligned reads, and none after the chunk with the hit
  assert.deepEqual(calls, [
    [HIGH, 16],
    [HIGH + 16n, 16],
  ]);
});

test('grep: one-byte patterns at the first and last byte of a chunk; no overlap needed', async () => {
  for (const at of [0, 15, 16, 31, 63]) {
    const mem = Buffer.alloc(64, 0);
    mem[at] = 0xaa;
    const { read } = fakeMem(0x10000n, mem);
    const hits = await grepRegions([anonMapping(0x10000n, 64)], [Buffer.from([0xaa])], read, { chunkSize: 16 });
    assert.deepEqual(hits.get(0x10000n), { pattern: 'hex:aa', firstHit: 0x10000n + BigInt(at) }, `at ${at}`);
  }
});

test('grep: earliest occurrence of any pattern; a tie goes to the first pattern given', async () => {
  const mem = Buffer.alloc(100, 0);
  mem.write('bbbb', 40, 'latin1');
  mem.write('aaXX', 30, 'latin1'); // "aa" at 30, and "aaXX" at 30 too
  mem.write('aa', 70, 'latin1');
  const { read } = fakeMem(0x1000n, mem);
  const m = [anonMapping(0x1000n, 100)];
  assert.deepEqual((await grepRegions(m, [Buffer.from('bbbb'), Buffer.from('aa')], read, { chunkSize: 32 })).get(0x1000n), { pattern: '"aa"', firstHit: 0x1000n + 30n });
  assert.deepEqual((await grepRegions(m, [Buffer.from('aaXX'), Buffer.from('aa')], read, { chunkSize: 32 })).get(0x1000n), { pattern: '"aaXX"', firstHit: 0x1000n + 30n });
  assert.deepEqual((await grepRegions(m, [Buffer.from('aa'), Buffer.from('aaXX')], read, { chunkSize: 7 })).get(0x1000n), { pattern: '"aa"', firstHit: 0x1000n + 30n });
  // a later pattern one byte before the first one's hit, ending where that hit's pattern ends
  const adj = Buffer.alloc(32, 0);
  adj.write('ABBB', 10, 'latin1');
  const a = fakeMem(0x1000n, adj);
  assert.deepEqual((await grepRegions([anonMapping(0x1000n, 32)], [Buffer.from('BBB'), Buffer.from('AB')], a.read)).get(0x1000n), { pattern: '"AB"', firstHit: 0x100an });
});

test('grep: unreadable chunks are skipped; nothing matches across them; the search goes on after them', async () => {
  const mem = Buffer.alloc(80, 0);
  mem.write('KEY', 14, 'latin1'); // straddles into the hole at 16..31
  mem.write('KEY', 30, 'latin1'); // straddles out of the hole
  mem.write('KEY', 40, 'latin1'); // after the hole: the first findable one
  const { read } = fakeMem(0x1000n, mem, new Set([0x1010n]));
  const hits = await grepRegions([anonMapping(0x1000n, 80)], [Buffer.from('KEY')], read, { chunkSize: 16 });
  assert.deepEqual(hits.get(0x1000n), { pattern: '"KEY"', firstHit: 0x1000n + 40n });
  const onlyInHole = Buffer.alloc(48, 0);
  onlyInHole.write('KEY', 20, 'latin1');
  const r2 = fakeMem(0x1000n, onlyInHole, new Set([0x1010n]));
  assert.equal((await grepRegions([anonMapping(0x1000n, 48)], [Buffer.from('KEY')], r2.read, { chunkSize: 16 })).size, 0);
});

test('grep: a short read counts as a hole after the bytes it gave', async () => {
  const mem = Buffer.alloc(48, 0);
  // 'KE' ends the short read (bytes 0..14), byte 15 is never read, 'Y' starts the next chunk: joining the two
  // reads would make a 'KEY' that is not in memory
  mem.write('KE', 13, 'latin1');
  mem.write('Y', 16, 'latin1');
  mem.write('KEY', 33, 'latin1');
  const read = async (addr: bigint, length: number): Promise<Buffer | undefined> => {
    const off = Number(addr - 0x1000n);
    return Buffer.from(mem.subarray(off, off + (off === 0 ? 15 : length)));
  };
  const hits = await grepRegions([anonMapping(0x1000n, 48)], [Buffer.from('KEY')], read, { chunkSize: 16 });
  assert.deepEqual(hits.get(0x1000n)?.firstHit, 0x1000n + 33n);
});

test('grep: the carried tail is copied, so a reader that reuses one buffer still finds straddling hits', async () => {
  const mem = Buffer.alloc(64, 0x2e);
  mem.write('NEEDLE', 13, 'latin1'); // carried out of the first chunk, whose bytes are the reader's own buffer
  const shared = Buffer.alloc(16);
  const read = async (addr: bigint, length: number): Promise<Buffer> => {
    const off = Number(addr - 0x1000n);
    mem.copy(shared, 0, off, off + length);
    return shared.subarray(0, length);
  };
  const hits = await grepRegions([anonMapping(0x1000n, 64)], [Buffer.from('NEEDLE')], read, { chunkSize: 16 });
  assert.deepEqual(hits.get(0x1000n)?.firstHit, 0x1000n + 13n);
});

test('grep: unreadable mappings are not read; each mapping is searched on its own; no patterns → nothing', async () => {
  const mem = Buffer.alloc(0x4000, 0);
  mem.write('zz', 0xfff, 'latin1'); // straddles mappings 1 and 2
  mem.write('zz', 0x1fff, 'latin1'); // straddles mappings 2 and 3
  mem.write('zz', 0x3800, 'latin1');
  const { read, calls } = fakeMem(0x1000n, mem);
  const maps = [anonMapping(0x1000n, 0x1000), anonMapping(0x2000n, 0x1000), anonMapping(0x3000n, 0x1000, '---p'), anonMapping(0x4000n, 0x1000)];
  const hits = await grepRegions(maps, [Buffer.from('zz')], read, { chunkSize: 0x800 });
  assert.deepEqual([...hits], [[0x4000n, { pattern: '"zz"', firstHit: 0x4800n }]]);
  assert.ok(calls.every(([a]) => a < 0x3000n || a >= 0x4000n), 'the ---p mapping is never read');
  assert.equal((await grepRegions(maps, [], read)).size, 0);
  await assert.rejects(grepRegions(maps, [Buffer.alloc(0)], read), { code: 'E_USAGE' });
});

test('grep: an earlier longer pattern completing in the next chunk beats a shorter one found in this chunk', async () => {
  const mem = Buffer.alloc(64, 0);
  mem.write('LONGPATTERN', 10, 'latin1'); // 10..20, crosses the boundary at 16
  mem.write('PA', 14, 'latin1'); // inside it, wholly in the first chunk
  const { read } = fakeMem(0x1000n, mem);
  const hits = await grepRegions([anonMapping(0x1000n, 64)], [Buffer.from('PA'), Buffer.from('LONGPATTERN')], read, { chunkSize: 16 });
  assert.deepEqual(hits.get(0x1000n), { pattern: '"LONGPATTERN"', firstHit: 0x100an });
  // same start, the longer one listed first, the shorter fits in the first chunk: the tie still goes to the first
  const tie = Buffer.alloc(64, 0);
  tie.write('ABCDEFGH', 12, 'latin1');
  const t = fakeMem(0x1000n, tie);
  const hits2 = await grepRegions([anonMapping(0x1000n, 64)], [Buffer.from('ABCDEFGH'), Buffer.from('ABC')], t.read, { chunkSize: 16 });
  assert.deepEqual(hits2.get(0x1000n), { pattern: '"ABCDEFGH"', firstHit: 0x100cn });
  // a hit near a chunk end is final when the next chunk is unreadable, or the mapping ends
  const t3 = fakeMem(0x1000n, tie, new Set([0x1010n]));
  const hits3 = await grepRegions([anonMapping(0x1000n, 64)], [Buffer.from('ABCDEFGH'), Buffer.from('ABC')], t3.read, { chunkSize: 16 });
  assert.deepEqual(hits3.get(0x1000n), { pattern: '"ABC"', firstHit: 0x100cn });
  const end = Buffer.alloc(16, 0);
  end.write('ABC', 13, 'latin1');
  const t4 = fakeMem(0x1000n, end);
  assert.deepEqual((await grepRegions([anonMapping(0x1000n, 16)], [Buffer.from('ABCDEFGH'), Buffer.from('ABC')], t4.read, { chunkSize: 16 })).get(0x1000n), { pattern: '"ABC"', firstHit: 0x100dn });
});

test('grep property: a planted pattern is always found at its earliest occurrence, for any chunk size', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc.uint8Array({ minLength: 1, maxLength: 40 }),
      fc.nat(),
      fc.integer({ min: 1, max: 700 }),
      fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }),
      fc.integer({ min: 0, max: 3 }),
      async (raw, pat, where, chunkSize, page, alphabet) => {
        // small alphabets make accidental earlier occurrences (and near misses) common
        const mem = Buffer.from(alphabet === 0 ? raw : raw.map((b) => b % (alphabet + 1)));
        const pattern = Buffer.from(alphabet === 0 ? pat : pat.map((b) => b % (alphabet + 1)));
        if (pattern.length > mem.length) return;
        const at = where % (mem.length - pattern.length + 1);
        pattern.copy(mem, at);
        const start = page << 12n;
        const { read } = fakeMem(start, mem);
        const hits = await grepRegions([anonMapping(start, mem.length)], [pattern], read, { chunkSize });
        assert.deepEqual(hits.get(start), { pattern: describePattern(pattern), firstHit: start + BigInt(mem.indexOf(pattern)) });
      },
    ),
    { numRuns: 400 },
  );
});

test('grep property: with unreadable chunks, the hit is the earliest occurrence lying wholly in readable bytes', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 1, maxLength: 1500 }),
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 3 }),
      fc.integer({ min: 1, max: 200 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 4 }),
      async (raw, pats, chunkSize, holeSeeds, plantSeeds) => {
        const mem = Buffer.from(raw.map((b) => b % 3));
        const patterns = pats.map((p) => Buffer.from(p.map((b) => b % 3)));
        plantSeeds.forEach((s, i) => {
          const p = patterns[i % patterns.length]!;
          if (p.length <= mem.length) p.copy(mem, s % (mem.length - p.length + 1));
        });
        const nChunks = Math.ceil(mem.length / chunkSize);
        const holes = new Set(holeSeeds.map((s) => 0x5000n + BigInt((s % nChunks) * chunkSize)));
        const readable = (i: number): boolean => !holes.has(0x5000n + BigInt(Math.floor(i / chunkSize) * chunkSize));
        // oracle: lowest offset where some pattern matches with every byte readable; ties → first pattern
        let expect: { pattern: string; firstHit: bigint } | undefined;
        for (let i = 0; i < mem.length && !expect; i++) {
          for (const p of patterns) {
            if (i + p.length > mem.length || !mem.subarray(i, i + p.length).equals(p)) continue;
            let ok = true;
            for (let j = i; j < i + p.length; j++) ok &&= readable(j);
            if (ok) {
              expect = { pattern: describePattern(p), firstHit: 0x5000n + BigInt(i) };
              break;
            }
          }
        }
        const { read } = fakeMem(0x5000n, mem, holes);
        const hits = await grepRegions([anonMapping(0x5000n, mem.length)], patterns, read, { chunkSize });
        assert.deepEqual(hits.get(0x5000n), expect);
      },
    ),
    { numRuns: 300 },
  );
});

// ---------------------------------------------------------------- real captures

test('capture node 20 + worker: every thread stack found from its real stack pointer; arenas; JIT code; modules', () => {
  const { maps, sps, pid } = capture('regions-node20-worker');
  const stacks = selectRegions(maps, sel({ stack: true }), { stackPointers: sps, pid });
  assert.deepEqual(stacks.warnings, []);
  assert.equal(stacks.regions.length, sps.size, 'one stack per thread');
  const byStart = new Map(maps.map((m, i) => [m.start, i]));
  for (const r of stacks.regions) {
    assert.equal(r.reasons.length, 1);
    const tid = Number(/^stack of thread (\d+)$/.exec(r.reasons[0]!)![1]);
    const sp = sps.get(tid)!;
    assert.ok(r.start <= sp && sp < r.end);
    assert.equal(r.mapping!.perms, 'rw-p');
    if (tid === pid) assert.equal(pathOf(r), '[stack]');
    else {
      // glibc thread stack: anonymous rw-p right above a PROT_NONE guard
      const below = maps[byStart.get(r.start)! - 1]!;
      assert.equal(pathOf(r), '');
      assert.equal(below.end, r.start);
      assert.equal(below.perms, '---p');
    }
  }

  const heap = selectRegions(maps, sel({ heap: true, heapArenas: true }), NO_CTX).regions;
  assert.deepEqual(starts(heap), ['37a5b000', '7f6498000000', '7f649c000000', '7f64a0000000', '7f64a4000000', '7f64c8000000', '7f64f0000000']);
  // none of them is a thread stack
  const stackStarts = new Set(stacks.regions.map((r) => r.start));
  assert.ok(heap.every((r) => !stackStarts.has(r.start)));

  // V8's two code spaces (main isolate, worker isolate) are anonymous rwx
  assert.deepEqual(starts(selectRegions(maps, sel({ anonExec: true }), NO_CTX).regions), ['7f64a8003000', '7f64cefc3000']);
  assert.deepEqual(starts(selectRegions(maps, sel({ rwx: true }), NO_CTX).regions), ['7f64a8003000', '7f64cefc3000']);
  assert.deepEqual(selectRegions(maps, sel({ memfd: true }), NO_CTX).regions, []);

  const libc = selectRegions(maps, sel({ modules: ['libc'] }), NO_CTX).regions;
  assert.deepEqual(starts(libc), ['7f64f5c1e000', '7f64f5c44000', '7f64f5d9a000', '7f64f5ded000', '7f64f5df1000', '7f64f5df3000']);
  assert.equal(pathOf(libc[5]!), '');
  // node also maps part of its own text again (at 0x7f64...): same file, same module
  const node = selectRegions(maps, sel({ modules: ['node'] }), NO_CTX).regions;
  assert.deepEqual(starts(node), ['400000', 'b6f000', 'b72000', '2600000', '2601000', '563a000', '563e000', '565d000', '7f64c7e40000', '7f64eee00000']);
  // libstdc++ must not be taken for libc, nor libm for libmvec...
  assert.ok(libc.every((r) => pathOf(r) === '' || pathOf(r).endsWith('/libc.so.6')));
});

test('capture python 3.11 + threads: stacks, three arenas (one right above a thread stack), --range across a guard', () => {
  const { maps, sps, pid } = capture('regions-python311-threads');
  const stacks = selectRegions(maps, sel({ stack: true }), { stackPointers: sps, pid });
  assert.deepEqual(
    stacks.regions.map((r) => [r.start.toString(16), r.reasons[0]]),
    [
      ['7fda1f800000', 'stack of thread 20565'],
      ['7fda242a2000', 'stack of thread 20564'],
      ['7fda24ba3000', 'stack of thread 20563'],
      ['7ffc75de6000', 'stack of thread 20521'],
    ],
  );
  const arenas = selectRegions(maps, sel({ heapArenas: true }), NO_CTX).regions;
  assert.deepEqual(starts(arenas), ['7fda14000000', '7fda18000000', '7fda20000000']);

  const r = selectRegions(maps, sel({ ranges: [parseRangeArg('7fda24aa0000-7fda24ba3000')] }), NO_CTX);
  assert.deepEqual(
    r.regions.map((x) => [x.start.toString(16), x.end.toString(16)]),
    [
      ['7fda24aa0000', '7fda24aa2000'],
      ['7fda24aa2000', '7fda24ba2000'],
    ],
  );
  assert.deepEqual(r.warnings, ['--range 0x7fda24aa0000-0x7fda24ba3000: 0x7fda24ba2000-0x7fda24ba3000 (4096 bytes) is mapped but not readable; dropped']);
  // python3.11 is both a basename and a NAME. prefix (python3 matches python3.11)
  assert.equal(selectRegions(maps, sel({ modules: ['python3'] }), NO_CTX).regions.length, 5);
});

test('capture python 3.11 injected: anon rwx, memfd r-x and a deleted file r-x are --anon-exec; only memfd is --memfd', () => {
  const { maps } = capture('regions-python311-injected');
  const ax = selectRegions(maps, sel({ anonExec: true, memfd: true, rwx: true }), NO_CTX).regions;
  assert.deepEqual(
    ax.map((r) => [r.start.toString(16), r.reasons]),
    [
      ['7ff605666000', ['anonymous executable (deleted file)']],
      ['7ff6061ba000', ['anonymous executable', 'rwx']],
      ['7ff6062fe000', ['anonymous executable (memfd)', 'memfd payload']],
    ],
  );
});

// ---------------------------------------------------------------- a live process

test('live sleep: [stack] from its real stack pointer, found again by grep for an environment string it holds', async (t) => {
  const tag = `memdump-regions-${randomBytes(8).toString('hex')}`;
  const child = spawn('sleep', ['30'], { env: { ...process.env, MEMDUMP_REGIONS_TAG: tag }, stdio: 'ignore' });
  let fd: number | undefined;
  try {
    const pid = child.pid;
    if (pid === undefined) return t.skip('sleep not runnable');
    // wait until the thread is blocked in a syscall: then /proc/PID/task/PID/syscall shows its stack pointer
    let fields: string[] = [];
    for (let i = 0; i < 200 && fields.length < 9; i++) {
      try {
        fields = readFileSync(`/proc/${pid}/task/${pid}/syscall`, 'utf8').trim().split(' ');
      } catch (e) {
        return t.skip(`/proc/${pid}/task/${pid}/syscall not readable: ${(e as Error).message}`);
      }
      if (fields.length < 9) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(fields.length >= 9, `sleep never blocked: ${fields.join(' ')}`);
    try {
      fd = openSync(`/proc/${pid}/mem`, 'r');
    } catch (e) {
      return t.skip(`/proc/${pid}/mem not readable: ${(e as Error).message}`);
    }
    const memFd = fd;
    const read = async (addr: bigint, length: number): Promise<Buffer | undefined> => {
      const buf = Buffer.alloc(length);
      try {
        const n = await preadAt(memFd, buf, 0, length, addr);
        return n === 0 ? undefined : buf.subarray(0, n);
      } catch {
        return undefined; // [vvar] and the like
      }
    };
    const maps = parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8'));
    const sp = BigInt(fields[fields.length - 2]!);
    const picked = selectRegions(maps, sel({ stack: true, modules: ['libc'] }), { stackPointers: new Map([[pid, sp]]), pid });
    const stack = picked.regions.find((r) => pathOf(r) === '[stack]')!;
    assert.deepEqual(stack.reasons, [`stack of thread ${pid}`]);
    assert.ok(picked.regions.some((r) => pathOf(r).endsWith('/libc.so.6')));

    const hits = await grepRegions(maps, [parseGrepArg(tag)], read);
    assert.ok(hits.has(stack.start), 'the environment is at the top of the main stack');
    for (const [, hit] of hits) assert.equal((await read(hit.firstHit, tag.length))?.toString('latin1'), tag);
    const merged = addGrepHits(picked.regions, maps, hits).find((r) => r.start === stack.start)!;
    assert.deepEqual(merged.reasons, [`stack of thread ${pid}`, `grep "${tag}"`]);
  } finally {
    if (fd !== undefined) closeSync(fd);
    child.kill();
  }
});
