import type { ByteSink } from '../formats/types.js';

export interface Receipt {
  /** Final path, or '-' for stdout. */
  path: string;
  /** Where the bytes are when the output is not complete. */
  partialPath?: string;
  bytes: bigint;
  complete: boolean;
  /** Segment sets (E01 .E01/.E02…, split raw .001/.002…): every file in order, final or .partial paths. */
  segments?: { path: string; bytes: bigint }[];
}

/** A destination for container bytes. finish() makes it durable and final; abort() never leaves a complete-looking file. */
export interface OutputSink extends ByteSink {
  readonly describe: string;
  finish(): Promise<Receipt>;
  abort(): Promise<Receipt>;
}
