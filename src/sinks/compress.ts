import { constants, deflateRaw, deflateRawSync, type ZlibOptions } from 'node:zlib';
import { Crc32Account } from '../core/crc32.js';
import { MemdumpError } from '../core/errors.js';
import type { OutputSink, Receipt } from './types.js';
import { headMarker, loadZstd, tailMarker } from './zstd-frames.js';

/**
 * Transport compression for containers that store their bytes plainly (LiME, raw, padded, ELF). AVML and E01
 * compress themselves; compressing them again only costs CPU.
 */
export type TransportCompression = 'gzip' | 'zstd';

export const TRANSPORT_COMPRESSIONS: readonly TransportCompression[] = ['gzip', 'zstd'];

/** Input is cut into blocks this size, each compressed on its own so that several can be compressed at once. */
export const BLOCK_BYTES = 1 << 20;

/**
 * Blocks compressed at once in the libuv pool. Two keep both cores of the target machine busy while the copy
 * loop reads the next chunk; more only queue ahead of the file sink's own pool work (measured: bench/compress.ts).
 */
export const DEFAULT_PARALLEL = 2;

/** Zero runs (holes, unreadable pages) are emitted as copies of one cached compressed block: this many per inner write. */
const ZERO_BLOCKS_PER_WRITE = 256;

/**
 * One compressed stream: a header, blocks compressed independently (in any thread) but emitted in input order,
 * a trailer. `account*` see every input block in order on the caller's thread.
 */
interface Framing {
  header(): Buffer;
  compress(block: Buffer): Promise<Buffer>;
  /** Absent when the compressor has no synchronous form (zstd): parallel 0 then means one block at a time. */
  compressSync?(block: Buffer): Buffer;
  /** One all-zero BLOCK_BYTES block, compressed once and reused for every whole zero block of a run. */
  zeroBlockCompressed(): Promise<Buffer>;
  account(block: Buffer): void;
  accountZeroBlocks(count: number): void;
  trailer(): Buffer;
}

/**
 * What both framings share: the plaintext's CRC-32 and length, and the compressed all-zero block, made once with the
 * same compressor the copy loop would use when parallel is 0 (the synchronous one where there is one).
 */
abstract class AccountedFraming implements Framing {
  protected readonly plain = new Crc32Account(BLOCK_BYTES);
  private zeroBlock: Promise<Buffer> | undefined;

  abstract header(): Buffer;
  abstract compress(block: Buffer): Promise<Buffer>;
  compressSync?(block: Buffer): Buffer;
  abstract trailer(): Buffer;

  zeroBlockCompressed(): Promise<Buffer> {
    if (!this.zeroBlock) {
      const zeros = Buffer.alloc(BLOCK_BYTES);
      this.zeroBlock = this.compressSync ? Promise.resolve(this.compressSync(zeros)) : this.compress(zeros);
    }
    return this.zeroBlock;
  }
  account(block: Buffer): void {
    this.plain.add(block);
  }
  accountZeroBlocks(count: number): void {
    this.plain.addZeroBlocks(count);
  }
}

/**
 * gzip as pigz writes it: ONE member whose deflate stream is the concatenation of raw deflate streams, each
 * compressed from scratch and ended with a sync flush (byte-aligned, not final), closed by an empty final block and
 * the CRC-32/ISIZE trailer. One member rather than one per block: a file cut at a block boundary must fail
 * `gzip -t`, not decompress cleanly to a shorter image.
 */
class GzipFraming extends AccountedFraming {
  private readonly options: ZlibOptions;

  constructor(private readonly level: number) {
    super();
    this.options = { level, finishFlush: constants.Z_SYNC_FLUSH };
  }

  header(): Buffer {
    // no name, mtime 0 (the report has the times), XFL 4/2 = fastest/best, OS 3 = Unix
    return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, this.level === 1 ? 4 : this.level === 9 ? 2 : 0, 3]);
  }
  compress(block: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => deflateRaw(block, this.options, (err, out) => (err ? reject(err) : resolve(out))));
  }
  override compressSync(block: Buffer): Buffer {
    return deflateRawSync(block, this.options);
  }
  trailer(): Buffer {
    const t = Buffer.alloc(10);
    t[0] = 0x03; // BFINAL=1, fixed Huffman, end-of-block: the empty final block
    t.writeUInt32LE(this.plain.crc, 2);
    t.writeUInt32LE(Number(this.plain.length % 0x1_0000_0000n), 6); // ISIZE: length mod 2^32 (RFC 1952)
    return t;
  }
}

