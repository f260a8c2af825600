import { hex } from '../core/errors.js';
import { type Mapping, isAnonymousLike } from '../sources/maps.js';
import { isDeletedFile, isKernelSpecial, isMemfd } from './regions.js';

/**
 * `memdump regions PID --suspicious`: mappings that look like injected or unpacked code. Heuristics, not
 * verdicts: each finding's detail says what is benign-but-common for that kind.
 *
 * Kinds (a mapping can have several; each is its own finding):
 * - anon-exec: executable memory with no file: anonymous, `[anon:NAME]`, `[heap]`/`[stack]`, SysV shm, /dev/zero.
 *   Kernel-provided code ([vdso], [vsyscall], [uprobes], [vectors], [sigpage]) is never reported.
 * - memfd-exec: executable memory backed by a memfd (fileless loaders; also .NET's W^X double mapping).
 * - deleted-exec: executable mapping of a regular file unlinked since (also: a library upgraded on disk).
 * - rwx: writable and executable at once (W^X violated), file-backed or not; `-wx` counts too.
 * - elf-in-anon: `\x7fELF` at a 4 KiB page start inside readable anonymous-like memory (not a file mapping,
 *   not a deleted file, not [vdso] which is itself an ELF image). Every page start is checked, reading in chunks
 *   of up to 4 MiB; at most `maxElfPerMapping` (16) per mapping are reported. start = the header's address,
 *   end = the end of its mapping (what one would carve out).
 *
 * Sorted by address, then kind in the order above. Unreadable chunks (read → undefined) are skipped.
 * Cost: the ELF scan reads every readable anonymous byte (a 30 GB JVM heap is 30 GB of reads); the mapping
 * kinds need no reads at all.
 */
export type FindingKind = 'anon-exec' | 'memfd-exec' | 'rwx' | 'deleted-exec' | 'elf-in-anon';

export interface Finding {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
  kind: FindingKind;
  detail: string;
}

export interface SuspiciousOptions {
  /** Bytes per read for the ELF scan; a multiple of 4096. Default 4 MiB. */
  chunkSize?: number;
  /** ELF headers reported per mapping. Default 16. */
  maxElfPerMapping?: number;
}

const KIND_ORDER: readonly FindingKind[] = ['anon-exec', 'memfd-exec', 'rwx', 'deleted-exec', 'elf-in-anon'];
const PAGE = 4096;
const DEFAULT_CHUNK = 4 << 20;
const DEFAULT_MAX_ELF = 16;
const JIT = 'common in JIT runtimes (V8, JVM, .NET)';

/** Mapping kinds (everything but the ELF scan), for one mapping. */
export function classifyMapping(m: Mapping): Finding[] {
  if (isKernelSpecial(m)) return [];
  const out: Finding[] = [];
  const add = (kind: FindingKind, detail: string): void => {
    out.push({ start: m.start, end: m.end, perms: m.perms, path: m.path, kind, detail });
  };
  const size = `${m.end - m.start} bytes`;
  if (m.exec) {
    if (isMemfd(m)) {
      add('memfd-exec', `executable memory backed by a memfd (${size}): the usual trace of fileless execution (memfd_create + mmap/fexecve); .NET's W^X double mapping (/memfd:doublemapper) also does this`);
    } else if (isDeletedFile(m)) {
      add('deleted-exec', `executable mapping of a file deleted since it was mapped (${size}): a dropped payload that removed itself, or a library upgraded on disk while the process runs`);
    } else if (isAnonymousLike(m)) {
      const what = m.path === '' ? 'anonymous executable memory' : `executable ${m.path}`;
      add('anon-exec', `${what} with no file behind it (${size}): ${JIT}, otherwise injected or unpacked code`);
    }
  }
  if (m.write && m.exec) {
    const where = isAnonymousLike(m) ? JIT : 'a file mapped writable and executable (text relocations, self-modifying code)';
    add('rwx', `writable and executable at once (${m.perms}, ${size}): ${where}; also used by shellcode stagers`);
  }
  return out;
}

/** Memory the ELF scan looks at: readable, anonymous-like, and not a file (deleted or not) nor kernel-provided. */
export function elfScannable(m: Mapping): boolean {
  return m.read && isAnonymousLike(m) && !isKernelSpecial(m) && !isDeletedFile(m);
}

