/**
 * E01 chunk encoding and an ordered pool of worker threads that does it.
 *
 * A stored chunk is either a zlib stream (table entry bit 31 set) or the raw bytes followed by their Adler-32.
 * Deflate is the cost of an E01 (zlib level 1 does ~140 MiB/s on text per core here, but only ~55 MiB/s on
 * random bytes, which it then cannot shrink), so:
 * - chunks are compressed in worker threads, in batches (one message per `batchChunks` chunks, buffers transferred, not
 *   copied), and handed back in submission order;
 * - an incompressibility probe estimates the byte entropy of a 2 KiB sample (32 bytes every 512): at ≥ 7.8
 *   bits per byte the chunk is stored raw, costing ~6 µs instead of a ~450 µs deflate that gains nothing. Random
 *   32 KiB chunks measure 7.88–7.93 here; chunks of the node binary and of gzip data above 7.8 deflate to ≥ 99.7 %.
 *   (A 4 KiB deflate probe was tried first: 46 µs, mostly zlib set-up per call.) Blind spot: high-entropy bytes
 *   repeated within one chunk (the same encrypted page twice) are stored raw although deflate would shrink them.
 *   A chunk the probe lets through is still stored raw when its zlib stream is not smaller than data + 4.
 * - the Adler-32 of a raw chunk uses a 4-bytes-per-step form of the sums: ~1.4 GB/s here, 2.5× the byte loop
 *   of core/adler32.ts (checked against it in the tests).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { deflateSync } from 'node:zlib';
import { MemdumpError } from '../core/errors.js';

export type ChunkCompression = 'none' | 'fast' | 'best';

export interface StoredChunk {
  /** What goes into the sectors section. */
  readonly bytes: Buffer;
  readonly compressed: boolean;
}

const LEVEL: Record<ChunkCompression, number> = { none: 0, fast: 1, best: 9 };
/** E01 chunks are 32 KiB (64 sectors of 512). */
const CHUNK_BYTES = 32 * 1024;
/** Sample bytes per chunk: SAMPLE_PIECE bytes every SAMPLE_STRIDE. */
const SAMPLE_PIECE = 32;
const SAMPLE_STRIDE = 512;
/** Sample entropy (bits per byte) at or above which a chunk is stored without trying deflate. */
export const ENTROPY_LIMIT = 7.8;
const MIN_PROBE_BYTES = 8192;

/**
 * Adler-32 (same result as core/adler32.ts), four bytes per step: b gains 4a + 4x0 + 3x1 + 2x2 + x3. The sums are
 * doubles, exact below 2^53, so one reduction per 64 KiB is enough (b < 2^16 · (65521 + 255 · 2^16) < 2^41).
 */
