import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { expectCodeAsync } from '../../test/helpers/expect-code.js';
import { adler32 } from '../core/adler32.js';
import { MemdumpError } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { FILE_HEADER_SIZE, SECTION_DESCRIPTOR_SIZE, VOLUME_BODY_SIZE } from './e01-layout.js';
import { parseVolume, readSection, signatureKind } from './e01-read.js';

const dir = mkdtempSync(join(tmpdir(), 'memdump-e01-read-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function descriptor(type: string, next: bigint, size: bigint, checksum?: number): Buffer {
  const d = Buffer.alloc(SECTION_DESCRIPTOR_SIZE);
  d.write(type, 0, 'latin1');
  d.writeBigUInt64LE(next, 16);
  d.writeBigUInt64LE(size, 24);
  d.writeUInt32LE(checksum ?? adler32(d, 1, 0, 72), 72);
  return d;
}

/** A file of `pad` zero bytes, then the descriptor at offset `pad`, then `tail` zero bytes. */
async function withDescriptor(d: Buffer, pad = FILE_HEADER_SIZE, tail = 0): Promise<RandomAccessFile> {
  const p = join(dir, `d${n++}`);
  writeFileSync(p, Buffer.concat([Buffer.alloc(pad), d, Buffer.alloc(tail)]));
  return RandomAccessFile.open(p);
}

test('signatures: EWF1, logical, EWF2', () => {
  assert.equal(signatureKind(Buffer.from('EVF\x09\x0d\x0a\xff\x00\x01', 'latin1')), 'ewf1');
  assert.equal(signatureKind(Buffer.from('LVF\x09\x0d\x0a\xff\x00', 'latin1')), 'lvf');
  assert.equal(signatureKind(Buffer.from('EVF2\r\n\x81\x00', 'latin1')), 'ewf2');
  assert.equal(signatureKind(Buffer.from('LEF2\r\n\x81\x00', 'latin1')), 'lef2');
  assert.equal(signatureKind(Buffer.from('EVF\x09\x0d\x0a\xff', 'latin1')), undefined);
  assert.equal(signatureKind(Buffer.from('EMiL\x01\x00\x00\x00', 'latin1')), undefined);
});

test('section descriptors: chain rules', async () => {
  const at = FILE_HEADER_SIZE;
  // a normal section followed by 24 body bytes
  let f = await withDescriptor(descriptor('volume', BigInt(at + 100), 100n), at, 24);
  assert.deepEqual(await readSection(f, at), { type: 'volume', offset: at, size: 100, next: at + 100 });
  await f.close();
  // done pointing at itself, size 0 (EnCase) or 76 (FTK before 2.9)
  for (const size of [0n, 76n]) {
    f = await withDescriptor(descriptor('done', BigInt(at), size));
    assert.deepEqual(await readSection(f, at), { type: 'done', offset: at, size: SECTION_DESCRIPTOR_SIZE, next: at });
    await f.close();
  }
  // size 0 with a forward next (Expert Witness 1.35): size comes from next
  f = await withDescriptor(descriptor('header', BigInt(at + 90), 0n), at, 14);
  assert.equal((await readSection(f, at)).size, 90);
  await f.close();

  const bad: [string, Buffer, string, number?][] = [
    ['checksum', descriptor('table', BigInt(at + 76), 76n, 1), 'E_CORRUPT'],
    ['only done/next may point at themselves', descriptor('table', BigInt(at), 0n), 'E_CORRUPT'],
    ['backwards', descriptor('table', 5n, 76n), 'E_CORRUPT'],
    ['next inside the descriptor', descriptor('table', BigInt(at + 40), 0n), 'E_CORRUPT'],
    ['size disagrees with next (dual image)', descriptor('sectors', BigInt(at + 76), 200n), 'E_CORRUPT', 200],
    ['size below a descriptor', descriptor('sectors', BigInt(at + 80), 10n), 'E_CORRUPT', 10],
    ['next past the end', descriptor('sectors', 1n << 40n, 0n), 'E_TRUNCATED'],
    ['size past the end', descriptor('sectors', BigInt(at + 76), 1n << 62n), 'E_TRUNCATED'],
  ];
  for (const [why, d, code, tail] of bad) {
    f = await withDescriptor(d, at, tail ?? 0);
    const e = await expectCodeAsync(readSection(f, at), code);
    assert.equal(e.details['offset'], '0x' + at.toString(16), why);
    await f.close();
  }
  f = await withDescriptor(descriptor('done', BigInt(at), 0n).subarray(0, 50));
  await expectCodeAsync(readSection(f, at), 'E_TRUNCATED');
  await f.close();
});

test('volume: E01 (1052 bytes) and SMART (94 bytes) bodies, checksum enforced, Logicube zero tolerated', () => {
  const v = Buffer.alloc(VOLUME_BODY_SIZE);
  v[0] = 0x10;
  v.writeUInt32LE(3, 4);
  v.writeUInt32LE(64, 8);
  v.writeUInt32LE(512, 12);
  v.writeBigUInt64LE(150n, 16);
  v[36] = 1;
  v[52] = 2;
  v.writeUInt32LE(64, 56);
  v.fill(0xab, 64, 80);
  v.writeUInt32LE(adler32(v, 1, 0, 1048), 1048);
  const problems: string[] = [];
  const p = parseVolume(v, 'x', 13, problems);
  assert.deepEqual(p, { smart: false, mediaType: 0x10, chunkCount: 3, sectorsPerChunk: 64, bytesPerSector: 512, sectorCount: 150n, mediaFlags: 1, compressionLevel: 2, errorGranularity: 64, guid: 'ab'.repeat(16) });
  assert.deepEqual(problems, []);
  v.writeUInt32LE(0, 1048);
  parseVolume(v, 'x', 13, problems);
  assert.equal(problems.length, 1);
  v.writeUInt32LE(7, 1048);
  assert.throws(() => parseVolume(v, 'x', 13, []), (e: unknown) => e instanceof MemdumpError && e.code === 'E_CORRUPT');

  const s = Buffer.alloc(94);
  s.writeUInt32LE(1, 0);
  s.writeUInt32LE(2, 4);
  s.writeUInt32LE(64, 8);
  s.writeUInt32LE(512, 12);
  s.writeUInt32LE(100, 16);
  s.write('SMART', 85, 'latin1');
  s.writeUInt32LE(adler32(s, 1, 0, 90), 90);
  assert.equal(parseVolume(s, 'x', 13, []).sectorCount, 100n);
  assert.equal(parseVolume(s, 'x', 13, []).smart, true);
  assert.throws(() => parseVolume(Buffer.alloc(500), 'x', 13, []), (e: unknown) => e instanceof MemdumpError && e.code === 'E_CORRUPT');
});


test('readSection never throws anything but a coded error, whatever the 76 bytes', async () => {
  const p = join(dir, 'fuzz-desc');
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.boolean(), async (bytes, fixSum) => {
      const b = Buffer.concat([Buffer.alloc(FILE_HEADER_SIZE), Buffer.from(bytes)]);
      if (fixSum && b.length >= FILE_HEADER_SIZE + 76) b.writeUInt32LE(adler32(b, 1, FILE_HEADER_SIZE, FILE_HEADER_SIZE + 72), FILE_HEADER_SIZE + 72);
      writeFileSync(p, b);
      const f = await RandomAccessFile.open(p);
      try {
        const s = await readSection(f, FILE_HEADER_SIZE);
        assert.ok(s.next === s.offset || s.next >= s.offset + 76, 'the chain moves forward');
        assert.ok(s.offset + s.size <= b.length || s.next === s.offset, 'inside the file');
      } catch (e) {
        assert.ok(e instanceof MemdumpError && (e.code === 'E_CORRUPT' || e.code === 'E_TRUNCATED'), String(e));
      } finally {
        await f.close();
      }
    }),
    { numRuns: 300, seed: 1 },
  );
});
