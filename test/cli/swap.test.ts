import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseReport } from '../../src/pipeline/report.js';
import { parseProcSwaps } from '../../src/sources/swaps.js';
import { runCli, tempDir } from '../helpers/cli.js';

/**
 * Real swap: a swap file and a swap loop device created here (mkswap + swapon), imaged by `memdump swap`.
 * Root only; swapoff and losetup -d run in cleanup whatever happens.
 */
const isRoot = process.geteuid?.() === 0;
type T = { after: (fn: () => void) => void; skip: (why: string) => void };

const run = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args);
  return { ok: r.status === 0, out: r.stdout.toString().trim(), err: r.stderr.toString().trim() };
};

/** A non-sparse 0600 file of `mib` MiB (swapon refuses holes and loose permissions), with a swap signature. */
function swapFile(path: string, mib: number, label: string): void {
  writeFileSync(path, Buffer.alloc(mib << 20), { mode: 0o600 });
  const r = run('mkswap', ['-L', label, path]);
  if (!r.ok) throw new Error(`mkswap: ${r.err}`);
}

/** Cleanup in the right order whatever happens: swapoff every area first, then detach the loop devices. */
function cleanup(t: T): { swaps: string[]; loops: string[] } {
  const c = { swaps: [] as string[], loops: [] as string[] };
  t.after(() => {
    for (const s of c.swaps) run('swapoff', [s]);
    for (const l of c.loops) run('losetup', ['-d', l]);
  });
  return c;
}

function swapOn(t: T, c: { swaps: string[] }, what: string): boolean {
  const r = run('swapon', [what]);
  if (!r.ok) {
    t.skip(`swapon ${what} refused: ${r.err}`);
    return false;
  }
  c.swaps.push(what);
  return true;
}

function loop(t: T, c: { loops: string[] }, file: string): string | undefined {
  const r = run('losetup', ['-f', '--show', file]);
  if (!r.ok) {
    t.skip(`losetup refused: ${r.err}`);
    return undefined;
  }
  c.loops.push(r.out);
  return r.out;
}

test('memdump swap: a swap file and a swap loop device, each imaged with its /proc/swaps line, hashes and report', { skip: !isRoot && 'needs root (mkswap, swapon, losetup)' }, async (t) => {
  // before tempDir: node:test runs after-hooks in registration order, and the directory cannot be removed while
  // a swap file in it is active (EPERM), which would also stop the hooks after it
  const c = cleanup(t);
  const dir = tempDir(t);
  const file = join(dir, 'swap file');
  swapFile(file, 8, 'md-file');
  const backing = join(dir, 'loop-backing.img');
  swapFile(backing, 6, 'md-loop');
  const dev = loop(t, c, backing);
  if (!dev) return;
  if (!swapOn(t, c, file) || !swapOn(t, c, dev)) return;
  const active = parseProcSwaps(readFileSync('/proc/swaps', 'utf8'));
  const fileLine = active.find((s) => s.path === file);
  const devLine = active.find((s) => s.path === dev);
  assert.ok(fileLine && devLine, readFileSync('/proc/swaps', 'utf8'));
  assert.equal(fileLine.type, 'file');
  assert.equal(devLine.type, 'partition');

  const list = await runCli(['--json', 'swap', '--list']);
  assert.equal(list.code, 0, list.stderr);
  const listed = JSON.parse(list.stdout.toString()).areas as { path: string; header: { label: string } | null }[];
  assert.equal(listed.find((a) => a.path === file)?.header?.label, 'md-file');
  assert.equal(listed.find((a) => a.path === dev)?.header?.label, 'md-loop');

  const out = join(dir, 'swapdir');
  const r = await runCli(['--json', 'swap', '-o', out, '--hash-window', '1M']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(out).mode & 0o777, 0o700);
  const res = JSON.parse(r.stdout.toString()) as { dir: string; areas: { path: string; status: string; output: string; report: string; bytes: string; digests: { sha256: string } }[] };
  assert.equal(res.dir, out);
  for (const [path, line, source] of [
    [file, fileLine, file],
    [dev, devLine, backing],
  ] as const) {
    const a = res.areas.find((x) => x.path === path);
    assert.ok(a, `${path} imaged`);
    assert.equal(a.status, 'COMPLETE');
    assert.equal(a.output, join(out, `${(path.replace(/^\//, '').replace(/[^A-Za-z0-9._-]+/g, '_'))}.raw`));
    const img = readFileSync(a.output);
    // dd with O_DIRECT is the oracle: the kernel writes swap around the page cache, so a buffered read of the swap
    // file returns the zeros cached when it was created, not what was swapped out since (this machine swaps at once)
    const direct = spawnSync('dd', [`if=${source}`, 'iflag=direct', 'bs=1M', 'status=none'], { maxBuffer: 64 << 20 }).stdout;
    assert.equal(img.length, direct.length, 'the whole area');
    assert.equal(img.length, statSync(source).size);
    // the signature page: mkswap wrote it and the kernel only reads it while the area is active
    assert.ok(img.subarray(0, 4096).equals(direct.subarray(0, 4096)), 'signature page equals the bytes read directly');
    assert.equal(img.subarray(4086, 4096).toString('latin1'), 'SWAPSPACE2');
    const rep = parseReport(readFileSync(a.report, 'utf8'), 'report');
    assert.equal(rep.command, 'swap');
    assert.equal(rep.status, 'COMPLETE');
    assert.deepEqual(rep.image?.device.swap, { type: line.type, sizeKiB: String(line.sizeKiB), usedKiB: rep.image?.device.swap?.usedKiB, priority: line.priority });
    assert.equal(rep.image?.device.type, path === dev ? 'block' : 'file');
    assert.match(String(rep.source.info.io), /^direct/, 'swap is read around the page cache');
    assert.equal(rep.hashes?.digests.sha256, a.digests.sha256);
    assert.ok(rep.warnings.some((w) => w.startsWith('active swap')));
  }
  const log = readFileSync(res.areas.find((x) => x.path === file)!.output + '.log', 'utf8');
  assert.match(log, /swap: active file, \d+ KiB, \d+ KiB used, priority -?\d+/);

  // a table for people
  const human = await runCli(['swap', '-o', join(dir, 'again')]);
  assert.equal(human.code, 0, human.stderr);
  const tableText = human.stdout.toString();
  assert.match(tableText, /^AREA +TYPE +SIZE +STATUS +IMAGE +SHA-256 \/ MD5\n/);
  assert.match(tableText, new RegExp(`${dev} +partition +6\\.0 MiB +COMPLETE +${join(dir, 'again')}/\\S+\\.raw +[0-9a-f]{64}`));
});