export function fastAdler32(d: Uint8Array): number {
  let a = 1;
  let b = 0;
  const n = d.length;
  let i = 0;
  while (i < n) {
    const stop = Math.min(n, i + 65536);
    for (; i + 4 <= stop; i += 4) {
      const x0 = d[i]!;
      const x1 = d[i + 1]!;
      const x2 = d[i + 2]!;
      const x3 = d[i + 3]!;
      b += 4 * a + 4 * x0 + 3 * x1 + 2 * x2 + x3;
      a += x0 + x1 + x2 + x3;
    }
    for (; i < stop; i++) {
      a += d[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** Raw chunk bytes followed by their Adler-32 (the stored form of an uncompressed chunk). */
export function storedChunk(data: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(data.length + 4);
  b.set(data, 0);
  b.writeUInt32LE(fastAdler32(data), data.length);
  return b;
}

const XLOGX = new Float64Array(Math.ceil(CHUNK_BYTES / SAMPLE_STRIDE) * SAMPLE_PIECE + 1).map((_, c) => (c > 0 ? c * Math.log2(c) : 0));
const histogram = new Uint32Array(256);

/** Order-0 entropy, in bits per byte, of the sample (SAMPLE_PIECE bytes every SAMPLE_STRIDE) of `data`'s first 32 KiB. */
export function sampleEntropy(data: Uint8Array): number {
  const h = histogram;
  h.fill(0);
  let n = 0;
  const len = Math.min(data.length, CHUNK_BYTES);
  for (let off = 0; off + SAMPLE_PIECE <= len; off += SAMPLE_STRIDE) {
    for (let k = off; k < off + SAMPLE_PIECE; k++) h[data[k]!]!++;
    n += SAMPLE_PIECE;
  }
  if (n === 0) return 0;
  let s = 0;
  for (let i = 0; i < 256; i++) s += XLOGX[h[i]!]!;
  return Math.log2(n) - s / n;
}

/** True when deflating the chunk would almost surely be wasted work (see the top of this file). */
export function looksIncompressible(data: Uint8Array): boolean {
  return data.length >= MIN_PROBE_BYTES && sampleEntropy(data) >= ENTROPY_LIMIT;
}

export interface EncodeOptions {
  compression: ChunkCompression;
  /** Skip deflate for chunks whose sample does not compress (default true). */
  probe?: boolean;
}

/** The chunk's zlib stream, or undefined when the chunk is to be stored raw. */
function deflated(data: Uint8Array, o: EncodeOptions): Buffer | undefined {
  if (o.compression === 'none' || ((o.probe ?? true) && looksIncompressible(data))) return undefined;
  const z = deflateSync(data, { level: LEVEL[o.compression] });
  return z.length < data.length + 4 ? z : undefined;
}

/** How one chunk is stored (in new buffers): the single-thread path and the precomputed zero chunk. */
export function encodeChunk(data: Uint8Array, o: EncodeOptions): StoredChunk {
  const z = deflated(data, o);
  return z ? { bytes: z, compressed: true } : { bytes: storedChunk(data), compressed: false };
}

/**
 * Encode a batch in place. Chunk i's data sits at the start of a slot of lengths[i] + 4 bytes (slots back to back);
 * its stored form (≤ data + 4 bytes) is written at the end of the stored forms before it, which never passes the
 * end of slot i: the buffer that brought the data carries the results back, and nothing else is allocated but
 * deflate's output.
 */
export function encodeBatchInPlace(buf: Buffer, lengths: readonly number[], o: EncodeOptions): { lengths: number[]; compressed: boolean[] } {
  const outLengths: number[] = [];
  const compressed: boolean[] = [];
  let slot = 0;
  let out = 0;
  for (const n of lengths) {
    const data = buf.subarray(slot, slot + n);
    const z = deflated(data, o);
    if (z) {
      buf.set(z, out);
      outLengths.push(z.length);
    } else {
      const sum = fastAdler32(data);
      buf.copyWithin(out, slot, slot + n);
      buf.writeUInt32LE(sum, out + n);
      outLengths.push(n + 4);
    }
    compressed.push(z !== undefined);
    out += outLengths[outLengths.length - 1]!;
    slot += n + 4;
  }
  return { lengths: outLengths, compressed };
}

/** Message to a worker: chunks in slots of length + 4 bytes in `buf` (see encodeBatchInPlace). */
export interface BatchRequest {
  id: number;
  buf: ArrayBuffer;
  lengths: number[];
}
/** A worker's answer: the stored chunks back to back in the same buffer. */
export interface BatchResult {
  id: number;
  buf: ArrayBuffer;
  lengths: number[];
  compressed: boolean[];
}

export interface ChunkPoolOptions extends EncodeOptions {
  /** Worker threads; 0 encodes on the calling thread (the single-thread baseline). Default: the CPU count. */
  workers?: number;
  /** Chunks per worker message (default 16). */
  batchChunks?: number;
}

interface Pending {
  resolve: (c: StoredChunk) => void;
  reject: (e: Error) => void;
}

/** Batch buffers kept for reuse (0.5 MiB each by default). */
const MAX_FREE_BUFFERS = 96;

interface Lane {
  worker: Worker;
  /** Batches sent and not yet answered. */
  outstanding: number;
}


/**
 * compress() copies the chunk and returns a promise for its stored form; promises settle in any order, the caller
 * keeps them in a FIFO to write in order (and bounds that FIFO: the pool itself does not limit what is queued).
 * A partly filled batch is sent on flush()/sendFor() or when full. A stored chunk is a view of its batch buffer:
 * release() it once written and the buffer is reused for a later batch (without that, each thread's garbage of
 * 0.5 MiB buffers waits for V8's external-memory GC and the resident size of a 1 GiB run grew by ~100 MB).
 * Idle workers are unref'd so an abandoned pool never keeps the process alive.
 */
export class ChunkPool {
  private readonly lanes: Lane[] = [];
  private readonly waiting = new Map<number, Pending[]>();
  private batch: { buf: Buffer; lengths: number[]; fill: number; pending: Pending[]; promises: WeakSet<Promise<StoredChunk>> } | undefined;
  /** Chunks not yet released, per batch buffer that came back from a worker. */
  private readonly live = new Map<ArrayBufferLike, number>();
  private readonly free: ArrayBuffer[] = [];
  private nextId = 0;
  private failed: Error | undefined;
  private closed = false;
  private readonly batchChunks: number;
  private readonly batchBytes: number;
  readonly workers: number;

  constructor(private readonly options: ChunkPoolOptions) {
    this.workers = Math.max(0, options.workers ?? availableParallelism());
    this.batchChunks = Math.max(1, options.batchChunks ?? 16);
    this.batchBytes = this.batchChunks * (CHUNK_BYTES + 4);
    for (let i = 0; i < this.workers; i++) {
      const worker = new Worker(new URL('./e01-compress-worker.js', import.meta.url), {
        workerData: { compression: options.compression, probe: options.probe ?? true },
      });
      const lane: Lane = { worker, outstanding: 0 };
      worker.unref();
      worker.on('message', (m: BatchResult) => this.answer(lane, m));
      worker.on('error', (e) => this.fail(e));
      worker.on('exit', (code) => {
        if (!this.closed && !this.failed) this.fail(new Error(`compression worker exited with code ${code}`));
      });
      this.lanes.push(lane);
    }
  }

  /** Queue one chunk (copied at once: the caller may reuse its buffer). */
  compress(chunk: Uint8Array): Promise<StoredChunk> {
    if (this.failed) return Promise.reject(this.wrap(this.failed));
    if (this.closed) return Promise.reject(new MemdumpError('E_INTERNAL', 'E01 chunk pool used after close()'));
    if (this.workers === 0) {
      try {
        return Promise.resolve(encodeChunk(chunk, this.options));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (chunk.length > CHUNK_BYTES) throw new MemdumpError('E_INTERNAL', `chunk of ${chunk.length} bytes`);
    this.batch ??= { buf: Buffer.from(this.free.pop() ?? new ArrayBuffer(this.batchBytes)), lengths: [], fill: 0, pending: [], promises: new WeakSet() };
    const b = this.batch;
    b.buf.set(chunk, b.fill);
    b.fill += chunk.length + 4;
    b.lengths.push(chunk.length);
    const p = new Promise<StoredChunk>((resolve, reject) => b.pending.push({ resolve, reject }));
    // a caller that gave up (failed copy) never awaits the rest: their rejection must not crash the process
    p.catch(() => undefined);
    b.promises.add(p);
    if (b.lengths.length >= this.batchChunks) this.flush();
    return p;
  }

  /** The caller is done with this chunk's bytes (written to the sink): its batch buffer may be reused. */
  release(c: StoredChunk): void {
    const buf = c.bytes.buffer;
    const n = this.live.get(buf);
    if (n === undefined) return;
    if (n > 1) this.live.set(buf, n - 1);
    else {
      this.live.delete(buf);
      if (this.free.length < MAX_FREE_BUFFERS && buf instanceof ArrayBuffer) this.free.push(buf);
    }
  }

  /** Before waiting on `p`: send its batch if it is still being filled (else the wait would never end). */
  sendFor(p: Promise<StoredChunk>): void {
    if (this.batch?.promises.has(p)) this.flush();
  }

  /** Send the partly filled batch now (before waiting on one of its chunks). */
  flush(): void {
    const b = this.batch;
    if (!b || b.lengths.length === 0) return;
    this.batch = undefined;
    const lane = this.lanes.reduce((m, l) => (l.outstanding < m.outstanding ? l : m), this.lanes[0]!);
    const id = this.nextId++;
    this.waiting.set(id, b.pending);
    if (lane.outstanding++ === 0) lane.worker.ref();
    const req: BatchRequest = { id, buf: b.buf.buffer as ArrayBuffer, lengths: b.lengths };
    lane.worker.postMessage(req, [req.buf]);
  }

  private answer(lane: Lane, m: BatchResult): void {
    if (--lane.outstanding === 0) lane.worker.unref();
    const pending = this.waiting.get(m.id);
    this.waiting.delete(m.id);
    if (!pending) return;
    const all = Buffer.from(m.buf);
    this.live.set(m.buf, m.lengths.length);
    let off = 0;
    m.lengths.forEach((n, i) => {
      pending[i]!.resolve({ bytes: all.subarray(off, off + n), compressed: m.compressed[i]! });
      off += n;
    });
  }

  private wrap(e: Error): MemdumpError {
    return new MemdumpError('E_INTERNAL', `E01 compression worker failed: ${e.message}`, { cause: e });
  }

  private fail(e: Error): void {
    this.failed = e;
    const err = this.wrap(e);
    for (const list of this.waiting.values()) for (const p of list) p.reject(err);
    this.waiting.clear();
    if (this.batch) for (const p of this.batch.pending) p.reject(err);
    this.batch = undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.batch) for (const p of this.batch.pending) p.reject(new MemdumpError('E_INTERNAL', 'E01 chunk pool closed'));
    this.batch = undefined;
    await Promise.all(this.lanes.map((l) => l.worker.terminate()));
    this.lanes.length = 0;
  }
}
