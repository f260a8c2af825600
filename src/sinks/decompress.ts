import { crc32, createGunzip, type Gunzip } from 'node:zlib';
import { MemdumpError } from '../core/errors.js';
import { VERSION_LINE } from '../crypto/age.js';
import type { TransportCompression } from './compress.js';
import { ByteInput, DEFAULT_LIMITS, loadZstd, parseMarker, walkZstd, zstdCorrupt, type ZstdLimits } from './zstd-frames.js';

export type { TransportCompression } from './compress.js';

/**
 * Input is fed to the inflater in slices this small so one step can expand to at most ~1032× of it (deflate's
 * limit): with the stream's own backpressure that keeps memory flat even for terabyte-scale zero runs.
 */
const FEED_BYTES = 16 * 1024;

/** Magic bytes: gzip (RFC 1952, deflate method), a zstd frame, or a zstd skippable frame (0x184D2A50–5F, LE). */
export function detectCompression(head: Buffer): TransportCompression | undefined {
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  if (head.length >= 4 && (head[0]! & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return 'zstd';
  return undefined;
}

/** The outermost transport layer of a stored file, by its magic: age encryption, or a compression. */
export function detectLayer(head: Buffer): 'age' | TransportCompression | undefined {
  if (head.subarray(0, VERSION_LINE.length).toString('latin1') === VERSION_LINE) return 'age';
  return detectCompression(head);
}

export function compressionExtension(algo: TransportCompression): 'gz' | 'zst' {
  if (algo === 'gzip') return 'gz';
  if (algo === 'zstd') return 'zst';
  throw new MemdumpError('E_USAGE', `unknown transport compression "${String(algo)}"`);
}

/**
 * The plaintext of a transport-compressed stream, in pieces of at most 1 MiB. Every member of a multi-member .gz
 * and every frame of a .zst is read (gzip(1), pigz and zstd(1) read them the same way). Damage and truncation are
 * E_CORRUPT; memory stays bounded whatever the compression ratio: gzip inflates in small steps, zstd frames are
 * decoded one at a time and refused (E_TOO_LARGE) past `zstdLimits`.
 */
export function decompressStream(algo: TransportCompression, input: AsyncIterable<Buffer>, zstdLimits: ZstdLimits = DEFAULT_LIMITS): AsyncIterable<Buffer> {
  if (algo === 'zstd') return zstdStream(input, zstdLimits);
  if (algo !== 'gzip') throw new MemdumpError('E_USAGE', `unknown transport compression "${String(algo)}"`);
  return gunzipStream(input);
}

const OUT_PIECE = 1 << 20;

/**
 * Frame by frame: the walker finds each frame's bytes (bounded), the binding decodes it in the libuv pool. memdump's
 * marker frames are checked: after a head marker the tail marker must come, with the plaintext's length and CRC-32.
 */
async function* zstdStream(input: AsyncIterable<Buffer>, limits: ZstdLimits): AsyncGenerator<Buffer> {
  const zstd = await loadZstd();
  const src = new ByteInput(input);
  let sawAny = false;
  let marked = false;
  let tail: bigint | undefined;
  let crc = 0;
  let length = 0n;
  try {
    for await (const piece of walkZstd(src, limits)) {
      sawAny = true;
      if (piece.kind === 'skippable') {
        const m = parseMarker(piece);
        if (m?.kind === 'head') {
          if (marked && tail === undefined) throw zstdCorrupt(`a second memdump stream starts at compressed byte ${piece.offset} before the first one ended: the file is damaged`, piece.offset);
          marked = true;
          tail = undefined;
          crc = 0;
          length = 0n;
        } else if (m?.kind === 'tail') {
          if (m.length !== length || m.crc !== crc) {
            throw zstdCorrupt(
              `zstd stream's end marker at compressed byte ${piece.offset} records ${m.length} bytes (CRC-32 ${m.crc.toString(16)}) but the frames before it hold ${length} (CRC-32 ${crc.toString(16)}): frames are missing or damaged`,
              piece.offset,
            );
          }
          tail = piece.offset;
        }
        continue;
      }
      if (tail !== undefined) throw zstdCorrupt(`zstd frame at compressed byte ${piece.offset} follows memdump's end marker: the file is damaged`, piece.offset);
      let out: Buffer;
      try {
        out = await zstd.decompress(piece.bytes);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        throw zstdCorrupt(`zstd frame at compressed byte ${piece.offset} is damaged: ${msg}`, piece.offset, false, e);
      }
      // the decoder checks a declared size itself; this catches a frame that expanded past what its blocks allow
      if (out.length > piece.contentBound) throw zstdCorrupt(`zstd frame at compressed byte ${piece.offset} expanded past its block headers' bound`, piece.offset);
      crc = crc32(out, crc);
      length += BigInt(out.length);
      for (let off = 0; off < out.length; off += OUT_PIECE) yield out.subarray(off, Math.min(out.length, off + OUT_PIECE));
    }
  } finally {
    await src.close();
  }
  if (!sawAny) {
    throw new MemdumpError('E_CORRUPT', 'zstd stream is empty: not even a frame header (an incomplete transfer?)', {
      details: { algo: 'zstd', compressedOffset: '0x0', truncated: true },
    });
  }
  if (marked && tail === undefined) {
    throw zstdCorrupt(
      `zstd stream ends after ${src.offset} compressed bytes without memdump's end marker: the file is truncated between frames (an incomplete transfer?)`,
      src.offset,
      true,
    );
  }
}

function corrupt(e: unknown, consumed: bigint): MemdumpError {
  if (e instanceof MemdumpError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const truncated = /unexpected end of file/i.test(msg);
  return new MemdumpError(
    'E_CORRUPT',
    truncated
      ? `gzip stream ends early after ${consumed} compressed bytes: the file is truncated (an incomplete transfer?)`
      : `gzip stream is damaged near compressed byte ${consumed}: ${msg}`,
    { details: { algo: 'gzip', compressedOffset: '0x' + consumed.toString(16), truncated }, cause: e },
  );
}

async function* gunzipStream(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const inflater: Gunzip = createGunzip();
  let consumed = 0n;
  let sawInput = false;
  let feedError: unknown;
  let feederDone = false;

  const write = (b: Buffer) =>
    new Promise<void>((resolve, reject) => {
      const ok = inflater.write(b, (err) => (err ? reject(err) : undefined));
      if (ok) resolve();
      else {
        const onDrain = () => (inflater.off('close', onClose), resolve());
        const onClose = () => (inflater.off('drain', onDrain), reject(new Error('inflater closed')));
        inflater.once('drain', onDrain);
        inflater.once('close', onClose);
      }
    });

  // feeding runs alongside the consumer: the stream's backpressure, not this loop, decides how far it gets ahead
  const feeder = (async () => {
    try {
      for await (const chunk of input) {
        for (let off = 0; off < chunk.length; off += FEED_BYTES) {
          const piece = chunk.subarray(off, Math.min(chunk.length, off + FEED_BYTES));
          if (inflater.destroyed) return;
          sawInput = true;
          await write(piece);
          consumed += BigInt(piece.length);
        }
      }
      if (!inflater.destroyed) inflater.end();
    } catch (e) {
      feedError = e;
      inflater.destroy(e instanceof Error ? e : new Error(String(e)));
    } finally {
      feederDone = true;
    }
  })();

  try {
    for await (const out of inflater as AsyncIterable<Buffer>) yield out;
  } catch (e) {
    if (feedError !== undefined && e === feedError) throw feedError;
    throw corrupt(e, consumed);
  } finally {
    // a consumer that stops early leaves the feeder blocked on a write: destroying the inflater releases it
    if (!feederDone) inflater.destroy();
  }
  await feeder;
  if (feedError !== undefined) throw feedError;
  if (!sawInput) {
    throw new MemdumpError('E_CORRUPT', 'gzip stream is empty: not even a header (an incomplete transfer?)', {
      details: { algo: 'gzip', compressedOffset: '0x0', truncated: true },
    });
  }
}
