import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { EHDR_SIZE, PHDR_SIZE, PN_XNUM, PT_LOAD, PT_NOTE, SHDR_SIZE, encodeNote, isElf64Le, readElfHeaders, readElfNotes } from './elf-parse.js';
import { RunIndex } from './run-index.js';
import { elfProducer } from './vbox-core.js';
import type { ByteSink, ContainerWriter, FormatSpec, MemoryImage, WritePlan } from './types.js';

const ET_CORE = 4;
const EM_X86_64 = 62;
const PAGE = 4096n;

/** One program header of a core we write: physical dumps set paddr, process cores set vaddr and memsz. */
export interface ElfSegment {
  vaddr: bigint;
  paddr: bigint;
  filesz: bigint;
  memsz: bigint;
  /** PF_R 4 | PF_W 2 | PF_X 1 */
  flags: number;
  align: bigint;
}

/**
 * ET_CORE header bytes: PT_NOTE first, then the PT_LOADs in the given order with their data following each
 * other from the first page boundary after the notes (so data stays page-aligned when sizes are pages).
 * Above 65535 headers the count moves to section header 0 (PN_XNUM), as the kernel and gdb expect.
 */
export function elfCoreHeader(segments: readonly ElfSegment[], notes: Buffer): { header: Buffer; dataOffsets: bigint[] } {
  const phnum = segments.length + (notes.length > 0 ? 1 : 0);
  const xnum = phnum >= PN_XNUM;
  const phoff = BigInt(EHDR_SIZE);
  const shoff = xnum ? phoff + BigInt(phnum * PHDR_SIZE) : 0n;
  const noteOff = phoff + BigInt(phnum * PHDR_SIZE) + (xnum ? BigInt(SHDR_SIZE) : 0n);
  let dataOff = ((noteOff + BigInt(notes.length) + PAGE - 1n) / PAGE) * PAGE;
  const header = Buffer.alloc(Number(dataOff));
  header.writeUInt32BE(0x7f454c46, 0);
  header[4] = 2; // ELFCLASS64
  header[5] = 1; // little-endian
  header[6] = 1; // EV_CURRENT
  header.writeUInt16LE(ET_CORE, 16);
  header.writeUInt16LE(EM_X86_64, 18);
  header.writeUInt32LE(1, 20);
  header.writeBigUInt64LE(phoff, 32);
  header.writeBigUInt64LE(shoff, 40);
  header.writeUInt16LE(EHDR_SIZE, 52);
  header.writeUInt16LE(PHDR_SIZE, 54);
  header.writeUInt16LE(xnum ? PN_XNUM : phnum, 56);
  header.writeUInt16LE(xnum ? SHDR_SIZE : 0, 58);
  header.writeUInt16LE(xnum ? 1 : 0, 60);
  let p = Number(phoff);
  if (notes.length > 0) {
    header.writeUInt32LE(PT_NOTE, p);
    header.writeBigUInt64LE(noteOff, p + 8);
    header.writeBigUInt64LE(BigInt(notes.length), p + 32);
    header.writeBigUInt64LE(BigInt(notes.length), p + 40);
    p += PHDR_SIZE;
  }
  const dataOffsets: bigint[] = [];
  for (const s of segments) {
    header.writeUInt32LE(PT_LOAD, p);
    header.writeUInt32LE(s.flags, p + 4);
    header.writeBigUInt64LE(dataOff, p + 8);
    header.writeBigUInt64LE(s.vaddr, p + 16);
    header.writeBigUInt64LE(s.paddr, p + 24);
    header.writeBigUInt64LE(s.filesz, p + 32);
    header.writeBigUInt64LE(s.memsz, p + 40);
    header.writeBigUInt64LE(s.align, p + 48);
    dataOffsets.push(dataOff);
    dataOff += s.filesz;
    p += PHDR_SIZE;
  }
  if (xnum) header.writeUInt32LE(phnum, Number(shoff) + 44); // sh_info of section 0 holds the real count
  notes.copy(header, Number(noteOff));
  return { header, dataOffsets };
}

