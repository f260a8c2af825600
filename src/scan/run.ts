/**
 * The scan driver: cuts every input region into windows (look-behind + owned chunk + overlap), reads them on the
 * main thread, scans them on worker threads, and appends the results in input order. Memory is bounded by the
 * windows in flight (one per worker, plus the one being read) and the histogram limit, not by the input size.
 */
import { availableParallelism } from 'node:os';
import { MemdumpError } from '../core/errors.js';
import type { ScanInput, ScanRegion } from './input.js';
import type { ScanOutput } from './output.js';
import { ScanPool } from './pool.js';
import { LOOK_BEHIND, MAX_FEATURE_LENGTH } from './types.js';
import type { WorkerInit, WorkerResult } from './worker-protocol.js';

export const DEFAULT_CHUNK = 16 * 1024 * 1024;
/** Bytes past a chunk a window also holds: the longest container decoded whole across a chunk boundary. */
export const DEFAULT_OVERLAP = 1024 * 1024;
const PAGE = 4096;

export interface ScanRunOptions {
  init: WorkerInit;
  workers?: number;
  chunkSize?: number;
  overlap?: number;
  signal?: AbortSignal;
  onProgress?: (done: bigint, total: bigint) => void;
}

export interface Unreadable {
  start: bigint;
  end: bigint;
  region: string;
  reason: string;
}

export interface ScanRunTotals {
  bytesScanned: bigint;
  windows: number;
  unreadable: Unreadable[];
  unreadableBytes: bigint;
  containers: Record<string, number>;
  truncatedContainers: number;
  decodedBytes: number;
  budgetExhaustedWindows: number;
  /** Features not reported, by the address of the window that dropped them (MAX_HITS_PER_KIND), and kind. */
  dropped: { address: bigint; features: Partial<Record<string, number>> }[];
  /** Containers not decoded because a window held more than MAX_CONTAINERS_PER_WINDOW. */
  containersSkipped: number;
  /** Scanners that threw, with the window address (a bug: their features in that window are missing). */
  scannerErrors: { address: bigint; error: string }[];
  interrupted: boolean;
}

export interface Window {
  region: ScanRegion;
  start: bigint;
  ownFrom: number;
  ownTo: number;
  length: number;
}

export function* windows(regions: readonly ScanRegion[], chunk: number, overlap: number): Generator<Window> {
  const C = BigInt(chunk);
  for (const region of regions) {
    for (let own = region.start; own < region.end; own += C) {
      const start = own - BigInt(LOOK_BEHIND) > region.start ? own - BigInt(LOOK_BEHIND) : region.start;
      const ownEnd = own + C < region.end ? own + C : region.end;
      const end = ownEnd + BigInt(overlap) < region.end ? ownEnd + BigInt(overlap) : region.end;
      yield { region, start, ownFrom: Number(own - start), ownTo: Number(ownEnd - start), length: Number(end - start) };
    }
  }
}

/**
 * Read a window; when the whole read fails, page by page, leaving unreadable pages zero (zeros hold no feature)
 * and recording them. A process unmapping memory while it is read, or a damaged image run, costs only those pages.
 * Returns the zero-filled spans of the window ([start, end) pairs, window-relative, look-behind and overlap
 * included), for a caller whose needles could end in NUL bytes (the secret audit).
 */
export async function readWindow(input: ScanInput, w: Window, buf: Buffer, totals: { unreadable: Unreadable[]; unreadableBytes: bigint }): Promise<number[]> {
  const zeroed: number[] = [];
  try {
    await input.read(w.start, buf, w.length);
    return zeroed;
  } catch (e) {
    if (e instanceof MemdumpError && (e.code === 'E_INTERRUPTED' || e.code === 'E_INTERNAL')) throw e;
  }
  for (let off = 0; off < w.length; off += PAGE) {
    const n = Math.min(PAGE, w.length - off);
    const addr = w.start + BigInt(off);
    try {
      await input.read(addr, buf.subarray(off, off + n), n);
    } catch (e) {
      // merge by what failed, not where: messages carry the address
      const reason = (e as { code?: string })?.code ?? (e instanceof MemdumpError ? e.code : 'EIO');
      // a process that exited reads as all zeros: "nothing found" would be a lie
      if (reason === 'ESRCH' || reason === 'E_NOT_FOUND') throw new MemdumpError('E_NOT_FOUND', `${w.region.label}: the process exited while it was being scanned`, { cause: e });
      buf.fill(0, off, off + n);
      if (zeroed[zeroed.length - 1] === off) zeroed[zeroed.length - 1] = off + n;
      else zeroed.push(off, off + n);
      // look-behind and overlap are read again by the neighbouring windows: count each byte where it is owned
      const a = Math.max(off, w.ownFrom);
      const b = Math.min(off + n, w.ownTo);
      if (a >= b) continue;
      const start = w.start + BigInt(a);
      const end = w.start + BigInt(b);
      const last = totals.unreadable[totals.unreadable.length - 1];
      if (last && last.end === start && last.reason === reason) last.end = end;
      else if (totals.unreadable.length < 10_000) totals.unreadable.push({ start, end, region: w.region.label, reason });
      totals.unreadableBytes += BigInt(b - a);
    }
  }
  return zeroed;
}

