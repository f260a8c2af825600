/**
 * Our ELF reader on a real third-party file: QEMU's dump-guest-memory output from a paused 64 MiB machine
 * (no kernel needed), then conversions through every format keep the content hash.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { openImage } from '../../src/formats/registry.js';
import { contentHash } from '../../src/pipeline/info.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { qemuBinary, referenceDump, startBareGuest } from '../helpers/vm-qemu.js';

test('reads QEMU dump-guest-memory ELF and converts it losslessly', { skip: qemuBinary ? false : 'qemu-system-x86_64 not installed', timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const g = await startBareGuest(t, dir, { memMiB: 64, paused: true });
  const dump = join(dir, 'qemu.elf');
  await referenceDump(g, dump);

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