export async function findSuspicious(
  mappings: readonly Mapping[],
  read: (addr: bigint, length: number) => Promise<Buffer | undefined>,
  opts: SuspiciousOptions = {},
): Promise<Finding[]> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < PAGE || chunkSize % PAGE !== 0) {
    throw new RangeError(`ELF scan chunk size ${chunkSize} is not a positive multiple of ${PAGE}`);
  }
  const maxElf = opts.maxElfPerMapping ?? DEFAULT_MAX_ELF;
  if (!Number.isSafeInteger(maxElf) || maxElf < 1) throw new RangeError(`maxElfPerMapping ${maxElf}`);
  const out: Finding[] = [];
  for (const m of mappings) {
    out.push(...classifyMapping(m));
    if (elfScannable(m)) out.push(...(await scanElf(m, read, chunkSize, maxElf)));
  }
  return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind)));
}

async function scanElf(
  m: Mapping,
  read: (addr: bigint, length: number) => Promise<Buffer | undefined>,
  chunkSize: number,
  maxElf: number,
): Promise<Finding[]> {
  const found: Finding[] = [];
  const step = BigInt(chunkSize);
  const where = `${hex(m.start)}-${hex(m.end)} ${m.perms}${m.path ? ' ' + m.path : ''}`;
  for (let pos = m.start; pos < m.end; pos += step) {
    const len = Number(m.end - pos < step ? m.end - pos : step);
    const buf = await read(pos, len);
    if (!buf) continue;
    const avail = Math.min(buf.length, len);
    // first page boundary at or after pos (mappings are page-aligned, so normally 0)
    for (let off = (PAGE - Number(pos % BigInt(PAGE))) % PAGE; off + 4 <= avail; off += PAGE) {
      if (buf[off] !== 0x7f || buf[off + 1] !== 0x45 || buf[off + 2] !== 0x4c || buf[off + 3] !== 0x46) continue;
      const addr = pos + BigInt(off);
      if (found.length === maxElf) {
        const last = found[found.length - 1]!;
        last.detail += `; more than ${maxElf} ELF headers in this mapping: only the first ${maxElf} are reported`;
        return found;
      }
      found.push({
        start: addr,
        end: m.end,
        perms: m.perms,
        path: m.path,
        kind: 'elf-in-anon',
        detail:
          `${describeElf(buf.subarray(off, Math.min(avail, off + 20)))} at page start ${hex(addr)} in anonymous mapping ${where}: ` +
          'a module loaded without a file (reflective/manual mapping), or an ELF file read into memory (loaders, package managers, debuggers do this)',
      });
    }
  }
  return found;
}

const MACHINES: Readonly<Record<number, string>> = { 3: 'i386', 8: 'MIPS', 20: 'PowerPC', 21: 'PowerPC64', 22: 's390', 40: 'ARM', 62: 'x86-64', 183: 'AArch64', 243: 'RISC-V', 258: 'LoongArch' };
const TYPES: Readonly<Record<number, string>> = { 1: 'ET_REL', 2: 'ET_EXEC', 3: 'ET_DYN', 4: 'ET_CORE' };

/** 'ELF64 LSB ET_DYN x86-64' from the first 20 bytes, or 'ELF header' with what could not be decoded. */
function describeElf(h: Buffer): string {
  const cls = h[4] === 1 ? 'ELF32' : h[4] === 2 ? 'ELF64' : undefined;
  const data = h[5] === 1 ? 'LSB' : h[5] === 2 ? 'MSB' : undefined;
  if (!cls || !data) return 'ELF header (class/data bytes after the magic not valid)';
  if (h.length < 20) return `ELF header (${cls} ${data})`;
  const type = data === 'LSB' ? h.readUInt16LE(16) : h.readUInt16BE(16);
  const machine = data === 'LSB' ? h.readUInt16LE(18) : h.readUInt16BE(18);
  return `ELF header (${cls} ${data} ${TYPES[type] ?? `type ${type}`} ${MACHINES[machine] ?? `machine ${machine}`})`;
}
