import { Worker } from 'node:worker_threads';
import { MemdumpError } from './errors.js';

export const DIGESTS = ['md5', 'sha1', 'sha256'] as const;
export type Digest = (typeof DIGESTS)[number];
export const DEFAULT_WINDOW = 64n * 1024n * 1024n;

export interface HashResult {
  /** Bytes hashed. */
  length: bigint;
  digests: Partial<Record<Digest, string>>;
  windowSize: bigint;
  windowDigest: Digest | null;
  /** Window i covers stream bytes [i*windowSize, min((i+1)*windowSize, length)). */
  windows: string[];
}

export interface HasherOptions {
  digests: readonly Digest[];
  /** 0 disables window hashes. */
  windowSize: bigint;
  /** Which digest the windows use; it is computed in the same worker as that full digest. */
  windowDigest?: Digest;
  /** Ring size shared with the workers: how far hashing may lag behind the writer. */
  ringBytes?: number;
}

interface Lane {
  worker: Worker;
  acked: number;
  done: Promise<{ digest: string; windows: string[] }>;
}

/**
 * Hashes one byte stream with several digests at once, each in its own worker thread, so the wall time is
 * that of the slowest digest (MD5) rather than the sum. Bytes are copied once into a shared ring; update()
 * only waits when the slowest worker is a full ring behind.
 */
export class Hasher {
  private readonly ring: SharedArrayBuffer;
  private readonly view: Buffer;
  private readonly lanes: Lane[] = [];
  private head = 0; // next write position in the ring
  private used = 0; // ring bytes not yet released by every worker (including space skipped at a wrap)
  private stageStart = 0; // bytes [stageStart, head) are copied but not yet posted
  private stageSkip = 0; // ring bytes skipped at the last wrap, released with the next extent
  private seq = 0;
  private readonly pending: { seq: number; bytes: number }[] = [];
  private waiter: (() => void) | undefined;
  private total = 0n;
  private failed: Error | undefined;
  readonly windowDigest: Digest | null;

  constructor(private readonly options: HasherOptions) {
    const ringBytes = options.ringBytes ?? 32 * 1024 * 1024;
    this.ring = new SharedArrayBuffer(ringBytes);
    this.view = Buffer.from(this.ring);
    const windowDigest = options.windowSize > 0n ? (options.windowDigest ?? pickWindowDigest(options.digests)) : undefined;
    if (windowDigest && !options.digests.includes(windowDigest)) {
      throw new MemdumpError('E_USAGE', `window digest ${windowDigest} must be one of the chosen digests`);
    }
    this.windowDigest = windowDigest ?? null;
    for (const algorithm of options.digests) {
      const windowSize = algorithm === windowDigest ? Number(options.windowSize) : 0;
      const worker = new Worker(new URL('./hash-worker.js', import.meta.url), {
        workerData: { algorithm, ring: this.ring, windowSize },
      });
      const lane: Lane = { worker, acked: -1, done: undefined as never };
      lane.done = new Promise((resolve, reject) => {
        worker.on('message', (m: { kind: string; seq?: number; digest?: string; windows?: string[] }) => {
          if (m.kind === 'ack') {
            lane.acked = m.seq!;
            this.release();
          } else resolve({ digest: m.digest!, windows: m.windows! });
        });
        worker.on('error', (e) => {
          this.failed = e;
          reject(e);
          this.wake();
        });
      });
      lane.done.catch(() => undefined);
      this.lanes.push(lane);
    }
  }

  get length(): bigint {
    return this.total;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private release(): void {
    let done = Infinity;
    for (const l of this.lanes) done = Math.min(done, l.acked);
    while (this.pending.length > 0 && this.pending[0]!.seq <= done) this.used -= this.pending.shift()!.bytes;
    this.wake();
  }

  private post(): void {
    const len = this.head - this.stageStart;
    if (len === 0 && this.stageSkip === 0) return;
    const seq = this.seq++;
    this.pending.push({ seq, bytes: len + this.stageSkip });
    this.stageSkip = 0;
    if (len > 0) for (const l of this.lanes) l.worker.postMessage({ kind: 'data', offset: this.stageStart, length: len, seq });
    else for (const l of this.lanes) l.worker.postMessage({ kind: 'data', offset: 0, length: 0, seq });
    this.stageStart = this.head;
  }

  private check(): void {
    if (this.failed) throw new MemdumpError('E_INTERNAL', `hash worker failed: ${this.failed.message}`, { cause: this.failed });
  }

  async update(buf: Buffer): Promise<void> {
    this.total += BigInt(buf.length);
    if (this.lanes.length === 0) return;
    const size = this.view.length;
    const maxPiece = size >> 2;
    let off = 0;
    while (off < buf.length) {
      this.check();
      const n = Math.min(buf.length - off, maxPiece);
      const wrap = this.head + n > size;
      const skip = wrap ? size - this.head : 0;
      if (wrap) {
        this.post();
        this.head = 0;
        this.stageStart = 0;
      }
      this.stageSkip += skip;
      this.used += skip;
      while (this.used + n > size) {
        this.post();
        await new Promise<void>((r) => (this.waiter = r));
        this.check();
      }
      buf.copy(this.view, this.head, off, off + n);
      this.head += n;
      this.used += n;
      off += n;
      if (this.head - this.stageStart >= POST_BYTES) this.post();
    }
  }

  async updateZeros(n: bigint): Promise<void> {
    const z = zeroBlock();
    while (n > 0n) {
      const k = n < BigInt(z.length) ? Number(n) : z.length;
      await this.update(z.subarray(0, k));
      n -= BigInt(k);
    }
  }

  async digest(): Promise<HashResult> {
    const result: HashResult = {
      length: this.total,
      digests: {},
      windowSize: this.windowDigest ? this.options.windowSize : 0n,
      windowDigest: this.windowDigest,
      windows: [],
    };
    this.post();
    for (const l of this.lanes) l.worker.postMessage({ kind: 'finish' });
    const outs = await Promise.all(this.lanes.map((l) => l.done));
    this.options.digests.forEach((d, i) => {
      const o = outs[i]!;
      result.digests[d] = o.digest;
      if (d === this.windowDigest) result.windows = o.windows;
    });
    await this.close();
    return result;
  }

  async close(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.worker.terminate()));
  }
}

/** SHA-256 windows when chosen (fast with SHA-NI, and the strongest), else the first digest chosen. */
export function pickWindowDigest(digests: readonly Digest[]): Digest | undefined {
  return digests.includes('sha256') ? 'sha256' : digests[0];
}

const POST_BYTES = 1 << 20;

let zeros: Buffer | undefined;
export function zeroBlock(): Buffer {
  zeros ??= Buffer.alloc(1 << 20);
  return zeros;
}

export function parseDigests(s: string): Digest[] {
  const out: Digest[] = [];
  for (const part of s.split(',').map((x) => x.trim().toLowerCase().replace('-', ''))) {
    if (part === '' || part === 'none') continue;
    if (!(DIGESTS as readonly string[]).includes(part)) {
      throw new MemdumpError('E_USAGE', `unknown digest "${part}" (choose from ${DIGESTS.join(', ')})`);
    }
    if (!out.includes(part as Digest)) out.push(part as Digest);
  }
  return out;
}