/**
 * zstd as independent frames, one per 1 MiB block (what `zstd -d` and `zstd -t` read as one stream), between
 * memdump's head and tail marker frames (skippable: `zstd` ignores them). Frames end on their own, so unlike the
 * gzip member a cut between two frames is still valid zstd; the tail marker's length and CRC-32 are what make
 * decompressStream refuse it. The binding has no synchronous form and no dictionary: blocks go to the libuv pool.
 */
class ZstdFraming extends AccountedFraming {
  constructor(private readonly level: number) {
    super();
  }

  header(): Buffer {
    return headMarker();
  }
  async compress(block: Buffer): Promise<Buffer> {
    return (await loadZstd()).compress(block, this.level);
  }
  trailer(): Buffer {
    return tailMarker(this.plain.length, this.plain.crc);
  }
}

const LEVELS: Record<TransportCompression, { range: readonly [number, number]; defaultLevel: number }> = {
  // level 1: on memory images it keeps most of level 6's ratio at 3–4× the speed (bench/compress.ts)
  gzip: { range: [1, 9], defaultLevel: 1 },
  // @mongodb-js/zstd 1.2.2's JS entry point drops the level and compresses at 3: accept only what it does
  zstd: { range: [3, 3], defaultLevel: 3 },
};

function framingFor(algo: TransportCompression, level: number): Framing {
  return algo === 'gzip' ? new GzipFraming(level) : new ZstdFraming(level);
}

export interface CompressOptions {
  /**
   * Blocks in flight in the libuv pool; 0 compresses synchronously on the caller's thread (the benchmark's baseline
   * for gzip; zstd has no synchronous form, so 0 behaves as 1).
   */
  parallel?: number;
}

/**
 * Compresses everything written to it into `inner` as one gzip or zstd stream. Input is cut into 1 MiB blocks compressed
 * off the main thread, up to `parallel` at a time, and handed to `inner` strictly in order, so the copy loop's
 * `await write()` returns as soon as the bytes are copied and a slot is free. Block boundaries depend only on
 * the position, so the output bytes are the same however the input was split into writes.
 */
export class CompressSink implements OutputSink {
  private block: Buffer = Buffer.allocUnsafe(BLOCK_BYTES);
  private fill = 0;
  private accepted = 0n;
  private stored = 0n;
  private started = false;
  /** Resolves when every piece enqueued so far has reached `inner`; rejects with the first failure. */
  private tail: Promise<void> = Promise.resolve();
  private readonly inFlight: Promise<void>[] = [];
  private failure: { error: unknown } | undefined;
  private state: 'open' | 'finished' | 'aborted' = 'open';

  private constructor(
    private readonly inner: OutputSink,
    private readonly algo: TransportCompression,
    private readonly framing: Framing,
    private readonly parallel: number,
  ) {}

  static create(inner: OutputSink, algo: TransportCompression, level?: number, options: CompressOptions = {}): CompressSink {
    const levels = LEVELS[algo];
    if (!levels) throw new MemdumpError('E_USAGE', `unknown transport compression "${String(algo)}" (choose gzip or zstd)`);
    const lvl = level ?? levels.defaultLevel;
    const [lo, hi] = levels.range;
    if (!Number.isInteger(lvl) || lvl < lo || lvl > hi) {
      const range = lo === hi ? `${lo} (the only level the bundled binding offers)` : `an integer from ${lo} to ${hi}`;
      throw new MemdumpError('E_USAGE', `${algo} level must be ${range}, not ${lvl}`, { details: { algo, level: lvl } });
    }
    const parallel = options.parallel ?? DEFAULT_PARALLEL;
    if (!Number.isInteger(parallel) || parallel < 0 || parallel > 64) {
      throw new MemdumpError('E_USAGE', `compression parallelism must be 0–64, not ${parallel}`);
    }
    return new CompressSink(inner, algo, framingFor(algo, lvl), parallel);
  }

  get describe(): string {
    return `${this.inner.describe} (${this.algo})`;
  }
  /** Uncompressed bytes accepted: container writers compute their offsets from it. */
  get position(): bigint {
    return this.accepted;
  }
  /** Compressed bytes handed to the inner sink so far. */
  get storedBytes(): bigint {
    return this.stored;
  }

  async write(buf: Buffer): Promise<void> {
    this.assertOpen();
    for (let off = 0; off < buf.length; ) {
      const n = Math.min(buf.length - off, BLOCK_BYTES - this.fill);
      buf.copy(this.block, this.fill, off, off + n);
      this.fill += n;
      off += n;
      this.accepted += BigInt(n);
      if (this.fill === BLOCK_BYTES) await this.dispatchBlock();
    }
  }

