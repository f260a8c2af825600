/**
 * Oracle for `memdump process PID -o X.core`: a real multi-threaded target (test/helpers/target.c) parks all
 * its threads with known registers and known strings in memory; gdb loads the core memdump wrote and must show
 * what it shows on a core `gcore` takes of the same, still parked, process right after.
 *
 * The checks live in two functions that take any core, so they are validated here on gcore's own cores
 * (first test: gcore vs a second gcore, plus a tampered copy that must be caught); the memdump tests only run
 * the CLI and call them.
 *
 * What may legitimately differ between two dumps of the parked target, and is therefore not compared:
 *  - each thread's rseq area (32 bytes at fs_base + __rseq_offset, reported by the target): the kernel rewrites
 *    cpu_id/mm_cid there whenever the thread returns to user space, which a dumper's attach/detach makes it do
 *    (observed: two gcore dumps differ in exactly these bytes when the thread ran on another CPU);
 *  - [vvar] / [vvar_vclock] (kernel time data, changes constantly) and [vsyscall] (gcore writes zeros for it:
 *    the page is execute-only and unreadable through /proc/PID/mem with vsyscall=xonly).
 * Registers need no exception: every thread is stopped inside the same `pause` syscall (orig_rax 34,
 * rax -ERESTARTNOHAND, rip/rcx after the syscall instruction, r11 = the eflags saved by the syscall) whichever
 * way a tracer stops it, and everything else was loaded by park() or is fixed per thread (rsp, rbp, fs_base,
 * segment selectors). Vector/x87/AVX-512 state is left out (see CORE_GP_REGS).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import {
  CORE_GP_REGS,
  compareCoreMemory,
  compareRegisters,
  coreCoverage,
  describeMismatch,
  formatRanges,
  gdbCoreView,
  readCoreBytes,
  intersectRanges,
  readCoreLoads,
  subtractRanges,
  type AddrRange,
  type GdbCoreView,
} from '../helpers/gdb.js';
import { anonPage, gcore, readMaps, startTarget, targetParked, targetToolsMissing, type Target, type TargetInfo } from '../helpers/target.js';

const missing = targetToolsMissing();
const skip = missing ?? false;
const TIMEOUT = 10 * 60_000;

// ---------------------------------------------------------------------------------------------------------
// checks on any core

/** Everything to read with x/s: every marker the target reported. */
function markerAddresses(info: TargetInfo): bigint[] {
  return Object.values(info.markers).map((m) => m.addr);
}

/** Ranges whose bytes may legitimately differ between two dumps of the parked target (see the top comment). */
function volatileRanges(target: Target): AddrRange[] {
  const out: AddrRange[] = target.info.rseq.map((a) => ({ start: a, end: a + BigInt(target.info.rseqSize) }));
  for (const m of readMaps(target.pid)) if (/^\[(vvar.*|vsyscall)\]$/.test(m.path)) out.push({ start: m.start, end: m.end });
  return out;
}

/** Shared objects the live target has mapped, by basename (gdb prints /lib/... where maps says /usr/lib/...). */
function mappedLibraries(target: Target): string[] {
  const libs = new Set<string>();
  for (const m of readMaps(target.pid)) if (/\.so(\.\d+)*$/.test(m.path)) libs.add(path.basename(m.path));
  return [...libs].sort();
}

/**
 * gdb on EXE + CORE shows the target as it is: every thread (main = gdb thread 1) with its known registers,
 * a symbolic backtrace through park() and main()/worker(), the shared libraries the process has mapped, and
 * every marker string at its address.
 */
