import { MemdumpError, errnoOf, hex } from '../core/errors.js';
import type { Range } from '../core/ranges.js';
import type { PhysicalSource } from '../sources/types.js';

export const MIN_FAST_READ = 1 << 20;
export const DEFAULT_CHUNK = 4 << 20;
/** errnos that mean "try the same read again", not "this page is bad". */
const TRANSIENT = new Set(['EINTR', 'EAGAIN']);

export interface PolicyOptions {
  /** Fast-path read size; at least 1 MiB so a GiB costs ~1k syscalls rather than ~262k. */
  chunkSize?: number;
  /** Attempts per read when the error is transient (EINTR, EAGAIN). */
  transientRetries?: number;
  /** When aborted, the rest of the range is accounted as skipped and E_INTERRUPTED is thrown. */
  signal?: AbortSignal;
  /** errnos that end the copy instead of zero-filling a page (ESRCH: the process being read has exited). */
  fatal?: ReadonlySet<string>;
  /**
   * Re-reads of a page that failed with a non-transient error (EIO from a bad disk sector) before it is
   * zero-filled; default 0. Media errors are often intermittent: dc3dd and ddrescue retry before giving up.
   */
  errorRetries?: number;
  /** Observes each re-read of a failing page (imaging reports how many were needed and how many paid off). */
  onRetry?: (r: RetryEvent) => void;
  /**
   * Stop with E_TOO_MANY_ERRORS instead of zero-filling once `count` would exceed `limit` (`image --max-errors`).
   * Shared by every range of a copy, so one object per copy. The bytes before the offending page are delivered
   * first; the offending page is neither delivered nor reported as zero-filled (it is named in the error).
   */
  badPageLimit?: { limit: number; count: number };
}

export interface RetryEvent {
  /** Where the retried read starts (the first byte of the page not read yet). */
  address: bigint;
  /** 1 for the first re-read. */
  attempt: number;
  /** The failure that caused this re-read. */
  errno: string;
  /** The page was complete after this re-read. */
  recovered: boolean;
}

export interface RangeAccount {
  range: Range;
  requested: bigint;
  read: bigint;
  zeroFilled: bigint;
  skipped: bigint;
}

export interface BadPage {
  address: bigint;
  length: number;
  errno: string;
}

/** Consecutive bad pages with the same errno, as the report lists them. */
export interface ErrorRun {
  start: bigint;
  end: bigint;
  errno: string;
  pages: number;
}

export function newAccount(range: Range): RangeAccount {
  return { range, requested: range.end - range.start, read: 0n, zeroFilled: 0n, skipped: 0n };
}

/**
 * Read one range through the policy: large reads on the fast path; after a failed or empty read, the rest of
 * that chunk page by page; an unreadable page is zero-filled and recorded; the next chunk tries the fast path
 * again. Yields buffers whose lengths sum to the range length (unless interrupted). A yielded buffer is reused
 * two chunks later: consume or copy it before asking for the next.
 */
