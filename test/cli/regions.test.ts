import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { withTmpfs } from '../helpers/tmpfs.js';
import { startTarget, targetParked, targetToolsMissing } from '../helpers/target.js';

const missing = targetToolsMissing(['gcc']);
const opts = missing ? { skip: missing } : {};

interface Listing {
  regions: { start: string; end: string; perms: string; path: string; reasons: string[]; file: string | null; digests: { sha256?: string } }[];
}
interface Finding {
  start: string;
  kind: string;
  path: string;
}

async function suspicious(pid: number): Promise<Finding[]> {
  const r = await runCli(['--json', 'regions', String(pid), '--suspicious']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout.toString()) as { findings: Finding[] }).findings;
}

const hexOf = (v: bigint) => '0x' + v.toString(16);

test('regions --suspicious: nothing on a plain program; RWX, anonymous exec, ELF in anonymous memory, memfd exec when planted', opts, async (t) => {
  const plain = await startTarget(t, ['--threads', '1']);
  assert.deepEqual(await suspicious(plain.pid), [], 'a plain C program has nothing that looks injected');

  const inj = await startTarget(t, ['--threads', '1', '--rwx', '--memfd']);
  const f = await suspicious(inj.pid);
  const at = (addr: bigint | undefined) => f.filter((x) => x.start === hexOf(addr!)).map((x) => x.kind).sort();
  assert.deepEqual(at(inj.info.rwx), ['anon-exec', 'rwx']);
  assert.deepEqual(at(inj.info.elfHeader), ['anon-exec', 'elf-in-anon']);
  assert.deepEqual(at(inj.info.memfd), ['memfd-exec']);
  assert.ok(f.every((x) => x.path !== '[vdso]'));
  assert.ok((await targetParked(inj.pid, inj.tids, { untraced: true })).ok, 'threads let go after the scan');
});

test('regions --suspicious: a program running from a memfd and a mapped deleted executable', opts, async (t) => {
  const fileless = await startTarget(t, ['--threads', '1', '--memfd-exec']);
  const f1 = await suspicious(fileless.pid);
  assert.ok(f1.some((x) => x.kind === 'memfd-exec' && x.path.startsWith('/memfd:implant')), JSON.stringify(f1));
  const deleted = await startTarget(t, ['--threads', '1', '--deleted-exec']);
  const f2 = await suspicious(deleted.pid);
  assert.ok(f2.some((x) => x.kind === 'deleted-exec' && x.start === hexOf(deleted.info.deletedExec!.addr)), JSON.stringify(f2));
});