async function checkCoreShowsTarget(t: TestContext, target: Target, core: string, exe: string = target.exe): Promise<GdbCoreView> {
  const { info } = target;
  const view = await gdbCoreView(exe, core, { addresses: markerAddresses(info) });
  const ctx = `\n--- gdb on ${core} ---\n${view.raw.slice(0, 6000)}`;
  if (view.warnings.length > 0) t.diagnostic(`gdb warnings on ${path.basename(core)}: ${view.warnings.join(' | ')}`);

  // threads
  assert.deepEqual(view.threads.map((th) => th.lwp).sort((a, b) => a - b), [...info.tids].sort((a, b) => a - b), `LWPs in the core${ctx}`);
  assert.equal(view.threads[0]?.num, 1, ctx);
  assert.equal(view.threads[0]?.lwp, info.tids[0], `gdb thread 1 must be the main thread${ctx}`);

  // Every thread has its registers in the core. (gdb also lists threads it finds through libthread_db in the
  // core's memory, so a thread whose NT_PRSTATUS is missing still appears, but without registers.)
  for (const th of view.threads) {
    for (const reg of CORE_GP_REGS) assert.ok(th.regs[reg] !== undefined, `LWP ${th.lwp}: no ${reg} in the core${ctx}`);
  }

  // registers park() loaded, and fs_base
  for (const [i, tid] of info.tids.entries()) {
    const th = view.threads.find((x) => x.lwp === tid);
    assert.ok(th, `thread ${tid} missing${ctx}`);
    const want = info.regs[i];
    assert.equal(want?.tid, tid);
    for (const [reg, value] of Object.entries(want?.values ?? {})) {
      assert.equal(th.regs[reg], value, `thread ${tid} ${reg}: gdb shows ${th.regs[reg]?.toString(16)}, want ${value.toString(16)}${ctx}`);
    }
    assert.equal(th.regs['orig_rax'], 34n, `thread ${tid} should be in pause (orig_rax 34)${ctx}`);

    // backtrace: park <- main / worker, symbolic, with source lines
    const caller = i === 0 ? 'main' : 'worker';
    const funcs = th.frames.map((f) => f.func);
    assert.equal(funcs[0], 'park', `thread ${tid} frame 0${ctx}`);
    assert.equal(funcs[1], caller, `thread ${tid} frame 1${ctx}`);
    for (const f of th.frames.slice(0, 2)) {
      assert.notEqual(f.func, '??', `thread ${tid}: ${f.raw}${ctx}`);
      assert.match(f.file ?? '', /target\.c$/, `thread ${tid}: no source line in ${f.raw}${ctx}`);
    }
  }

  // shared libraries: the ones the process maps, with symbols
  const libs = view.sharedLibraries.map((l) => path.basename(l.path)).sort();
  assert.deepEqual(libs, mappedLibraries(target), `info sharedlibrary${ctx}`);
  assert.ok(libs.some((l) => l === 'libc.so.6'), `libc missing${ctx}`);
  assert.ok(libs.some((l) => /^ld-linux-x86-64\.so\.2$/.test(l)), `ld-linux missing${ctx}`);
  for (const l of view.sharedLibraries) {
    assert.match(l.symsRead, /^Yes/, `${l.path}: symbols not read${ctx}`);
    assert.ok(l.from !== undefined && l.to !== undefined, `${l.path}: no address${ctx}`);
  }

  // markers
  for (const [name, m] of Object.entries(info.markers)) {
    assert.equal(view.strings.get(m.addr), m.text, `x/s of marker ${name} at 0x${m.addr.toString(16)}${ctx}`);
  }
  return view;
}

/**
 * Two cores of the same parked target agree: same threads and gdb thread order of the main thread, every
 * general register of every thread, the same shared libraries at the same addresses, the same backtraces,
 * and the same bytes at every address both hold (except volatileRanges). Returns the byte comparison.
 */
