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
 * Features one window may report. A worker keeps a window's features in memory until the window is done (about
 * 500 bytes each), so this bounds a worker's memory on text that is nothing but features; the rest of such a
 * window is counted as dropped, said in scan.json and on stderr, and a smaller --chunk-size recovers them (a 1 MiB
 * window cannot hold this many).
 */
export const MAX_HITS_PER_WINDOW = 200_000;

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
  /** Features not reported because the window reached MAX_HITS_PER_WINDOW. */
  dropped: number;
}

interface Frame {
  /** Path prefix of this buffer ("" for the window itself) and the window offset that keys its hits. */
  prefix: string;
  key: number;
}

export function scanWindow(buf: Buffer, ownFrom: number, ownTo: number, cfg: WindowConfig): { hits: Hit[]; stats: WindowStats } {
  const hits: Hit[] = [];
  const stats: WindowStats = { containers: {}, truncatedContainers: 0, decodedBytes: 0, budgetExhausted: false, dropped: 0 };
  const budget: DecodeBudget = { maxOutput: cfg.maxDecoded, remaining: cfg.maxDecodedPerWindow };
  scanBuffer(buf, ownFrom, ownTo, 0, { prefix: '', key: -1 }, cfg, budget, hits, stats);
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
  }
  const stored = storedRanges(buf, containers);
  const keyOf = (off: number): number => (frame.key < 0 ? off : frame.key);

  runScanners(ascii, cfg.scanners, (kind, start, end, feature) => {
    const r = runOf(ascii, start);
    const raw = (ascii.rawStarts[r] as number) + (start - (ascii.textStarts[r] as number));
    if (raw < ownFrom || raw >= ownTo || inRanges(stored, raw)) return;
    if (hits.length >= MAX_HITS_PER_WINDOW) {
      stats.dropped++;
      return;
    }
    const rawEnd = raw + (end - start);
    hits.push({ kind, key: keyOf(raw), rel: pathOf(frame, raw), feature: feature ?? ascii.text.slice(start, end), context: escapeFeature(buf.toString('latin1', Math.max(0, raw - CONTEXT), Math.min(buf.length, rawEnd + CONTEXT))) });
  });

  runScanners(wide, cfg.scanners, (kind, start, end, feature) => {
    const r = runOf(wide, start);
    const runRaw = wide.rawStarts[r] as number;
    if (runRaw < ownFrom || runRaw >= ownTo) return;
    if (hits.length >= MAX_HITS_PER_WINDOW) {
      stats.dropped++;
      return;
    }
    const runText = wide.textStarts[r] as number;
    const runEnd = wide.textEnds[r] as number;
    const ctx = wide.text.slice(Math.max(runText, start - CONTEXT), Math.min(runEnd, end + CONTEXT));
    hits.push({ kind, key: keyOf(runRaw), rel: `${pathOf(frame, runRaw)}-UTF16-${start - runText}`, feature: feature ?? wide.text.slice(start, end), context: escapeFeature(ctx) });
  });

  for (const c of containers) {
    stats.containers[c.tag] = (stats.containers[c.tag] ?? 0) + 1;
    stats.decodedBytes += c.data.length;
    if (c.truncated) stats.truncatedContainers++;
    if (c.data.length === 0) continue;
    scanBuffer(c.data, 0, c.data.length, depth + 1, { prefix: `${pathOf(frame, c.start)}-${c.tag}`, key: keyOf(c.start) }, cfg, budget, hits, stats);
  }
}

function runScanners(v: TextView, scanners: readonly Scanner[], emit: (kind: FeatureKind, start: number, end: number, feature?: string) => void): void {
  if (v.runs === 0) return;
  for (const s of scanners) s.scan(v.text, emit);
}

/**
 * Where a stored zip member's data lies in its parent: those bytes are the member's contents verbatim, and its
 * features are reported once, under the member's path, not a second time as plain text.
 */
function storedRanges(buf: Buffer, containers: readonly Decoded[]): number[] {
  const out: number[] = [];
  for (const c of containers) {
    if (c.tag !== 'ZIP' || c.start + 30 > buf.length || buf.readUInt16LE(c.start + 8) !== 0) continue;
    const dataStart = c.start + 30 + buf.readUInt16LE(c.start + 26) + buf.readUInt16LE(c.start + 28);
    out.push(dataStart, dataStart + c.data.length);
  }
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
