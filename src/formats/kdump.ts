/**
 * Reader for makedumpfile's kdump-compressed dumps ("KDUMP   "), plain or flattened (makedumpfile -F, and every
 * kdump-* format QEMU's dump-guest-memory writes). Runs are the pages set in the 2nd bitmap; excluded pages are
 * holes. Layout: kdump-header.ts; flattened streams: kdump-flat.ts; page index: kdump-pages.ts; page reads:
 * kdump-read.ts; decompression: kdump-decompress.ts.
 */
import { ByteReader, corrupt } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { MAX_NOTE_BYTES, isElf64Le, parseNotes } from './elf-parse.js';
import { type DumpBytes, isFlattened, openFlattened, plainBytes } from './kdump-flat.js';
import {
  DISK_DUMP_HEADER_SIZE,
  DUMP_DH_COMPRESSED_INCOMPLETE,
  DUMP_DH_COMPRESSED_LZO,
  DUMP_DH_COMPRESSED_SNAPPY,
  DUMP_DH_COMPRESSED_ZLIB,
  DUMP_DH_COMPRESSED_ZSTD,
  DUMP_DH_EXCLUDED_VMEMMAP,
  KDUMP_SIGNATURE,
  SUB_HEADER_SIZE,
  type DiskDumpHeader,
  type KdumpLayout,
  type KdumpSubHeader,
  layoutOf,
  parseDiskDumpHeader,
  parseSubHeader,
} from './kdump-header.js';
import { PageMap } from './kdump-pages.js';
import { PageReader } from './kdump-read.js';
import type { FormatReader, ImageNote, MemoryImage } from './types.js';

/** VMCOREINFO is a few KiB of text; anything near this is not one. */
const MAX_VMCOREINFO = 1 << 20;
/** Eraseinfo is one line per erased symbol; beyond this it is shown cut (the dump stays readable). */
const MAX_ERASEINFO_SHOWN = 64 << 10;

class KdumpImage implements MemoryImage {
  readonly format = 'kdump' as const;
  constructor(
    private readonly file: RandomAccessFile,
    readonly runs: readonly Range[],
    readonly notes: readonly ImageNote[],
    readonly details: Record<string, unknown>,
    private readonly reader: PageReader,
  ) {}
  async read(addr: bigint, length: number): Promise<Buffer> {
    const b = await this.reader.read(addr, length);
    // info prints details after reading: say which compressions the pages really used
    this.details['pageCompressionSeen'] = [...this.reader.seen].sort();
    return b;
  }
  close(): Promise<void> {
    return this.file.close();
  }
}

function statusNames(status: number): string[] {
  const names: [number, string][] = [
    [DUMP_DH_COMPRESSED_ZLIB, 'zlib'],
    [DUMP_DH_COMPRESSED_LZO, 'lzo'],
    [DUMP_DH_COMPRESSED_SNAPPY, 'snappy'],
    [DUMP_DH_COMPRESSED_ZSTD, 'zstd'],
    [DUMP_DH_COMPRESSED_INCOMPLETE, 'incomplete'],
    [DUMP_DH_EXCLUDED_VMEMMAP, 'excluded-vmemmap'],
  ];
  return names.filter(([bit]) => status & bit).map(([, n]) => n);
}

/** A note blob at an offset the sub-header gives, bounded by `cap` and the dump size. */
async function blob(bytes: DumpBytes, offset: bigint, size: bigint, cap: number, what: string): Promise<Buffer | undefined> {
  if (size === 0n) return undefined;
  if (size > BigInt(cap)) throw new MemdumpError('E_TOO_LARGE', `kdump ${what} of ${size} bytes exceeds ${cap}`);
  if (offset <= 0n || offset + size > bytes.size) throw corrupt(`kdump ${what} (${size} bytes at ${hex(offset)}) lies outside the dump`, offset);
  return bytes.read(offset, Number(size), `kdump ${what}`);
}

