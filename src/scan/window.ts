/**
 * One window of input through every scanner, recursively through the containers inside it. Ownership makes the
 * chunk + overlap contract hold: a window reports a plain feature only when its first byte lies in [ownFrom, ownTo),
 * and a container (UTF-16 run, gzip member, zip member, base64 block) only when the container starts there. Bytes
 * before ownFrom (look-behind) and after ownTo (overlap) are context, so a feature or container that crosses ownTo
 * is read whole by the window that owns its start, and skipped by the next one.
 */
import { findBase64InRuns } from './decode/base64.js';
import { findGzip } from './decode/gzip.js';
import { outermost, type DecodeBudget, type Decoded } from './decode/types.js';
import { findZip } from './decode/zip.js';
import { findZlib } from './decode/zlib.js';
import { CONTEXT, escapeFeature } from './format.js';
import type { FeatureKind, Scanner } from './types.js';
import { runOf, textIndexOf, textViews, type TextView } from './view.js';

/**
 * Features of one kind one window may report. A worker keeps a window's features in memory until the window is
 * done (about 500 bytes each), so this bounds a worker's memory on text that is nothing but features; the rest of
 * such a window is counted as dropped, said in scan.json and on stderr, and a smaller --chunk-size recovers them (a
 * 1 MiB window cannot hold this many). Per kind, so a flood of one kind cannot hide a card number or a key.
 */
export const MAX_HITS_PER_KIND = 100_000;
/** Containers one window decodes (each is scanned again): thousands of tiny gzip members must not cost more. */
export const MAX_CONTAINERS_PER_WINDOW = 20_000;
/** See utf16Anchor in test/fixtures/scan-corpus-encode.ts, which states the same rule for the truth. */
export const UTF16_ANCHOR = 4096;

/** Start of a UTF-16 path: the text's first byte, or the last UTF16_ANCHOR boundary (of the text's parity) before the feature. */
export function utf16Anchor(textStart: number, featureByte: number, align: number): number {
  const abs = align + featureByte;
  let a = featureByte - (abs % UTF16_ANCHOR) + (((align + textStart) & 1) === 1 ? 1 : 0);
  if (a > featureByte) a -= UTF16_ANCHOR;
  return a > textStart ? a : textStart;
}

export interface WindowConfig {
  readonly scanners: readonly Scanner[];
  /** Container levels below the input to decode (0: none). */
  readonly maxDepth: number;
  /** Decoded bytes per container and per window. */
  readonly maxDecoded: number;
  readonly maxDecodedPerWindow: number;
}

export interface Hit {
  kind: FeatureKind;
  /** Offset in the window of what places the hit: the feature's first byte, or its outermost container's. */
  key: number;
  /** Path below the window: "<offset>" or "<offset>-GZIP-56…"; the caller rewrites the first component. */
  rel: string;
  feature: string;
  context: string;
}

export interface WindowStats {
  containers: Record<string, number>;
  truncatedContainers: number;
  decodedBytes: number;
  budgetExhausted: boolean;
  perKind: Partial<Record<FeatureKind, number>>;
  /** Features not reported because the window reached MAX_HITS_PER_KIND, by kind. */
  dropped: Partial<Record<FeatureKind, number>>;
  /** Containers not decoded because the window reached MAX_CONTAINERS_PER_WINDOW. */
  containersSkipped: number;
  containersSeen: number;
  /** Scanners that threw (a bug): "name: message", once per scanner and window. */
  errors: string[];
}

interface Frame {
  /** Path prefix of this buffer ("" for the window itself) and the window offset that keys its hits. */
  prefix: string;
  key: number;
  /** Address of byte 0 modulo UTF16_ANCHOR (0 for decoded data, whose offsets start at 0). */
  align: number;
}

export function scanWindow(buf: Buffer, ownFrom: number, ownTo: number, cfg: WindowConfig, align = 0): { hits: Hit[]; stats: WindowStats } {
  const hits: Hit[] = [];
  const stats: WindowStats = { containers: {}, truncatedContainers: 0, decodedBytes: 0, budgetExhausted: false, perKind: {}, dropped: {}, containersSkipped: 0, containersSeen: 0, errors: [] };
  const budget: DecodeBudget = { maxOutput: cfg.maxDecoded, remaining: cfg.maxDecodedPerWindow };
  scanBuffer(buf, ownFrom, ownTo, 0, { prefix: '', key: -1, align: align % UTF16_ANCHOR }, cfg, budget, hits, stats);
  stats.budgetExhausted = budget.remaining <= 0;
  // Stable: hits with one key keep the order the scan found them in, which is itself deterministic.
  hits.sort((a, b) => a.key - b.key);
  return { hits, stats };
}

function pathOf(f: Frame, off: number): string {
  return f.prefix === '' ? String(off) : `${f.prefix}-${off}`;
}

