import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { openSync, readFileSync, readdirSync, statSync, closeSync, writeSync, truncateSync } from 'node:fs';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { formatByName } from '../formats/registry.js';
import type { ContainerWriter } from '../formats/types.js';
import { PipeReader } from '../sources/qmp-dump.js';
import { tempDir } from '../../test/helpers/cli.js';
import { Prng } from '../../test/helpers/prng.js';
import { createSpool, finishAfter, pumpToSpool, verifySpool } from './vm-spool.js';

/** A stream cut into uneven pieces, as a pipe delivers it. */
function pieces(data: Buffer, seed: number): Readable {
  const rng = new Prng(seed);
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; ) {
    const n = Math.min(data.length - at, 1 + rng.int(300_000));
    parts.push(data.subarray(at, at + n));
    at += n;
  }
  return Readable.from(parts);
}

async function spooled(dir: string, data: Buffer, seed: number) {
  const sp = await createSpool(dir);
  // a small bound: the pump must keep going while the reader pauses its source
  const facts = await pumpToSpool(new PipeReader(pieces(data, seed), { highWater: 1 << 20 }), sp);
  await sp.fh.close();
  return { path: sp.path, facts };
}

test('the spool holds the stream byte for byte, its SHA-256 is the stream\'s, 0600, named memdump-spool-<random>.elf', async (t) => {
  const dir = tempDir(t);
  for (const [seed, size] of [[1, 0], [2, 1], [3, (9 << 20) + 4097], [4, 4 << 20], [5, (1 << 20) - 1]] as const) {
    const data = new Prng(seed).bytes(size);
    const { path, facts } = await spooled(dir, data, seed);
    assert.match(path, /\/memdump-spool-[0-9a-f]{16}\.elf$/);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.ok(readFileSync(path).equals(data), `size ${size}`);
    assert.equal(facts.bytes, BigInt(size));
    assert.equal(facts.sha256, createHash('sha256').update(data).digest('hex'));
    await verifySpool(path, facts);
  }
  assert.equal(new Set(readdirSync(dir)).size, 5, 'a new name each time');
});

test('hashing in a worker gives the same SHA-256 and the same file as on the main thread', async (t) => {
  const dir = tempDir(t);
  const data = new Prng(21).bytes((5 << 20) + 17);
  const want = createHash('sha256').update(data).digest('hex');
  for (const hashWorker of [false, true]) {
    const sp = await createSpool(dir);
    const facts = await pumpToSpool(new PipeReader(pieces(data, 22), { highWater: 1 << 20 }), sp, { hashWorker });
    await sp.fh.close();
    assert.equal(facts.sha256, want);
    assert.ok(readFileSync(sp.path).equals(data));
  }
});

test('a spool changed after it was written: E_CORRUPT naming both digests, the file left in place', async (t) => {
  const dir = tempDir(t);
  const data = new Prng(7).bytes((6 << 20) + 123);
  const rng = new Prng(8);
  for (let round = 0; round < 4; round++) {
    const { path, facts } = await spooled(dir, data, round);
    const at = rng.int(data.length);
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([data[at]! ^ (1 << rng.int(8))]), 0, 1, at);
    closeSync(fd);
    const err = await verifySpool(path, facts).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof MemdumpError, String(err));
    assert.equal(err.code, 'E_CORRUPT');
    assert.equal(err.details['expectedSha256'], facts.sha256);
    assert.notEqual(err.details['actualSha256'], facts.sha256);
    assert.match(err.message, /kept as evidence/);
    assert.ok(statSync(path).isFile(), 'the check never removes the spool');
  }
  // shorter (a truncated copy) or longer (bytes appended) than the stream
  const { path, facts } = await spooled(dir, data, 9);
  truncateSync(path, data.length - 1);
  await assert.rejects(verifySpool(path, facts), (e: MemdumpError) => e.code === 'E_CORRUPT' && e.details['actualBytes'] === String(data.length - 1));
  truncateSync(path, data.length + 1);
  await assert.rejects(verifySpool(path, facts), (e: MemdumpError) => e.code === 'E_CORRUPT');
});

test('a spool that is gone, a spool directory that is not there: coded errors', async (t) => {
  const dir = tempDir(t);
  await assert.rejects(verifySpool(`${dir}/nope.elf`, { bytes: 0n, sha256: '' }), (e: MemdumpError) => e instanceof MemdumpError && e.code === 'E_NOT_FOUND');
  await assert.rejects(createSpool(`${dir}/missing`), (e: MemdumpError) => e instanceof MemdumpError && e.code === 'E_NOT_FOUND');
});

test('a stream that fails mid-way fails the pump with the reader\'s error (what was written stays)', async (t) => {
  const dir = tempDir(t);
  const data = new Prng(11).bytes(3 << 20);
  const src = new Readable({ read() {} });
  const sp = await createSpool(dir);
  const reader = new PipeReader(src);
  src.push(data);
  const pumping = pumpToSpool(reader, sp);
  setImmediate(() => reader.destroy(new MemdumpError('E_INTERRUPTED', 'cut')));
  await assert.rejects(pumping, (e: MemdumpError) => e.code === 'E_INTERRUPTED');
  await sp.fh.close();
  assert.ok(statSync(sp.path).isFile());
});

test('finishAfter: the container is finished only after the check passed, never when it fails', async () => {
  const base = formatByName('lime');
  const calls: string[] = [];
  const fake: ContainerWriter = {
    begin: async () => void calls.push('begin'),
    beginRange: async () => undefined,
    data: async () => undefined,
    endRange: async () => undefined,
    end: async () => void calls.push('end'),
    abort: async () => void calls.push('abort'),
  };
  const spec = { ...base, createWriter: () => fake };
  let finished = 0;
  const ok = finishAfter(spec, async () => void calls.push('check'), () => finished++).createWriter(undefined as never, undefined as never);
  await ok.end();
  assert.deepEqual(calls, ['check', 'end']);
  assert.equal(finished, 1);
  calls.length = 0;
  const bad = finishAfter(spec, () => Promise.reject(new MemdumpError('E_CORRUPT', 'changed')), () => finished++).createWriter(undefined as never, undefined as never);
  await assert.rejects(bad.end(), (e: MemdumpError) => e.code === 'E_CORRUPT');
  await bad.abort?.();
  assert.deepEqual(calls, ['abort']);
  assert.equal(finished, 1);
});