async function readNotes(bytes: DumpBytes, sub: KdumpSubHeader | undefined): Promise<ImageNote[]> {
  if (!sub) return [];
  const notes: ImageNote[] = [];
  const elfNotes = await blob(bytes, sub.offsetNote, sub.sizeNote, MAX_NOTE_BYTES, 'ELF notes');
  if (elfNotes) notes.push(...parseNotes(new ByteReader(elfNotes, sub.offsetNote, 'kdump ELF note')));
  const info = await blob(bytes, sub.offsetVmcoreinfo, sub.sizeVmcoreinfo, MAX_VMCOREINFO, 'VMCOREINFO');
  // QEMU also puts the guest's VMCOREINFO among the ELF notes: keep one copy
  if (info && !notes.some((n) => n.name === 'VMCOREINFO' && n.desc.equals(info))) notes.push({ name: 'VMCOREINFO', type: 0, desc: Buffer.from(info) });
  return notes;
}

/**
 * makedumpfile --config erases symbols' memory on purpose and lists what it erased here ("erase SYMBOL size N").
 * It is text for people: shown up to a cap, and never a reason to refuse the dump.
 */
async function readEraseinfo(bytes: DumpBytes, sub: KdumpSubHeader | undefined): Promise<{ lines: string[]; bytes: number; cut: boolean; missing: boolean } | undefined> {
  if (!sub || sub.sizeEraseinfo === 0n) return undefined;
  const size = sub.sizeEraseinfo;
  if (sub.offsetEraseinfo <= 0n || sub.offsetEraseinfo >= bytes.size) return { lines: [], bytes: Number(size > 1n << 52n ? 1n << 52n : size), cut: false, missing: true };
  const room = bytes.size - sub.offsetEraseinfo;
  const want = Math.min(MAX_ERASEINFO_SHOWN, Number(size < room ? size : room));
  const text = (await bytes.read(sub.offsetEraseinfo, want, 'kdump eraseinfo')).toString('latin1');
  const lines = text.split('\n').filter((l) => l.length > 0);
  const cut = BigInt(want) < size;
  if (cut && lines.length > 0) lines.pop();
  return { lines, bytes: Number(size > 1n << 52n ? 1n << 52n : size), cut, missing: false };
}

