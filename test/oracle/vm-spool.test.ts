/**
 * `memdump vm --qmp --spool DIR` against a real QEMU 7.2 (TCG, no disk): QEMU's stream is spooled raw, the guest
 * is resumed when QEMU is done, and the evidence built from the spool holds the memory QEMU's own dump-guest-memory
 * holds. The spool is the stream byte for byte (its SHA-256 equals that of QEMU's own file dump of a paused guest),
 * it disappears when the evidence is complete, and every refusal (no room for spool + output) comes before the
 * guest is touched.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_EXIT } from '../../src/core/errors.js';
import { formatByName } from '../../src/formats/registry.js';
import { jobFromSpool } from '../../src/pipeline/vm-spool.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { contentHashOf } from '../helpers/content.js';
import { startCollector } from '../helpers/receiver.js';
import { withTmpfs } from '../helpers/tmpfs.js';
import { pauseSeen, qemuBinary, referenceDump, startBareGuest } from '../helpers/vm-qemu.js';

const skip = qemuBinary ? false : 'qemu-system-x86_64 not installed';

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

test('paused guest --spool: the spool is QEMU\'s own dump byte for byte, the evidence holds its memory, spool removed, verify MATCH', { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 64, paused: true, name: 'spool-guest' });
  const spool = join(dir, 'spool');
  mkdirSync(spool);
  const out = join(dir, 'guest.lime');
  const r = await runCli(['vm', '--qmp', `unix:${g.sock}`, '--spool', spool, '-o', out, '--case', 'IR-6']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(spool), [], 'spool removed');
  assert.equal((await g.status()).status, 'prelaunch', 'a guest found paused stays paused');

  const ref = join(dir, 'qemu.elf');
  await referenceDump(g, ref);
  const want = await contentHashOf(ref);
  assert.equal(await contentHashOf(out), want, 'content hash of the evidence = QEMU dump-guest-memory');

  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
  assert.equal(report.status, 'COMPLETE');
  assert.equal(report.contentSha256, want);
  const vm = report.source.info.vm;
  assert.equal(vm.name, 'spool-guest');
  assert.equal(vm.dump.status, 'completed');
  assert.match(vm.spooled.path, new RegExp(`^${spool}/memdump-spool-[0-9a-f]{16}\\.elf$`));
  assert.equal(vm.spooled.removed, true);
  assert.equal(vm.spooled.pausedMs, null, 'never paused by the dump');
  // the stream QEMU wrote into the pipe is the file QEMU writes itself: same bytes, same SHA-256
  assert.equal(vm.spooled.bytes, String(statSync(ref).size));
  assert.equal(vm.spooled.sha256, sha256File(ref));
  assert.equal(report.options.spool, spool);
  assert.match(r.stderr, /spooled \d+ bytes to /);

  const v = await runCli(['verify', out]);
  assert.equal(v.code, 0, v.stderr + v.stdout.toString());
  assert.match(v.stdout.toString() + v.stderr, /MATCH/);

  // the same with standard output as the evidence
  const rep = join(dir, 'stdout.report.json');
  const s = await runCli(['vm', '--qmp', g.sock, '--spool', spool, '-o', '-', '--report', rep, '-q']);
  assert.equal(s.code, 0, s.stderr);
  const piped = join(dir, 'stdout.lime');
  writeFileSync(piped, s.stdout);
  assert.equal(await contentHashOf(piped), want);
  assert.equal(JSON.parse(readFileSync(rep, 'utf8')).source.info.vm.spooled.removed, true);
  assert.deepEqual(readdirSync(spool), []);
});

test('running guest --spool: resumed when QEMU is done, pausedMs from its STOP/RESUME events, evidence complete', { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 128, paused: false });
  const before = g.watch.lastEventSeq;
  const out = join(dir, 'run.elf');
  const r = await runCli(['vm', '--qmp', `unix:${g.sock}`, '--spool', dir, '-o', out, '-f', 'elf', '-q']);
  assert.equal(r.code, 0, r.stderr);
  const st = await g.status();
  assert.equal(st.running, true);
  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
  const vm = report.source.info.vm;
  assert.equal(vm.runningBefore, true);
  assert.equal(vm.runningAfter, true);
  assert.equal(vm.resumed, true);
  const { ms: paused, resumeUs } = pauseSeen(g, before);
  assert.equal(vm.pausedMs, paused);
  assert.equal(vm.spooled.pausedMs, paused);
  assert.equal(vm.spooled.removed, true);
  assert.equal(readdirSync(dir).filter((n) => n.startsWith('memdump-spool-')).length, 0, 'spool removed');
  assert.equal(report.status, 'COMPLETE');
  // the whole job (hashing, container) began after QEMU resumed the guest (same host clock)
  assert.ok(resumeUs / 1000 <= Date.parse(report.time.start) + 1, `RESUME ${resumeUs} µs, job start ${report.time.start}`);
  const v = await runCli(['verify', out]);
  assert.equal(v.code, 0, v.stderr);
});

test('no room for spool + output: refused before dump-guest-memory, the guest never paused, nothing left behind', { skip: skip || (process.getuid?.() !== 0 ? 'needs root to mount a tmpfs' : false), timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 64, paused: false });
  await withTmpfs(t, join(dir, 'small'), '100m', async (mnt) => {
    const before = g.watch.lastEventSeq;
    // the spool (64 MiB) fits; spool and a LiME of 64 MiB on the same filesystem do not
    const r = await runCli(['vm', '--qmp', g.sock, '--spool', mnt, '-o', join(mnt, 'a.lime'), '--max-disk-usage', '100', '-q']);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /E_NO_SPACE/);
    assert.match(r.stderr, /--spool/);
    assert.deepEqual(readdirSync(mnt), []);
    assert.deepEqual(g.watch.bufferedEvents().filter((e) => e.seq > before && e.event === 'STOP'), [], 'never paused');
    assert.equal((await g.status()).running, true);
    // a spool directory that is not a directory
    const f = join(dir, 'file');
    writeFileSync(f, 'x');
    const u = await runCli(['vm', '--qmp', g.sock, '--spool', f, '-o', join(dir, 'b.lime'), '-q']);
    assert.equal(u.code, 2, u.stderr);
    // output elsewhere: the spool alone fits, and goes
    const ok = await runCli(['vm', '--qmp', g.sock, '--spool', mnt, '-o', join(dir, 'c.lime'), '--max-disk-usage', '100', '-q']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(readdirSync(mnt), []);
  });
  const l = await runCli(['vm', '--libvirt', 'web1', '--spool', dir, '-q']);
  assert.equal(l.code, 2, l.stderr);
});

test('--spool with --to tls://: delivered from the spool, equals QEMU\'s dump, spool removed', { skip, timeout: 180_000 }, async (t) => {
  const { evidence, pin, tokenFile, srv } = await startCollector(t, 'IR-6');

  const work = tempDir(t);
  const spool = join(work, 'spool');
  mkdirSync(spool);
  const g = await startBareGuest(t, work, { memMiB: 64, paused: true });
  const r = await runCli(['vm', '--qmp', `unix:${g.sock}`, '--spool', spool, '--case', 'IR-6', '--to', `tls://127.0.0.1:${srv.port}`, '--pin', pin, '--token-file', tokenFile, '-q'], { cwd: work });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(spool), []);
  const [ev] = await srv.uploads(1);
  assert.equal(ev!['status'], 'COMPLETE');
  const ref = join(work, 'qemu.elf');
  await referenceDump(g, ref);
  assert.equal(await contentHashOf(join(evidence, String(ev!['path']))), await contentHashOf(ref));
});

test('--spool, SIGTERM while the evidence is built: guest already running, spool KEPT and named, INCOMPLETE report', { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 256, paused: false });
  const spool = join(dir, 'spool');
  mkdirSync(spool);
  const out = join(dir, 'slow.lime');
  let pid = 0;
  const run = runCli(['vm', '--qmp', `unix:${g.sock}`, '--spool', spool, '-o', out, '--rate-limit', '16M', '--chunk-size', '1M'], { onSpawn: (p) => (pid = p) });
  // progress, not time: the container is being written, so QEMU is done with the guest
  while (!(existsSync(out + '.partial') && statSync(out + '.partial').size > 4 << 20)) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await g.status()).running, true, 'resumed before the container is built');
  process.kill(pid, 'SIGTERM');
  const r = await run;
  assert.notEqual(r.code, 0, r.stderr);
  const kept = readdirSync(spool);
  assert.equal(kept.length, 1, 'spool kept');
  assert.match(r.stderr, new RegExp(`spool ${join(spool, kept[0]!)} is KEPT`));
  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
  assert.equal(report.status, 'INCOMPLETE');
  assert.equal(report.source.info.vm.spooled.removed, false);
  // what was acquired is not lost: the kept spool holds the whole guest (QEMU reported the dump completed)
  assert.equal(report.source.info.vm.dump.status, 'completed');
  assert.equal(sha256File(join(spool, kept[0]!)), report.source.info.vm.spooled.sha256);
  assert.equal((await g.status()).running, true);
});

test('a spool changed after QEMU wrote it: E_CORRUPT, no complete evidence, the spool kept and reported', { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 64, paused: true });
  const ref = join(dir, 'qemu.elf');
  await referenceDump(g, ref);
  const original = readFileSync(ref);
  // what pumpToSpool reported for the stream, then one bit of guest memory changes on disk
  const facts = { bytes: BigInt(original.length), sha256: createHash('sha256').update(original).digest('hex') };
  const spool = join(dir, 'memdump-spool-test.elf');
  const changed = Buffer.from(original);
  changed[changed.length - 4096] = changed[changed.length - 4096]! ^ 0x10;
  writeFileSync(spool, changed, { mode: 0o600 });
  const warnings: string[] = [];
  const out = join(dir, 'tampered.lime');
  const vm: Record<string, unknown> = { pausedMs: null };
  const built = await jobFromSpool({
    spool,
    facts,
    vm,
    kind: 'vm',
    sourcePath: 'qmp:test',
    signal: new AbortController().signal,
    warn: (l) => warnings.push(l),
    job: { command: 'vm', argv: [], caseFields: {}, root: '/', format: formatByName('lime'), output: out, digests: ['sha256'], windowSize: 0n, rateLimit: 0, maxDiskUsage: 100, policy: { chunkSize: 4 << 20 }, reportPath: undefined, contentHash: true, warnings: [], options: {} },
  });
  assert.equal(built.removed, false);
  assert.match(built.keptWhy, /SHA-256 differs/);
  assert.ok(existsSync(spool), 'spool kept');
  assert.equal(built.job.report.status, 'INCOMPLETE');
  assert.equal(built.job.report.failure?.code, 'E_CORRUPT');
  assert.equal(built.job.exitCode, ERROR_EXIT['E_CORRUPT']);
  assert.ok(!existsSync(out), 'no complete-looking evidence');
  assert.equal((vm['spooled'] as { removed: boolean }).removed, false);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /E_CORRUPT|no longer holds the stream/);
  // the unchanged file goes through: the check is what failed, not the reader
  writeFileSync(spool, original);
  const ok = await jobFromSpool({
    spool,
    facts,
    vm: { pausedMs: null },
    kind: 'vm',
    sourcePath: 'qmp:test',
    signal: new AbortController().signal,
    warn: (l) => warnings.push(l),
    job: { command: 'vm', argv: [], caseFields: {}, root: '/', format: formatByName('lime'), output: join(dir, 'good.lime'), digests: ['sha256'], windowSize: 0n, rateLimit: 0, maxDiskUsage: 100, policy: { chunkSize: 4 << 20 }, reportPath: undefined, contentHash: true, warnings: [], options: {} },
  });
  assert.equal(ok.job.report.status, 'COMPLETE');
  assert.equal(ok.removed, true);
  assert.ok(!existsSync(spool));
  assert.equal(await contentHashOf(join(dir, 'good.lime')), await contentHashOf(ref));
});
