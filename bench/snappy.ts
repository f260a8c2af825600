/**
 * Snappy throughput on memory-like data, in 64 KiB chunks (the framing format's chunk size).
 *
 * Measures the native `snappy` package (napi-rs over the Rust `snap` crate, the same encoder AVML uses) for raw
 * block compress/uncompress, our pure-TS CRC-32C, and the full framing paths (SnappyFrameEncoder = compress + CRC +
 * chunk headers; decodeDataChunk = uncompress + CRC check), so the framing overhead is visible. A pure-JS snappy
 * (`snappyjs`) is compared when one happens to be installed; none is a dependency, and nothing is installed here.
 *
 * MiB/s are of uncompressed data. Run: `node dist/bench/snappy.js`.
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { compressSync, uncompressSync } from 'snappy';
import { crc32c } from '../src/core/crc32c.js';
import { SnappyFrameEncoder, decodeDataChunk, inspectChunk, CHUNK_PREAMBLE_SIZE } from '../src/formats/snappy-frame.js';

const CHUNK = 65536;

export interface BenchResult {
  name: string;
  mibPerSec: number;
}

/** 64 KiB chunks cycling through what RAM holds: zero pages, text, page-table-like words, random (encrypted) data. */
function memoryLikeChunks(totalMiB: number): Buffer[] {
  const text = Buffer.from('GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36. /usr/lib/x86_64-linux-gnu\n'.repeat(800));
  const chunks: Buffer[] = [];
  for (let i = 0; i < (totalMiB * 1024 * 1024) / CHUNK; i++) {
    const b = Buffer.alloc(CHUNK);
    switch (i % 4) {
      case 0:
        break; // zeros
      case 1:
        text.copy(b, 0, i % 100, (i % 100) + CHUNK);
        break;
      case 2:
        for (let o = 0; o < CHUNK; o += 8) b.writeBigUInt64LE(0x8000000000000067n | (BigInt(i * 512 + o) << 12n), o);
        break;
      case 3:
        randomBytes(CHUNK).copy(b);
        break;
    }
    chunks.push(b);
  }
  return chunks;
}

function measure(name: string, bytes: number, fn: () => void, rounds = 5): BenchResult {
  fn(); // warm up
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return { name, mibPerSec: bytes / (1024 * 1024) / best };
}

interface PureJsSnappy {
  compress(input: Uint8Array): Uint8Array;
  uncompress(input: Uint8Array): Uint8Array;
}

async function loadPureJs(): Promise<PureJsSnappy | undefined> {
  const name = 'snappyjs';
  try {
    const mod = (await import(name)) as { default?: PureJsSnappy } & Partial<PureJsSnappy>;
    const m = mod.default ?? mod;
    return typeof m.compress === 'function' && typeof m.uncompress === 'function' ? (m as PureJsSnappy) : undefined;
  } catch {
    return undefined;
  }
}

export async function benchSnappy(totalMiB = 64): Promise<BenchResult[]> {
  const chunks = memoryLikeChunks(totalMiB);
  const bytes = chunks.length * CHUNK;
  const results: BenchResult[] = [];
  let sink = 0;

  results.push(
    measure('snappy native compressSync', bytes, () => {
      for (const c of chunks) sink += compressSync(c).length;
    }),
  );
  const packed = chunks.map((c) => compressSync(c));
  results.push(
    measure('snappy native uncompressSync', bytes, () => {
      for (const p of packed) sink += (uncompressSync(p, { asBuffer: true }) as Buffer).length;
    }),
  );
  results.push(
    measure('crc32c (pure TS, slicing-by-16)', bytes, () => {
      for (const c of chunks) sink ^= crc32c(c);
    }),
  );
  results.push(
    measure('framed encode (compress + CRC + headers)', bytes, () => {
      const enc = new SnappyFrameEncoder();
      for (const c of chunks) for (const b of enc.push(c)) sink += b.length;
      for (const b of enc.finish()) sink += b.length;
    }),
  );
  const enc = new SnappyFrameEncoder();
  const stream = Buffer.concat([...chunks.flatMap((c) => enc.push(c)), ...enc.finish()]);
  results.push(
    measure('framed decode (uncompress + CRC check)', bytes, () => {
      let pos = 0;
      let first = true;
      while (pos < stream.length) {
        const info = inspectChunk(stream.subarray(pos, pos + CHUNK_PREAMBLE_SIZE), BigInt(pos), BigInt(stream.length - pos), first);
        first = false;
        if (info.dataLength > 0) sink += decodeDataChunk(info.type, stream.subarray(pos + 4, pos + 4 + info.bodyLength), BigInt(pos)).length;
        pos += 4 + info.bodyLength;
      }
    }),
  );
  const pure = await loadPureJs();
  if (pure) {
    results.push(
      measure('snappyjs (pure JS) compress', bytes, () => {
        for (const c of chunks) sink += pure.compress(c).length;
      }),
    );
    const pj = chunks.map((c) => pure.compress(c));
    results.push(
      measure('snappyjs (pure JS) uncompress', bytes, () => {
        for (const p of pj) sink += pure.uncompress(p).length;
      }),
    );
  }
  if (sink === 0.5) console.log(''); // keep `sink` observable so nothing is optimised away
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await benchSnappy();
  for (const r of results) console.log(`${r.name.padEnd(48)} ${r.mibPerSec.toFixed(1).padStart(9)} MiB/s`);
  if (!results.some((r) => r.name.startsWith('snappyjs'))) console.log('(no pure-JS snappy installed: native only)');
}
