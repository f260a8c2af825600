import type { Range } from '../core/ranges.js';
import type { ImageNote } from '../formats/types.js';

/** 'device': a block device or file imaged whole (`image`, `swap`). */
export type SourceKind = 'kcore' | 'crash' | 'mem' | 'file' | 'image' | 'process' | 'device' | 'vm';

/**
 * Where bytes live. A source lists what to acquire and reads at an address; it never decides what a failure
 * means (that is the read policy's job). read() may return fewer bytes than asked; it throws a Node system
 * error (with .code = errno) on failure.
 */
export interface PhysicalSource {
  readonly kind: SourceKind;
  readonly path: string;
  /** Sorted, disjoint physical ranges to acquire. */
  readonly ranges: readonly Range[];
  readonly pageSize: number;
  /** Notes to carry into formats that keep them (kcore VMCOREINFO). */
  readonly notes: readonly ImageNote[];
  /** Facts for the report: segments, how addresses were mapped, warnings. */
  readonly info: Record<string, unknown>;
  read(addr: bigint, buf: Buffer, length: number): Promise<number>;
  close(): Promise<void>;
}

/** Why a candidate source could not be used; listed in the report and in the error when all fail. */
export interface SourceAttempt {
  source: SourceKind;
  path: string;
  ok: boolean;
  code?: string;
  reason?: string;
}