async function checkCoresAgree(t: TestContext, target: Target, core: string, reference: string, views?: { core?: GdbCoreView; reference?: GdbCoreView }): Promise<Awaited<ReturnType<typeof compareCoreMemory>>> {
  const addresses = markerAddresses(target.info);
  const [a, b] = await Promise.all([
    views?.core ?? gdbCoreView(target.exe, core, { addresses }),
    views?.reference ?? gdbCoreView(target.exe, reference, { addresses }),
  ]);
  const name = `${path.basename(core)} vs ${path.basename(reference)}`;

  const lwps = (v: GdbCoreView): number[] => v.threads.map((x) => x.lwp).sort((p, q) => p - q);
  assert.deepEqual(lwps(a), lwps(b), `${name}: threads`);
  assert.equal(a.threads[0]?.lwp, b.threads[0]?.lwp, `${name}: gdb thread 1`);

  const regDiffs = compareRegisters(a, b, CORE_GP_REGS);
  assert.deepEqual(
    regDiffs.map((d) => `LWP ${d.lwp} ${d.reg}: ${d.a?.toString(16)} != ${d.b?.toString(16)}`),
    [],
    `${name}: registers differ`,
  );

  const libs = (v: GdbCoreView): string[] => v.sharedLibraries.map((l) => `${l.path} ${l.from?.toString(16)}-${l.to?.toString(16)} ${l.symsRead}`);
  assert.deepEqual(libs(a), libs(b), `${name}: info sharedlibrary`);

  const bts = (v: GdbCoreView): Record<number, string[]> => Object.fromEntries(v.threads.map((x) => [x.lwp, x.frames.map((f) => `${f.func} ${f.file ?? f.from ?? ''}:${f.line ?? ''}`)]));
  assert.deepEqual(bts(a), bts(b), `${name}: backtraces`);

  const cmp = await compareCoreMemory(core, reference, { exclude: volatileRanges(target) });
  t.diagnostic(`${name}: compared ${cmp.comparedBytes} bytes, excluded ${cmp.excludedBytes}; only in first: ${formatRanges(cmp.onlyInA, 8) || '-'}; only in second: ${formatRanges(cmp.onlyInB, 8) || '-'}`);
  if (cmp.mismatches.length > 0) {
    const first = cmp.mismatches[0] as AddrRange;
    assert.fail(`${name}: bytes differ in ${formatRanges(cmp.mismatches)}\n${await describeMismatch(core, reference, first)}`);
  }
  // both hold at least every marker, so the comparison covered stacks, heap and .data
  const both = intersectRanges(coreCoverage(await readCoreLoads(core)), coreCoverage(await readCoreLoads(reference)));
  for (const [n, m] of Object.entries(target.info.markers)) {
    assert.ok(both.some((r) => m.addr >= r.start && m.addr < r.end), `${name}: marker ${n} not held by both cores`);
  }
  assert.ok(cmp.comparedBytes > 0n);
  return cmp;
}

/** After a dumper is done, the target is still parked, with no tracer and no stopped thread. */
async function checkTargetResumed(target: Target, who: string): Promise<void> {
  const p = await targetParked(target.pid, target.tids, { untraced: true });
  assert.ok(p.ok, `after ${who}: ${p.why}`);
}

// ---------------------------------------------------------------------------------------------------------
// tampering, to prove the checks can fail

/** x86-64 user_regs_struct order in NT_PRSTATUS (pr_reg at offset 112). */
const PR_REG_OFFSET = 112;
const USER_REGS = ['r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx', 'rsi', 'rdi', 'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs'];

