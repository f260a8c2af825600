/**
 * Windows kernel crash dumps (.dmp, MEMORY.DMP): read-only. Header in wincrash-header.ts, page layouts in
 * wincrash-layout.ts, the page index in wincrash-map.ts. Minidumps ("MDMP", user-mode or kernel small dumps),
 * triage and header-only dumps hold no physical memory map: they are recognised and refused with E_UNSUPPORTED, so
 * `info` names them instead of saying "unknown format". Encrypted dumps (DUMP_FILE_ATTRIBUTES.EncryptedDumpData
 * without DecryptedDump, Windows 11) are refused the same way: their page data cannot be read without the key.
 * A dump shorter than its map opens with the pages it holds, and says so in details.truncatedPages and a warning.
 */
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import type { FormatReader, MemoryImage } from './types.js';
import { kdbgState } from './wincrash-kdbg.js';
import {
  ATTR_DECRYPTED,
  ATTR_ENCRYPTED,
  ATTR_INSUFFICIENT_SIZE,
  type CrashHeader,
  HEADER32_SIZE,
  HEADER64_SIZE,
  attributeFlags,
  filetimeToIso,
  headerBits,
  parseCrashHeader,
  uptimeText,
} from './wincrash-header.js';
import { type LayoutFacts, bitmapLayout, fullLayout, summaryLayout } from './wincrash-layout.js';
import { rdmpLayout } from './wincrash-rdmp.js';
import { PageMap } from './wincrash-map.js';
import { bugCheckText, buildKind, dumpTypeName, machineName, productTypeName } from './wincrash-names.js';

const MDMP_SIGNATURE = 0x504d444d; // "MDMP"
/** MINIDUMP_VERSION (low word of MINIDUMP_HEADER.Version, minidumpapiset.h). */
const MDMP_VERSION = 0xa793;

export function isMinidump(head: Buffer): boolean {
  return head.length >= 8 && head.readUInt32LE(0) === MDMP_SIGNATURE && head.readUInt16LE(4) === MDMP_VERSION;
}

class WinCrashImage implements MemoryImage {
  readonly format = 'wincrash' as const;
  readonly notes = [];
  constructor(
    private readonly file: RandomAccessFile,
    private readonly map: PageMap,
    readonly details: Record<string, unknown>,
  ) {}
  get runs(): readonly Range[] {
    return this.map.runs;
  }
  read(addr: bigint, length: number): Promise<Buffer> {
    return this.map.read(this.file, addr, length);
  }
  fileOffsetOf(addr: bigint): bigint | undefined {
    return this.map.fileOffsetOf(addr);
  }
  firstAddressIn(start: bigint, end: bigint): bigint | undefined {
    return this.map.firstAddressIn(start, end);
  }
  close(): Promise<void> {
    return this.file.close();
  }
}

function unsupported(message: string, details: Record<string, unknown> = {}): MemdumpError {
  return new MemdumpError('E_UNSUPPORTED', message, { details });
}

/** Which page layout a DumpType uses, or the reason memdump cannot read it. */
function layoutOf(h: CrashHeader): 'full' | 'bitmap' | 'summary' | 'rdmp' {
  switch (h.dumpType) {
    case 1:
      return 'full';
    case 5:
    case 6:
    case 7:
      return 'bitmap';
    case 2:
      // two summary layouts share this DumpType: wincrash-layout.ts tells them apart
      return 'summary';
    case 8:
    case 9:
    case 10:
      if (h.bits === 64) return 'rdmp';
      break;
    case 3:
      throw unsupported('header-only crash dump (DumpType 3): it holds no memory pages', { dumpType: 3 });
    case 4:
      throw unsupported('triage crash dump (DumpType 4, a small memory dump): it holds a few pages of crash context, not a physical memory map; open it with WinDbg', { dumpType: 4 });
  }
  throw unsupported(`Windows crash dump with DumpType ${h.dumpType} (${dumpTypeName(h.dumpType)}) is not supported`, { dumpType: h.dumpType });
}

