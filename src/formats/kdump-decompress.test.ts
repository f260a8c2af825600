/**
 * Page decompression limits: every codec must give exactly one block or E_CORRUPT, before allocating more than a
 * bounded amount; page_desc flags with several or unknown compression bits are corruption.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import { test } from 'node:test';
import { compress as zstdCompress } from '@mongodb-js/zstd';
import { compressSync } from 'snappy';
import { findExecutable } from '../../test/helpers/qemu-guest.js';
import { MemdumpError } from '../core/errors.js';
import { lzo1xCompress } from '../core/lzo.js';
import { pageContent } from '../../test/fixtures/kdump.js';
import { compressionOf, decompressPage } from './kdump-decompress.js';

const isCorrupt = (e: unknown): boolean => e instanceof MemdumpError && e.code === 'E_CORRUPT';

/** A zstd frame of `blocks` RLE blocks of 128 KiB each (4 bytes apiece on disk), declaring what they hold. */
function rleFrame(blocks: number): Buffer {
  const h = Buffer.alloc(13);
  h.writeUInt32LE(0xfd2fb528, 0);
  h[4] = 0xe0; // 8-byte content size, single segment
  h.writeBigUInt64LE(BigInt(blocks) * 131072n, 5);
  const body = Buffer.alloc(4 * blocks);
  for (let i = 0; i < blocks; i++) {
    const v = (131072 << 3) | (1 << 1) | (i === blocks - 1 ? 1 : 0);
    body.writeUIntLE(v, i * 4, 3);
    body[i * 4 + 3] = 0x41;
  }
  return Buffer.concat([h, body]);
}

/** A valid one-page frame (as makedumpfile writes it) followed by RLE frames filling the page: a decompression bomb. */
async function bomb(blockSize: number): Promise<Buffer> {
  const parts = [await zstdCompress(Buffer.alloc(blockSize, 7), 3)];
  let len = parts[0]!.length;
  while (len + 13 + 40 < blockSize) {
    const f = rleFrame(Math.min(1000, Math.floor((blockSize - len - 13) / 4)));
    parts.push(f);
    len += f.length;
  }
  return Buffer.concat(parts);
}

// first in the file, so the peak RSS it measures is this test's own
test('zstd: concatenated frames in one page are refused before anything is decoded (4 KiB and 256 KiB pages)', async () => {
  const before = process.resourceUsage().maxRSS;
  for (const bs of [4096, 262144]) {
    const b = await bomb(bs);
    // 4 KiB: ~127 MiB once decoded; 256 KiB: ~8 GiB
    await assert.rejects(decompressPage('zstd', b, bs, 0n), (e) => isCorrupt(e) && /follow the zstd frame/.test((e as Error).message), `bomb in a ${bs}-byte page`);
  }
  const grewMiB = (process.resourceUsage().maxRSS - before) / 1024;
  assert.ok(grewMiB < 48, `peak RSS grew by ${grewMiB.toFixed(0)} MiB while refusing the bombs`);
});

/** A zstd frame by hand: single segment, 2-byte content size (value - 256), one raw block. */
function zstdRawFrame(content: Buffer, declared: number): Buffer {
  const h = Buffer.alloc(4 + 1 + 2 + 3);
  h.writeUInt32LE(0xfd2fb528, 0);
  h[4] = 0x60; // FCS field 2 bytes, single segment
  h.writeUInt16LE(declared - 256, 5);
  const bh = (content.length << 3) | 1; // last block, raw
  h[7] = bh & 0xff;
  h[8] = (bh >> 8) & 0xff;
  h[9] = bh >> 16;
  return Buffer.concat([h, content]);
}

