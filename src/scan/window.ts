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
import { asciiView, runOf, utf16View, type TextView } from './view.js';

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
}

interface Frame {
  /** Path prefix of this buffer ("" for the window itself) and the window offset that keys its hits. */
  prefix: string;
  key: number;
}

export function scanWindow(buf: Buffer, ownFrom: number, ownTo: number, cfg: WindowConfig): { hits: Hit[]; stats: WindowStats } {
  const hits: Hit[] = [];
  const stats: WindowStats = { containers: {}, truncatedContainers: 0, decodedBytes: 0, budgetExhausted: false };
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
  const latin1 = buf.toString('latin1');
  const ascii = asciiView(latin1);
  let containers: Decoded[] = [];
  if (depth < cfg.maxDepth && budget.remaining > 0) {
    const found = [...findGzip(buf, ownFrom, ownTo, budget), ...findZlib(buf, ownFrom, ownTo, budget), ...findZip(buf, ownFrom, ownTo, budget), ...findBase64InRuns(latin1, byteSpans(ascii), ownFrom, ownTo, budget)];
    containers = outermost(found);
  }
  const stored = storedRanges(buf, containers);
  const keyOf = (off: number): number => (frame.key < 0 ? off : frame.key);

  runScanners(ascii, cfg.scanners, (kind, start, end, feature) => {
    const r = runOf(ascii, start);
    const raw = (ascii.rawStarts[r] as number) + (start - (ascii.textStarts[r] as number));
    if (raw < ownFrom || raw >= ownTo || inRanges(stored, raw)) return;
    const rawEnd = raw + (end - start);
    hits.push({ kind, key: keyOf(raw), rel: pathOf(frame, raw), feature: feature ?? ascii.text.slice(start, end), context: escapeFeature(latin1.slice(Math.max(0, raw - CONTEXT), rawEnd + CONTEXT)) });
  });

  const wide = utf16View(buf, latin1);
  runScanners(wide, cfg.scanners, (kind, start, end, feature) => {
    const r = runOf(wide, start);
    const runRaw = wide.rawStarts[r] as number;
    if (runRaw < ownFrom || runRaw >= ownTo) return;
    const runText = wide.textStarts[r] as number;
    const runEnd = r + 1 < wide.runs ? (wide.textStarts[r + 1] as number) - 1 : wide.text.length;
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

/** [start, end) byte offsets of the ASCII view's runs, as the base64 finder takes them. */
function byteSpans(v: TextView): Int32Array {
  const out = new Int32Array(2 * v.runs);
  for (let i = 0; i < v.runs; i++) {
    const len = (i + 1 < v.runs ? (v.textStarts[i + 1] as number) - 1 : v.text.length) - (v.textStarts[i] as number);
    out[2 * i] = v.rawStarts[i] as number;
    out[2 * i + 1] = (v.rawStarts[i] as number) + len;
  }
  return out;
}

function inRanges(r: readonly number[], x: number): boolean {
  for (let i = 0; i < r.length; i += 2) if (x >= (r[i] as number) && x < (r[i + 1] as number)) return true;
  return false;
}
