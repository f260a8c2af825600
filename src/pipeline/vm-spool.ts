import { createHash, randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { MemdumpError, fromSystemError } from '../core/errors.js';
import { Hasher } from '../core/hasher.js';
import { rangeToJson } from '../core/ranges.js';
import { openImage } from '../formats/registry.js';
import type { FormatSpec } from '../formats/types.js';
import { withWriterHooks } from '../formats/writer-hooks.js';
import { ImageSource } from '../sources/image.js';
import type { PipeReader } from '../sources/qmp-dump.js';
import type { PhysicalSource, SourceKind } from '../sources/types.js';
import { type JobResult, runJob } from './job.js';
import type { VmJobOptions } from './vm-acquire.js';

/**
 * `memdump vm --spool DIR`: QEMU's dump goes raw to a file as fast as the pipe delivers (only SHA-256 on the way),
 * so the guest is paused about as long as QEMU's own dump to a file; the hashing, container and delivery then run
 * from that file with the guest already resumed. The SHA-256 taken from the pipe is what ties the evidence to the
 * stream QEMU wrote: the spool is read back against it before the container may be finished.
 */

/** Bounded pieces of the stream in flight: one being written while the next fills. */
const SPOOL_CHUNK = 4 << 20;

export interface SpoolFile {
  path: string;
  fh: fsp.FileHandle;
}

/** DIR/memdump-spool-<random>.elf, 0600, never through a link, never an existing file. */
export async function createSpool(dir: string): Promise<SpoolFile> {
  const path = join(dir, `memdump-spool-${randomBytes(8).toString('hex')}.elf`);
  try {
    const fh = await fsp.open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
    return { path, fh };
  } catch (e) {
    throw fromSystemError(e, `creating the spool file in ${dir}`);
  }
}

export interface SpoolFacts {
  bytes: bigint;
  sha256: string;
}

/**
 * Copy the stream to the spool until end of stream, hashing it. Two buffers alternate so the pipe is read while
 * the previous piece is written; memory stays at two chunks plus the reader's bound whatever the guest's size.
 * SHA-256 runs on the main thread by default: with QEMU writing on one core, a hash worker only competes for the
 * other (1 GiB guest, 2 cores: 1.4–1.9 s either way). The file is fsynced after QEMU is done (outside the pause):
 * the spool is the only copy of the memory until the container is complete.
 */
export async function pumpToSpool(reader: PipeReader, spool: SpoolFile, o: { hashWorker?: boolean } = {}): Promise<SpoolFacts> {
  const worker = o.hashWorker ? new Hasher({ digests: ['sha256'], windowSize: 0n, lanes: 1 }) : undefined;
  try {
    return await pump(reader, spool, worker);
  } finally {
    await worker?.close().catch(() => undefined);
  }
}

async function pump(reader: PipeReader, spool: SpoolFile, worker: Hasher | undefined): Promise<SpoolFacts> {
  const hash = worker ? undefined : createHash('sha256');
  const bufs = [Buffer.allocUnsafe(SPOOL_CHUNK), Buffer.allocUnsafe(SPOOL_CHUNK)];
  let which = 0;
  let bytes = 0n;
  let pending: Promise<unknown> | undefined;
  for (;;) {
    const buf = bufs[which]!;
    let fill = 0;
    let eof = false;
    while (fill < buf.length) {
      const n = await reader.read(buf, fill, buf.length - fill);
      if (n === 0) {
        eof = true;
        break;
      }
      if (worker) await worker.update(buf.subarray(fill, fill + n));
      else hash!.update(buf.subarray(fill, fill + n));
      fill += n;
      // hand a piece to the disk as soon as the previous write is done, rather than waiting for a full buffer
      if (pending === undefined && fill >= 1 << 20) break;
    }
    if (pending) await pending;
    pending = undefined;
    if (fill > 0) {
      const at = bytes;
      pending = writeAll(spool, buf, fill, at);
      // a failed write must not go unobserved while the next piece is read
      pending.catch(() => undefined);
      bytes += BigInt(fill);
      which ^= 1;
    }
    if (eof) break;
  }
  if (pending) await pending;
  try {
    await spool.fh.sync();
  } catch (e) {
    throw fromSystemError(e, `syncing the spool ${spool.path}`);
  }
  const sha256 = worker ? (await worker.digest()).digests.sha256! : hash!.digest('hex');
  return { bytes, sha256 };
}

async function writeAll(spool: SpoolFile, buf: Buffer, len: number, at: bigint): Promise<void> {
  let done = 0;
  while (done < len) {
    let n: number;
    try {
      ({ bytesWritten: n } = await spool.fh.write(buf, done, len - done, Number(at) + done));
    } catch (e) {
      throw fromSystemError(e, `writing the spool ${spool.path} at byte ${Number(at) + done}`);
    }
    if (n === 0) throw new MemdumpError('E_SOURCE_READ', `writing the spool ${spool.path}: no progress`);
    done += n;
  }
}

/**
 * Read the spool back and compare it with what came through the pipe. A difference means the file changed after
 * memdump wrote it (or the disk returned other bytes): the evidence would not be the stream QEMU produced.
 */
export async function verifySpool(path: string, want: SpoolFacts, signal?: AbortSignal): Promise<void> {
  const hash = createHash('sha256');
  let bytes = 0n;
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    throw fromSystemError(e, `opening the spool ${path} to check it`);
  }
  try {
    const buf = Buffer.allocUnsafe(SPOOL_CHUNK);
    for (;;) {
      if (signal?.aborted) throw new MemdumpError('E_INTERRUPTED', `interrupted while checking the spool ${path}`);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      bytes += BigInt(bytesRead);
    }
  } catch (e) {
    if (e instanceof MemdumpError) throw e;
    throw fromSystemError(e, `reading the spool ${path} back`);
  } finally {
    await fh.close().catch(() => undefined);
  }
  const got = hash.digest('hex');
  if (bytes !== want.bytes || got !== want.sha256) {
    throw new MemdumpError('E_CORRUPT', `the spool ${path} no longer holds the stream QEMU wrote (SHA-256 ${got}, ${bytes} bytes; the pipe delivered ${want.sha256}, ${want.bytes} bytes): the file was changed after memdump wrote it; it is kept as evidence`, {
      details: { spool: path, expectedSha256: want.sha256, actualSha256: got, expectedBytes: want.bytes.toString(), actualBytes: bytes.toString() },
    });
  }
}

