import { MemdumpError, hex } from '../core/errors.js';
import { type Range, intersect, normalize, subtract } from '../core/ranges.js';
import { type Mapping, isAnonymousLike } from '../sources/maps.js';

/**
 * Which regions of a live process `memdump regions PID` cuts out. Pure selection over /proc/PID/maps lines: no
 * I/O here except through the `read` callback that grepRegions is given.
 *
 * Every selector picks readable mappings only (the dump can copy nothing else); a non-readable mapping that a
 * selector would otherwise pick is reported in `warnings`.
 *
 * Decisions:
 * - `heap` is `[heap]` only: the brk heap of glibc's main arena. Memory that malloc gets from mmap (chunks above
 *   M_MMAP_THRESHOLD, and the heaps of the other arenas, which threads use) is not in `[heap]`.
 * - `heapArenas` (optional) adds the heaps of glibc's non-main arenas, recognised by their layout: glibc reserves
 *   each arena heap as one HEAP_MAX_SIZE (64 MiB on 64-bit) region aligned to 64 MiB and makes only the used
 *   part read-write, so an arena heap is an anonymous rw-p mapping whose end lies in a 64 MiB-aligned block that
 *   starts inside it, followed directly by an anonymous ---p mapping reaching at least to the end of that block.
 *   Not recognised: a heap that has grown to the full 64 MiB (no ---p tail left; glibc then chains a new heap,
 *   which is recognised), 32-bit processes (1 MiB heaps), other allocators (jemalloc, tcmalloc, musl).
 * - `stack`: per thread, the mapping that contains its stack pointer; plus `[stack]` (the main thread's stack)
 *   always, since it is the main thread's even when its pointer is unknown or elsewhere (sigaltstack). glibc
 *   thread stacks are anonymous rw-p mappings above a PROT_NONE guard page, indistinguishable from other
 *   anonymous memory without a stack pointer, so unknown pointers cannot be made up for (kernels before 4.5
 *   named them `[stack:TID]`; those names are used when present). The guard page itself is not readable.
 * - `anonExec`: executable and anonymous-like (maps.ts isAnonymousLike): no file, `[anon:NAME]`, `[heap]`/`[stack]`
 *   made executable, memfd, SysV shm, /dev/zero, and deleted files (a library replaced on disk or a dropped
 *   payload: both worth a copy); never kernel-provided code (`[vdso]`, `[vsyscall]`, `[uprobes]`, ...).
 * - `modules`: file-backed mappings whose name matches (see moduleMatches), plus the anonymous rw-p mapping
 *   directly after a matched writable mapping of the same file: the module's .bss, which the ELF loader maps
 *   as anonymous memory; its globals are usually what a module dump is for.
 */
export interface RegionSelectors {
  stack: boolean;
  heap: boolean;
  /** glibc non-main arena heaps (see above); optional so callers built before it keep compiling. */
  heapArenas?: boolean;
  anonExec: boolean;
  rwx: boolean;
  memfd: boolean;
  modules: string[];
  ranges: Range[];
  /** Handled by grepRegions (needs memory); selectRegions ignores it. */
  grep: Buffer[];
}

export interface SelectedRegion {
  start: bigint;
  end: bigint;
  /** The mapping the region lies in (always set by selectRegions and addGrepHits). */
  mapping: Mapping | undefined;
  reasons: string[];
}

export interface Selection {
  /** Sorted by address, pairwise disjoint, one entry per mapping (or per part of a mapping for ranges). */
  regions: SelectedRegion[];
  warnings: string[];
}

export interface SelectContext {
  /** Thread id → stack pointer (rsp/sp), from ptrace registers or /proc/PID/task/TID/syscall. */
  stackPointers: ReadonlyMap<number, bigint>;
  /** The process id: names the main thread in the `[stack]` reason when its stack pointer is not known. */
  pid?: number;
}

/** glibc HEAP_MAX_SIZE on 64-bit: 2 * DEFAULT_MMAP_THRESHOLD_MAX = 2 * 4 MiB * sizeof(long). */
export const GLIBC_ARENA_HEAP_SIZE = 64n << 20n;

/** Mappings the kernel itself provides (code and data pages it maps into every process or on demand). */
const KERNEL_SPECIAL = new Set(['[vdso]', '[vsyscall]', '[vvar]', '[vvar_vclock]', '[uprobes]', '[vectors]', '[sigpage]']);

export function isKernelSpecial(m: Mapping): boolean {
  return KERNEL_SPECIAL.has(m.path);
}

export function isMemfd(m: Mapping): boolean {
  return m.path.startsWith('/memfd:');
}