  async writeZeros(n: bigint): Promise<void> {
    this.assertOpen();
    if (n < 0n) throw new MemdumpError('E_INTERNAL', `writeZeros(${n})`);
    let left = n;
    // complete the partly filled block with zeros, then whole zero blocks from the cache, then start the next one
    if (this.fill > 0 && left > 0n) {
      const k = Number(left < BigInt(BLOCK_BYTES - this.fill) ? left : BigInt(BLOCK_BYTES - this.fill));
      this.block.fill(0, this.fill, this.fill + k);
      this.fill += k;
      left -= BigInt(k);
      this.accepted += BigInt(k);
      if (this.fill === BLOCK_BYTES) await this.dispatchBlock();
    }
    const whole = left / BigInt(BLOCK_BYTES);
    if (whole > 0n) {
      const z = await this.framing.zeroBlockCompressed().catch((e: unknown) => {
        const error = this.compressionError(e);
        this.failure ??= { error };
        throw error;
      });
      for (let done = 0n; done < whole; ) {
        const k = Number(whole - done < BigInt(ZERO_BLOCKS_PER_WRITE) ? whole - done : BigInt(ZERO_BLOCKS_PER_WRITE));
        const out = Buffer.allocUnsafe(z.length * k);
        for (let i = 0; i < k; i++) z.copy(out, i * z.length);
        this.framing.accountZeroBlocks(k);
        await this.enqueue(Promise.resolve(out));
        done += BigInt(k);
        this.accepted += BigInt(k) * BigInt(BLOCK_BYTES);
      }
      left -= whole * BigInt(BLOCK_BYTES);
    }
    if (left > 0n) {
      this.block.fill(0, 0, Number(left));
      this.fill = Number(left);
      this.accepted += left;
    }
  }

  async finish(): Promise<Receipt> {
    this.assertOpen();
    if (this.fill > 0) await this.dispatchBlock();
    await this.enqueue(Promise.resolve(this.framing.trailer()));
    try {
      await this.tail;
    } catch (e) {
      this.failure ??= { error: e };
      throw e;
    }
    this.state = 'finished';
    return this.inner.finish();
  }

  async abort(): Promise<Receipt> {
    if (this.state !== 'aborted') {
      this.state = 'aborted';
      // pieces already enqueued still reach inner (or fail); either way inner is idle before it is aborted
      await this.tail.catch(() => undefined);
    }
    return this.inner.abort();
  }

  private assertOpen(): void {
    if (this.failure) throw this.failure.error;
    if (this.state !== 'open') throw new MemdumpError('E_INTERNAL', `compressing sink ${this.describe} is already ${this.state}`);
  }

  private async dispatchBlock(): Promise<void> {
    const block = this.fill === BLOCK_BYTES ? this.block : this.block.subarray(0, this.fill);
    // the compressor keeps reading `block` after this returns: the next bytes go to a fresh buffer
    this.block = Buffer.allocUnsafe(BLOCK_BYTES);
    this.fill = 0;
    this.framing.account(block);
    let job: Promise<Buffer>;
    if (this.parallel === 0 && this.framing.compressSync) {
      try {
        job = Promise.resolve(this.framing.compressSync(block));
      } catch (e) {
        job = Promise.reject(e);
      }
    } else job = this.framing.compress(block);
    await this.enqueue(
      job.catch((e: unknown) => {
        throw this.compressionError(e);
      }),
    );
  }

  /** A binding that did not load keeps its own code (E_UNSUPPORTED); anything else from a compressor is a bug. */
  private compressionError(e: unknown): MemdumpError {
    if (e instanceof MemdumpError) return e;
    return new MemdumpError('E_INTERNAL', `${this.algo} compression failed: ${(e as Error).message}`, { cause: e });
  }

  /** Chains `job`'s output after every earlier one, then waits while too many blocks are in flight. */
  private async enqueue(job: Promise<Buffer>): Promise<void> {
    job.catch(() => undefined); // observed through `tail`; avoids an unhandled rejection while it waits its turn
    if (!this.started) {
      this.started = true;
      const header = this.framing.header();
      job = job.then((out) => Buffer.concat([header, out]));
      job.catch(() => undefined);
    }
    const done = this.tail.then(async () => {
      const out = await job;
      await this.inner.write(out);
      this.stored += BigInt(out.length);
    });
    done.catch((e: unknown) => (this.failure ??= { error: e }));
    this.tail = done;
    this.inFlight.push(done);
    while (this.inFlight.length > Math.max(1, this.parallel)) await this.inFlight.shift();
  }
}