export function newTotals(): ScanRunTotals {
  return { bytesScanned: 0n, windows: 0, unreadable: [], unreadableBytes: 0n, containers: {}, truncatedContainers: 0, decodedBytes: 0, budgetExhaustedWindows: 0, dropped: [], containersSkipped: 0, scannerErrors: [], interrupted: false };
}

/** `totals` is filled as windows complete, so a caller that catches a failure still knows what was scanned. */
export async function runScan(input: ScanInput, out: ScanOutput, o: ScanRunOptions, totals: ScanRunTotals = newTotals()): Promise<ScanRunTotals> {
  const chunk = o.chunkSize ?? DEFAULT_CHUNK;
  const overlap = Math.max(o.overlap ?? DEFAULT_OVERLAP, MAX_FEATURE_LENGTH);
  const workers = Math.max(1, o.workers ?? availableParallelism());
  const total = input.regions.reduce((n, r) => n + (r.end - r.start), 0n);
  const pool = await ScanPool.start(workers, o.init);
  // an abort stops the windows being scanned too: a single dense window can take a minute
  const onAbort = (): void => {
    totals.interrupted = true;
    void pool.close();
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const free: ArrayBuffer[] = [];
  const capacity = LOOK_BEHIND + chunk + overlap;
  const inFlight: { w: Window; result: Promise<WorkerResult> }[] = [];
  const collect = async (): Promise<void> => {
    const head = inFlight.shift();
    if (!head) return;
    const r = await head.result;
    await out.add(r);
    const s = r.stats;
    for (const [k, n] of Object.entries(s.containers)) totals.containers[k] = (totals.containers[k] ?? 0) + n;
    totals.truncatedContainers += s.truncatedContainers;
    totals.decodedBytes += s.decodedBytes;
    if (s.budgetExhausted) totals.budgetExhaustedWindows++;
    const at = head.w.start + BigInt(head.w.ownFrom);
    if (Object.keys(s.dropped).length > 0) totals.dropped.push({ address: at, features: s.dropped });
    totals.containersSkipped += s.containersSkipped;
    for (const e of s.errors) if (totals.scannerErrors.length < 1000) totals.scannerErrors.push({ address: at, error: e });
    totals.bytesScanned += BigInt(head.w.ownTo - head.w.ownFrom);
    totals.windows++;
    free.push(r.buf);
    o.onProgress?.(totals.bytesScanned, total);
  };
  try {
    let id = 0;
    for (const w of windows(input.regions, chunk, overlap)) {
      if (o.signal?.aborted) {
        totals.interrupted = true;
        break;
      }
      while (inFlight.length > workers) await collect();
      const ab = free.pop() ?? new ArrayBuffer(capacity);
      const buf = Buffer.from(ab, 0, w.length);
      await readWindow(input, w, buf, totals);
      const result = pool.run({ id: id++, buf: ab, length: w.length, ownFrom: w.ownFrom, ownTo: w.ownTo, base: w.start.toString(), addressing: input.addressing, label: w.region.label });
      // Only the head of the queue is awaited; a stop or a failed worker rejects the others at once, and an
      // unawaited rejection would end the process before the partial results are written. Awaiting still sees it.
      result.catch(() => undefined);
      inFlight.push({ w, result });
    }
    while (inFlight.length > 0) await collect();
  } catch (e) {
    if (!totals.interrupted) throw e;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    // a failed job leaves others running: wait for none of them, stop the workers
    await pool.close();
  }
  return totals;
}
