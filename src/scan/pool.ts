/**
 * A fixed set of scan workers. Jobs go to whichever worker is free; results are handed back in submission order
 * by the caller awaiting each job's promise in turn, so output order never depends on which worker was faster.
 */
import { Worker } from 'node:worker_threads';
import { MemdumpError } from '../core/errors.js';
import type { WorkerInit, WorkerJob, WorkerResult } from './worker-protocol.js';

/*
 * V8 sizes a worker's heap from the machine's memory (gigabytes here) and collects lazily until it is near that, so
 * two workers each kept a few hundred MB of dead window strings. A fixed old space makes it collect as it goes; a
 * window's live set is bounded by MAX_HITS_PER_WINDOW (about 100 MB at worst) well below it.
 */
const WORKER_LIMITS = { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 16 };

interface Slot {
  worker: Worker;
  busy: boolean;
  pending?: { resolve: (r: WorkerResult) => void; reject: (e: Error) => void } | undefined;
}

export class ScanPool {
  private readonly slots: Slot[] = [];
  private readonly waiting: { job: WorkerJob; resolve: (r: WorkerResult) => void; reject: (e: Error) => void }[] = [];
  private failed: Error | undefined;

  private constructor() {}

  static async start(size: number, init: WorkerInit): Promise<ScanPool> {
    const pool = new ScanPool();
    const url = new URL('./worker.js', import.meta.url);
    await Promise.all(
      Array.from({ length: size }, async () => {
        const worker = new Worker(url, { resourceLimits: WORKER_LIMITS });
        const slot: Slot = { worker, busy: false };
        pool.slots.push(slot);
        await new Promise<void>((resolve, reject) => {
          const onMsg = (m: { ready?: boolean; error?: { code: string; message: string } }): void => {
            worker.off('message', onMsg);
            if (m.error) reject(new MemdumpError(m.error.code as 'E_USAGE', m.error.message));
            else resolve();
          };
          worker.on('message', onMsg);
          worker.once('error', reject);
          worker.postMessage({ init });
        });
        worker.on('message', (m: { result?: WorkerResult; error?: { code: string; message: string } }) => pool.settle(slot, m));
        worker.on('error', (e: Error & { code?: string }) =>
          pool.fail(
            e.code === 'ERR_WORKER_OUT_OF_MEMORY'
              ? new MemdumpError('E_TOO_LARGE', `a scan worker ran out of memory on one window (${WORKER_LIMITS.maxOldGenerationSizeMb} MB): scan again with a smaller --chunk-size (e.g. 1M); what was found so far is written`, { cause: e })
              : e,
          ),
        );
        worker.on('exit', (code) => {
          if (code !== 0 && !pool.closing) pool.fail(new MemdumpError('E_INTERNAL', `scan worker exited with code ${code}`));
        });
      }),
    ).catch(async (e) => {
      await pool.close();
      throw e;
    });
    return pool;
  }

  private closing = false;

  get size(): number {
    return this.slots.length;
  }

  run(job: WorkerJob): Promise<WorkerResult> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ job, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.busy) continue;
      const next = this.waiting.shift();
      if (!next) return;
      slot.busy = true;
      slot.pending = { resolve: next.resolve, reject: next.reject };
      slot.worker.postMessage({ job: next.job }, [next.job.buf]);
    }
  }

  private settle(slot: Slot, m: { result?: WorkerResult; error?: { code: string; message: string } }): void {
    const p = slot.pending;
    slot.busy = false;
    slot.pending = undefined;
    if (m.error) p?.reject(new MemdumpError(m.error.code as 'E_INTERNAL', m.error.message));
    else if (m.result) p?.resolve(m.result);
    this.dispatch();
  }

  private fail(e: Error): void {
    this.failed ??= e;
    for (const s of this.slots) s.pending?.reject(e);
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // jobs still running or queued will never answer: settle them, or their awaiters wait on an empty event loop
    this.fail(new MemdumpError('E_INTERRUPTED', 'scan stopped'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