export function describe(h: CrashHeader, layout: LayoutFacts, dumpKind: string): Record<string, unknown> {
  const d: Record<string, unknown> = {
    // MinorVersion is the build number; the header does not name the product (10, 11, Server ...)
    windowsBuild: `build ${h.minorVersion}`,
    build: `${buildKind(h.majorVersion)} build ${h.minorVersion} (MajorVersion ${hex(h.majorVersion)}, MinorVersion ${h.minorVersion})`,
    header: `DUMP_HEADER${h.bits} (${h.bits === 64 ? 'PAGEDU64' : 'PAGEDUMP'})`,
    machine: machineName(h.machineImageType),
    processors: h.numberProcessors,
    bugcheck: bugCheckText(h.bugCheckCode),
    bugcheckParameters: h.bugCheckParameters.map(hex),
    dumpType: dumpKind,
    directoryTableBase: hex(h.directoryTableBase),
    pfnDataBase: hex(h.pfnDataBase),
    psLoadedModuleList: hex(h.psLoadedModuleList),
    psActiveProcessHead: hex(h.psActiveProcessHead),
    kdDebuggerDataBlock: hex(h.kdDebuggerDataBlock),
    kdSecondaryVersion: h.kdSecondaryVersion,
    systemTime: filetimeToIso(h.systemTime),
    systemUpTime: h.systemUpTime === undefined ? null : uptimeText(h.systemUpTime),
    requiredDumpSpace: h.requiredDumpSpace.toString(),
    comment: h.comment,
  };
  if (h.exceptionCode !== undefined) d['exceptionCode'] = hex(h.exceptionCode);
  if (h.exceptionAddress !== undefined) d['exceptionAddress'] = hex(h.exceptionAddress);
  const b = h.physicalMemoryBlock;
  // in bitmap dumps too: the RAM the machine had, beside the pages the dump kept
  d['physicalMemoryBlock'] = {
    numberOfRuns: b.numberOfRuns,
    numberOfPages: b.numberOfPages.toString(),
    runs: b.runs.map((r) => `${hex(r.basePage)}+${hex(r.pageCount)}`),
  };
  if (h.paeEnabled !== undefined) d['pae'] = h.paeEnabled;
  if (h.versionUser) d['versionUser'] = h.versionUser;
  if (h.productType !== undefined) d['productType'] = productTypeName(h.productType);
  if (h.writerStatus !== undefined) d['writerStatus'] = hex(h.writerStatus);
  // absent (the "PAGE" fill) is not the same as 0: say which
  d['attributes'] = h.attributes === undefined ? 'absent (header fill)' : hex(h.attributes);
  if (h.attributes !== undefined) d['attributeFlags'] = attributeFlags(h.attributes);
  if (h.bootId !== undefined) d['bootId'] = hex(h.bootId);
  d['layout'] = layout.facts;
  return d;
}

async function openWinCrash(file: RandomAccessFile): Promise<MemoryImage> {
  const head = await file.readAt(0n, 8);
  if (isMinidump(head)) {
    throw unsupported(`${file.path} is a Windows minidump (MDMP): it holds selected process or kernel context, not physical memory; open it with WinDbg`, { signature: 'MDMP' });
  }
  const bits = headerBits(head);
  if (bits === undefined) throw new MemdumpError('E_CORRUPT', `${file.path}: no PAGEDUMP / PAGEDU64 signature at offset 0x0`, { details: { offset: '0x0' } });
  const h = parseCrashHeader(await file.readExact(0n, bits === 64 ? HEADER64_SIZE : HEADER32_SIZE, `DUMP_HEADER${bits}`));
  const attributes = h.attributes ?? 0;
  if (attributes & ATTR_ENCRYPTED && !(attributes & ATTR_DECRYPTED)) {
    throw unsupported('encrypted Windows crash dump (DUMP_FILE_ATTRIBUTES.EncryptedDumpData): decrypt it with the key first', { attributes: hex(attributes) });
  }
  const kind = layoutOf(h);
  const map = new PageMap(`Windows crash dump (${kind})`, file.size);
  const layout =
    kind === 'full' ? fullLayout(h, map) : kind === 'bitmap' ? await bitmapLayout(file, h, map) : kind === 'summary' ? await summaryLayout(file, h, map) : await rdmpLayout(file, h, map);
  map.seal();
  if (map.count === 0) {
    if (map.truncatedPages > 0) {
      throw new MemdumpError('E_TRUNCATED', `${file.path}: the crash dump lists ${map.truncatedPages} pages and the file holds none of them (it has ${file.size} bytes)`, {
        details: { truncatedPages: map.truncatedPages, fileSize: file.size.toString() },
      });
    }
    throw new MemdumpError('E_CORRUPT', `${file.path}: the crash dump holds no memory pages`, { details: { dumpType: h.dumpType } });
  }
  const summary = typeof layout.facts['summary'] === 'string' ? `, ${layout.facts['summary']}` : '';
  const details = describe(h, layout, `${dumpTypeName(h.dumpType)}${summary}`);
  if (map.truncatedPages > 0) {
    details['truncatedPages'] = map.truncatedPages;
    const why = attributes & ATTR_INSUFFICIENT_SIZE ? 'Windows flagged InsufficientDumpfileSize: the dump file was too small for the memory' : 'the file was cut short or its map lies';
    details['warning'] =
      `INCOMPLETE: ${map.truncatedPages} of the ${map.storedPages} pages the dump lists lie past the end of the file (from page ${hex(map.firstMissingPfn ?? 0n)}); ` +
      `only the ${map.heldPages} pages it holds are readable (${why})`;
  } else if (attributes & ATTR_INSUFFICIENT_SIZE) {
    details['warning'] = 'Windows flagged InsufficientDumpfileSize: pages that did not fit were dropped when the dump was written';
  }
  const image = new WinCrashImage(file, map, details);
  details['kdDebuggerDataBlockState'] = await kdbgState(image, h);
  return image;
}

export const wincrash: FormatReader = {
  name: 'wincrash',
  description: 'Windows crash dump (PAGEDUMP 32-bit / PAGEDU64 64-bit; full, kernel summary, bitmap and RDMP kernel/complete dumps)',
  detect(head) {
    return headerBits(head) !== undefined || isMinidump(head);
  },
  open: (file) => openWinCrash(file),
};
