/**
 * The scan's output directory, laid out as bulk_extractor's so existing scripts find their way: one feature file
 * per kind (`email.txt`), one histogram per kind (`email_histogram.txt`, lines `n=COUNT<TAB>feature`), `yara.txt`
 * when rules were given, and `scan.json` with what was scanned and the totals. Everything is created 0600 in a
 * 0700 directory, never over an existing file: these files hold the passwords and card numbers they found.
 */
import { promises as fsp, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { MemdumpError, errnoOf, fromSystemError } from '../core/errors.js';
import { toolIdentity } from '../core/host.js';
import { mkdirExclusive, openExclusive, writeFileExclusive } from '../sinks/exclusive.js';
import type { FeatureKind } from './types.js';
import type { WorkerResult } from './worker-protocol.js';

/**
 * Distinct features (and their bytes) kept for histograms across all kinds; past either, the feature files go on
 * but new features are not added to the histograms, and scan.json says the histograms are truncated.
 */
export const HISTOGRAM_LIMIT = 2_000_000;
export const HISTOGRAM_BYTES = 128 * 1024 * 1024;
const FLUSH_AT = 1 << 20;

class LineFile {
  private pending: string[] = [];
  private size = 0;
  constructor(
    readonly path: string,
    private readonly fh: fsp.FileHandle,
  ) {}
  add(line: string): Promise<void> | undefined {
    this.pending.push(line);
    this.size += line.length;
    return this.size >= FLUSH_AT ? this.flush() : undefined;
  }
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.size = 0;
    await this.fh.write(text, null, 'latin1').catch((e: unknown) => {
      throw fromSystemError(e, `writing ${this.path}`);
    });
  }
  async close(): Promise<void> {
    await this.flush();
    await this.fh.close();
  }
}

export interface KindTotals {
  features: number;
  distinct: number;
}

/** A directory that may be used: absent (created 0700), or an empty directory that is not a symlink. */
export async function prepareOutDir(path: string): Promise<void> {
  // "out/" names the symlink's target, "out" the symlink itself: lstat the name without its trailing slashes
  const dir = path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
  let entries: Dirent[] | undefined;
  try {
    const st = await fsp.lstat(dir);
    if (st.isDirectory()) entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw fromSystemError(e, `checking ${dir}`);
  }
  if (entries === undefined) return mkdirExclusive(dir);
  if (entries.length > 0) throw new MemdumpError('E_DEST_EXISTS', `${dir} is not empty; memdump scan writes into a new or empty directory (choose another -o)`, { details: { path: dir } });
  // an empty directory someone else made: ours now, and what lands in it is not for other users
  await fsp.chmod(dir, 0o700).catch((e: unknown) => {
    throw fromSystemError(e, `making ${dir} private`);
  });
}

export class ScanOutput {
  private readonly files = new Map<FeatureKind, LineFile>();
  private readonly counts = new Map<FeatureKind, Map<string, number>>();
  private readonly totals = new Map<FeatureKind, number>();
  private distinct = 0;
  private histogramBytes = 0;
  histogramTruncated = false;
  private yaraFile: LineFile | undefined;
  readonly yaraCounts = new Map<string, number>();
  private readonly conditionOnly = new Set<string>();

  private constructor(readonly dir: string) {}

  static async create(dir: string, kinds: readonly FeatureKind[], header: string[], yara: boolean): Promise<ScanOutput> {
    await prepareOutDir(dir);
    const out = new ScanOutput(dir);
    const head = header.map((h) => `# ${h}\n`).join('');
    for (const k of kinds) {
      const path = join(dir, `${k}.txt`);
      const f = new LineFile(path, await openExclusive(path));
      await f.add(`${head}# feature file: ${k}\n# path\tfeature\tcontext\n`);
      out.files.set(k, f);
      out.counts.set(k, new Map());
      out.totals.set(k, 0);
    }
    if (yara) {
      const path = join(dir, 'yara.txt');
      out.yaraFile = new LineFile(path, await openExclusive(path));
      await out.yaraFile.add(`${head}# address\trule\tpattern\tlength\tregion\tmatched data (first 64 bytes)\n`);
    }
    return out;
  }

  async add(r: WorkerResult): Promise<void> {
    const waits: Promise<void>[] = [];
    for (let i = 0; i < r.lines.length; i++) {
      const kind = r.kinds[i] as FeatureKind;
      const file = this.files.get(kind);
      if (!file) continue;
      const w = file.add(r.lines[i] as string);
      if (w) waits.push(w);
      this.totals.set(kind, (this.totals.get(kind) ?? 0) + 1);
      const feature = r.features[i] as string;
      const m = this.counts.get(kind) as Map<string, number>;
      const n = m.get(feature);
      if (n !== undefined) m.set(feature, n + 1);
      else if (this.distinct < HISTOGRAM_LIMIT && this.histogramBytes + feature.length <= HISTOGRAM_BYTES) {
        m.set(feature, 1);
        this.distinct++;
        this.histogramBytes += feature.length;
      } else this.histogramTruncated = true;
    }
    if (this.yaraFile) {
      for (const { rule, conditionOnly, line } of r.yara) {
        // A rule with a condition only (no pattern) matches every window alike: once per scan says it all.
        if (conditionOnly) {
          if (this.conditionOnly.has(rule)) continue;
          this.conditionOnly.add(rule);
        }
        const w = this.yaraFile.add(line);
        if (w) waits.push(w);
        this.yaraCounts.set(rule, (this.yaraCounts.get(rule) ?? 0) + 1);
      }
    }
    await Promise.all(waits);
  }

  /** Close the feature files and write the histograms; returns the totals per kind. */
  async finish(): Promise<Record<string, KindTotals>> {
    const result: Record<string, KindTotals> = {};
    for (const [kind, file] of this.files) {
      await file.close();
      const m = this.counts.get(kind) as Map<string, number>;
      const rows = [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      const text = rows.map(([f, n]) => `n=${n}\t${f}\n`).join('');
      await writeFileExclusive(join(this.dir, `${kind}_histogram.txt`), Buffer.from(text, 'latin1'));
      result[kind] = { features: this.totals.get(kind) ?? 0, distinct: m.size };
    }
    await this.yaraFile?.close();
    return result;
  }

  async writeSummary(summary: Record<string, unknown>): Promise<void> {
    const tool = toolIdentity();
    const body = JSON.stringify({ tool: { name: 'memdump', version: tool.version }, ...summary }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
    await writeFileExclusive(join(this.dir, 'scan.json'), body + '\n');
  }
}
