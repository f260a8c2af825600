/**
 * Which mappings an ELF process core holds, and how many bytes of each: the kernel's vma_dump_size()
 * (fs/coredump.c) driven by /proc/PID/coredump_filter, redone from what userland can see in smaps.
 *
 * Where userland sees less than the kernel:
 * - DAX mappings (filter bits 7 and 8) carry no VmFlags mnemonic, so they cannot be told apart and fall under the
 *   ordinary file rules below.
 * - The kernel tests vma->anon_vma; smaps' Anonymous (and Swap) > 0 is the visible trace of it. A mapping whose
 *   anonymous pages were all dropped again (MADV_DONTNEED) keeps its anon_vma but shows 0 here.
 * - The kernel dumps one page of any offset-0 file mapping whose inode is executable, else only if it starts with
 *   the ELF magic; we go by the magic alone (the caller reads it: `elfHeaderAt`).
 * - The kernel always dumps special mappings ([vdso], [vvar], [vsyscall], ...) and reads PROT_NONE memory with
 *   FOLL_FORCE. From userland [vvar] (VM_IO|VM_PFNMAP) and unreadable memory fail to read, so they get 0 bytes.
 */
import { MemdumpError } from '../core/errors.js';
import { type Mapping, isAnonymousLike } from './maps.js';

export interface CoreSelection {
  mapping: Mapping;
  /** 0, one page, or end - start. */
  dumpBytes: bigint;
  reason: string;
}

export interface CoreFilterOptions {
  /** /proc/PID/coredump_filter bits. */
  filter: number;
  /** Dump every readable mapping whole (except VM_IO). */
  all: boolean;
  pageSize: bigint;
  /** Start addresses of mappings whose first 4 bytes are \x7fELF. */
  elfHeaderAt: ReadonlySet<bigint>;
}

export const FILTER_BITS = {
  anonPrivate: 0,
  anonShared: 1,
  filePrivate: 2,
  fileShared: 3,
  elfHeaders: 4,
  hugetlbPrivate: 5,
  hugetlbShared: 6,
  daxPrivate: 7,
  daxShared: 8,
} as const;

/** The kernel's default (MMF_DUMP_FILTER_DEFAULT without CONFIG_CORE_DUMP_DEFAULT_ELF_HEADERS is 0x33 too). */
export const DEFAULT_COREDUMP_FILTER = 0x33;

/** Names the kernel dumps whatever the filter says (always_dump_vma: the gate vma and vm_ops->name mappings). */
const ALWAYS = new Map([
  ['[vdso]', 'vdso'],
  ['[vsyscall]', 'vsyscall'],
  ['[vectors]', 'vectors'],
  ['[sigpage]', 'sigpage'],
]);
/** VM_IO|VM_PFNMAP on every kernel; named so they are skipped even when smaps (and so 'io') is missing. */
const VVAR = new Set(['[vvar]', '[vvar_vclock]']);

/**
 * Parse a coredump_filter value: hex, with or without 0x, as /proc/PID/coredump_filter shows it ('00000033\n').
 * Unlike a write to that file (which the kernel parses with base auto-detection), '33' here means 0x33.
 */
export function parseCoredumpFilter(text: string, what: string): number {
  const s = text.trim();
  const m = /^(?:0[xX])?([0-9a-fA-F]{1,16})$/.exec(s);
  const v = m ? BigInt('0x' + m[1]!) : -1n;
  if (v < 0n || v > 0xffffffffn) {
    throw new MemdumpError('E_USAGE', `${what}: expected a hex coredump_filter value such as 0x33, got ${JSON.stringify(text.slice(0, 40))}`);
  }
  return Number(v);
}

/** Mappings whose first page the kernel would dump under bit 4 if they start with \x7fELF: the caller checks. */
export function elfHeaderCandidates(mappings: readonly Mapping[]): Mapping[] {
  return mappings.filter((m) => m.read && !m.shared && !isAnonymousLike(m) && m.offset === 0n);
}

