import type { Range } from '../core/ranges.js';
import type { RandomAccessFile } from '../core/file.js';

export type FormatName = 'lime' | 'padded' | 'raw' | 'elf' | 'avml';

/** An ELF-style note carried through conversions (VMCOREINFO from kcore or a QEMU dump). */
export interface ImageNote {
  readonly name: string;
  readonly type: number;
  readonly desc: Buffer;
}

/**
 * What every reader exposes: physical runs (sorted, disjoint, half-open) and random access by address.
 * `read` must only be asked for bytes inside the runs; anything else is E_CORRUPT (a caller bug or a lying map).
 */
export interface MemoryImage {
  readonly format: FormatName;
  readonly runs: readonly Range[];
  readonly notes: readonly ImageNote[];
  /** Format-specific facts for `info` (record count, compression, ...). */
  readonly details: Record<string, unknown>;
  read(addr: bigint, length: number): Promise<Buffer>;
  /** File offset where the bytes of physical `addr` start, when the container stores them uncompressed. */
  fileOffsetOf?(addr: bigint): bigint | undefined;
  /** The first physical address whose bytes are stored in file offsets [start, end), if the format stores bytes plainly. */
  firstAddressIn?(start: bigint, end: bigint): bigint | undefined;
  close(): Promise<void>;
}

/** Where container bytes go. Position is the number of bytes accepted so far. A buffer may be reused once write() resolves. */
export interface ByteSink {
  readonly position: bigint;
  write(buf: Buffer): Promise<void>;
  /** n zero bytes; a file sink may leave a sparse hole, every other consumer still sees the zeros. */
  writeZeros(n: bigint): Promise<void>;
}

export interface WritePlan {
  /** Sorted, disjoint, non-empty ranges to be written, in this order. */
  readonly runs: readonly Range[];
  readonly notes: readonly ImageNote[];
}

/**
 * Streaming writer for one container. The caller calls begin, then for each run of the plan, in order,
 * beginRange, data (chunks summing to exactly the run length), endRange; then end. A chunk's memory is reused
 * once data() resolves: a writer copies whatever it keeps.
 */
export interface ContainerWriter {
  begin(): Promise<void>;
  beginRange(r: Range): Promise<void>;
  data(chunk: Buffer): Promise<void>;
  endRange(): Promise<void>;
  end(): Promise<void>;
}

export interface OpenOptions {
  /** Runs from a sidecar map (raw and padded carry no addresses of their own). */
  readonly sidecarRuns?: readonly Range[];
}

export interface FormatSpec {
  readonly name: FormatName;
  readonly extension: string;
  readonly description: string;
  /** The container has no map of its own: writing it also writes a sidecar map. */
  readonly needsSidecarMap: boolean;
  /** Cheap check of the first bytes (up to 64 KiB) and total size. */
  detect(head: Buffer, size: bigint): boolean;
  open(file: RandomAccessFile, options: OpenOptions): Promise<MemoryImage>;
  createWriter(out: ByteSink, plan: WritePlan): ContainerWriter;
}
