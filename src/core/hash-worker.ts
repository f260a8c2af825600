// Worker side of the parallel hasher: runs a group of hash jobs over extents of a shared ring buffer.
import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

export interface HashJob {
  algorithm: string;
  /** 0 = a digest of the whole stream; > 0 = a digest per window of this many bytes. */
  windowSize: number;
}
interface Init {
  jobs: HashJob[];
  ring: SharedArrayBuffer;
}
type Msg = { kind: 'data'; offset: number; length: number; seq: number } | { kind: 'finish' };

const { jobs, ring } = workerData as Init;
const view = Buffer.from(ring);

class WindowHasher {
  private h: Hash;
  private fill = 0;
  readonly done: string[] = [];
  constructor(
    private readonly algorithm: string,
    private readonly size: number,
  ) {
    this.h = createHash(algorithm);
  }
  update(b: Buffer): void {
    let off = 0;
    while (off < b.length) {
      const n = Math.min(this.size - this.fill, b.length - off);
      this.h.update(b.subarray(off, off + n));
      this.fill += n;
      off += n;
      if (this.fill === this.size) {
        this.done.push(this.h.digest('hex'));
        this.h = createHash(this.algorithm);
        this.fill = 0;
      }
    }
  }
  finish(): string[] {
    if (this.fill > 0) this.done.push(this.h.digest('hex'));
    return this.done;
  }
}

const state = jobs.map((j) => (j.windowSize > 0 ? new WindowHasher(j.algorithm, j.windowSize) : createHash(j.algorithm)));

parentPort!.on('message', (m: Msg) => {
  if (m.kind === 'data') {
    const b = view.subarray(m.offset, m.offset + m.length);
    for (const s of state) s.update(b);
    parentPort!.postMessage({ kind: 'ack', seq: m.seq });
  } else {
    parentPort!.postMessage({ kind: 'done', results: state.map((s) => (s instanceof WindowHasher ? s.finish() : s.digest('hex'))) });
  }
});