function scanBuffer(buf: Buffer, ownFrom: number, ownTo: number, depth: number, frame: Frame, cfg: WindowConfig, budget: DecodeBudget, hits: Hit[], stats: WindowStats): void {
  const { ascii, utf16: wide } = textViews(buf);
  let containers: Decoded[] = [];
  if (depth < cfg.maxDepth && budget.remaining > 0) {
    const found = [...findGzip(buf, ownFrom, ownTo, budget), ...findZlib(buf, ownFrom, ownTo, budget), ...findZip(buf, ownFrom, ownTo, budget), ...base64Blocks(ascii, ownFrom, ownTo, budget)];
    containers = outermost(found);
    const room = MAX_CONTAINERS_PER_WINDOW - stats.containersSeen;
    if (containers.length > room) {
      stats.containersSkipped += containers.length - Math.max(0, room);
      containers = containers.slice(0, Math.max(0, room));
    }
    stats.containersSeen += containers.length;
  }
  const stored = storedRanges(containers);
  const keyOf = (off: number): number => (frame.key < 0 ? off : frame.key);
  const room = (kind: FeatureKind): boolean => {
    const n = stats.perKind[kind] ?? 0;
    if (n >= MAX_HITS_PER_KIND) {
      stats.dropped[kind] = (stats.dropped[kind] ?? 0) + 1;
      return false;
    }
    stats.perKind[kind] = n + 1;
    return true;
  };

  runScanners(ascii, cfg.scanners, (kind, start, end, feature) => {
    const r = runOf(ascii, start);
    const raw = (ascii.rawStarts[r] as number) + (start - (ascii.textStarts[r] as number));
    if (raw < ownFrom || raw >= ownTo || inRanges(stored, raw) || !room(kind)) return;
    const rawEnd = raw + (end - start);
    hits.push({ kind, key: keyOf(raw), rel: pathOf(frame, raw), feature: feature ?? ascii.text.slice(start, end), context: escapeFeature(buf.toString('latin1', Math.max(0, raw - CONTEXT), Math.min(buf.length, rawEnd + CONTEXT))) });
  }, stats.errors);

  runScanners(wide, cfg.scanners, (kind, start, end, feature) => {
    const r = runOf(wide, start);
    const runRaw = wide.rawStarts[r] as number;
    const runText = wide.textStarts[r] as number;
    const raw = runRaw + 2 * (start - runText);
    if (raw < ownFrom || raw >= ownTo || !room(kind)) return;
    // the path starts where the text does, or at the last UTF16_ANCHOR boundary before the feature: a window
    // always sees that boundary, not always the start of a long text
    const anchor = utf16Anchor(runRaw, raw, frame.align);
    const runEnd = wide.textEnds[r] as number;
    const ctx = wide.text.slice(Math.max(runText, start - CONTEXT), Math.min(runEnd, end + CONTEXT));
    hits.push({ kind, key: keyOf(raw), rel: `${pathOf(frame, anchor)}-UTF16-${(raw - anchor) / 2}`, feature: feature ?? wide.text.slice(start, end), context: escapeFeature(ctx) });
  }, stats.errors);

  for (const c of containers) {
    stats.containers[c.tag] = (stats.containers[c.tag] ?? 0) + 1;
    stats.decodedBytes += c.data.length;
    if (c.truncated) stats.truncatedContainers++;
    if (c.data.length === 0) continue;
    scanBuffer(c.data, 0, c.data.length, depth + 1, { prefix: `${pathOf(frame, c.start)}-${c.tag}`, key: keyOf(c.start), align: 0 }, cfg, budget, hits, stats);
  }
}

/** A scanner that throws (a bug, or a regex that overflows on some input) costs its own features in this text, not the scan. */
function runScanners(v: TextView, scanners: readonly Scanner[], emit: (kind: FeatureKind, start: number, end: number, feature?: string) => void, errors: string[]): void {
  if (v.runs === 0) return;
  for (const s of scanners) {
    try {
      s.scan(v.text, emit);
    } catch (e) {
      const msg = `${s.name}: ${e instanceof Error ? e.message : String(e)}`;
      if (!errors.includes(msg) && errors.length < 100) errors.push(msg);
    }
  }
}

/**
 * Where a stored zip member's data lies in its parent: those bytes are the member's contents verbatim, and its
 * features are reported once, under the member's path, not a second time as plain text.
 */
function storedRanges(containers: readonly Decoded[]): number[] {
  const out: number[] = [];
  for (const c of containers) if (c.verbatimAt !== undefined) out.push(c.verbatimAt, c.verbatimAt + c.data.length);
  return out;
}

/**
 * Base64 blocks lie inside printable runs, so the finder reads the ASCII view (runs in text coordinates) rather than
 * a latin1 copy of the whole buffer; its text positions map back to bytes one to one within a run.
 */
function base64Blocks(v: TextView, ownFrom: number, ownTo: number, budget: DecodeBudget): Decoded[] {
  if (v.runs === 0) return [];
  const runs = new Int32Array(2 * v.runs);
  for (let i = 0; i < v.runs; i++) {
    runs[2 * i] = v.textStarts[i] as number;
    runs[2 * i + 1] = v.textEnds[i] as number;
  }
  const toRaw = (t: number): number => {
    const r = runOf(v, Math.min(t, v.text.length - 1));
    return (v.rawStarts[r] as number) + (t - (v.textStarts[r] as number));
  };
  return findBase64InRuns(v.text, runs, textIndexOf(v, ownFrom), textIndexOf(v, ownTo), budget).map((d) => ({ ...d, start: toRaw(d.start), end: toRaw(d.end) }));
}

function inRanges(r: readonly number[], x: number): boolean {
  for (let i = 0; i < r.length; i += 2) if (x >= (r[i] as number) && x < (r[i + 1] as number)) return true;
  return false;
}