/** A real file (not a shmem object: memfd, SysV, shared /dev/zero) that was unlinked while mapped. */
export function isDeletedFile(m: Mapping): boolean {
  return m.deleted && m.path.startsWith('/') && !isMemfd(m) && !m.path.startsWith('/SYSV') && m.path !== '/dev/zero (deleted)';
}

/** Backed by a file one could name on disk (possibly deleted since). */
export function isFileBacked(m: Mapping): boolean {
  if (!m.path.startsWith('/')) return false;
  if (m.deleted) return isDeletedFile(m);
  return m.path !== '/dev/zero' && !isMemfd(m) && !m.path.startsWith('/SYSV');
}

/** Anonymous in the strict sense: no name at all. */
function isPlainAnon(m: Mapping): boolean {
  return m.path === '' && m.inode === 0n;
}

function stripDeleted(p: string): string {
  return p.endsWith(' (deleted)') ? p.slice(0, -' (deleted)'.length) : p;
}

/**
 * `--module NAME`: the exact path, or a basename equal to NAME or starting with NAME followed by '.' or '-'
 * (`libc` matches libc.so.6 and libc-2.31.so, not libcrypto.so.3; `node` matches /usr/bin/node). A deleted
 * file matches by its name without the ' (deleted)' suffix.
 */
export function moduleMatches(m: Mapping, name: string): boolean {
  if (!isFileBacked(m)) return false;
  const path = stripDeleted(m.path);
  if (path === name) return true;
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (base === name) return true;
  const next = base[name.length];
  return base.startsWith(name) && (next === '.' || next === '-');
}

function byStart<T extends { start: bigint }>(a: T, b: T): number {
  return a.start < b.start ? -1 : a.start > b.start ? 1 : 0;
}

function rangeText(r: Range): string {
  return `${hex(r.start)}-${hex(r.end)}`;
}

/**
 * Apply every selector but grep. Reasons are merged per mapping in selector order (stack, heap, heap arenas,
 * anon-exec, rwx, memfd, modules, ranges); a mapping picked whole by one selector and in part by a range is
 * output whole.
 */
export function selectRegions(mappings: readonly Mapping[], s: RegionSelectors, ctx: SelectContext): Selection {
  const maps = [...mappings].sort(byStart);
  const picks: SelectedRegion[] = [];
  const warnings: string[] = [];
  const whole = (m: Mapping, reason: string, what: string): void => {
    if (!m.read) {
      warnings.push(`${what}: mapping ${rangeText(m)} ${m.perms} ${m.path || '(anonymous)'} is not readable; skipped`);
      return;
    }
    picks.push({ start: m.start, end: m.end, mapping: m, reasons: [reason] });
  };

  if (s.stack) selectStacks(maps, ctx, whole, warnings);

  if (s.heap) {
    const heaps = maps.filter((m) => m.path === '[heap]');
    if (heaps.length === 0) warnings.push('--heap: no [heap] mapping (the process has not grown its brk heap, or its allocator uses mmap only)');
    for (const m of heaps) whole(m, '[heap]', '--heap');
  }

  if (s.heapArenas) {
    for (let i = 0; i + 1 < maps.length; i++) {
      const m = maps[i]!;
      if (isGlibcArenaHeap(m, maps[i + 1]!)) whole(m, 'glibc malloc arena heap (non-main arena)', '--heap');
    }
  }

  for (const m of maps) {
    if (s.anonExec && m.exec && isAnonymousLike(m) && !isKernelSpecial(m)) whole(m, anonExecReason(m), '--anon-exec');
    if (s.rwx && m.read && m.write && m.exec) whole(m, 'rwx', '--rwx');
    if (s.memfd && isMemfd(m)) whole(m, `memfd ${stripDeleted(m.path).slice('/memfd:'.length)}`, '--memfd');
  }

  for (const name of s.modules) {
    if (name === '') throw new MemdumpError('E_USAGE', '--module needs a name (basename like libc, or a full path)');
    let found = false;
    for (let i = 0; i < maps.length; i++) {
      const m = maps[i]!;
      if (!moduleMatches(m, name)) continue;
      found = true;
      // a module's gaps (---p between segments) are expected: skip them without a warning
      if (m.read) picks.push({ start: m.start, end: m.end, mapping: m, reasons: [`module ${name}`] });
      const next = maps[i + 1];
      if (m.write && next && next.start === m.end && isPlainAnon(next) && next.perms === m.perms && next.read) {
        picks.push({ start: next.start, end: next.end, mapping: next, reasons: [`module ${name} (.bss of ${m.path})`] });
      }
    }
    if (!found) warnings.push(`--module ${name}: no file-backed mapping matches`);
  }

  if (s.ranges.length > 0) selectRanges(maps, s.ranges, picks, warnings);

  return { regions: mergeRegions(picks), warnings };
}

