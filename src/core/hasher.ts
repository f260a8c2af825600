import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { HashJob } from './hash-worker.js';
import { MemdumpError } from './errors.js';

export const DIGESTS = ['md5', 'sha1', 'sha256'] as const;
export type Digest = (typeof DIGESTS)[number];

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
  /** Worker threads to spread the digests over (default: the number of CPUs). */
  lanes?: number;
}

interface Lane {
  worker: Worker;
  jobs: HashJob[];
  acked: number;
  done: Promise<(string | string[])[]>;
}

/** Relative cost per byte measured here (OpenSSL, SHA-NI): MD5 is the slowest and cannot be split. */
const COST: Record<Digest, number> = { md5: 1.5, sha1: 0.65, sha256: 0.7 };

/**
 * Spread the jobs over at most `lanes` workers, heaviest first onto the least loaded lane. On two cores this
 * puts MD5 alone on one and SHA-1 + SHA-256 + windows on the other: measured 1.92 s/GiB against 2.21 s/GiB
 * for one worker per job (threads beyond the core count only add contention).
 */
export function planLanes(jobs: readonly HashJob[], lanes: number): HashJob[][] {
  const out: { load: number; jobs: HashJob[] }[] = Array.from({ length: Math.max(1, Math.min(lanes, jobs.length)) }, () => ({ load: 0, jobs: [] }));
  const sorted = [...jobs].sort((a, b) => COST[b.algorithm as Digest] - COST[a.algorithm as Digest]);
  for (const j of sorted) {
    const lane = out.reduce((m, l) => (l.load < m.load ? l : m), out[0]!);
    lane.jobs.push(j);
    lane.load += COST[j.algorithm as Digest];
  }
  return out.filter((l) => l.jobs.length > 0).map((l) => l.jobs);
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
    const jobs: HashJob[] = options.digests.map((algorithm) => ({ algorithm, windowSize: 0 }));
    if (windowDigest) jobs.push({ algorithm: windowDigest, windowSize: Number(options.windowSize) });
    for (const group of planLanes(jobs, options.lanes ?? availableParallelism())) {
      const worker = new Worker(new URL('./hash-worker.js', import.meta.url), { workerData: { jobs: group, ring: this.ring } });
      const lane: Lane = { worker, jobs: group, acked: -1, done: undefined as never };
      lane.done = new Promise((resolve, reject) => {
        worker.on('message', (m: { kind: string; seq?: number; results?: (string | string[])[] }) => {
          if (m.kind === 'ack') {
            lane.acked = m.seq!;
            this.release();
          } else resolve(m.results!);
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
    for (const z of zeroPieces(n)) await this.update(z);
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
    this.lanes.forEach((lane, i) =>
      lane.jobs.forEach((job, k) => {
        const r = outs[i]![k]!;
        if (job.windowSize > 0) result.windows = r as string[];
        else result.digests[job.algorithm as Digest] = r as string;
      }),
    );
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
function zeroBlock(): Buffer {
  zeros ??= Buffer.alloc(1 << 20);
  return zeros;
}

/** n zero bytes as views of one shared zero block (callers must not write to them). */
export function* zeroPieces(n: bigint): Generator<Buffer> {
  const z = zeroBlock();
  for (; n > 0n; n -= BigInt(z.length)) yield n < BigInt(z.length) ? z.subarray(0, Number(n)) : z;
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
