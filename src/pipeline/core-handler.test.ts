import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { Prng } from '../../test/helpers/prng.js';
import { elfCoreExtent, handleCore, safeName } from './core-handler.js';
import { verify } from './verify.js';

/** A minimal ELF64 ET_CORE: header, one PT_NOTE and one PT_LOAD of `load` bytes. */
function tinyCore(load: number): Buffer {
  const h = Buffer.alloc(64 + 2 * 56);
  h.writeUInt32BE(0x7f454c46, 0);
  h[4] = 2;
  h[5] = 1;
  h[6] = 1;
  h.writeUInt16LE(4, 16); // ET_CORE
  h.writeUInt16LE(62, 18);
  h.writeBigUInt64LE(64n, 32);
  h.writeUInt16LE(64, 52);
  h.writeUInt16LE(56, 54);
  h.writeUInt16LE(2, 56);
  const ph = (i: number, type: number, off: number, size: number) => {
    const o = 64 + i * 56;
    h.writeUInt32LE(type, o);
    h.writeBigUInt64LE(BigInt(off), o + 8);
    h.writeBigUInt64LE(BigInt(size), o + 32);
  };
  ph(0, 4, 176, 16);
  ph(1, 1, 192, load);
  return Buffer.concat([h, Buffer.alloc(16, 0x4e), new Prng(load).bytes(load)]);
}

function setup(t: { after: (f: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'memdump-coreh-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const proc = join(dir, 'proc');
  mkdirSync(join(proc, '4242'), { recursive: true });
  writeFileSync(join(proc, '4242/cmdline'), 'crasher\0--flag\0\x1b[31mred\0');
  writeFileSync(join(proc, '4242/status'), 'Name:\tcrasher\nState:\tD (disk sleep)\nUid:\t1000\t1000\t1000\t1000\n');
  symlinkSync('/usr/bin/crasher', join(proc, '4242/exe'));
  const out = join(dir, 'out');
  mkdirSync(out);
  return { dir, proc, out };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a complete core is stored unchanged, 0600, hashed, with /proc context in the report, and verifies', async (t) => {
  const { proc, out } = setup(t);
  const core = tinyCore(300_000);
  const pieces = [core.subarray(0, 7), core.subarray(7, 100_001), core.subarray(100_001)];
  const r = await handleCore({ pid: '4242', exe: 'crash er/..', time: '1700000000', dir: out, input: Readable.from(pieces), argv: ['core-handler'], procRoot: proc });
  assert.equal(r.status, 'COMPLETE');
  assert.equal(r.path, join(out, 'crash_er_.._4242_1700000000.core'));
  assert.deepEqual(readFileSync(r.path), core);
  assert.equal(statSync(r.path).mode & 0o777, 0o600);
  assert.equal(r.digests.sha256, sha(core));
  const rep = JSON.parse(readFileSync(r.report, 'utf8'));
  assert.equal(rep.command, 'core-handler');
  assert.equal(rep.source.kind, 'kernel-core-pipe');
  assert.deepEqual(rep.source.info.proc.cmdline, ['crasher', '--flag', '\\x1b[31mred']);
  assert.equal(rep.source.info.proc.exe, '/usr/bin/crasher');
  assert.equal(rep.source.info.proc.status.State, 'D (disk sleep)');
  assert.equal(rep.source.info.expectedBytes, String(core.length));
  assert.equal(rep.source.info.timeIso, '2023-11-14T22:13:20.000Z');
  assert.equal((await verify(r.path)).verdict, 'MATCH');
  const log = readFileSync(r.log, 'utf8');
  assert.match(log, /^ {2}cmdline +crasher --flag \\x1b\[31mred$/m);
  assert.match(log, /^ {2}exe +\/usr\/bin\/crasher$/m);
});

test('a truncated core is kept as .partial with an INCOMPLETE report that still verifies', async (t) => {
  const { proc, out } = setup(t);
  const core = tinyCore(50_000);
  const cut = core.subarray(0, 20_000);
  const r = await handleCore({ pid: '4242', exe: 'x', time: '1', dir: join(out, 'new/sub'), input: Readable.from([cut]), argv: [], procRoot: proc });
  assert.equal(statSync(join(out, 'new/sub')).mode & 0o777, 0o700, 'a missing crash directory is created root-only');
  assert.equal(r.status, 'INCOMPLETE');
  assert.equal(r.failure?.code, 'E_TRUNCATED');
  assert.ok(r.path.endsWith('.core.partial'));
  assert.deepEqual(readFileSync(r.path), cut);
  const rep = JSON.parse(readFileSync(r.report, 'utf8'));
  assert.equal(rep.status, 'INCOMPLETE');
  assert.equal(rep.accounting.requested, String(core.length));
  assert.equal((await verify(r.path)).verdict, 'MATCH');
});

test('empty, non-ELF and failing input, and a vanished /proc entry, all still give a report', async (t) => {
  const { proc, out } = setup(t);
  const empty = await handleCore({ pid: '1', exe: 'a', time: '1', dir: out, input: Readable.from([]), argv: [], procRoot: proc });
  assert.deepEqual([empty.status, empty.failure?.code], ['INCOMPLETE', 'E_TRUNCATED']);
  const junk = await handleCore({ pid: '2', exe: 'a', time: '1', dir: out, input: Readable.from([Buffer.from('not a core')]), argv: [], procRoot: proc });
  assert.deepEqual([junk.status, junk.failure?.code], ['INCOMPLETE', 'E_CORRUPT']);
  let calls = 0;
  const failing = new Readable({
    read() {
      if (calls++ === 0) this.push(tinyCore(10).subarray(0, 100));
      else this.destroy(new Error('EIO from the pipe'));
    },
  });
  const broken = await handleCore({ pid: '3', exe: 'a', time: '1', dir: out, input: failing, argv: [], procRoot: proc });
  assert.deepEqual([broken.status, broken.failure?.code, broken.bytes], ['INCOMPLETE', 'E_SOURCE_READ', 100n]);
  const rep = JSON.parse(readFileSync(broken.report, 'utf8'));
  assert.match(rep.source.info.proc.errors.cmdline, /ENOENT/);
  await assert.rejects(handleCore({ pid: '1;rm', exe: 'a', time: '1', dir: out, input: Readable.from([]), argv: [] }), (e: { code?: string }) => e.code === 'E_USAGE');
  await assert.rejects(handleCore({ pid: '2', exe: 'a', time: '1', dir: out, input: Readable.from([]), argv: [], procRoot: proc }), (e: { code?: string }) => e.code === 'E_DEST_EXISTS');
  assert.equal(readdirSync(out).filter((f) => f.endsWith('.report.json')).length, 3);
});

test('elfCoreExtent bounds every header and never throws on mutated input', () => {
  const core = tinyCore(1000);
  assert.deepEqual(elfCoreExtent(core), { end: BigInt(core.length), problem: null });
  assert.equal(elfCoreExtent(core.subarray(0, 80)).end, 176n);
  const r = new Prng(5);
  for (let i = 0; i < 2000; i++) {
    const m = Buffer.from(core.subarray(0, r.int(core.length)));
    for (let k = 0; k < 4 && m.length > 0; k++) m[r.int(m.length)] = r.int(256);
    const x = elfCoreExtent(m);
    assert.ok(x.end === null || x.end >= 0n);
  }
  assert.equal(safeName('../../etc/passwd'), '__.._etc_passwd');
  assert.equal(safeName(''), 'unknown');
});