function anonExecReason(m: Mapping): string {
  if (isMemfd(m)) return 'anonymous executable (memfd)';
  if (isDeletedFile(m)) return 'anonymous executable (deleted file)';
  if (m.path === '') return 'anonymous executable';
  return `anonymous executable (${m.path})`;
}

/** glibc non-main arena heap: see RegionSelectors. `next` is the mapping after `m` in address order. */
export function isGlibcArenaHeap(m: Mapping, next: Mapping): boolean {
  if (!isPlainAnon(m) || m.perms !== 'rw-p') return false;
  if (!isPlainAnon(next) || next.perms !== '---p' || next.start !== m.end) return false;
  const block = (m.end - 1n) & ~(GLIBC_ARENA_HEAP_SIZE - 1n);
  return block >= m.start && next.end >= block + GLIBC_ARENA_HEAP_SIZE;
}

function mappingAt(maps: readonly Mapping[], addr: bigint): Mapping | undefined {
  // binary search: processes with tens of thousands of mappings (JVMs) and as many threads exist
  let lo = 0;
  let hi = maps.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (maps[mid]!.end <= addr) lo = mid + 1;
    else hi = mid;
  }
  const m = maps[lo];
  return m && m.start <= addr && addr < m.end ? m : undefined;
}

function selectStacks(
  maps: readonly Mapping[],
  ctx: SelectContext,
  whole: (m: Mapping, reason: string, what: string) => void,
  warnings: string[],
): void {
  const withPointer = new Set<Mapping>();
  const tids = [...ctx.stackPointers.keys()].sort((a, b) => a - b);
  for (const tid of tids) {
    const sp = ctx.stackPointers.get(tid)!;
    // a fresh thread's pointer can sit exactly at the top of its stack, before anything was pushed
    const m = mappingAt(maps, sp) ?? mappingAt(maps, sp - 1n);
    if (!m) {
      warnings.push(`--stack: thread ${tid}: stack pointer ${hex(sp)} is in no mapping`);
      continue;
    }
    withPointer.add(m);
    whole(m, `stack of thread ${tid}`, `--stack: thread ${tid} (stack pointer ${hex(sp)})`);
  }
  const pidKnown = ctx.pid !== undefined && ctx.stackPointers.has(ctx.pid);
  for (const m of maps) {
    if (m.path === '[stack]' && !withPointer.has(m)) {
      const reason =
        ctx.pid === undefined
          ? '[stack] (main thread; stack pointer not known)'
          : pidKnown
            ? `[stack] (initial stack of main thread ${ctx.pid}; its stack pointer is elsewhere)`
            : `stack of thread ${ctx.pid} ([stack]; stack pointer not known)`;
      whole(m, reason, '--stack');
    }
    const old = /^\[stack:([0-9]+)\]$/.exec(m.path);
    if (old && !withPointer.has(m)) whole(m, `stack of thread ${old[1]!} (${m.path})`, '--stack');
  }
  if (ctx.stackPointers.size === 0) {
    warnings.push('--stack: no thread stack pointers known; only [stack] (the main thread) is selected');
  }
}

function selectRanges(maps: readonly Mapping[], ranges: readonly Range[], picks: SelectedRegion[], warnings: string[]): void {
  const readable = normalize(maps.filter((m) => m.read));
  const unreadable = normalize(maps.filter((m) => !m.read));
  const mapped = normalize(maps);
  for (const r of ranges) {
    if (r.end <= r.start) throw new MemdumpError('E_USAGE', `--range ${rangeText(r)} is empty`);
    const label = `range ${rangeText(r)}`;
    for (const part of intersect([r], readable)) {
      // intersect merges touching mappings: cut the part again at mapping boundaries
      for (let m = mappingAt(maps, part.start); m && m.start < part.end; m = mappingAt(maps, m.end)) {
        const start = m.start > part.start ? m.start : part.start;
        const end = m.end < part.end ? m.end : part.end;
        picks.push({ start, end, mapping: m, reasons: [label] });
      }
    }
    for (const gap of subtract([r], mapped)) {
      warnings.push(`--range ${rangeText(r)}: ${rangeText(gap)} (${gap.end - gap.start} bytes) is not mapped; dropped`);
    }
    for (const gap of intersect([r], unreadable)) {
      warnings.push(`--range ${rangeText(r)}: ${rangeText(gap)} (${gap.end - gap.start} bytes) is mapped but not readable; dropped`);
    }
  }
}

