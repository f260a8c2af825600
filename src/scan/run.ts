/**
 * The scan driver: cuts every input region into windows (look-behind + owned chunk + overlap), reads them on the
 * main thread, scans them on worker threads, and appends the results in input order. Memory is bounded by the
 * windows in flight (2 per worker) and the histogram limit, not by the input size.
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
  /** Features not reported, by the address of the window that dropped them (MAX_HITS_PER_WINDOW). */
  dropped: { address: bigint; features: number }[];
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
 */
export async function readWindow(input: ScanInput, w: Window, buf: Buffer, totals: { unreadable: Unreadable[]; unreadableBytes: bigint }): Promise<void> {
  try {
    await input.read(w.start, buf, w.length);
    return;
  } catch (e) {
    if (e instanceof MemdumpError && (e.code === 'E_INTERRUPTED' || e.code === 'E_INTERNAL')) throw e;
  }
  for (let off = 0; off < w.length; off += PAGE) {
    const n = Math.min(PAGE, w.length - off);
    const addr = w.start + BigInt(off);
    try {
      await input.read(addr, buf.subarray(off, off + n), n);
    } catch (e) {
      buf.fill(0, off, off + n);
      // look-behind and overlap are read again by the neighbouring windows: count each byte where it is owned
      const a = Math.max(off, w.ownFrom);
      const b = Math.min(off + n, w.ownTo);
      if (a >= b) continue;
      const start = w.start + BigInt(a);
      const end = w.start + BigInt(b);
      const last = totals.unreadable[totals.unreadable.length - 1];
      const reason = e instanceof Error ? e.message : String(e);
      if (last && last.end === start && last.reason === reason) last.end = end;
      else if (totals.unreadable.length < 10_000) totals.unreadable.push({ start, end, region: w.region.label, reason });
      totals.unreadableBytes += BigInt(b - a);
    }
  }
}

export function newTotals(): ScanRunTotals {
  return { bytesScanned: 0n, windows: 0, unreadable: [], unreadableBytes: 0n, containers: {}, truncatedContainers: 0, decodedBytes: 0, budgetExhaustedWindows: 0, dropped: [], interrupted: false };
}

/** `totals` is filled as windows complete, so a caller that catches a failure still knows what was scanned. */
export async function runScan(input: ScanInput, out: ScanOutput, o: ScanRunOptions, totals: ScanRunTotals = newTotals()): Promise<ScanRunTotals> {
  const chunk = o.chunkSize ?? DEFAULT_CHUNK;
  const overlap = Math.max(o.overlap ?? DEFAULT_OVERLAP, MAX_FEATURE_LENGTH);
  const workers = Math.max(1, o.workers ?? availableParallelism());
  const total = input.regions.reduce((n, r) => n + (r.end - r.start), 0n);
  const pool = await ScanPool.start(workers, o.init);
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
    if (s.dropped > 0) totals.dropped.push({ address: head.w.start + BigInt(head.w.ownFrom), features: s.dropped });
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
      while (inFlight.length >= 2 * workers) await collect();
      const ab = free.pop() ?? new ArrayBuffer(capacity);
      const buf = Buffer.from(ab, 0, w.length);
      await readWindow(input, w, buf, totals);
      inFlight.push({ w, result: pool.run({ id: id++, buf: ab, length: w.length, ownFrom: w.ownFrom, ownTo: w.ownTo, base: w.start.toString(), addressing: input.addressing, label: w.region.label }) });
    }
    while (inFlight.length > 0) await collect();
  } finally {
    // a failed job leaves others running: wait for none of them, stop the workers
    for (const f of inFlight) f.result.catch(() => undefined);
    await pool.close();
  }
  return totals;
}