test('each codec round-trips a page and refuses a page of the wrong size', async () => {
  const page = pageContent(3, 11, 4096);
  const big = Buffer.concat([page, page]);
  for (const [kind, pack] of [
    ['zlib', deflateSync],
    ['lzo', lzo1xCompress],
    ['snappy', (b: Buffer) => compressSync(b)],
  ] as const) {
    assert.ok((await decompressPage(kind, pack(page), 4096, 0n)).equals(page), kind);
    await assert.rejects(decompressPage(kind, pack(big), 4096, 0n), isCorrupt, `${kind}: two pages in one`);
    await assert.rejects(decompressPage(kind, pack(page.subarray(0, 4000)), 4096, 0n), isCorrupt, `${kind}: short page`);
    await assert.rejects(decompressPage(kind, pack(page).subarray(0, 30), 4096, 0n), isCorrupt, `${kind}: cut stream`);
  }
  assert.ok((await decompressPage('none', page, 4096, 0n)).equals(page));
  await assert.rejects(decompressPage('none', page.subarray(1), 4096, 0n), isCorrupt);
});

test('zstd: a frame declaring one block decodes; one declaring more, or none with huge blocks, is refused unread', async () => {
  const page = pageContent(4, 12, 4096);
  assert.ok((await decompressPage('zstd', zstdRawFrame(page, 4096), 4096, 0n)).equals(page));
  await assert.rejects(decompressPage('zstd', zstdRawFrame(page, 8192), 4096, 0n), /declares 8192 bytes/);
  // no content size, and block headers that promise far more than a page: refused from the headers alone
  const blocks = Buffer.alloc(4 * 40);
  for (let i = 0; i < 40; i++) {
    const h = ((128 << 10) << 3) | (1 << 1) | (i === 39 ? 1 : 0); // RLE blocks of 128 KiB: header + 1 byte each
    blocks[i * 4] = h & 0xff;
    blocks[i * 4 + 1] = (h >> 8) & 0xff;
    blocks[i * 4 + 2] = h >> 16;
    blocks[i * 4 + 3] = 0x41;
  }
  const noSize = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]), blocks]);
  await assert.rejects(decompressPage('zstd', noSize, 4096, 0n), /may expand beyond/);
  await assert.rejects(decompressPage('zstd', Buffer.from('not zstd at all'), 4096, 0n), isCorrupt);
});

test('zstd: the frame must end exactly at the end of the stored page (checksum included when flagged)', async (t) => {
  const page = pageContent(5, 13, 4096);
  const one = await zstdCompress(page, 3);
  assert.ok((await decompressPage('zstd', one, 4096, 0n)).equals(page));
  await assert.rejects(decompressPage('zstd', Buffer.concat([one, Buffer.from([0])]), 4096, 0n), /1 byte\(s\) follow/);
  await assert.rejects(decompressPage('zstd', one.subarray(0, one.length - 1), 4096, 0n), isCorrupt);
  // two frames that each hold half a page: one block of output in total, still not what makedumpfile writes
  const halves = Buffer.concat([await zstdCompress(page.subarray(0, 2048), 3), await zstdCompress(page.subarray(2048), 3)]);
  await assert.rejects(decompressPage('zstd', halves, 4096, 0n), isCorrupt);
  const zstd = findExecutable('zstd');
  if (!zstd) return t.skip('zstd CLI not installed');
  // the zstd CLI as an oracle for frames we do not write: no content size, 4-byte checksum
  const r = spawnSync(zstd, ['-q', '-c', '--no-content-size', '--check', '-'], { input: page });
  assert.equal(r.status, 0, r.stderr.toString());
  const cli = r.stdout;
  assert.equal(cli[4]! & 0xc4, 0x04, 'frame has a checksum and no content size');
  assert.ok((await decompressPage('zstd', cli, 4096, 0n)).equals(page));
  await assert.rejects(decompressPage('zstd', cli.subarray(0, cli.length - 2), 4096, 0n), /cut short/);
  await assert.rejects(decompressPage('zstd', Buffer.concat([cli, cli]), 4096, 0n), /follow the zstd frame/);
});

test('page_desc flags: one known compression bit or none', () => {
  assert.equal(compressionOf(0, 0n), 'none');
  assert.equal(compressionOf(1, 0n), 'zlib');
  assert.equal(compressionOf(2, 0n), 'lzo');
  assert.equal(compressionOf(4, 0n), 'snappy');
  assert.equal(compressionOf(0x20, 0n), 'zstd');
  assert.throws(() => compressionOf(3, 0n), isCorrupt);
  assert.throws(() => compressionOf(0x40, 0n), isCorrupt);
  assert.throws(() => compressionOf(8, 0n), isCorrupt);
});