/**
 * Combine selections: one entry per mapping, whole if any selection took it whole, else the union of the parts
 * (each part carrying the reasons of the pieces it was made from). Reasons keep first-seen order, without
 * duplicates. Entries without a mapping are kept as they are. Output sorted by address.
 */
export function mergeRegions(regions: readonly SelectedRegion[]): SelectedRegion[] {
  const groups = new Map<bigint, SelectedRegion[]>();
  const loose: SelectedRegion[] = [];
  for (const r of regions) {
    if (!r.mapping) {
      loose.push({ ...r, reasons: [...r.reasons] });
      continue;
    }
    const g = groups.get(r.mapping.start);
    if (g) g.push(r);
    else groups.set(r.mapping.start, [r]);
  }
  const out: SelectedRegion[] = [...loose];
  for (const g of groups.values()) {
    const m = g[0]!.mapping!;
    const isWhole = g.some((r) => r.start <= m.start && r.end >= m.end);
    if (isWhole) {
      out.push({ start: m.start, end: m.end, mapping: m, reasons: unique(g.flatMap((r) => r.reasons)) });
      continue;
    }
    const parts = [...g].sort(byStart);
    let cur: SelectedRegion | undefined;
    for (const p of parts) {
      if (cur && p.start <= cur.end) {
        if (p.end > cur.end) cur.end = p.end;
        cur.reasons = unique([...cur.reasons, ...p.reasons]);
      } else {
        cur = { start: p.start, end: p.end, mapping: m, reasons: unique(p.reasons) };
        out.push(cur);
      }
    }
  }
  return out.sort(byStart);
}

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}

const MAX_ADDR = 1n << 64n;
const SIZE_UNITS: Readonly<Record<string, bigint>> = { '': 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n };

/**
 * `--range`: `START-END` (END exclusive, as /proc/PID/maps prints it) or `START+SIZE`. START and END are hex,
 * with or without 0x (a maps line can be pasted); SIZE is decimal, or hex with 0x, with an optional K/M/G
 * suffix (binary: K = 1024; `KiB`, `KB` also accepted).
 */
export function parseRangeArg(text: string): Range {
  const t = text.trim();
  const usage = (why: string): MemdumpError =>
    new MemdumpError('E_USAGE', `--range ${JSON.stringify(text)}: ${why} (expected 0xSTART-0xEND or 0xSTART+SIZE, SIZE like 4096, 0x1000, 64K, 2M, 1G)`);
  const dash = /^(?:0x)?([0-9a-f]{1,16})\s*-\s*(?:0x)?([0-9a-f]{1,16})$/i.exec(t);
  const plus = /^(?:0x)?([0-9a-f]{1,16})\s*\+\s*(0x[0-9a-f]{1,16}|[0-9]{1,20})\s*(?:([kmg])(?:i?b)?)?$/i.exec(t);
  let start: bigint;
  let end: bigint;
  if (dash) {
    start = BigInt('0x' + dash[1]!);
    end = BigInt('0x' + dash[2]!);
  } else if (plus) {
    start = BigInt('0x' + plus[1]!);
    const size = BigInt(plus[2]!) * SIZE_UNITS[(plus[3] ?? '').toLowerCase()]!;
    if (size === 0n) throw usage('size is zero');
    end = start + size;
    if (end > MAX_ADDR) throw usage('ends beyond the 64-bit address space');
  } else throw usage('not a range');
  if (end <= start) throw usage('end is not above start');
  return { start, end };
}

/**
 * `--grep`: plain text (UTF-8 bytes), `hex:DEADBEEF` for bytes (spaces and ':' between byte pairs allowed),
 * `text:...` to search for text that itself starts with "hex:" or "text:".
 */
export function parseGrepArg(text: string): Buffer {
  let b: Buffer;
  if (text.startsWith('hex:')) {
    const digits = text.slice(4).replace(/[\s:]/g, '');
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(digits)) {
      throw new MemdumpError('E_USAGE', `--grep ${JSON.stringify(text)}: hex: needs an even number of hex digits (hex:7f454c46)`);
    }
    b = Buffer.from(digits, 'hex');
  } else if (text.startsWith('text:')) b = Buffer.from(text.slice(5), 'utf8');
  else b = Buffer.from(text, 'utf8');
  if (b.length === 0) throw new MemdumpError('E_USAGE', '--grep needs a non-empty pattern');
  return b;
}

