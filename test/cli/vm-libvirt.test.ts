/**
 * `memdump vm --libvirt` with a stand-in `virsh` on PATH (libvirt is not installed here) that writes a real
 * dump-guest-memory ELF made by the real QEMU, or fails the way virsh does.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { contentHashOf } from '../helpers/content.js';
import { qemuBinary, referenceDump, startBareGuest } from '../helpers/vm-qemu.js';

const skip = qemuBinary ? false : 'qemu-system-x86_64 not installed';

/** A fake virsh: logs its argv, then `cat`s REF into the last argument, or fails like virsh for domain "ghost". */
function fakeVirsh(dir: string, ref: string): { bin: string; log: string } {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const log = join(dir, 'virsh.log');
  writeFileSync(
    join(bin, 'virsh'),
    `#!/bin/sh
printf '%s\\n' "$@" > '${log}'
for last; do :; done
case " $* " in
  *" ghost "*) head -c 4096 '${ref}' > "$last"; echo "error: failed to get domain 'ghost'" >&2; exit 1 ;;
  *" --memory-only --format elf "*) cat '${ref}' > "$last" ;;
  *) echo "error: unexpected arguments" >&2; exit 2 ;;
esac
`,
  );
  chmodSync(join(bin, 'virsh'), 0o755);
  return { bin, log };
}

test('vm --libvirt: virsh dump ELF converted through the pipeline, same memory, temporary file removed', { skip, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 64, paused: true });
  const ref = join(dir, 'qemu.elf');
  await referenceDump(g, ref);
  const want = await contentHashOf(ref);
  const virsh = fakeVirsh(dir, ref);
  const outDir = join(dir, 'out');
  mkdirSync(outDir);
  const env = { ...process.env, PATH: `${virsh.bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}` };

  const out = join(outDir, 'web1.lime');
  const r = await runCli(['vm', '--libvirt', 'web1', '--connect', 'qemu:///system', '-o', out], { env });
  assert.equal(r.code, 0, r.stderr);
  const args = readFileSync(virsh.log, 'utf8').trim().split('\n');
  assert.deepEqual(args.slice(0, 7), ['--connect', 'qemu:///system', 'dump', '--memory-only', '--format', 'elf', 'web1']);
  assert.equal(args[7]!.startsWith(outDir + '/'), true, 'the temporary ELF lies beside the output');
  assert.deepEqual(readdirSync(outDir).sort(), ['web1.lime', 'web1.lime.log', 'web1.lime.report.json']);
  assert.equal(await contentHashOf(out), want);
  const report = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
  assert.equal(report.status, 'COMPLETE');
  assert.equal(report.contentSha256, want);
  assert.equal(report.source.info.vm.via, 'libvirt');
  assert.equal(report.source.info.vm.name, 'web1');
  const v = await runCli(['verify', out]);
  assert.equal(v.code, 0, v.stderr);

  // a failing virsh: coded error, and neither the half-written temporary file nor any output is left behind
  const bad = join(outDir, 'ghost.lime');
  const f = await runCli(['vm', '--libvirt', 'ghost', '-o', bad], { env });
  assert.equal(f.code, 3, f.stderr);
  assert.match(f.stderr, /E_NOT_FOUND.*ghost/);
  assert.deepEqual(readdirSync(outDir).sort(), ['web1.lime', 'web1.lime.log', 'web1.lime.report.json']);

  // no virsh at all
  const none = await runCli(['vm', '--libvirt', 'web1', '-o', join(outDir, 'n.lime')], { env: { ...process.env, PATH: join(dir, 'empty') } });
  assert.equal(none.code, 3, none.stderr);
  assert.match(none.stderr, /virsh not found/);
  assert.deepEqual(readdirSync(outDir).length, 3);
});

test('vm --libvirt interrupted: virsh gets SIGINT (its cancel of the libvirt dump job), the temporary file is removed', { skip, timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const got = join(dir, 'virsh.signal');
  const started = join(dir, 'virsh.started');
  // a virsh whose dump never ends; it records the signal that stops it, as real virsh cancels the job on SIGINT
  writeFileSync(
    join(bin, 'virsh'),
    `#!/bin/sh
trap 'echo INT > "${got}"; exit 1' INT
trap 'echo TERM > "${got}"; exit 1' TERM
for last; do :; done
echo partial > "$last"
: > "${started}"
while :; do sleep 0.05; done
`,
  );
  chmodSync(join(bin, 'virsh'), 0o755);
  const outDir = join(dir, 'out');
  mkdirSync(outDir);
  let pid = 0;
  const run = runCli(['vm', '--libvirt', 'web1', '-o', join(outDir, 'web1.lime')], { env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}` }, onSpawn: (p) => (pid = p) });
  while (!existsSync(started)) await new Promise((r) => setTimeout(r, 20));
  process.kill(pid, 'SIGTERM');
  const r = await run;
  assert.notEqual(r.code, 0, r.stderr);
  while (!existsSync(got)) await new Promise((r) => setTimeout(r, 20));
  assert.equal(readFileSync(got, 'utf8').trim(), 'INT');
  assert.deepEqual(readdirSync(outDir), [], 'the temporary ELF is removed');
});
