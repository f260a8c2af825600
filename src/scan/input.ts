/**
 * What `memdump scan` reads: a memory image in any format memdump reads (addresses are physical), a plain file such
 * as pagefile.sys or a swap partition image (addresses are file offsets), or a live process (virtual addresses,
 * read-only, without stopping it). All three are a list of regions and a read that may fail on part of a region.
 */
import { type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { MemdumpError, fromSystemError } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { openImage } from '../formats/registry.js';
import type { FormatName } from '../formats/types.js';
import { readMappings } from '../sources/maps.js';
import { ioctlGeometry } from '../sources/block-geometry.js';
import { ProcessSource } from '../sources/process.js';
import type { Addressing } from './format.js';

export interface ScanRegion {
  start: bigint;
  end: bigint;
  /** What the region is, for YARA hits and errors: "file", "run 3", "7f…-7f… rw-p [heap]". */
  label: string;
}

export interface ScanInput {
  readonly description: Record<string, unknown>;
  readonly addressing: Addressing;
  readonly regions: readonly ScanRegion[];
  /** Fill buf[0, length) from addr; throws on a read failure (the caller retries page by page). */
  read(addr: bigint, buf: Buffer, length: number): Promise<void>;
  close(): Promise<void>;
}

/** Mappings whose reads have side effects or always fail; VmFlags io/pf (VM_IO, VM_PFNMAP) are device memory. */
const SKIP_MAPPINGS = new Set(['[vvar]', '[vvar_vclock]', '[vsyscall]']);
const SKIP_VMFLAGS = ['io', 'pf'];

export async function openProcessInput(pid: number): Promise<ScanInput> {
  const { mappings } = await readMappings(pid);
  const usable = mappings.filter((m) => m.read && !SKIP_MAPPINGS.has(m.path) && !(m.vmFlags ?? []).some((f) => SKIP_VMFLAGS.includes(f)));
  const regions = usable.map((m) => ({ start: m.start, end: m.end, label: `${m.start.toString(16)}-${m.end.toString(16)} ${m.perms} ${m.path}`.trimEnd() }));
  const src = await ProcessSource.open(pid, regions.map((r) => ({ start: r.start, end: r.end })));
  return {
    description: {
      kind: 'process',
      pid,
      method: src.info['method'],
      mappings: regions.length,
      // readable but not read: their reads have side effects or fail by design
      skipped: mappings.filter((m) => m.read && !usable.includes(m)).map((m) => `${m.start.toString(16)}-${m.end.toString(16)} ${m.perms} ${m.path}`.trimEnd()),
    },
    addressing: 'virtual',
    regions,
    async read(addr, buf, length) {
      let got = 0;
      while (got < length) {
        const n = await src.read(addr + BigInt(got), buf.subarray(got), length - got);
        if (n <= 0) throw new MemdumpError('E_SOURCE_READ', `process ${pid}: short read at 0x${(addr + BigInt(got)).toString(16)}`);
        got += n;
      }
    },
    close: () => src.close(),
  };
}

/** Regular files and block devices only: a FIFO would block open() and a character device (/dev/zero) never ends. */
async function scannable(path: string): Promise<Stats> {
  const st = await stat(path).catch((e: unknown) => {
    throw fromSystemError(e, path);
  });
  if (!st.isFile() && !st.isBlockDevice()) throw new MemdumpError('E_UNSUPPORTED', `${path} is not a regular file or a block device; memdump scan reads files, images and --pid`);
  return st;
}

async function plainInput(path: string, st: Stats): Promise<ScanInput> {
  const file = await RandomAccessFile.open(path);
  // fstat says 0 for a block device (a swap partition): its size comes from the kernel
  const size = st.isBlockDevice() ? ioctlGeometry(file.fd)?.bytes : file.size;
  if (size === undefined) {
    await file.close();
    throw new MemdumpError('E_UNSUPPORTED', `${path}: cannot read the size of this block device (BLKGETSIZE64)`);
  }
  return {
    description: { kind: 'file', path, size: size.toString() },
    addressing: 'file',
    regions: size > 0n ? [{ start: 0n, end: size, label: 'file' }] : [],
    async read(addr, buf, length) {
      const b = await file.readAt(addr, length, buf);
      if (b.length < length) throw new MemdumpError('E_TRUNCATED', `${path}: ${length - b.length} bytes missing at ${addr}`);
    },
    close: () => file.close(),
  };
}

/**
 * A memory image when memdump recognises one (or `format` names it), else the plain file: a page file or a swap
 * image has no container, and its offsets are what an analyst looks up. `format: 'plain'` skips detection.
 */
export async function openScanInput(path: string, format?: FormatName | 'plain'): Promise<ScanInput> {
  const st = await scannable(path);
  if (format === 'plain') return plainInput(path, st);
  let img;
  try {
    img = await openImage(path, format);
  } catch (e) {
    // not an image (or a gzip/zstd/age layer over one): its bytes are what there is to scan, and the gzip finder
    // decodes a gzip layer anyway
    if (format === undefined && e instanceof MemdumpError && e.code === 'E_UNKNOWN_FORMAT') return plainInput(path, st);
    throw e;
  }
  // Adjacent runs are one region: a feature that crosses from one run into the next is still one feature.
  const regions: ScanRegion[] = [];
  img.runs.forEach((r, i) => {
    const last = regions[regions.length - 1];
    if (last && last.end === r.start) last.end = r.end;
    else regions.push({ start: r.start, end: r.end, label: `run ${i}` });
  });
  const image = img;
  return {
    description: { kind: 'image', path, format: image.format, runs: image.runs.length, ...(typeof image.details['warning'] === 'string' ? { warning: image.details['warning'] } : {}) },
    addressing: 'physical',
    regions,
    async read(addr, buf, length) {
      const b = await image.read(addr, length);
      b.copy(buf, 0, 0, length);
    },
    close: () => image.close(),
  };
}