test('regions: stacks of every thread, the heap, injected code and grep hits land in raw files with hashes', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startTarget(t, ['--threads', '3', '--rwx']);
  const out = join(dir, 'cut');
  const r = await runCli(['regions', String(target.pid), '--stack', '--heap', '--anon-exec', '--grep', target.info.markers['data']!.text, '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(out).mode & 0o777, 0o700);
  const listing = JSON.parse(readFileSync(join(out, 'regions.json'), 'utf8')) as Listing;
  const fileFor = (addr: bigint) => listing.regions.find((g) => BigInt(g.start) <= addr && addr < BigInt(g.end));
  // every thread's stack marker is inside a selected stack region, and the file holds it at the right offset
  target.info.stacks.forEach((addr, i) => {
    const g = fileFor(addr);
    assert.ok(g, `stack of thread ${i} selected`);
    assert.ok(g.reasons.some((x) => x.startsWith('stack of thread') || x === '[stack]'), g.reasons.join());
    const bytes = readFileSync(g.file!);
    const off = Number(addr - BigInt(g.start));
    assert.equal(bytes.subarray(off, off + target.info.markers[`stack-${i}`]!.text.length).toString(), target.info.markers[`stack-${i}`]!.text);
    assert.equal(statSync(g.file!).mode & 0o777, 0o600);
  });
  const heap = fileFor(target.info.heap)!;
  assert.ok(heap.reasons.includes('[heap]'));
  const code = fileFor(target.info.rwx!)!;
  assert.ok(readFileSync(code.file!).subarray(0, target.info.code.length).equals(target.info.code));
  assert.ok(fileFor(target.info.data)!.reasons.some((x) => x.startsWith('grep')));
  for (const g of listing.regions) {
    const sha = spawnSync('sha256sum', [g.file!]).stdout.toString().split(' ')[0];
    assert.equal(g.digests.sha256, sha, `hash of ${g.file}`);
  }
  const rep = JSON.parse(readFileSync(join(out, 'regions.report.json'), 'utf8')) as { status: string; command: string; regions: unknown[] };
  assert.equal(rep.status, 'COMPLETE');
  assert.equal(rep.command, 'regions');
  assert.equal(rep.regions.length, listing.regions.length);
  assert.deepEqual(readdirSync(out).filter((n) => n.endsWith('.raw')).length, listing.regions.length);
});

test('regions --format elf: one core of just the chosen regions that gdb reads, with --module and --range', opts, async (t) => {
  const dir = tempDir(t);
  const target = await startTarget(t, ['--threads', '1']);
  const core = join(dir, 'part.core');
  const stack0 = target.info.stacks[0]!;
  const r = await runCli(['regions', String(target.pid), '--range', `${hexOf(stack0 & ~0xfffn)}+4K`, '--module', 'libc', '--format', 'elf', '-o', core]);
  assert.equal(r.code, 0, r.stderr);
  const gdb = spawnSync('gdb', ['-nx', '-batch', target.exe, '-c', core, '-ex', `x/s ${hexOf(stack0)}`, '-ex', 'info sharedlibrary'], { encoding: 'utf8' });
  assert.match(gdb.stdout, new RegExp(target.info.markers['stack-0']!.text));
  const info = await runCli(['--json', 'info', core]);
  assert.equal(info.code, 0, info.stderr);
  const rep = JSON.parse(readFileSync(core + '.report.json', 'utf8')) as { regions: { reasons: string[]; path: string }[] };
  assert.ok(rep.regions.some((g) => g.reasons.some((x) => /range/.test(x))));
  assert.ok(rep.regions.some((g) => /libc\.so/.test(g.path)));
  const lime = await runCli(['regions', String(target.pid), '--heap', '--format', 'lime', '-o', join(dir, 'heap.lime')]);
  assert.equal(lime.code, 0, lime.stderr);
  assert.ok(readFileSync(join(dir, 'heap.lime')).includes(Buffer.from(target.info.markers['heap']!.text)));
});

test('regions: the disk-space guard refuses raw output that would not fit, before anything is written', { ...opts, skip: missing ?? (process.getuid?.() !== 0 ? 'needs root to mount a tmpfs' : false) }, async (t) => {
  const dir = tempDir(t);
  const target = await startTarget(t, ['--threads', '1', '--anon-mib', '16']);
  await withTmpfs(t, join(dir, 'mnt'), '4m', async (mnt) => {
    const r = await runCli(['regions', String(target.pid), '--range', `${hexOf(target.info.anon!.addr)}+16M`, '-o', join(mnt, 'cut')]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /E_NO_SPACE/);
    assert.deepEqual(readdirSync(mnt), []);
  });
  assert.ok((await targetParked(target.pid, target.tids, { untraced: true })).ok, 'threads let go after the refusal');
});

test('regions: usage errors are coded', opts, async (t) => {
  const target = await startTarget(t, ['--threads', '1']);
  const none = await runCli(['regions', String(target.pid)]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /E_USAGE/);
  const badRange = await runCli(['regions', String(target.pid), '--range', 'nonsense']);
  assert.equal(badRange.code, 2);
  const badFormat = await runCli(['regions', String(target.pid), '--stack', '--format', 'avml']);
  assert.equal(badFormat.code, 2);
});
