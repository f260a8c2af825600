/** VirtualBox cores through the CLI: `info` names the producer and version; `convert` keeps the content. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { openImage } from '../../src/formats/registry.js';
import { contentHash } from '../../src/pipeline/info.js';
import { VBOX_BANNER, writeVBoxCore } from '../fixtures/vbox.js';
import { truthImage } from '../fixtures/vmware.js';
import { runCli, tempDir } from '../helpers/cli.js';

test('memdump info on a VirtualBox core shows VirtualBox, its version, revision and CPU count', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'dumpvmcore.elf');
  const c = writeVBoxCore(path, { seed: 41, major: 6, minor: 1, build: 48, revision: 159471, cpus: 4 });
  const text = await runCli(['info', path]);
  assert.equal(text.code, 0, text.stderr);
  const out = text.stdout.toString();
  assert.match(out, /^producer\s+"VirtualBox"$/m);
  assert.match(out, /^version\s+"6\.1\.48"$/m);
  assert.match(out, /^revision\s+159471$/m);
  assert.match(out, /^cpus\s+4$/m);
  const j = await runCli(['info', path, '--json', '--content-hash']);
  assert.equal(j.code, 0, j.stderr);
  const info = JSON.parse(j.stdout.toString());
  assert.equal(info.format, 'elf');
  assert.equal(info.details.producer, 'VirtualBox');
  assert.equal(info.banner.text, VBOX_BANNER);
  assert.equal(info.contentSha256, await contentHash(truthImage(c.runs, c.data)));
});

test('memdump convert of a VirtualBox core to lime, avml and back to elf keeps the content hash', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'vm.elf');
  const c = writeVBoxCore(path, { seed: 42 });
  const want = await contentHash(truthImage(c.runs, c.data));
  let prev = path;
  for (const to of ['lime', 'avml', 'elf']) {
    const next = join(dir, `step.${to}`);
    const r = await runCli(['convert', prev, next, '--to', to, '-q']);
    assert.equal(r.code, 0, r.stderr);
    const img = await openImage(next);
    try {
      assert.equal(await contentHash(img), want, `after ${to}`);
    } finally {
      await img.close();
    }
    prev = next;
  }
});