function describe(h: DiskDumpHeader, sub: KdumpSubHeader | undefined, layout: KdumpLayout, bytes: DumpBytes, pages: PageMap, extra: Record<string, unknown>, warnings: string[]): Record<string, unknown> {
  const incomplete = (h.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0 || extra['flattenedTruncated'] !== undefined;
  const d: Record<string, unknown> = {
    ...(warnings.length > 0 ? { warning: warnings.join('; ') } : {}),
    headerVersion: h.headerVersion,
    flattened: bytes.flattened,
    ...extra,
    sysname: h.utsname.sysname,
    nodename: h.utsname.nodename,
    release: h.utsname.release,
    version: h.utsname.version,
    machine: h.utsname.machine,
    domainname: h.utsname.domainname,
    timestamp: h.timestamp.sec > 0n && h.timestamp.sec < 1n << 40n ? new Date(Number(h.timestamp.sec) * 1000).toISOString() : h.timestamp.sec.toString(),
    status: statusNames(h.status),
    incomplete,
    blockSize: h.blockSize,
    maxMapnr: Number(layout.maxMapnr),
    nrCpus: h.nrCpus,
    currentCpu: h.currentCpu,
    dumpedPages: pages.descCount,
    runs: pages.runCount,
  };
  if (sub) {
    d['physBase'] = hex(sub.physBase);
    d['dumpLevel'] = sub.dumpLevel;
    if (sub.split !== 0) {
      const bs = BigInt(h.blockSize);
      d['split'] = {
        startPfn: hex(layout.startPfn),
        endPfn: hex(layout.endPfn),
        addresses: layout.startPfn === layout.endPfn ? 'none' : `${hex(layout.startPfn * bs)}-${hex(layout.endPfn * bs - 1n)}`,
      };
    }
  }
  return d;
}

/** Open a kdump (plain or flattened) from an open file. */
export async function openKdump(file: RandomAccessFile): Promise<MemoryImage> {
  const head = await file.readAt(0n, 32);
  const flat = isFlattened(head) ? await openFlattened(file) : undefined;
  const bytes = flat ?? plainBytes(file);
  // a short file still gets its header parsed, so the error names the field that is missing
  const first = await bytes.read(0n, bytes.size < BigInt(DISK_DUMP_HEADER_SIZE) ? Number(bytes.size) : DISK_DUMP_HEADER_SIZE, 'kdump header');
  if (flat && first.subarray(0, 8).toString('latin1') !== KDUMP_SIGNATURE) {
    if (isElf64Le(first) || first.subarray(0, 4).toString('latin1') === '\x7fELF') {
      throw new MemdumpError('E_UNSUPPORTED', `${file.path} is a flattened ELF dump (makedumpfile -E -F): rebuild it with \`makedumpfile -R out.elf < ${file.path}\` and read out.elf`);
    }
    throw corrupt('flattened stream does not hold a kdump ("KDUMP   " missing at logical offset 0)', 0n);
  }
  const h = parseDiskDumpHeader(first);
  let sub: KdumpSubHeader | undefined;
  if (h.subHdrSize > 0) {
    const at = BigInt(h.blockSize);
    sub = parseSubHeader(await bytes.read(at, SUB_HEADER_SIZE, 'kdump sub-header'), h.headerVersion, at);
  }
  const layout = layoutOf(h, sub, bytes.size);
  const pages = await PageMap.build(bytes, layout);
  const warnings: string[] = [];
  const extra: Record<string, unknown> = flat ? { flattenedRecords: flat.records, flattenedInOrder: flat.inOrder } : {};
  let missing = 0;
  const flagged = (h.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0;
  if (flagged) warnings.push('INCOMPLETE DUMP: makedumpfile stopped before writing every page (disk full?); pages it never wrote are holes');
  if (flat?.truncatedAt !== undefined) {
    // makedumpfile -F on a full disk: the stream stops mid-record and the header never learns it is incomplete
    extra['flattenedTruncated'] = { atStreamOffset: flat.truncatedAt.toString(), streamBytes: file.size.toString() };
    warnings.push(`INCOMPLETE DUMP: the flattened stream stops at byte ${flat.truncatedAt} without its end record (disk full or pipe cut?); pages it never wrote are holes`);
  }
  if (flagged || flat?.truncatedAt !== undefined) missing = await pages.trimIncomplete();
  else await pages.checkComplete();
  if (missing > 0) extra['missingPages'] = missing;
  if (sub && sub.split !== 0) {
    warnings.push(`SPLIT DUMP: this file holds one slice of a makedumpfile --split set (pfn ${hex(layout.startPfn)}-${hex(layout.endPfn)}, ${pages.descCount} pages); the other files hold the rest of memory`);
  }
  const erase = await readEraseinfo(bytes, sub);
  if (erase) {
    extra['eraseinfo'] = erase.missing ? { bytes: erase.bytes, missing: true } : { lines: erase.lines, bytes: erase.bytes, ...(erase.cut ? { cut: true } : {}) };
    warnings.push(`ERASED MEMORY: makedumpfile --config overwrote memory on purpose (${erase.missing ? 'eraseinfo not in the file' : `${erase.lines.length} erase rule(s)`}); erased bytes are not what the machine held`);
  }
  const notes = await readNotes(bytes, sub);
  const details = describe(h, sub, layout, bytes, pages, extra, warnings);
  return new KdumpImage(file, pages.runs, notes, details, new PageReader(bytes, pages, layout.blockSize));
}

export const kdump: FormatReader = {
  name: 'kdump',
  description: 'makedumpfile / QEMU kdump-compressed dump (diskdump, flattened or not; zlib, lzo, snappy, zstd pages)',
  detect(head) {
    return (head.length >= 8 && head.subarray(0, 8).toString('latin1') === KDUMP_SIGNATURE) || isFlattened(head);
  },
  open: (file) => openKdump(file),
};