/**
 * The container is not finished until the read-back check passed: thrown there, the copy ends INCOMPLETE with the
 * check's own message and the report says why.
 */
export function finishAfter(format: FormatSpec, check: () => Promise<void>, finished: () => void): FormatSpec {
  return withWriterHooks(format, { beforeEnd: check, afterEnd: finished });
}

export interface SpoolJobOptions {
  spool: string;
  facts: SpoolFacts;
  /** The report's vm section (source.info.vm): gets `spooled` and the memory map read from the spool. */
  vm: Record<string, unknown>;
  kind: SourceKind;
  sourcePath: string;
  job: VmJobOptions;
  signal: AbortSignal;
  warn: (line: string) => void;
}

/**
 * The ordinary job, from the spool through the ELF reader, with the read-back check beside it (the second core)
 * and awaited before the container may be finished. The spool is removed only when the evidence is COMPLETE;
 * otherwise `keptWhy` says why it stays.
 */
export async function jobFromSpool(o: SpoolJobOptions): Promise<{ job: JobResult; removed: boolean; keptWhy: string }> {
  const spooled: Record<string, unknown> = { path: o.spool, removed: false, bytes: o.facts.bytes.toString(), sha256: o.facts.sha256, pausedMs: o.vm['pausedMs'] ?? null };
  o.vm['spooled'] = spooled;
  const img = await openImage(o.spool, 'elf');
  o.vm['memoryMap'] = img.runs.map(rangeToJson);
  o.vm['notes'] = img.notes.length;
  const inner = new ImageSource(img, o.spool);
  const source: PhysicalSource = { kind: o.kind, path: o.sourcePath, ranges: inner.ranges, pageSize: inner.pageSize, notes: inner.notes, info: { vm: o.vm }, read: (a, b, l) => inner.read(a, b, l), close: () => inner.close() };
  let checkFailure: unknown;
  const check = verifySpool(o.spool, o.facts, o.signal).catch((e: unknown) => {
    checkFailure = e;
    throw e;
  });
  check.catch(() => undefined);
  let job: JobResult;
  try {
    job = await runJob({
      ...o.job,
      source,
      attempts: [{ source: o.kind, path: o.sourcePath, ok: true }],
      lockdown: undefined,
      ram: source.ranges,
      notes: source.notes,
      context: undefined,
      // set as the container is finished, so the report (written after) says what happens to the spool
      format: finishAfter(o.job.format, () => check, () => (spooled['removed'] = true)),
      policy: { ...o.job.policy, signal: o.signal },
    });
  } finally {
    await source.close().catch(() => undefined);
    await check.catch(() => undefined);
  }
  if (checkFailure) {
    o.warn(`ERROR: ${(checkFailure as Error).message}`);
    return { job, removed: false, keptWhy: 'its read-back SHA-256 differs from the stream QEMU wrote' };
  }
  if (job.report.status !== 'COMPLETE' || spooled['removed'] !== true) return { job, removed: false, keptWhy: `the evidence is ${job.report.status}` };
  try {
    await fsp.unlink(o.spool);
    return { job, removed: true, keptWhy: '' };
  } catch (e) {
    return { job, removed: false, keptWhy: `removing it failed: ${(e as Error).message}; the report says removed` };
  }
}
