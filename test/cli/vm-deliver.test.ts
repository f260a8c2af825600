/**
 * `memdump vm --qmp … --to tls://`: a guest's memory goes straight to `memdump receive`, encrypted on the way,
 * nothing on the sender's disk; the collector's copy decrypts to the memory QEMU itself dumps.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { contentHashOf } from '../helpers/content.js';
import { analystKeys } from '../helpers/keys.js';
import { startCollector } from '../helpers/receiver.js';
import { qemuBinary, referenceDump, startBareGuest } from '../helpers/vm-qemu.js';

test('vm --to tls:// --recipient: delivered, decrypts to the guest memory, guest left as found', { skip: qemuBinary ? false : 'qemu-system-x86_64 not installed', timeout: 180_000 }, async (t) => {
  const { base, evidence, pin, tokenFile, srv } = await startCollector(t, 'IR-6');

  const work = tempDir(t);
  const g = await startBareGuest(t, work, { memMiB: 64, paused: true, name: 'deliver-guest' });
  const { identity, recipient } = analystKeys(base);
  const before = readdirSync(work).sort();
  const r = await runCli(['vm', '--qmp', `unix:${g.sock}`, '--case', 'IR-6', '--to', `tls://127.0.0.1:${srv.port}`, '--pin', pin, '--token-file', tokenFile, '--recipient', recipient, '-q'], { cwd: work });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(work).sort(), before, 'nothing written beside the sender');
  assert.equal((await g.status()).status, 'prelaunch', 'a guest found paused stays paused');

  const [ev] = await srv.uploads(1);
  assert.equal(ev!['status'], 'COMPLETE');
  const stored = join(evidence, String(ev!['path']));
  assert.match(stored, /\.lime\.age$/);
  const plain = join(base, 'guest.lime');
  const d = await runCli(['decrypt', stored, plain, '-i', identity, '--json']);
  assert.equal(d.code, 0, d.stderr);
  const ref = join(work, 'qemu.elf');
  await referenceDump(g, ref);
  assert.equal(await contentHashOf(plain), await contentHashOf(ref));

  // a wrong pin: exit 13, nothing delivered, guest state unchanged
  const bad = await runCli(['vm', '--qmp', `unix:${g.sock}`, '--to', `tls://127.0.0.1:${srv.port}`, '--pin', 'sha256/' + Buffer.alloc(32).toString('base64'), '--token-file', tokenFile, '-q'], { cwd: work });
  assert.equal(bad.code, 13, bad.stderr);
  assert.equal((await g.status()).status, 'prelaunch');
});

test('vm --to with --libvirt or with -o is refused before anything runs', async (t) => {
  const dir = tempDir(t);
  const a = await runCli(['vm', '--libvirt', 'web1', '--to', 'tls://127.0.0.1:1', '--pin', 'sha256/x', '--token', 't'], { cwd: dir });
  assert.equal(a.code, 2, a.stderr);
  assert.match(a.stderr, /--qmp only/);
  const b = await runCli(['vm', '--qmp', 'unix:/nonexistent', '-o', 'x.lime', '--to', 'tls://127.0.0.1:1'], { cwd: dir });
  assert.equal(b.code, 2, b.stderr);
});