/** Every note of a core: its type and the file offsets of its header and descriptor, in file order. */
function coreNotes(file: Buffer): Array<{ type: number; note: number; desc: number }> {
  const phoff = Number(file.readBigUInt64LE(32));
  const phentsize = file.readUInt16LE(54);
  const phnum = file.readUInt16LE(56);
  const out: Array<{ type: number; note: number; desc: number }> = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (file.readUInt32LE(o) !== 4) continue; // PT_NOTE
    const off = Number(file.readBigUInt64LE(o + 8));
    const size = Number(file.readBigUInt64LE(o + 32));
    for (let p = off; p + 12 <= off + size; ) {
      const namesz = file.readUInt32LE(p);
      const descsz = file.readUInt32LE(p + 4);
      const type = file.readUInt32LE(p + 8);
      const desc = p + 12 + ((namesz + 3) & ~3);
      out.push({ type, note: p, desc });
      p = desc + ((descsz + 3) & ~3);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// the oracle on gcore's cores (runs today)

test('oracle validation: gcore core of the parked target passes every check; a second gcore core agrees with it', { skip, timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t, 'memdump-gdb-oracle-');
  const target = await startTarget(t, ['--threads', '3']);
  const first = await gcore(target.pid, path.join(dir, 'first'));
  await checkTargetResumed(target, 'gcore');
  const second = await gcore(target.pid, path.join(dir, 'second'));
  await checkTargetResumed(target, 'gcore');

  const view = await checkCoreShowsTarget(t, target, first);
  assert.deepEqual(view.warnings, [], 'gdb warns on a gcore core');
  await checkCoreShowsTarget(t, target, second);
  const cmp = await checkCoresAgree(t, target, first, second);
  assert.deepEqual(cmp.onlyInA, [], 'two gcore cores hold the same ranges');
  assert.deepEqual(cmp.onlyInB, []);

  // The checks catch a wrong register, a wrong byte, and a missing thread.
  const bytes = readFileSync(first);
  const notes = coreNotes(bytes);
  const prs = notes.filter((n) => n.type === 1); // NT_PRSTATUS
  assert.equal(prs.length, target.tids.length);
  const badRegs = Buffer.from(bytes);
  const r12 = (prs[1]?.desc as number) + PR_REG_OFFSET + USER_REGS.indexOf('r12') * 8;
  badRegs.writeBigUInt64LE(badRegs.readBigUInt64LE(r12) ^ 1n, r12);
  const badRegsCore = path.join(dir, 'bad-regs.core');
  await fs.writeFile(badRegsCore, badRegs);
  await assert.rejects(checkCoreShowsTarget(t, target, badRegsCore), /r12/);
  await assert.rejects(checkCoresAgree(t, target, badRegsCore, second), /registers differ[\s\S]*r12/);

  const badMem = Buffer.from(bytes);
  const heap = target.info.markers['heap'] as { addr: bigint; text: string };
  const loads = await readCoreLoads(first);
  const seg = loads.find((l) => heap.addr >= l.vaddr && heap.addr < l.vaddr + l.filesz);
  assert.ok(seg, 'heap marker not in the gcore core');
  const at = Number(seg.offset + (heap.addr - seg.vaddr)) + 8;
  badMem[at] = (badMem[at] as number) ^ 0x20;
  const badMemCore = path.join(dir, 'bad-mem.core');
  await fs.writeFile(badMemCore, badMem);
  await assert.rejects(checkCoreShowsTarget(t, target, badMemCore), /marker heap/);
  await assert.rejects(checkCoresAgree(t, target, badMemCore, second), new RegExp(`bytes differ in 0x${((heap.addr + 8n) & ~0xfffn).toString(16)}-`));

  // Hide thread 2: give its notes (its NT_PRSTATUS up to the next one) a type gdb ignores.
  const badThreads = Buffer.from(bytes);
  for (const n of notes) if (n.note >= (prs[1]?.note as number) && n.note < (prs[2]?.note as number)) badThreads.writeUInt32LE(0x7fff, n.note + 8);
  const badThreadsCore = path.join(dir, 'bad-threads.core');
  await fs.writeFile(badThreadsCore, badThreads);
  await assert.rejects(checkCoreShowsTarget(t, target, badThreadsCore), new RegExp(`LWPs in the core|LWP ${target.tids[1]}: no rax in the core`));
});

test('target helper: every mode maps what it reports', { skip, timeout: TIMEOUT }, async (t) => {
  const target = await startTarget(t, ['--threads', '2', '--anon-mib', '2', '--rwx', '--memfd', '--deleted-exec']);
  const { info } = target;
  const maps = readMaps(target.pid);
  const mapAt = (a: bigint | undefined): { perms: string; path: string } | undefined => maps.find((m) => a !== undefined && a >= m.start && a < m.end);
  assert.equal(mapAt(info.rwx)?.perms, 'rwxp');
  assert.equal(mapAt(info.rwx)?.path, '');
  assert.equal(mapAt(info.elfHeader)?.perms, 'r-xp');
  assert.equal(mapAt(info.elfHeader)?.path, '');
  assert.equal(mapAt(info.memfd)?.perms, 'r-xp');
  assert.equal(mapAt(info.memfd)?.path, '/memfd:payload (deleted)');
  assert.equal(mapAt(info.deletedExec?.addr)?.perms, 'r-xp');
  assert.equal(mapAt(info.deletedExec?.addr)?.path, `${info.deletedExec?.path} (deleted)`);
  assert.equal(mapAt(info.anon?.addr)?.perms, 'rw-p');

  // contents, through /proc/PID/mem
  const mem = await fs.open(`/proc/${target.pid}/mem`, 'r');
  t.after(() => mem.close());
  const read = async (a: bigint, n: number): Promise<Buffer> => {
    const b = Buffer.alloc(n);
    const { bytesRead } = await mem.read(b, 0, n, Number(a));
    assert.equal(bytesRead, n);
    return b;
  };
  const exeHead = readFileSync(target.exe).subarray(0, 4096);
  assert.ok((await read(info.elfHeader as bigint, 4096)).equals(exeHead));
  assert.ok((await read(info.deletedExec?.addr as bigint, 4096)).equals(exeHead));
  for (const name of ['rwx', 'memfd'] as const) {
    const page = await read(info[name] as bigint, 4096);
    assert.ok(page.subarray(0, info.code.length).equals(info.code), name);
    assert.equal(info.markers[name]?.addr, (info[name] as bigint) + BigInt(info.code.length));
  }
  for (const [name, m] of Object.entries(info.markers)) {
    assert.equal((await read(m.addr, m.text.length + 1)).toString('latin1'), `${m.text}\0`, name);
  }
  const anon = info.anon as { addr: bigint; bytes: number };
  assert.equal(anon.bytes, 2 << 20);
  for (const p of [0n, 1n, 511n]) assert.ok((await read(anon.addr + p * 4096n, 4096)).equals(anonPage(info.magic, p)), `anon page ${p}`);

  // checkSpecialPages on a gcore core that holds everything (file-backed mappings too)
  const dir = tempDir(t, 'memdump-gdb-oracle-');
  await fs.writeFile(`/proc/${target.pid}/coredump_filter`, '0x1ff');
  await checkSpecialPages(target, await gcore(target.pid, path.join(dir, 'all')));

  // --memfd-exec: the text comes from a memfd; gdb still shows everything with the cached binary as EXE
  const implant = await startTarget(t, ['--memfd-exec', '--threads', '1']);
  assert.equal(implant.info.exe, '/memfd:implant (deleted)');
  assert.ok(readMaps(implant.pid).some((m) => m.perms === 'r-xp' && m.path === '/memfd:implant (deleted)'));
  await checkCoreShowsTarget(t, implant, await gcore(implant.pid, path.join(dir, 'implant')));

  // --traced: the child is traced by its parent for good; another tracer (gcore) cannot attach
  const traced = await startTarget(t, ['--traced']);
  assert.equal(traced.info.tracedPid, traced.pid);
  assert.notEqual(traced.info.tracerPid, traced.pid);
  assert.equal(traced.spawnedPid, traced.info.tracerPid);
  const st = await fs.readFile(`/proc/${traced.pid}/status`, 'utf8');
  assert.match(st, new RegExp(`^TracerPid:\\s*${traced.info.tracerPid}$`, 'm'));
  await assert.rejects(gcore(traced.pid, path.join(dir, 'traced')), /already traced|not permitted/i);
  const tmem = await fs.open(`/proc/${traced.pid}/mem`, 'r');
  t.after(() => tmem.close());
  const heap = traced.info.markers['heap'] as { addr: bigint; text: string };
  const hb = Buffer.alloc(heap.text.length);
  await tmem.read(hb, 0, hb.length, Number(heap.addr));
  assert.equal(hb.toString('latin1'), heap.text);
});

// ---------------------------------------------------------------------------------------------------------
// memdump (fails until `memdump process` exists)

/** Run `memdump process PID -o DIR/x.core`; returns the core path. */
async function memdumpProcess(t: TestContext, target: Target, dir: string, extra: string[] = []): Promise<string> {
  const out = path.join(dir, 'x.core');
  const r = await runCli(['process', String(target.pid), '-o', out, ...extra]);
  t.diagnostic(`memdump process exit ${r.code}; stderr: ${r.stderr.slice(-2000)}`);
  assert.equal(r.code, 0, `memdump process failed (${r.code ?? r.signal}):\n${r.stderr}`);
  return out;
}

test('memdump process: gdb shows the threads, registers, libraries, backtraces and markers, as on gcore\'s core taken right after', { skip, timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t, 'memdump-gdb-oracle-');
  const target = await startTarget(t, ['--threads', '3']);
  const core = await memdumpProcess(t, target, dir);
  await checkTargetResumed(target, 'memdump process');
  const reference = await gcore(target.pid, path.join(dir, 'gcore'));

  await t.test('gdb shows the target in memdump\'s core', async (st) => {
    await checkCoreShowsTarget(st, target, core);
  });
  await t.test('registers, libraries, backtraces and bytes agree with gcore\'s core', async (st) => {
    await checkCoresAgree(st, target, core, reference);
  });
  await t.test('whatever gcore dumped and memdump did not lies in a mapping the report says was left out, and why', async () => {
    // gcore also writes zero-filled guard pages (---p) and a few file-backed pages; memdump follows
    // coredump_filter like the kernel and cannot read PROT_NONE memory from userland: each such range must be
    // a mapping the report lists as not dumped (or dumped only partly), with a reason
    const cmp = await compareCoreMemory(core, reference, { exclude: volatileRanges(target) });
    const lacking = subtractRanges(cmp.onlyInB, volatileRanges(target));
    const report = JSON.parse(await fs.readFile(`${core}.report.json`, 'utf8')) as { process: { mappings: { start: string; end: string; dumped: string; reason: string }[] } };
    for (const r of lacking) {
      const m = report.process.mappings.find((x) => BigInt(x.start) <= r.start && r.end <= BigInt(x.end));
      assert.ok(m, `0x${r.start.toString(16)} is in no mapping of the report`);
      assert.ok(BigInt(m.dumped) < BigInt(m.end) - BigInt(m.start), `${m.start} was dumped whole yet gcore has bytes we lack`);
      assert.match(m.reason, /not readable|not selected|ELF header|never written/, `${m.start}: ${m.reason}`);
    }
  });
  await t.test('report x.core.report.json is COMPLETE', async () => {
    const report = JSON.parse(await fs.readFile(`${core}.report.json`, 'utf8')) as { status?: unknown };
    assert.equal(report.status, 'COMPLETE');
  });
});

