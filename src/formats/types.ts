import type { Range } from '../core/ranges.js';
import type { RandomAccessFile } from '../core/file.js';

/** Containers memdump writes (and reads). */
export type WritableFormatName = 'lime' | 'padded' | 'raw' | 'elf' | 'avml' | 'e01';
/** Foreign containers memdump only reads: convert them into a writable one. */
export type ReadOnlyFormatName = 'kdump' | 'wincrash' | 'hiberfil' | 'vmware';
export type FormatName = WritableFormatName | ReadOnlyFormatName;

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
  /**
   * Format-specific facts for `info` (record count, compression, ...). A `warning` string says the image is not
   * what it claims to be (an incomplete kdump, a crash dump shorter than its map): `info` prints it on stderr and
   * `convert` carries it into the report's warnings.
   */
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
  /**
   * Close the current segment file and continue in the next one (E01 segment files). Only sinks that write
   * segment sets have it; a writer that needs segments and finds none writes one segment.
   */
  newSegment?(): Promise<void>;
}

export interface WritePlan {
  /** Sorted, disjoint, non-empty ranges to be written, in this order. */
  readonly runs: readonly Range[];
  readonly notes: readonly ImageNote[];
  /** What the media is and who acquired it: containers with a header for it (E01) store these. */
  readonly media?: MediaDescription;
}

export interface MediaDescription {
  readonly type: 'memory' | 'fixed' | 'removable';
  readonly caseNumber: string | null;
  readonly examiner: string | null;
  readonly evidenceNumber: string | null;
  readonly notes: string | null;
  /** Shown as the description in E01 headers (source path, host). */
  readonly description: string;
  /** Acquisition start time. */
  readonly acquired: Date;
  /** E01: deflate level choice. */
  readonly compression?: 'none' | 'fast' | 'best';
  /** E01: start a new segment file before a segment would exceed this many bytes (0/undefined: one segment). */
  readonly segmentBytes?: bigint;
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
  /** The read policy zero-filled [addr, addr+length) of the current run: containers with an error list (E01 error2) keep it. */
  badBytes?(addr: bigint, length: number): void;
  /** The copy failed: release what the writer holds (worker threads) without writing anything more. Idempotent. */
  abort?(): Promise<void>;
  /**
   * Media bytes (from the start of the plan's layout) already in the container as the sink has it: after a
   * failure, what the partial output really holds. Only writers that buffer or reorder (E01) need it.
   */
  mediaWritten?(): bigint;
  /** Facts for the report once end() has resolved (E01: segments, media digests). */
  summary?(): Record<string, unknown>;
}

export interface OpenOptions {
  /** Runs from a sidecar map (raw and padded carry no addresses of their own). */
  readonly sidecarRuns?: readonly Range[];
  /**
   * Path the file was opened from, for formats whose memory and metadata live in companion files
   * (VMware: HOST.vmem beside HOST.vmss/.vmsn). A reader that opens companions closes them in close().
   */
  readonly path?: string;
}

/** Detection and reading of one container. Every format has one; only writable ones are also a FormatSpec. */
export interface FormatReader {
  readonly name: FormatName;
  readonly description: string;
  /** Cheap check of the first bytes (up to 64 KiB) and total size. */
  detect(head: Buffer, size: bigint): boolean;
  open(file: RandomAccessFile, options: OpenOptions): Promise<MemoryImage>;
  /**
   * For a file without magic of its own (VMware .vmem): the companion file that describes it, if one lies
   * beside `path`. openImage then opens the companion with this reader. A reader may return `path` itself when
   * it can read the file alone (a lone .vmem is flat memory from address 0, flagged in its details).
   */
  companionOf?(path: string): Promise<string | undefined>;
}

export interface FormatSpec extends FormatReader {
  readonly name: WritableFormatName;
  readonly extension: string;
  /** The container has no map of its own: writing it also writes a sidecar map. */
  readonly needsSidecarMap: boolean;
  createWriter(out: ByteSink, plan: WritePlan): ContainerWriter;
}