test('memdump swap --all: an inactive swap device (mkswap, never swapon) is found by its signature and imaged', { skip: !isRoot && 'needs root (mkswap, losetup)' }, async (t) => {
  const c = cleanup(t);
  const dir = tempDir(t);
  const backing = join(dir, 'inactive.img');
  swapFile(backing, 4, 'md-inactive');
  const dev = loop(t, c, backing);
  if (!dev) return;
  const plain = await runCli(['--json', 'swap', '--list']);
  assert.ok(!(JSON.parse(plain.stdout.toString()).areas as { path: string }[]).some((a) => a.path === dev), 'not active: not listed without --all');
  const all = await runCli(['--json', 'swap', '--all', '--list']);
  assert.equal(all.code, 0, all.stderr);
  const area = (JSON.parse(all.stdout.toString()).areas as { path: string; found: string; active: unknown; header: { label: string } }[]).find((a) => a.path === dev);
  assert.ok(area, all.stdout.toString());
  assert.equal(area.found, 'swap signature SWAPSPACE2 (inactive)');
  assert.equal(area.active, null);
  assert.equal(area.header.label, 'md-inactive');

  const out = join(dir, 'all');
  const r = await runCli(['--json', 'swap', '--all', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  const got = (JSON.parse(r.stdout.toString()).areas as { path: string; output: string; report: string }[]).find((a) => a.path === dev);
  assert.ok(got);
  assert.ok(readFileSync(got.output).equals(readFileSync(backing)), 'an inactive area does not change: byte for byte');
  const rep = parseReport(readFileSync(got.report, 'utf8'), 'report');
  assert.equal(rep.image?.device.swap, null);
  assert.equal(rep.options.swapFound, 'swap signature SWAPSPACE2 (inactive)');
});

test('acquire --include-swap: the RAM dump, then every active swap area in OUTPUT.swap/', { skip: !isRoot && 'needs root (mkswap, swapon)' }, async (t) => {
  const c = cleanup(t);
  const dir = tempDir(t);
  const file = join(dir, 'sw');
  swapFile(file, 4, 'md-incl');
  if (!swapOn(t, c, file)) return;
  const ram = join(dir, 'ram.img');
  writeFileSync(ram, Buffer.alloc(1 << 20, 0x5a));
  const out = join(dir, 'host.lime');
  const r = await runCli(['acquire', '--source', 'file', '--input', ram, '-o', out, '--no-context', '--include-swap']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(statSync(out).size > 1 << 20, 'the RAM dump comes first and is complete');
  const name = file.replace(/^\//, '').replace(/[^A-Za-z0-9._-]+/g, '_') + '.raw';
  const img = join(out + '.swap', name);
  assert.equal(statSync(out + '.swap').mode & 0o777, 0o700);
  assert.equal(statSync(img).size, 4 << 20);
  assert.equal(readFileSync(img).subarray(4086, 4096).toString('latin1'), 'SWAPSPACE2');
  const rep = parseReport(readFileSync(img + '.report.json', 'utf8'), 'report');
  assert.equal(rep.command, 'swap');
  assert.equal(rep.status, 'COMPLETE');
  assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} +file`), 'the swap table goes to stderr: stdout may carry the dump');
});
