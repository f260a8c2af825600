import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RandomAccessFile } from '../core/file.js';
import { tempDir } from '../../test/helpers/cli.js';
import { LIME_MAGIC, lime, limeHeader } from './lime.js';

test('LiME header matches the golden vector in FORMATS.md (0x1000..0x20000 inclusive)', () => {
  const golden = Buffer.from('45 4d 69 4c 01 00 00 00 00 10 00 00 00 00 00 00 00 00 02 00 00 00 00 00'.replace(/ /g, '') + '00'.repeat(8), 'hex');
  assert.deepEqual(limeHeader(LIME_MAGIC, 1, { start: 0x1000n, end: 0x20001n }), golden);
});

async function openBytes(t: Parameters<typeof tempDir>[0], b: Buffer) {
  const p = join(tempDir(t), 'x.lime');
  writeFileSync(p, b);
  return lime.open(await RandomAccessFile.open(p), {});
}

test('reader: ranges, reads across adjacent records, errors with offsets', async (t) => {
  const rec = (s: bigint, data: Buffer) => Buffer.concat([limeHeader(LIME_MAGIC, 1, { start: s, end: s + BigInt(data.length) }), data]);
  const a = Buffer.alloc(100, 1);
  const b = Buffer.alloc(50, 2);
  const img = await openBytes(t, Buffer.concat([rec(0x1000n, a), rec(0x1064n, b), rec(0x9000n, Buffer.from('xyz'))]));
  assert.deepEqual(img.runs, [
    { start: 0x1000n, end: 0x1064n },
    { start: 0x1064n, end: 0x1096n },
    { start: 0x9000n, end: 0x9003n },
  ]);
  assert.deepEqual(await img.read(0x1060n, 8), Buffer.from([1, 1, 1, 1, 2, 2, 2, 2]));
  await assert.rejects(img.read(0x1090n, 16), { code: 'E_CORRUPT' });
  await img.close();

  const trunc = Buffer.concat([rec(0x1000n, a)]).subarray(0, 90);
  await assert.rejects(openBytes(t, trunc), (e: { code: string; details: { offset: string } }) => e.code === 'E_TRUNCATED' && e.details.offset === '0x20');
  const overlap = Buffer.concat([rec(0x1000n, a), rec(0x1010n, b)]);
  await assert.rejects(openBytes(t, overlap), (e: { code: string; details: { offset: string } }) => e.code === 'E_CORRUPT' && e.details.offset === '0x84');
  const badVersion = rec(0x1000n, a);
  badVersion.writeUInt32LE(2, 4);
  await assert.rejects(openBytes(t, badVersion), { code: 'E_CORRUPT' });
  const tail = Buffer.concat([rec(0x1000n, a), Buffer.from('junk')]);
  await assert.rejects(openBytes(t, tail), { code: 'E_TRUNCATED' });
});
