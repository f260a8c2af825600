/** Messages between the scan driver (run.ts) and its worker threads (worker.ts). */
import type { Addressing } from './format.js';
import type { FeatureKind } from './types.js';
import type { WindowStats } from './window.js';

export interface WorkerInit {
  /** Scanner names; [] for none (a YARA-only scan). */
  scanners: string[];
  maxDepth: number;
  maxDecoded: number;
  maxDecodedPerWindow: number;
  yara?: { source: string; origin: string };
}

export interface WorkerJob {
  id: number;
  /** Transferred to the worker and back, so windows cost no copy and buffers are reused. */
  buf: ArrayBuffer;
  length: number;
  ownFrom: number;
  ownTo: number;
  /** Address of buf[0], as a decimal string (bigint does not cross postMessage in every Node). */
  base: string;
  addressing: Addressing;
  /** The input region, for YARA lines. */
  label: string;
}

export interface WorkerResult {
  id: number;
  /** Parallel arrays: one entry per feature, in output order. */
  kinds: FeatureKind[];
  lines: string[];
  features: string[];
  /** One per YARA match, in output order; `conditionOnly` marks a rule matched by its condition, not a pattern. */
  yara: { rule: string; conditionOnly: boolean; line: string }[];
  stats: WindowStats;
  buf: ArrayBuffer;
}
