/**
 * Scores `memdump scan` feature files against the scan corpus truth (test/fixtures/scan-corpus-types.ts), for the
 * scan tests and `npm run bench` (bench/scan.ts). The output contract it reads: OUTDIR/<kind>.txt per kind, '#'
 * lines are comments, other lines are `path<TAB>feature<TAB>context`, and `feature` has every byte outside
 * 0x20–0x7e and the backslash written as \xHH (either case of hex digit).
 *
 * Matching is exact on (kind, path, feature text): a report at the right place with the wrong extent is a miss and
 * a false positive, because a scanner that trims or overruns a feature is wrong for every later consumer of the file.
 * Two extras are tolerated and counted apart from false positives: a domain report of the host inside a planted
 * email or URL (hosts are features of their own, scan-corpus-kinds.ts says so), and, given the corpus regions, a
 * planted feature reached by a second path through the same zip file (a stored member's bytes are also in the
 * file as they are, so a scanner that decodes the raw base64 there finds the same feature under another path).
 */
import { closeSync, existsSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MemdumpError } from '../../src/core/errors.js';
import { utf16Anchor } from '../fixtures/scan-corpus-encode.js';
import { type Decoy, FEATURE_KINDS, type FeatureKind, type PlantedFeature, type Region } from '../fixtures/scan-corpus-types.js';

export interface FoundFeature {
  path: string;
  feature: string;
}

export interface RecallCount {
  planted: number;
  found: number;
  /** found / planted; 1 when nothing was planted, so an empty class never fails a threshold by itself. */
  recall: number;
}

export interface KindScore extends RecallCount {
  /** Lines beyond the first for one (kind, path). */
  duplicates: number;
  /** Lines that match no planted feature of this kind (and, for domain, no planted host). */
  falsePositives: number;
  /** Of the false positives: right path of a planted feature, different text (a trimmed or overrun extent). */
  wrongText: number;
  /** Of the false positives: at the offset of a decoy of this kind, which a validating scanner must reject. */
  decoysReported: number;
  /** Domain only: reports of the host inside a planted email or URL, not counted as false positives. */
  hostOf: number;
  /** The text of a planted feature of this kind, reached by another path through the same zip file: a stored
   * (uncompressed) member's bytes are also plain in the file. Needs ScoreOptions.regions; not false positives. */
  aliases: number;
  missing: PlantedFeature[];
  /** The first few false positives, to show in a failure message. */
  falsePositiveSamples: FoundFeature[];
}

export interface ScoreResult {
  perKind: Record<FeatureKind, KindScore>;
  /** By PlantedFeature.encoding joined with '/', 'plain' for []. */
  byEncoding: Record<string, RecallCount>;
  /** Features whose raw bytes straddle a chunk-size multiple (PlantedFeature.acrossBoundary set). */
  acrossBoundary: RecallCount;
  total: RecallCount & { duplicates: number; falsePositives: number; hostOf: number; aliases: number };
  /** The smallest per-kind recall over kinds that have planted features (1 when none has). */
  minKindRecall: number;
}

export interface ScoreOptions {
  /** Decoys of the corpus, to count how many false positives sit on them. */
  decoys?: readonly Decoy[];
  /** How many false positives per kind to keep as samples (default 5). */
  samples?: number;
  /** The corpus regions, to recognise aliases (KindScore.aliases). */
  regions?: readonly Region[];
}

const HEX = /^[0-9a-fA-F]{2}$/;

/** Undo the feature-file escape: \xHH becomes the byte HH (as a latin1 char); any other backslash is malformed. */
export function unescapeFeature(s: string): string {
  if (!s.includes('\\')) return s;
  let out = '';
  let i = 0;
  for (let j = s.indexOf('\\'); j !== -1; j = s.indexOf('\\', i)) {
    const hex = s.slice(j + 2, j + 4);
    if (s[j + 1] !== 'x' || !HEX.test(hex)) {
      throw new MemdumpError('E_CORRUPT', `feature text has a backslash not followed by xHH at ${j}: ${JSON.stringify(s.slice(j, j + 4))}`, { details: { index: j } });
    }
    out += s.slice(i, j) + String.fromCharCode(parseInt(hex, 16));
    i = j + 4;
  }
  return out + s.slice(i);
}