test('memdump process: RWX, ELF-header-in-anonymous, memfd, deleted-exec and anonymous pages are in the core', { skip, timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t, 'memdump-gdb-oracle-');
  const target = await startTarget(t, ['--threads', '1', '--anon-mib', '4', '--rwx', '--memfd', '--deleted-exec']);
  const core = await memdumpProcess(t, target, dir);
  await checkTargetResumed(target, 'memdump process');
  await checkCoreShowsTarget(t, target, core);
  await checkSpecialPages(target, core);
});

/** The special mappings' bytes, read from the core's PT_LOADs. */
async function checkSpecialPages(target: Target, core: string): Promise<void> {
  const { info } = target;
  const loads = await readCoreLoads(core);
  const exe = readFileSync(target.exe);
  const at = async (a: bigint | undefined, n: number, what: string): Promise<Buffer> => {
    assert.ok(a !== undefined, what);
    const b = await readCoreBytes(core, a, n, loads);
    assert.ok(b, `${what} (0x${a.toString(16)}, ${n} bytes) not in the core`);
    return b;
  };
  for (const name of ['rwx', 'memfd'] as const) {
    const page = await at(info[name], 4096, name);
    const marker = info.markers[name] as { text: string };
    assert.ok(page.subarray(0, info.code.length).equals(info.code), `${name}: code`);
    assert.equal(page.subarray(info.code.length, info.code.length + marker.text.length).toString('latin1'), marker.text, `${name}: marker`);
  }
  assert.ok((await at(info.elfHeader, 4096, 'ELF header in anonymous memory')).equals(exe.subarray(0, 4096)));
  const del = info.deletedExec as { addr: bigint; bytes: number };
  assert.ok((await at(del.addr, del.bytes, 'deleted executable mapping')).equals(exe.subarray(0, del.bytes)));
  const anon = info.anon as { addr: bigint; bytes: number };
  const pages = BigInt(anon.bytes / 4096);
  for (const p of [0n, 1n, pages / 2n, pages - 1n]) assert.ok((await at(anon.addr + p * 4096n, 4096, `anon page ${p}`)).equals(anonPage(info.magic, p)), `anon page ${p}`);
}

test('memdump process: a target running from a memfd (/memfd:implant) still loads in gdb with symbols', { skip, timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t, 'memdump-gdb-oracle-');
  const target = await startTarget(t, ['--memfd-exec', '--threads', '2']);
  const core = await memdumpProcess(t, target, dir);
  await checkTargetResumed(target, 'memdump process');
  await checkCoreShowsTarget(t, target, core);
});

test('memdump process: a target traced by another process still yields its memory', { skip, timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t, 'memdump-gdb-oracle-');
  const target = await startTarget(t, ['--traced']);
  const core = await memdumpProcess(t, target, dir);
  const loads = await readCoreLoads(core);
  for (const [name, m] of Object.entries(target.info.markers)) {
    const b = await readCoreBytes(core, m.addr, m.text.length, loads);
    assert.equal(b?.toString('latin1'), m.text, `marker ${name}`);
  }
  // still traced by its own parent, not stopped by memdump
  const st = await fs.readFile(`/proc/${target.pid}/status`, 'utf8');
  assert.match(st, new RegExp(`^TracerPid:\\s*${target.info.tracerPid}$`, 'm'));
  assert.match(st, /^State:\s*S/m);
});
