import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, openSync, closeSync, readSync, rmSync, writeSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { Prng } from '../helpers/prng.js';

/**
 * `memdump verify` and `memdump info` on E01 segment sets: every piece hashed as one stream against the report,
 * the MD5/SHA-1 stored inside the E01 recomputed, a set copied elsewhere still verifying, a flipped byte in one
 * chunk of a later segment caught with and without the report.
 */

function limeOf(start: bigint, data: Buffer): Buffer {
  const h = Buffer.alloc(32);
  h.writeUInt32LE(0x4c694d45, 0);
  h.writeUInt32LE(1, 4);
  h.writeBigUInt64LE(start, 8);
  h.writeBigUInt64LE(start + BigInt(data.length) - 1n, 16);
  return Buffer.concat([h, data]);
}

function flip(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0]! ^= 0x40;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

async function makeSet(dir: string): Promise<string> {
  // random data so every chunk is stored whole and the segments fill up: 3 MiB → 3+ segments of 1 MiB
  const data = new Prng(11).bytes(3 << 20);
  const input = join(dir, 'in.lime');
  writeFileSync(input, limeOf(0x100000n, data));
  const r = await runCli(['convert', input, join(dir, 'set'), '--to', 'e01', '--segment-size', '1M', '-q']);
  assert.equal(r.code, 0, r.stderr);
  return join(dir, 'set.E01');
}

test('verify an E01 set: MATCH against the report and the stored digests; a copy elsewhere verifies; info reads it', async (t) => {
  const dir = tempDir(t);
  const first = await makeSet(dir);
  const v = await runCli(['--json', 'verify', first]);
  assert.equal(v.code, 0, v.stderr + v.stdout.toString());
  const r = JSON.parse(v.stdout.toString());
  assert.equal(r.verdict, 'MATCH');
  assert.ok(r.files.length >= 3, `all segments hashed: ${r.files}`);
  assert.equal(r.e01.ok, true);
  assert.equal(r.e01.computed.md5, r.e01.stored.md5);
  assert.equal(r.e01.computed.sha1, r.e01.report.sha1);

  // the set and its report copied to another directory: pieces are found beside the file, not at the old paths
  const other = join(dir, 'copy');
  mkdirSync(other);
  for (const f of r.files as string[]) copyFileSync(f, join(other, basename(f)));
  copyFileSync(first + '.report.json', join(other, 'set.E01.report.json'));
  copyFileSync(first + '.map.json', join(other, 'set.E01.map.json'));
  const v2 = await runCli(['--json', 'verify', join(other, 'set.E01')]);
  assert.equal(v2.code, 0, v2.stdout.toString());
  assert.equal(JSON.parse(v2.stdout.toString()).verdict, 'MATCH');

  const i = await runCli(['--json', 'info', first]);
  assert.equal(i.code, 0, i.stderr);
  const info = JSON.parse(i.stdout.toString());
  assert.equal(info.format, 'e01');
  assert.equal(info.ranges.first, '0x100000', 'the map beside the set gives the physical runs back');
  assert.equal(info.report.matches, true, JSON.stringify(info.report.problems));
  assert.equal(info.details.mediaType, 'memory');
});

test('verify an E01 set: one flipped byte in a chunk of the second segment is a MISMATCH, with or without the report', async (t) => {
  const dir = tempDir(t);
  const first = await makeSet(dir);
  const second = first.replace(/E01$/, 'E02');
  // past the file header, the data section and the sectors descriptor: inside the first stored chunk
  flip(second, 13 + 76 + 1052 + 76 + 100);
  const v = await runCli(['--json', 'verify', first]);
  assert.equal(v.code, 11, v.stdout.toString());
  const r = JSON.parse(v.stdout.toString());
  assert.equal(r.verdict, 'MISMATCH');
  assert.equal(r.e01.ok, false);
  assert.ok(Object.values(r.digests as Record<string, { ok: boolean }>).some((d) => !d.ok), 'the container hashes differ too');

  rmSync(first + '.report.json');
  const alone = await runCli(['verify', first]);
  assert.equal(alone.code, 11, alone.stdout.toString());
  assert.match(alone.stdout.toString(), /^MISMATCH: .* against the digests stored in the E01/);
  assert.match(alone.stdout.toString(), /media could not be read whole: E_CORRUPT|MISMATCH \(stored/);
});

test('verify an intact E01 without its report: MATCH against the stored digests', async (t) => {
  const dir = tempDir(t);
  const first = await makeSet(dir);
  rmSync(first + '.report.json');
  const v = await runCli(['verify', first]);
  assert.equal(v.code, 0, v.stdout.toString());
  assert.match(v.stdout.toString(), /^MATCH: .* against the digests stored in the E01/);
  assert.match(v.stdout.toString(), /media md5 {2}[0-9a-f]{32} {2}E01 ok/);
});