/** The escape memdump's feature files use (uppercase hex), for fake outputs and tests. */
export function escapeFeature(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'latin1')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Parse one feature file's text; `where` names it in errors, `firstLine` numbers its first line. */
export function parseFeatureLines(text: string, where: string, firstLine = 1): FoundFeature[] {
  const out: FoundFeature[] = [];
  let lineNo = firstLine - 1;
  for (let i = 0; i < text.length; ) {
    let end = text.indexOf('\n', i);
    if (end === -1) end = text.length;
    lineNo++;
    const line = text.slice(i, end);
    i = end + 1;
    if (line.length === 0 || line.startsWith('#')) continue;
    const t1 = line.indexOf('\t');
    if (t1 <= 0) throw new MemdumpError('E_CORRUPT', `${where}:${lineNo}: expected path<TAB>feature<TAB>context`, { details: { line: line.slice(0, 200) } });
    const t2 = line.indexOf('\t', t1 + 1);
    const raw = line.slice(t1 + 1, t2 === -1 ? line.length : t2);
    try {
      out.push({ path: line.slice(0, t1), feature: unescapeFeature(raw) });
    } catch (e) {
      throw new MemdumpError('E_CORRUPT', `${where}:${lineNo}: ${(e as Error).message}`, { cause: e, details: { line: line.slice(0, 200) } });
    }
  }
  return out;
}

/** Read a feature file in pieces cut at line ends: a file of millions of false positives outgrows one JS string. */
export function readFeatureFile(file: string, piece = 16 << 20): FoundFeature[] {
  const out: FoundFeature[] = [];
  const fd = openSync(file, 'r');
  try {
    let carry = Buffer.alloc(0);
    let line = 1;
    const buf = Buffer.allocUnsafe(piece);
    for (;;) {
      const n = readSync(fd, buf, 0, piece, null);
      const data = carry.length ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
      const cut = n === 0 ? data.length : data.lastIndexOf(0x0a) + 1;
      const text = data.toString('latin1', 0, cut);
      for (const f of parseFeatureLines(text, file, line)) out.push(f);
      for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) line++;
      carry = Buffer.from(data.subarray(cut));
      if (n === 0) return out;
    }
  } finally {
    closeSync(fd);
  }
}

/** Every OUTDIR/<kind>.txt that exists, parsed; kinds without a file map to []. */
export function readFeatureFiles(outDir: string): Map<FeatureKind, FoundFeature[]> {
  const m = new Map<FeatureKind, FoundFeature[]>();
  for (const kind of FEATURE_KINDS) {
    const f = join(outDir, `${kind}.txt`);
    m.set(kind, existsSync(f) ? readFeatureFile(f) : []);
  }
  return m;
}

/** Write the truth itself as feature files (a perfect scanner's output), to prove the scoring plumbing. */
export function writeFeatureFiles(outDir: string, truth: readonly PlantedFeature[]): void {
  const by = new Map<FeatureKind, string[]>();
  for (const t of truth) {
    const lines = by.get(t.kind) ?? [];
    lines.push(`${t.path}\t${escapeFeature(t.feature)}\t`);
    by.set(t.kind, lines);
  }
  for (const kind of FEATURE_KINDS) writeFileSync(join(outDir, `${kind}.txt`), `# fake ${kind} from the corpus truth\n${(by.get(kind) ?? []).join('\n')}\n`, 'latin1');
}

/**
 * `path` with `delta` characters added to its last number: a position further into the same decoded data. A UTF-16
 * path re-anchors when the new position passes a 4 KiB boundary (utf16Anchor in scan-corpus-encode.ts).
 */
function shiftPath(path: string, delta: number): string {
  const parts = path.split('-');
  const k = BigInt(parts[parts.length - 1] as string) + BigInt(delta);
  if (parts[parts.length - 2] !== 'UTF16') return [...parts.slice(0, -1), k.toString()].join('-');
  const from = BigInt(parts[parts.length - 3] as string);
  const byte = from + 2n * k;
  const anchor = utf16Anchor(from, byte);
  return [...parts.slice(0, -3), anchor.toString(), 'UTF16', ((byte - anchor) / 2n).toString()].join('-');
}

