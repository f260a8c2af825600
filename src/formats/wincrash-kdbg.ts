/**
 * Is the KdDebuggerDataBlock in the dump readable as it is? The header gives its kernel virtual address; Windows 8+
 * x64 keeps the block encoded in memory (KdpDataBlockEncoded) until a debugger asks, and an encoded block is what
 * makes Volatility's KDBG scan fail. We translate the address through the dump's own page tables (DirectoryTableBase)
 * and look for the "KDBG" OwnerTag at +0x10 of the block (DBGKD_DEBUG_DATA_HEADER64: LIST_ENTRY64, OwnerTag, Size),
 * which costs at most five small reads. Page table formats: Intel SDM vol. 3A ch. 4 (4-level, PAE, 32-bit paging).
 */
import { MemdumpError, hex } from '../core/errors.js';
import type { MemoryImage } from './types.js';
import type { CrashHeader } from './wincrash-header.js';

const KDBG_TAG = 0x4742444b; // "KDBG"
const PRESENT = 1n;
const LARGE = 1n << 7n;

type Reader = (addr: bigint, width: 4 | 8) => Promise<bigint>;

/** 4-level paging (x64). */
async function walk64(read: Reader, cr3: bigint, va: bigint): Promise<bigint | undefined> {
  const mask = 0x000ffffffffff000n;
  let table = cr3 & mask;
  const shifts = [39n, 30n, 21n, 12n];
  for (let level = 0; level < 4; level++) {
    const e = await read(table + ((va >> shifts[level]!) & 0x1ffn) * 8n, 8);
    if (!(e & PRESENT)) return undefined;
    if (level === 3) return (e & mask) | (va & 0xfffn);
    if (level > 0 && e & LARGE) {
      const size = 1n << shifts[level]!;
      return (e & mask & ~(size - 1n)) | (va & (size - 1n));
    }
    table = e & mask;
  }
  return undefined;
}

/** PAE paging (32-bit with PaeEnabled): CR3 holds a 32-byte aligned table of 4 PDPTEs. */
async function walkPae(read: Reader, cr3: bigint, va: bigint): Promise<bigint | undefined> {
  const mask = 0x000ffffffffff000n;
  const pdpte = await read((cr3 & ~0x1fn) + ((va >> 30n) & 3n) * 8n, 8);
  if (!(pdpte & PRESENT)) return undefined;
  const pde = await read((pdpte & mask) + ((va >> 21n) & 0x1ffn) * 8n, 8);
  if (!(pde & PRESENT)) return undefined;
  if (pde & LARGE) return (pde & mask & ~0x1fffffn) | (va & 0x1fffffn);
  const pte = await read((pde & mask) + ((va >> 12n) & 0x1ffn) * 8n, 8);
  return pte & PRESENT ? (pte & mask) | (va & 0xfffn) : undefined;
}

/** 32-bit paging without PAE: 4-byte entries, 4 MiB large pages. */
async function walk32(read: Reader, cr3: bigint, va: bigint): Promise<bigint | undefined> {
  const pde = await read((cr3 & 0xfffff000n) + ((va >> 22n) & 0x3ffn) * 4n, 4);
  if (!(pde & PRESENT)) return undefined;
  if (pde & LARGE) return (pde & 0xffc00000n) | (va & 0x3fffffn);
  const pte = await read((pde & 0xfffff000n) + ((va >> 12n) & 0x3ffn) * 4n, 4);
  return pte & PRESENT ? (pte & 0xfffff000n) | (va & 0xfffn) : undefined;
}

/** Virtual to physical through the dump's page tables, or undefined (not mapped, or a table page not in the dump). */
export async function translate(img: MemoryImage, h: CrashHeader, va: bigint): Promise<bigint | undefined> {
  const read: Reader = async (addr, width) => {
    const b = await img.read(addr, width);
    return width === 8 ? b.readBigUInt64LE(0) : BigInt(b.readUInt32LE(0));
  };
  try {
    if (h.machineImageType === 0x8664) return await walk64(read, h.directoryTableBase, va);
    if (h.machineImageType === 0x14c) return h.paeEnabled ? await walkPae(read, h.directoryTableBase, va) : await walk32(read, h.directoryTableBase, va & 0xffffffffn);
    return undefined;
  } catch (e) {
    if (e instanceof MemdumpError && e.code === 'E_CORRUPT') return undefined;
    throw e;
  }
}

/** One line for `info`: whether the debugger data block can be found as it is, and why not. */
export async function kdbgState(img: MemoryImage, h: CrashHeader): Promise<string> {
  if (h.kdDebuggerDataBlock === 0n) return 'not set in the header';
  if (h.machineImageType !== 0x8664 && h.machineImageType !== 0x14c) return `not checked (no page walk for machine ${hex(h.machineImageType)})`;
  const pa = await translate(img, h, h.kdDebuggerDataBlock + 0x10n);
  if (pa === undefined) return 'not checked (its address does not translate to a page held in the dump)';
  let tag: Buffer;
  try {
    tag = await img.read(pa, 8);
  } catch (e) {
    if (e instanceof MemdumpError && e.code === 'E_CORRUPT') return 'not checked (its page is not in the dump)';
    throw e;
  }
  if (tag.readUInt32LE(0) === KDBG_TAG) return `plain (KDBG tag at physical ${hex(pa - 0x10n)}, size ${hex(tag.readUInt32LE(4))})`;
  return `encoded or damaged (no KDBG tag at physical ${hex(pa - 0x10n)})`;
}