/** How a pattern is shown in reasons: `"text"` (JSON-quoted) when it is printable ASCII, else `hex:...`. */
export function describePattern(p: Buffer): string {
  for (const c of p) if (c < 0x20 || c > 0x7e) return 'hex:' + p.toString('hex');
  return JSON.stringify(p.toString('latin1'));
}

export const GREP_CHUNK = 4 << 20;

export interface GrepHit {
  /** describePattern of the pattern found. */
  pattern: string;
  /** Address of the earliest occurrence of any pattern in the mapping. */
  firstHit: bigint;
}

/**
 * Search each readable candidate mapping for the patterns, in chunks of `chunkSize` bytes (default 4 MiB) read at
 * chunk-aligned offsets from the mapping start; the last (longest pattern − 1) bytes of a chunk are carried into
 * the next search so an occurrence straddling a boundary is found. The result is the earliest occurrence of any
 * pattern (ties: the first pattern given); a mapping is read no further than needed to know it.
 * `read` returning undefined marks the chunk unreadable: it is skipped, and nothing is matched across it. A
 * shorter buffer than asked is taken as the readable start of the chunk; the rest of that chunk is skipped.
 * Result keyed by mapping start.
 */
export async function grepRegions(
  candidates: readonly Mapping[],
  patterns: Buffer[],
  read: (addr: bigint, length: number) => Promise<Buffer | undefined>,
  opts: { chunkSize?: number } = {},
): Promise<Map<bigint, GrepHit>> {
  const out = new Map<bigint, GrepHit>();
  if (patterns.length === 0) return out;
  if (patterns.some((p) => p.length === 0)) throw new MemdumpError('E_USAGE', '--grep needs a non-empty pattern');
  const chunkSize = opts.chunkSize ?? GREP_CHUNK;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new RangeError(`grep chunk size ${chunkSize}`);
  const keep = Math.max(...patterns.map((p) => p.length)) - 1;
  const names = patterns.map(describePattern);
  const step = BigInt(chunkSize);
  for (const m of candidates) {
    if (!m.read) continue;
    let carry = Buffer.alloc(0);
    let carryEnd = -1n;
    // a hit in the last (longest − 1) bytes of a chunk is not final yet: a longer pattern listed earlier, or one
    // starting before it, may complete in the next chunk
    let tentative: GrepHit | undefined;
    for (let pos = m.start; pos < m.end; pos += step) {
      const len = Number(m.end - pos < step ? m.end - pos : step);
      const got = await read(pos, len);
      if (!got || got.length === 0) {
        if (tentative) break;
        carry = Buffer.alloc(0);
        continue;
      }
      const data = got.length > len ? got.subarray(0, len) : got;
      const hay = carry.length > 0 && carryEnd === pos ? Buffer.concat([carry, data]) : data;
      const base = pos - BigInt(hay.length - data.length);
      let best = -1;
      let which = 0;
      for (let i = 0; i < patterns.length; i++) {
        // only an occurrence before the best so far matters: search the prefix that could hold one
        const limit = best < 0 ? hay.length : best + patterns[i]!.length - 1;
        const at = hay.subarray(0, limit).indexOf(patterns[i]!);
        if (at >= 0 && (best < 0 || at < best)) {
          best = at;
          which = i;
        }
      }
      tentative = best < 0 ? undefined : { pattern: names[which]!, firstHit: base + BigInt(best) };
      // the run of readable bytes goes on only if this chunk was read whole and the mapping continues
      const runGoesOn = data.length === len && pos + step < m.end;
      if (tentative && (!runGoesOn || best < hay.length - keep)) break;
      // copied: the reader may reuse its buffer for the next chunk
      carry = Buffer.from(hay.subarray(Math.max(0, hay.length - keep)));
      carryEnd = pos + BigInt(data.length);
    }
    if (tentative) out.set(m.start, tentative);
  }
  return out;
}

/** Add grep hits to a selection: the mapping of each hit is selected whole, with reason `grep PATTERN`. */
export function addGrepHits(regions: readonly SelectedRegion[], mappings: readonly Mapping[], hits: ReadonlyMap<bigint, GrepHit>): SelectedRegion[] {
  const byStartAddr = new Map(mappings.map((m) => [m.start, m] as const));
  const added: SelectedRegion[] = [];
  for (const [start, hit] of hits) {
    const m = byStartAddr.get(start);
    if (m) added.push({ start: m.start, end: m.end, mapping: m, reasons: [`grep ${hit.pattern}`] });
  }
  return mergeRegions([...regions, ...added]);
}