/** The host inside a planted email or URL, where a domain scanner may report it. */
export function hostOf(t: PlantedFeature): FoundFeature | undefined {
  let at: number;
  let end: number;
  if (t.kind === 'email') {
    at = t.feature.indexOf('@') + 1;
    end = t.feature.length;
  } else if (t.kind === 'url') {
    at = t.feature.indexOf('://') + 3;
    const m = /[:/?#]/.exec(t.feature.slice(at));
    end = m ? at + m.index : t.feature.length;
  } else return undefined;
  if (at <= 0 || end <= at) return undefined;
  return { path: shiftPath(t.path, at), feature: t.feature.slice(at, end) };
}

const keyOf = (path: string, feature: string): string => `${path}\t${feature}`;
const ratio = (found: number, planted: number): number => (planted === 0 ? 1 : found / planted);

export function score(truth: readonly PlantedFeature[], found: ReadonlyMap<FeatureKind, readonly FoundFeature[]>, opts: ScoreOptions = {}): ScoreResult {
  const samples = opts.samples ?? 5;
  const plantedBy = new Map<FeatureKind, Map<string, PlantedFeature>>();
  const plantedPaths = new Map<FeatureKind, Set<string>>();
  const hosts = new Set<string>();
  for (const t of truth) {
    const m = plantedBy.get(t.kind) ?? new Map<string, PlantedFeature>();
    m.set(keyOf(t.path, t.feature), t);
    plantedBy.set(t.kind, m);
    const p = plantedPaths.get(t.kind) ?? new Set<string>();
    p.add(t.path);
    plantedPaths.set(t.kind, p);
    const h = hostOf(t);
    if (h) hosts.add(keyOf(h.path, h.feature));
  }
  const decoyPaths = new Map<FeatureKind, Set<string>>();
  for (const d of opts.decoys ?? []) {
    const s = decoyPaths.get(d.kind) ?? new Set<string>();
    s.add(d.offset.toString());
    decoyPaths.set(d.kind, s);
  }

  // zip files sorted by offset; a path's first number is inside at most one
  const zips = (opts.regions ?? []).filter((g) => g.kind === 'zip').sort((a, b) => (a.offset < b.offset ? -1 : 1));
  const zipOf = (at: bigint): number => {
    let lo = 0;
    let hi = zips.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const z = zips[mid] as Region;
      if (at < z.offset) hi = mid - 1;
      else if (at >= z.offset + BigInt(z.length)) lo = mid + 1;
      else return mid;
    }
    return -1;
  };
  const firstNumber = (path: string): bigint | undefined => {
    const m = /^\d+/.exec(path);
    return m ? BigInt(m[0]) : undefined;
  };
  const inZip = new Set<string>();
  if (zips.length > 0) {
    for (const t of truth) {
      const z = zipOf(t.offset);
      if (z < 0 || t.encoding[0] !== 'zip') continue;
      inZip.add(`${t.kind}\t${z}\t${t.feature}`);
      const h = hostOf(t);
      if (h) inZip.add(`domain\t${z}\t${h.feature}`);
    }
  }
  const isAlias = (kind: FeatureKind, f: FoundFeature): boolean => {
    const at = inZip.size > 0 ? firstNumber(f.path) : undefined;
    const z = at === undefined ? -1 : zipOf(at);
    return z >= 0 && inZip.has(`${kind}\t${z}\t${f.feature}`);
  };

  const hit = new Set<PlantedFeature>();
  const perKind = {} as Record<FeatureKind, KindScore>;
  for (const kind of FEATURE_KINDS) {
    const planted = plantedBy.get(kind) ?? new Map<string, PlantedFeature>();
    const s: KindScore = { planted: planted.size, found: 0, recall: 1, duplicates: 0, falsePositives: 0, wrongText: 0, decoysReported: 0, hostOf: 0, aliases: 0, missing: [], falsePositiveSamples: [] };
    const seen = new Set<string>();
    for (const f of found.get(kind) ?? []) {
      if (seen.has(f.path)) s.duplicates++;
      else seen.add(f.path);
      const k = keyOf(f.path, f.feature);
      const t = planted.get(k);
      if (t) {
        if (!hit.has(t)) s.found++;
        hit.add(t);
      } else if (kind === 'domain' && hosts.has(k)) s.hostOf++;
      else if (isAlias(kind, f)) s.aliases++;
      else {
        s.falsePositives++;
        if (plantedPaths.get(kind)?.has(f.path)) s.wrongText++;
        if (decoyPaths.get(kind)?.has(f.path)) s.decoysReported++;
        if (s.falsePositiveSamples.length < samples) s.falsePositiveSamples.push(f);
      }
    }
    for (const t of planted.values()) if (!hit.has(t)) s.missing.push(t);
    s.recall = ratio(s.found, s.planted);
    perKind[kind] = s;
  }

  const byEncoding: Record<string, RecallCount> = {};
  const acrossBoundary: RecallCount = { planted: 0, found: 0, recall: 1 };
  for (const t of truth) {
    const e = t.encoding.length === 0 ? 'plain' : t.encoding.join('/');
    const c = (byEncoding[e] ??= { planted: 0, found: 0, recall: 1 });
    c.planted++;
    if (hit.has(t)) c.found++;
    if (t.acrossBoundary !== undefined) {
      acrossBoundary.planted++;
      if (hit.has(t)) acrossBoundary.found++;
    }
  }
  for (const c of Object.values(byEncoding)) c.recall = ratio(c.found, c.planted);
  acrossBoundary.recall = ratio(acrossBoundary.found, acrossBoundary.planted);

  const kinds = Object.values(perKind);
  const sum = (f: (k: KindScore) => number): number => kinds.reduce((n, k) => n + f(k), 0);
  const total = { planted: sum((k) => k.planted), found: sum((k) => k.found), recall: 1, duplicates: sum((k) => k.duplicates), falsePositives: sum((k) => k.falsePositives), hostOf: sum((k) => k.hostOf), aliases: sum((k) => k.aliases) };
  total.recall = ratio(total.found, total.planted);
  const minKindRecall = Math.min(1, ...kinds.filter((k) => k.planted > 0).map((k) => k.recall));
  return { perKind, byEncoding, acrossBoundary, total, minKindRecall };
}
