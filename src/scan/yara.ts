import { readFileSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Compiler, initSync, type Rules as XRules, type Scanner as XScanner } from '@virustotal/yara-x';
import { MemdumpError, fromSystemError } from '../core/errors.js';

/**
 * `memdump scan --yara RULES`: YARA rules through YARA-X (the maintained Rust rewrite of YARA, here as its WASM
 * build from npm, so nothing is compiled at install and it runs inside worker threads: each thread instantiates
 * its own copy of the module on first use and compiles the rule source itself, since compiled rules cannot be
 * passed between threads).
 *
 * Window semantics. The engine calls scan(buf, from, to) on one window with look-behind before `from` and overlap
 * after `to`; a match belongs to the window whose [from, to) holds its (merged) start, so each is reported once.
 *  - YARA-X reports a match at every start position of a pattern (/A{4,}/ over AAAAAAAA gives 0,1,2,…); matches of
 *    one rule+pattern that overlap or touch are merged into one (earliest start, farthest end). For a merged start
 *    to be the same in every window that sees it, look-behind and overlap must each be at least the longest match
 *    (YARA-X caps regexp matches near 4 KiB; the engine's LOOK_BEHIND of 4096 is enough for ordinary rules).
 *  - A rule that matched with no pattern match in the whole buffer (condition only: `filesize`, `uint32(0) == …`,
 *    `not $a`, module conditions) is reported once per window, at `from`, with pattern '(condition)' and length 0. Its
 *    condition saw the buffer as the whole "file": `filesize` is the buffer's length and `uint32(0)` reads buf[0],
 *    the first look-behind byte, so rules written for whole files (filesize, header checks, pe/elf modules) are
 *    meaningless on memory windows; they are kept only because refusing them would break existing rule sets.
 *  - A rule whose only matches are of private patterns is reported at the first such merged start in [from, to)
 *    with pattern '(private)' (the rule matched there, the pattern text stays private). Private rules are never reported.
 *  - At most `maxMatchesPerPattern` (default 10,000) raw matches of one pattern are taken per window: a pattern
 *    that matches at every byte of a zero page would otherwise produce millions of matches (16 MiB of zeros and
 *    { 00 00 00 00 } take 31 s unbounded, 0.6 s with the cap). Merged runs past the cap are lost for that window.
 *
 * Memory: YARA-X copies the buffer into the WASM heap, which never shrinks, so the heap stays as large as the
 * largest buffer ever scanned: windows of 16–64 MiB keep it small. A regexp that backtracks over long runs (such
 * as /A{4,}/ over a MiB of 'A') is slow in YARA-X and its timeout does not fire in the WASM build; that cost is
 * the rule author's.
 */

/** The pattern column of a rule matched by its condition alone (no pattern matched in the window). */
export const CONDITION_ONLY = '(condition)';

export interface YaraMatch {
  rule: string;
  /** Absent for YARA-X's 'default' namespace. */
  namespace?: string;
  /** '$a' as written in the rule; '(condition)' for a rule matched by its condition alone, '(private)' by private patterns only. */
  pattern: string;
  /** In the scanned buffer. */
  offset: number;
  length: number;
  /** A copy of at most the first 64 bytes of the match. */
  data: Buffer;
  tags: string[];
  meta?: Record<string, unknown>;
}

export interface YaraOptions {
  /** Raw matches taken per pattern per scan (see above). */
  maxMatchesPerPattern?: number;
}

const DATA_BYTES = 64;
/** A line loadYaraSources puts before each file's text so compileYara can compile and locate each file separately. */
const SOURCE_MARKER = '// memdump-yara-source: ';
const MAX_RULE_FILES = 10_000;
const MAX_RULE_BYTES = 64 * 1024 * 1024;
const MAX_DEPTH = 16;

let initialized = false;

function ensureInit(): void {
  if (initialized) return;
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@virustotal/yara-x/package.json');
  const wasm = path.join(path.dirname(pkg), 'pkg', 'yara_x_js_bg.wasm');
  let bytes: Buffer;
  try {
    bytes = readFileSync(wasm);
  } catch (e) {
    throw new MemdumpError('E_UNSUPPORTED', `YARA-X is not installed (${wasm}): reinstall memdump's dependencies`, { cause: e });
  }
  // the package's default init() fetches the .wasm by URL, which Node's fetch cannot do for file: URLs
  initSync({ module: bytes });
  initialized = true;
}

