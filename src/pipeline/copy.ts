import { MemdumpError, isMemdumpError } from '../core/errors.js';
import { Hasher, type Digest, type HashResult } from '../core/hasher.js';
import { totalLength } from '../core/ranges.js';
import type { FormatSpec, ImageNote, MediaDescription } from '../formats/types.js';
import { HashingSink } from '../sinks/hashing.js';
import type { OutputSink, Receipt } from '../sinks/types.js';
import type { PhysicalSource } from '../sources/types.js';
import { ErrorRuns, newAccount, readRange, type ErrorRun, type PolicyOptions, type RangeAccount } from './read-policy.js';

export interface CopyOptions {
  source: PhysicalSource;
  format: FormatSpec;
  sink: OutputSink;
  notes: readonly ImageNote[];
  /** Handed to the writer (E01 keeps it in its header sections). */
  media?: MediaDescription;
  digests: readonly Digest[];
  windowSize: bigint;
  policy?: PolicyOptions;
  /** Bytes per second read from the source; 0 = unlimited. */
  rateLimit?: number;
  onProgress?: (done: bigint, total: bigint) => void;
  /** Observes the memory bytes in address order (content hash, scanners); not the container bytes. */
  onData?: (addr: bigint, chunk: Buffer) => void;
}

export interface CopyResult {
  status: 'COMPLETE' | 'INCOMPLETE';
  failure?: { code: string; message: string; lastGoodOffset: bigint; lastAddress: bigint | undefined };
  accounts: RangeAccount[];
  errorRuns: ErrorRun[];
  /** Hashes of the container bytes actually written (for an incomplete run: of the .partial file's bytes). */
  hash: HashResult | undefined;
  receipt: Receipt;
  /** The container writer's own facts (E01: segments, media digests); only after a complete copy. */
  writerSummary?: Record<string, unknown>;
  /** After a failure, for writers that buffer (E01): media bytes the partial container really holds. */
  mediaWritten?: bigint;
}

/**
 * source → read policy → format writer → hasher tee → sink. Never throws for a failure during the copy: it
 * returns INCOMPLETE with the reason and the last good offset, so the caller can still write the report.
 */
export async function copyMemory(o: CopyOptions): Promise<CopyResult> {
  const runs = o.source.ranges;
  const hasher = new Hasher({ digests: o.digests, windowSize: o.windowSize });
  const out = new HashingSink(o.sink, hasher);
  const writer = o.format.createWriter(out, { runs, notes: o.notes, ...(o.media ? { media: o.media } : {}) });
  const accounts = runs.map(newAccount);
  const errors = new ErrorRuns();
  const total = totalLength(runs);
  let done = 0n;
  let lastAddress: bigint | undefined;
  const started = performance.now();
  try {
    await writer.begin();
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i]!;
      await writer.beginRange(r);
      let addr = r.start;
      for await (const chunk of readRange(
        o.source,
        r,
        accounts[i]!,
        (p) => {
          errors.add(p);
          writer.badBytes?.(p.address, p.length);
        },
        o.policy,
      )) {
        o.onData?.(addr, chunk);
        await writer.data(chunk);
        addr += BigInt(chunk.length);
        lastAddress = addr;
        done += BigInt(chunk.length);
        o.onProgress?.(done, total);
        if (o.rateLimit && o.rateLimit > 0) {
          const due = (Number(done) / o.rateLimit) * 1000 - (performance.now() - started);
          if (due > 1) await sleepUnlessAborted(due, o.policy?.signal);
        }
      }
      await writer.endRange();
    }
    await writer.end();
    const hash = await hasher.digest();
    const receipt = await o.sink.finish();
    const writerSummary = writer.summary?.();
    return { status: 'COMPLETE', accounts, errorRuns: errors.runs, hash, receipt, ...(writerSummary ? { writerSummary } : {}) };
  } catch (e) {
    const err = isMemdumpError(e) ? e : new MemdumpError('E_INTERNAL', (e as Error)?.message ?? String(e), { cause: e });
    const lastGoodOffset = o.sink.position;
    for (const a of accounts) {
      const missing = a.requested - a.read - a.zeroFilled - a.skipped;
      if (missing > 0n) a.skipped += missing;
    }
    const mediaWritten = writer.mediaWritten?.();
    await writer.abort?.().catch(() => undefined);
    let hash: HashResult | undefined;
    try {
      hash = await hasher.digest();
    } catch {
      await hasher.close();
    }
    const receipt = await o.sink.abort();
    return {
      status: 'INCOMPLETE',
      failure: { code: err.code, message: err.message, lastGoodOffset, lastAddress },
      accounts,
      errorRuns: errors.runs,
      hash,
      receipt,
      ...(mediaWritten !== undefined ? { mediaWritten } : {}),
    };
  }
}

/** The rate limit's pause, cut short by SIGINT/SIGTERM: at 10K/s one chunk's pause would otherwise be minutes. */
function sleepUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((res) => {
    if (signal?.aborted) return res();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      res();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
