import { join } from 'node:path';
import { ERROR_EXIT, MemdumpError, isMemdumpError } from '../core/errors.js';
import type { Digest } from '../core/hasher.js';
import { formatByName } from '../formats/registry.js';
import type { FormatSpec } from '../formats/types.js';
import { mkdirExclusive } from '../sinks/exclusive.js';
import { DeviceSource, type IoMode } from '../sources/device.js';
import { type SwapArea, findSwapAreas } from '../sources/swaps.js';
import { runImageJob } from './image-job.js';
import type { Digests } from './image-verify.js';
import type { CaseFields } from './report.js';

/** One swap area's outcome, for the table `memdump swap` prints. */
export interface SwapAcquired {
  area: SwapArea;
  output: string | null;
  reportPath: string | null;
  status: 'COMPLETE' | 'INCOMPLETE' | 'SKIPPED' | 'FAILED';
  bytes: bigint;
  /** Content digests of the image (raw: of its bytes; E01: the media digests). */
  digests: Digests;
  exitCode: number;
  message: string;
  warnings: string[];
}

export interface SwapAcquireOptions {
  /** Created 0700; must not exist. Not created when there is nothing to acquire. */
  dir: string;
  /** Also inactive swap areas (signatures on block devices, /etc/fstab). */
  all: boolean;
  argv: readonly string[];
  caseFields: CaseFields;
  digests: readonly Digest[];
  windowSize: bigint;
  maxDiskUsage: number;
  retries: number;
  maxErrors?: number;
  verify: boolean;
  /** raw (default) or e01. */
  format?: FormatSpec;
  e01?: { compression: 'none' | 'fast' | 'best'; segmentBytes: bigint };
  splitBytes?: bigint;
  chunkSize?: number;
  rateLimit?: number;
  /** Default 'direct' (swap is written around the page cache); 'buffered' only to compare. */
  io?: IoMode;
  signal?: AbortSignal;
  /** Root of /proc, /sys, /etc (tests); '/' on a live host. */
  root?: string;
  /** Called before each area is imaged; may return a progress callback. */
  onArea?: (area: SwapArea, output: string) => ((done: bigint, total: bigint) => void) | undefined;
}

/** File name for an area inside the swap directory: its path flattened ("/dev/sda2" → "dev_sda2"). */
export function swapImageName(path: string, taken: Set<string>): string {
  const base = path.replace(/^\/+/, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_').slice(0, 120) || 'swap';
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

/**
 * `memdump swap` and `acquire --include-swap`: image every active swap area (and with `all` the inactive ones)
 * into `dir`, one image, report and log per area. Swap is read with O_DIRECT: the kernel writes swap pages
 * around the page cache, so a buffered read could return stale cached pages. Never throws for one area's
 * failure: the next area is still acquired, and the result lists each.
 */
export async function acquireSwaps(o: SwapAcquireOptions): Promise<{ dir: string; areas: SwapAcquired[]; exitCode: number }> {
  const format = o.format ?? formatByName('raw');
  const areas = await findSwapAreas({ root: o.root ?? '/', all: o.all });
  const out: SwapAcquired[] = [];
  if (areas.length === 0) return { dir: o.dir, areas: out, exitCode: 0 };
  await mkdirExclusive(o.dir);
  const taken = new Set<string>();
  let exitCode = 0;
  for (const area of areas) {
    const output = join(o.dir, `${swapImageName(area.path, taken)}.${format.extension}`);
    const base: SwapAcquired = { area, output: null, reportPath: null, status: 'SKIPPED', bytes: 0n, digests: {}, exitCode: 0, message: '', warnings: [] };
    if (area.unavailable) {
      out.push({ ...base, message: area.unavailable });
      continue;
    }
    if (o.signal?.aborted) {
      out.push({ ...base, message: 'interrupted before this area' });
      exitCode ||= ERROR_EXIT.E_INTERRUPTED!;
      continue;
    }
    let src: DeviceSource | undefined;
    try {
      src = await DeviceSource.open(area.path, { root: o.root ?? '/', io: !o.io || o.io === 'auto' ? 'direct' : o.io });
      const progress = o.onArea?.(area, output);
      const r = await runImageJob({
        command: 'swap',
        argv: o.argv,
        caseFields: o.caseFields,
        source: src,
        device: src.facts,
        swap: area.active,
        format,
        output,
        digests: o.digests,
        windowSize: o.windowSize,
        maxDiskUsage: o.maxDiskUsage,
        retries: o.retries,
        verify: o.verify,
        options: { swapFound: area.found, swapHeader: area.header, all: o.all },
        ...(area.active ? {} : { warnings: [`inactive swap area (${area.found}): imaged for the pages it kept`] }),
        ...(o.maxErrors !== undefined ? { maxErrors: o.maxErrors } : {}),
        ...(o.e01 ? { e01: o.e01 } : {}),
        ...(o.splitBytes ? { splitBytes: o.splitBytes } : {}),
        ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}),
        ...(o.rateLimit ? { rateLimit: o.rateLimit } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        ...(progress ? { onProgress: progress } : {}),
      });
      const rep = r.report;
      const digests = format.name === 'e01' ? (rep.e01?.mediaDigests ?? {}) : (rep.hashes?.digests ?? {});
      const evidence = rep.outputs.find((x) => x.role === 'evidence');
      out.push({
        ...base,
        output: evidence?.path ?? output,
        reportPath: r.reportPath ?? null,
        status: rep.status,
        bytes: BigInt(rep.accounting.read) + BigInt(rep.accounting.zeroFilled),
        digests,
        exitCode: r.exitCode,
        message: rep.failure ? `${rep.failure.code}: ${rep.failure.message}` : (rep.image?.verify?.message ?? ''),
        warnings: r.warnings,
      });
      exitCode ||= r.exitCode;
    } catch (e) {
      const err = isMemdumpError(e) ? e : new MemdumpError('E_INTERNAL', (e as Error).message);
      out.push({ ...base, status: 'FAILED', exitCode: err.exitCode, message: `${err.code}: ${err.message}` });
      exitCode ||= err.exitCode;
    } finally {
      await src?.close();
    }
  }
  return { dir: o.dir, areas: out, exitCode };
}