/**
 * Header bytes of a physical-memory ELF core as QEMU's dump-guest-memory (paging off) writes it: one PT_LOAD
 * per run in ascending p_paddr with p_filesz == p_memsz, marked RWX.
 */
export function elfHeader(plan: WritePlan): { header: Buffer; dataOffsets: bigint[] } {
  const segments = plan.runs.map((r) => ({ vaddr: 0n, paddr: r.start, filesz: r.end - r.start, memsz: r.end - r.start, flags: 7, align: 0n }));
  return elfCoreHeader(segments, Buffer.concat(plan.notes.map(encodeNote)));
}

class ElfImage implements MemoryImage {
  readonly format = 'elf' as const;
  constructor(
    private readonly file: RandomAccessFile,
    private readonly index: RunIndex,
    readonly notes: MemoryImage['notes'],
    readonly details: Record<string, unknown>,
  ) {}
  get runs(): readonly Range[] {
    return this.index.runs;
  }
  fileOffsetOf(addr: bigint): bigint | undefined {
    return this.index.fileOffsetOf(addr);
  }
  firstAddressIn(start: bigint, end: bigint): bigint | undefined {
    return this.index.firstAddressIn(start, end);
  }
  read(addr: bigint, length: number): Promise<Buffer> {
    return this.index.read(this.file, addr, length);
  }
  close(): Promise<void> {
    return this.file.close();
  }
}

export const elf: FormatSpec = {
  name: 'elf',
  extension: 'elf',
  description: 'ELF core with one PT_LOAD per physical run (QEMU dump-guest-memory, VirtualBox, DumpIt layout)',
  needsSidecarMap: false,
  detect(head) {
    return isElf64Le(head) && head.readUInt16LE(16) === ET_CORE;
  },
  async open(file) {
    const h = await readElfHeaders(file);
    const withData = h.phdrs.filter((p) => p.type === PT_LOAD && p.filesz > 0n);
    // a process core (gdb, the kernel, `memdump process`) leaves p_paddr 0 and addresses memory by p_vaddr
    const virtual = withData.length > 0 && withData.every((p) => p.paddr === 0n) && withData.some((p) => p.vaddr !== 0n);
    const loads = withData.map((p) => (virtual ? { ...p, paddr: p.vaddr } : p)).sort((a, b) => (a.paddr < b.paddr ? -1 : a.paddr > b.paddr ? 1 : 0));
    const index = new RunIndex('ELF');
    for (const p of loads) {
      if (p.offset + p.filesz > file.size) {
        throw new MemdumpError('E_TRUNCATED', `ELF PT_LOAD for physical ${hex(p.paddr)} needs ${p.filesz} bytes at ${hex(p.offset)}, file has ${file.size}`, {
          details: { offset: hex(p.offset) },
        });
      }
      if (p.paddr + p.filesz > 1n << 64n) {
        throw new MemdumpError('E_CORRUPT', `ELF PT_LOAD at physical ${hex(p.paddr)} runs past the end of the address space`, { details: { offset: hex(p.offset) } });
      }
      index.add({ start: p.paddr, end: p.paddr + p.filesz }, p.offset, p.offset);
    }
    const notes = await readElfNotes(file, h.phdrs);
    const memszBeyondFile = loads.filter((p) => p.memsz > p.filesz).length;
    return new ElfImage(file, index, notes, {
      elfType: h.type,
      addressSpace: virtual ? 'virtual' : 'physical',
      machine: h.machine,
      loadSegments: loads.length,
      noteNames: [...new Set(notes.map((n) => n.name))],
      ...elfProducer(notes),
      ...(memszBeyondFile > 0 ? { segmentsWithMemszBeyondFilesz: memszBeyondFile } : {}),
    });
  },
  createWriter(out: ByteSink, plan: WritePlan): ContainerWriter {
    return {
      async begin() {
        await out.write(elfHeader(plan).header);
      },
      async beginRange() {},
      data: (chunk) => out.write(chunk),
      async endRange() {},
      async end() {},
    };
  },
};