export function selectForCore(mappings: readonly Mapping[], o: CoreFilterOptions): CoreSelection[] {
  const sorted = [...mappings].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return sorted.map((m) => {
    const [dumpBytes, reason] = decide(m, o);
    return { mapping: m, dumpBytes, reason };
  });
}

type Decision = [bytes: bigint, reason: string];

function decide(m: Mapping, o: CoreFilterOptions): Decision {
  const size = m.end - m.start;
  const bit = (b: number) => ((o.filter >>> b) & 1) === 1;
  const flags = m.vmFlags;
  const has = (f: string) => flags?.includes(f) ?? false;
  const pick = (b: number, what: string): Decision => (bit(b) ? [size, `${what} (filter bit ${b})`] : [0n, `${what} not selected (bit ${b})`]);

  if (!m.read) return [0n, 'not readable (the kernel force-reads it; userland cannot)'];
  // reading VM_IO|VM_PFNMAP memory through /proc/PID/mem fails (EIO), so not even --all takes it
  const io = has('io') || (flags === undefined && VVAR.has(m.path));
  const ioReason = flags === undefined ? 'VM_IO (known name; no smaps)' : 'VM_IO (io)';
  if (o.all) return io ? [0n, ioReason] : [size, 'all readable (--all)'];
  if (has('dd')) return [0n, 'VM_DONTDUMP (dd)'];
  if (io) return [0n, ioReason];
  const always = ALWAYS.get(m.path);
  if (always !== undefined) return [size, `${always} (always dumped)`];
  if (has('ht')) return m.shared ? pick(FILTER_BITS.hugetlbShared, 'hugetlb shared') : pick(FILTER_BITS.hugetlbPrivate, 'hugetlb private');

  const anon = isAnonymousLike(m);
  // the kernel asks i_nlink == 0: shmem behind MAP_SHARED|MAP_ANONYMOUS, memfd, SysV shm and deleted files
  if (m.shared) return anon ? pick(FILTER_BITS.anonShared, 'anon shared') : pick(FILTER_BITS.fileShared, 'file shared');

  const noFile = m.path === '' || m.path.startsWith('[');
  if (m.anonymous !== undefined) {
    // Swap > 0 also means swapped-out anonymous pages, so an anon_vma exists
    const written = m.anonymous > 0n || (m.swap ?? 0n) > 0n;
    if (written) return pick(FILTER_BITS.anonPrivate, noFile ? 'anon private' : 'written file private');
  } else if (noFile || m.write) {
    // Without smaps, guess: anonymous and writable private memory may have been written. Read-only memory that
    // was written before an mprotect (RELRO) is missed by this guess.
    if (bit(FILTER_BITS.anonPrivate)) return [size, `${noFile ? 'anon private' : 'writable file private'} (filter bit 0; no smaps: assumed written)`];
  }
  if (noFile) return [0n, bit(FILTER_BITS.anonPrivate) ? 'anon private never written' : 'anon private not selected (bit 0)'];
  // Unlike the kernel (file-private rules), a private mapping of a memfd, a deleted file, /dev/zero or SysV shm
  // counts as anonymous, as gdb's gcore does: a fileless payload (memfd_create + mmap) is what an analyst
  // wants in the core, and no file on disk holds those bytes afterwards.
  if (anon) return pick(FILTER_BITS.anonPrivate, 'memfd/deleted-file private, counted as anonymous');
  if (bit(FILTER_BITS.filePrivate)) return [size, `file private (filter bit ${FILTER_BITS.filePrivate})`];
  if (bit(FILTER_BITS.elfHeaders) && m.offset === 0n && o.elfHeaderAt.has(m.start)) {
    return [o.pageSize < size ? o.pageSize : size, `ELF header page (bit ${FILTER_BITS.elfHeaders})`];
  }
  return [0n, 'file private not selected'];
}