export async function* readRange(
  source: PhysicalSource,
  range: Range,
  account: RangeAccount,
  onBadPage: (p: BadPage) => void,
  options: PolicyOptions = {},
): AsyncGenerator<Buffer> {
  const chunkSize = Math.max(options.chunkSize ?? DEFAULT_CHUNK, source.pageSize);
  const retries = options.transientRetries ?? 8;
  const errorRetries = options.errorRetries ?? 0;
  const page = BigInt(source.pageSize);

  async function readOnce(addr: bigint, buf: Buffer, off: number, len: number): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await source.read(addr, off === 0 ? buf : buf.subarray(off), len);
      } catch (e) {
        if (TRANSIENT.has(errnoOf(e)) && attempt < retries) continue;
        throw e;
      }
    }
  }

  /** Fill buf[off, off+len) from addr; returns bytes filled before the first failure, and that failure. */
  async function fill(addr: bigint, buf: Buffer, off: number, len: number): Promise<{ got: number; errno?: string }> {
    let got = 0;
    while (got < len) {
      let n: number;
      try {
        n = await readOnce(addr + BigInt(got), buf, off + got, len - got);
      } catch (e) {
        const errno = errnoOf(e);
        if (options.fatal?.has(errno)) {
          throw new MemdumpError('E_SOURCE_READ', `${source.path}: ${errno} at ${hex(addr + BigInt(got))}; the copy cannot continue`, { details: { errno }, cause: e });
        }
        return { got, errno };
      }
      if (n <= 0) return { got, errno: 'EOF' };
      got += Math.min(n, len - got);
    }
    return { got };
  }

  // Two buffers per range, reused for every chunk: allocating 4 MiB per chunk cost ~0.6 s of GC and page faults
  // per GiB. While the consumer writes chunk i from one, the fast-path read of chunk i+1 fills the other, so the
  // source read and the sink write overlap (one pass of 1 GiB file→file: 1.10 s → see docs/benchmarks.md). Only
  // one source read is ever in flight. Consumers finish with a chunk before asking for the next
  // (ContainerWriter.data contract), and the buffer they had is only refilled after that.
  const total = range.end - range.start;
  const size = Number(total < BigInt(chunkSize) ? total : BigInt(chunkSize));
  const scratch = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(total > BigInt(chunkSize) ? size : 0)];
  const lengthAt = (a: bigint) => Number(range.end - a < BigInt(chunkSize) ? range.end - a : BigInt(chunkSize));
  let ahead: Promise<{ got: number; errno?: string }> | undefined;
  for (let addr = range.start, turn = 0; addr < range.end; turn ^= 1) {
    if (options.signal?.aborted) {
      account.skipped += range.end - addr;
      throw new MemdumpError('E_INTERRUPTED', `interrupted at ${hex(addr)}`, { details: { address: hex(addr) } });
    }
    const len = lengthAt(addr);
    const buf = scratch[turn]!.subarray(0, len);
    const fast = await (ahead ?? fill(addr, buf, 0, len));
    ahead = undefined;
    account.read += BigInt(fast.got);
    let off = fast.got;
    // slow path for the rest of this chunk: page by page, zero-filling what cannot be read
    while (off < len) {
      const a = addr + BigInt(off);
      const pageEnd = (a / page + 1n) * page;
      const plen = Number((pageEnd < addr + BigInt(len) ? pageEnd : addr + BigInt(len)) - a);
      const r = await fill(a, buf, off, plen);
      let got = r.got;
      let errno = r.errno;
      for (let attempt = 1; got < plen && attempt <= errorRetries; attempt++) {
        const again = await fill(a + BigInt(got), buf, off + got, plen - got);
        const at = a + BigInt(got);
        got += again.got;
        options.onRetry?.({ address: at, attempt, errno: errno ?? 'EIO', recovered: got === plen });
        errno = again.errno;
      }
      if (got < plen) {
        const limit = options.badPageLimit;
        if (limit && limit.count >= limit.limit) {
          // deliver what precedes the page so the .partial file ends exactly where the copy stopped
          if (off > 0) yield buf.subarray(0, off);
          throw new MemdumpError(
            'E_TOO_MANY_ERRORS',
            `${source.path}: unreadable at ${hex(a + BigInt(got))} (${errno ?? 'EIO'}) after ${limit.count} bad page(s) zero-filled; the limit is ${limit.limit}`,
            { details: { address: hex(a + BigInt(got)), errno: errno ?? 'EIO', limit: limit.limit } },
          );
        }
        if (limit) limit.count++;
        account.read += BigInt(got);
        const bad = plen - got;
        buf.fill(0, off + got, off + plen);
        account.zeroFilled += BigInt(bad);
        onBadPage({ address: a + BigInt(got), length: bad, errno: errno ?? 'EIO' });
      } else account.read += BigInt(got);
      off += plen;
    }
    addr += BigInt(len);
    if (addr < range.end && !options.signal?.aborted) {
      ahead = fill(addr, scratch[turn ^ 1]!.subarray(0, lengthAt(addr)), 0, lengthAt(addr));
      // a fatal error is rethrown when the next chunk awaits it; until then it must not count as unhandled
      ahead.catch(() => undefined);
    }
    yield buf;
  }
}

/** Group bad pages into runs of adjacent addresses with the same errno. */
export class ErrorRuns {
  readonly runs: ErrorRun[] = [];
  add(p: BadPage): void {
    const last = this.runs[this.runs.length - 1];
    const end = p.address + BigInt(p.length);
    if (last && last.end === p.address && last.errno === p.errno) {
      last.end = end;
      last.pages++;
    } else this.runs.push({ start: p.address, end, errno: p.errno, pages: 1 });
  }
  get badBytes(): bigint {
    let t = 0n;
    for (const r of this.runs) t += r.end - r.start;
    return t;
  }
}