interface RawMatch {
  offset: number;
  length: number;
}
interface RawPattern {
  identifier: string;
  isPrivate: boolean;
  matches: RawMatch[];
}
interface RawRule {
  identifier: string;
  namespace: string;
  isPrivate: boolean;
  tags: string[];
  metadata: { identifier: string; value: unknown }[];
  patterns: RawPattern[];
}

export class YaraRules {
  private readonly scanner: XScanner;

  /** @internal use compileYara */
  constructor(
    private readonly rules: XRules,
    readonly warnings: string[],
    maxMatchesPerPattern: number,
  ) {
    this.scanner = rules.scanner();
    this.scanner.setMaxMatchesPerPattern(maxMatchesPerPattern);
  }

  /** Matches whose merged start is in [from, to), by offset, then rule and pattern; each match once. */
  scan(buf: Buffer, from: number, to: number): YaraMatch[] {
    from = Math.max(0, from);
    to = Math.min(buf.length, to);
    if (to <= from) return [];
    let result: { valid?: boolean; errors?: unknown[]; matches?: RawRule[] };
    try {
      result = this.scanner.scan(buf) as typeof result;
    } catch (e) {
      throw new MemdumpError('E_INTERNAL', `YARA-X scan failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (result.valid === false) throw new MemdumpError('E_INTERNAL', `YARA-X scan failed: ${JSON.stringify(result.errors ?? [])}`);
    const out: YaraMatch[] = [];
    for (const r of result.matches ?? []) {
      if (r.isPrivate) continue;
      const base = (): Omit<YaraMatch, 'pattern' | 'offset' | 'length' | 'data'> => {
        const m: Omit<YaraMatch, 'pattern' | 'offset' | 'length' | 'data'> = { rule: r.identifier, tags: [...r.tags] };
        if (r.namespace !== 'default') m.namespace = r.namespace;
        if (r.metadata.length > 0) m.meta = Object.fromEntries(r.metadata.map((x) => [x.identifier, x.value]));
        return m;
      };
      let any = false;
      let publicAny = false;
      let privateStart = -1;
      for (const p of r.patterns) {
        if (p.matches.length === 0) continue;
        any = true;
        if (!p.isPrivate) publicAny = true;
        for (const [start, end] of merge(p.matches)) {
          if (start < from || start >= to) continue;
          if (p.isPrivate) {
            if (privateStart < 0 || start < privateStart) privateStart = start;
            continue;
          }
          const stop = Math.min(end, buf.length, start + DATA_BYTES);
          out.push({ ...base(), pattern: p.identifier, offset: start, length: end - start, data: Buffer.from(buf.subarray(start, stop)) });
        }
      }
      if (!any) out.push({ ...base(), pattern: CONDITION_ONLY, offset: from, length: 0, data: Buffer.alloc(0) });
      else if (!publicAny && privateStart >= 0) out.push({ ...base(), pattern: '(private)', offset: privateStart, length: 0, data: Buffer.alloc(0) });
    }
    out.sort((a, b) => a.offset - b.offset || cmp(a.rule, b.rule) || cmp(a.pattern, b.pattern));
    return out;
  }

  /** Release the WASM memory of the compiled rules. */
  dispose(): void {
    this.scanner.free();
    this.rules.free();
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Overlapping or touching [offset, offset+length) intervals merged, as sorted [start, end) pairs. */
function merge(ms: readonly RawMatch[]): [number, number][] {
  const sorted = [...ms].sort((a, b) => a.offset - b.offset);
  const out: [number, number][] = [];
  for (const m of sorted) {
    const end = m.offset + m.length;
    const last = out[out.length - 1];
    if (last && m.offset <= last[1]) last[1] = Math.max(last[1], end);
    else out.push([m.offset, end]);
  }
  return out;
}

/**
 * Compile YARA source (one file's text, or loadYaraSources' concatenation, whose files are compiled one by one
 * so positions are per file). A syntax or semantic error throws E_USAGE with file, line and column.
 */
export function compileYara(source: string, origin: string, opts: YaraOptions = {}): YaraRules {
  ensureInit();
  const compiler = new Compiler();
  try {
    for (const part of splitSources(source, origin)) {
      try {
        compiler.addSource(part.text);
      } catch (e) {
        throw compileError(e, part.origin);
      }
    }
    let rules: XRules;
    try {
      rules = compiler.build();
    } catch (e) {
      throw compileError(e, origin);
    }
    const max = opts.maxMatchesPerPattern ?? 10_000;
    if (!Number.isSafeInteger(max) || max < 1) throw new MemdumpError('E_USAGE', `maxMatchesPerPattern must be a positive integer, got ${max}`);
    return new YaraRules(rules, [...rules.warnings], max);
  } finally {
    try {
      compiler.free();
    } catch {
      // build() consumed it
    }
  }
}

function splitSources(source: string, origin: string): { origin: string; text: string }[] {
  if (!source.startsWith(SOURCE_MARKER)) return [{ origin, text: source }];
  const parts: { origin: string; text: string }[] = [];
  for (const chunk of source.split('\n' + SOURCE_MARKER)) {
    const body = chunk.startsWith(SOURCE_MARKER) ? chunk.slice(SOURCE_MARKER.length) : chunk;
    const nl = body.indexOf('\n');
    const head = nl < 0 ? body : body.slice(0, nl);
    let name = origin;
    try {
      name = String(JSON.parse(head));
    } catch {
      // a hand-written marker line: keep the caller's origin
    }
    parts.push({ origin: name, text: nl < 0 ? '' : body.slice(nl + 1) });
  }
  return parts;
}

function compileError(e: unknown, origin: string): MemdumpError {
  const text = e instanceof Error ? e.message : String(e);
  const pos = /-->\s*line:(\d+):(\d+)/.exec(text);
  const head = text.split('\n')[0] ?? text;
  // the caret line says what was expected: "  | ^ expecting expression or identifier, found `}`"
  const caret = /^\s*\d*\s*\|\s*[\^-]+\s*(.+)$/m.exec(text)?.[1];
  const line = pos ? Number(pos[1]) : undefined;
  const column = pos ? Number(pos[2]) : undefined;
  const where = line === undefined ? origin : `${origin}:${line}:${column}`;
  return new MemdumpError('E_USAGE', `YARA rules ${where}: ${head}${caret ? `: ${caret}` : ''}`, {
    details: { origin, ...(line === undefined ? {} : { line, column }), diagnostic: text },
    cause: e,
  });
}

/**
 * The text of the rule files named: each path a .yar/.yara file (any name when given explicitly) or a directory,
 * searched recursively for *.yar and *.yara (sorted by path, symlinks not followed). Files keep their own
 * names for error positions (see compileYara).
 */
export async function loadYaraSources(paths: string[]): Promise<string> {
  if (paths.length === 0) throw new MemdumpError('E_USAGE', '--yara needs a rule file or directory');
  const files: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      throw fromSystemError(e, `YARA rules ${p}`);
    }
    if (st.isDirectory()) {
      const before = files.length;
      await walk(p, files, 0);
      if (files.length === before) throw new MemdumpError('E_USAGE', `YARA rules: no .yar or .yara file in ${p}`);
    } else if (st.isFile()) files.push(p);
    else throw new MemdumpError('E_USAGE', `YARA rules ${p}: not a file or directory`);
    if (files.length > MAX_RULE_FILES) throw new MemdumpError('E_USAGE', `YARA rules: more than ${MAX_RULE_FILES} files`);
  }
  let total = 0;
  const out: string[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (e) {
      throw fromSystemError(e, `reading YARA rules ${f}`);
    }
    total += text.length;
    if (total > MAX_RULE_BYTES) throw new MemdumpError('E_USAGE', `YARA rules: more than ${MAX_RULE_BYTES >> 20} MiB of rule text`);
    out.push(`${SOURCE_MARKER}${JSON.stringify(f)}\n${text}`);
  }
  return out.join('\n');
}

async function walk(dir: string, files: string[], depth: number): Promise<void> {
  if (depth > MAX_DEPTH) throw new MemdumpError('E_USAGE', `YARA rules: directories nested deeper than ${MAX_DEPTH} under ${dir}`);
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw fromSystemError(e, `listing YARA rules in ${dir}`);
  }
  entries.sort((a, b) => cmp(a.name, b.name));
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await walk(p, files, depth + 1);
    else if (e.isFile() && /\.yara?$/i.test(e.name)) {
      files.push(p);
      if (files.length > MAX_RULE_FILES) throw new MemdumpError('E_USAGE', `YARA rules: more than ${MAX_RULE_FILES} files`);
    }
  }
}
