import { ByteReader, corrupt, truncated } from '../core/bytes.js';
import { MemdumpError } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import type { ImageNote } from './types.js';

export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const PN_XNUM = 0xffff;
export const EHDR_SIZE = 64;
export const PHDR_SIZE = 56;
export const SHDR_SIZE = 64;
/** Bounds so a hostile header cannot make us allocate without limit. */
export const MAX_PHDRS = 1 << 20;
export const MAX_NOTE_BYTES = 64 << 20;
export const MAX_NOTES = 1 << 16;

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: bigint;
  vaddr: bigint;
  paddr: bigint;
  filesz: bigint;
  memsz: bigint;
  align: bigint;
}

export interface ElfHeaders {
  type: number;
  machine: number;
  phdrs: ProgramHeader[];
}

export function isElf64Le(head: Buffer): boolean {
  return head.length >= EHDR_SIZE && head.readUInt32BE(0) === 0x7f454c46 && head[4] === 2 && head[5] === 1;
}

/** Parse the ELF64 header and program headers of a file, bounded by the file size (or `sizeLimit` for /proc/kcore, whose stat size is fictional). */
export async function readElfHeaders(file: RandomAccessFile, sizeLimit: bigint = file.size): Promise<ElfHeaders> {
  const eh = new ByteReader(await file.readExact(0n, EHDR_SIZE, 'ELF header'), 0n, 'ELF header');
  if (!isElf64Le(eh.buf)) throw corrupt('not a little-endian ELF64 file', 0n);
  const type = eh.u16(16);
  const machine = eh.u16(18);
  const phoff = eh.u64(32);
  const shoff = eh.u64(40);
  const phentsize = eh.u16(54);
  let phnum = eh.u16(56);
  if (phentsize !== PHDR_SIZE) throw corrupt(`ELF program header size ${phentsize}, expected ${PHDR_SIZE}`, 54n);
  if (phnum === PN_XNUM) {
    // the real count lives in section header 0's sh_info
    if (shoff === 0n) throw corrupt('ELF uses PN_XNUM but has no section header to hold the count', 40n);
    if (shoff + BigInt(SHDR_SIZE) > sizeLimit) throw truncated('ELF PN_XNUM section header runs past the end of the file', shoff);
    const sh = new ByteReader(await file.readExact(shoff, SHDR_SIZE, 'ELF section header 0'), shoff, 'ELF section header');
    phnum = sh.u32(44);
  }
  if (phnum > MAX_PHDRS) throw new MemdumpError('E_TOO_LARGE', `ELF has ${phnum} program headers (limit ${MAX_PHDRS})`);
  const phBytes = BigInt(phnum) * BigInt(PHDR_SIZE);
  if (phoff + phBytes > sizeLimit) throw truncated(`ELF program headers (${phnum}) run past the end of the file`, phoff);
  const ph = new ByteReader(await file.readExact(phoff, Number(phBytes), 'ELF program headers'), phoff, 'ELF program headers');
  const phdrs: ProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = i * PHDR_SIZE;
    phdrs.push({
      type: ph.u32(o),
      flags: ph.u32(o + 4),
      offset: ph.u64(o + 8),
      vaddr: ph.u64(o + 16),
      paddr: ph.u64(o + 24),
      filesz: ph.u64(o + 32),
      memsz: ph.u64(o + 40),
      align: ph.u64(o + 48),
    });
  }
  return { type, machine, phdrs };
}

/** Parse the notes of every PT_NOTE segment (4-byte aligned, as Linux and QEMU write them). */
export async function readElfNotes(file: RandomAccessFile, phdrs: readonly ProgramHeader[], sizeLimit: bigint = file.size): Promise<ImageNote[]> {
  const notes: ImageNote[] = [];
  let budget = MAX_NOTE_BYTES;
  for (const p of phdrs) {
    if (p.type !== PT_NOTE || p.filesz === 0n) continue;
    if (p.filesz > BigInt(budget)) throw new MemdumpError('E_TOO_LARGE', `ELF note segment of ${p.filesz} bytes exceeds ${MAX_NOTE_BYTES}`);
    if (p.offset + p.filesz > sizeLimit) throw truncated('ELF note segment runs past the end of the file', p.offset);
    budget -= Number(p.filesz);
    const r = new ByteReader(await file.readExact(p.offset, Number(p.filesz), 'ELF notes'), p.offset, 'ELF note');
    notes.push(...parseNotes(r));
  }
  return notes;
}

export function parseNotes(r: ByteReader): ImageNote[] {
  const out: ImageNote[] = [];
  let o = 0;
  while (o + 12 <= r.length) {
    const namesz = r.u32(o);
    const descsz = r.u32(o + 4);
    const type = r.u32(o + 8);
    // kcore pads its note segment with zeros; an all-zero header ends the list
    if (namesz === 0 && descsz === 0 && type === 0) break;
    const nameOff = o + 12;
    const descOff = nameOff + align4(namesz);
    const name = r.bytes(nameOff, namesz).toString('latin1').replace(/\0+$/, '');
    const desc = Buffer.from(r.bytes(descOff, descsz));
    out.push({ name, type, desc });
    if (out.length > MAX_NOTES) throw new MemdumpError('E_TOO_LARGE', `more than ${MAX_NOTES} ELF notes`);
    o = descOff + align4(descsz);
  }
  return out;
}

export function align4(n: number): number {
  return (n + 3) & ~3;
}

export function encodeNote(n: ImageNote): Buffer {
  const name = Buffer.from(n.name + '\0', 'latin1');
  const b = Buffer.alloc(12 + align4(name.length) + align4(n.desc.length));
  b.writeUInt32LE(name.length, 0);
  b.writeUInt32LE(n.desc.length, 4);
  b.writeUInt32LE(n.type, 8);
  name.copy(b, 12);
  n.desc.copy(b, 12 + align4(name.length));
  return b;
}
