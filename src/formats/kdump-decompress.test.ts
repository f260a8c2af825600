/**
 * Page decompression limits: every codec must give exactly one block or E_CORRUPT, before allocating more than a
 * bounded amount; page_desc flags with several or unknown compression bits are corruption.
 */
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { test } from 'node:test';
import { compressSync } from 'snappy';
import { MemdumpError } from '../core/errors.js';
import { lzo1xCompress } from '../core/lzo.js';
import { pageContent } from '../../test/fixtures/kdump.js';
import { compressionOf, decompressPage } from './kdump-decompress.js';

const isCorrupt = (e: unknown): boolean => e instanceof MemdumpError && e.code === 'E_CORRUPT';

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
