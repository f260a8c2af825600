/**
 * The physical map of a VMware checkpoint, from the tags of its "memory" group (sources in vmware-tags.ts).
 *
 * Memory is stored page after page, either in the .vmem beside the state file or in the "Memory" block inside it.
 * regionsCount regions say where those pages belong: region i covers regionSize[i] pages starting at physical page
 * regionPPN[i], stored from page regionPageNum[i] of the memory. The two differ once a guest has RAM above the PCI
 * hole (below 4 GiB the hole is skipped in the file, so RAM at 4 GiB is stored right after RAM below 3 GiB).
 * Without regions (small guests, older products) the memory is one run from physical 0, as crash reads it.
 */
import { corrupt, truncated } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { Range } from '../core/ranges.js';
import type { VmwareBlock, VmwareTag } from './vmware-tags.js';

export const VMWARE_PAGE = 4096n;
export const MAX_REGIONS = 1024;

export interface VmwareRegion {
  /** Physical range. */
  readonly range: Range;
  /** Byte offset of the range's first page within the memory (the .vmem, or the Memory block's data). */
  readonly memOffset: bigint;
}

export interface EmbeddedMemory {
  readonly block: VmwareBlock;
  /** Bytes of guest memory the block holds: the smaller of its two sizes (see MemoryCollector.finish). */
  readonly bytes: bigint;
  /** Set when the block's two sizes differ: what was done about it. */
  readonly note?: string;
}

export interface MemoryFacts {
  /** The "Memory" block when memory is embedded in the state file. */
  readonly embedded: EmbeddedMemory | undefined;
  /** Regions as stored, undefined when the file has none (one flat run). */
  readonly regions: VmwareRegion[] | undefined;
  readonly alignMask: bigint | undefined;
  readonly tagCount: number;
}

function scalar(t: VmwareTag, what: string): bigint {
  if (t.value === undefined) throw corrupt(`VMware tag "${t.name}" is not a number (${what})`, t.at, { tag: t.name });
  return t.value;
}

/**
 * Keeps only what the "memory" group says about where memory lies (the Memory block, the region tags, align_mask),
 * bounded by MAX_REGIONS, so that it can be fed by walkGroupTags without holding the group.
 */
export class MemoryCollector {
  private block: VmwareBlock | undefined;
  private memoryBlocks = 0;
  private count: bigint | undefined;
  private countAt = 0n;
  private alignMask: bigint | undefined;
  private tagCount = 0;
  private readonly ppn = new Map<number, bigint>();
  private readonly pageNum = new Map<number, bigint>();
  private readonly size = new Map<number, bigint>();

  readonly visit = (t: VmwareTag): void => {
    this.tagCount++;
    if (t.name === 'Memory' && t.block) {
      this.memoryBlocks++;
      if (this.block === undefined) this.block = t.block;
      return;
    }
    const i = t.indices[0];
    if (t.name === 'regionsCount') {
      this.count = scalar(t, 'region count');
      this.countAt = t.at;
    } else if (t.name === 'align_mask') this.alignMask = t.value;
    else if (i !== undefined && t.indices.length === 1 && (t.name === 'regionPPN' || t.name === 'regionPageNum' || t.name === 'regionSize')) {
      const m = t.name === 'regionPPN' ? this.ppn : t.name === 'regionPageNum' ? this.pageNum : this.size;
      if (m.has(i)) throw corrupt(`VMware tag ${t.name}[${i}] appears twice`, t.at, { tag: t.name });
      if (i < MAX_REGIONS) m.set(i, scalar(t, 'page count'));
    }
  };

  finish(): MemoryFacts {
    const block = this.block;
    if (this.memoryBlocks > 1) throw new MemdumpError('E_UNSUPPORTED', `VMware state file holds its memory in ${this.memoryBlocks} "Memory" blocks; only one is supported`);
    if (block?.compressed) throw new MemdumpError('E_UNSUPPORTED', 'VMware state file holds compressed memory (a "Memory" block of the compressed kind); memdump reads uncompressed memory only');
    let embedded: EmbeddedMemory | undefined;
    // crash (vmware_vmss.c) looks for the .vmem when the in-memory size is 0; an empty block on disk holds nothing
    // either, so both send us to the .vmem.
    if (block && block.diskSize > 0n && block.memSize > 0n) {
      // crash takes the in-memory size as the memory's length and only uses the on-disk size to skip the block. Past
      // the on-disk size there is no memory, only the next tag, so we read the smaller of the two and say so.
      const bytes = block.memSize < block.diskSize ? block.memSize : block.diskSize;
      embedded = {
        block,
        bytes,
        ...(block.memSize !== block.diskSize
          ? { note: `"Memory" block says ${block.diskSize} bytes on disk but ${block.memSize} in memory; the first ${bytes} are read as memory` }
          : {}),
      };
    }
    let regions: VmwareRegion[] | undefined;
    const count = this.count;
    if (count !== undefined && count > 0n) {
      if (count > BigInt(MAX_REGIONS)) throw new MemdumpError('E_TOO_LARGE', `VMware memory has ${count} regions (limit ${MAX_REGIONS})`, { details: { offset: hex(this.countAt) } });
      regions = [];
      for (let i = 0; i < Number(count); i++) {
        const p = this.ppn.get(i);
        const n = this.pageNum.get(i);
        const s = this.size.get(i);
        if (p === undefined || n === undefined || s === undefined) {
          throw corrupt(`VMware memory region ${i} of ${count} lacks regionPPN, regionPageNum or regionSize`, this.countAt, { region: i });
        }
        if (s === 0n) continue;
        regions.push({ range: { start: p * VMWARE_PAGE, end: (p + s) * VMWARE_PAGE }, memOffset: n * VMWARE_PAGE });
      }
    }
    return { embedded, regions, alignMask: this.alignMask, tagCount: this.tagCount };
  }
}

/** Read what the "memory" group says (from tags already collected): the Memory block, if any, and the regions. */
export function memoryFacts(tags: readonly VmwareTag[]): MemoryFacts {
  const c = new MemoryCollector();
  for (const t of tags) c.visit(t);
  return c.finish();
}

/**
 * Runs (sorted by address) and where each starts in the memory of `memBytes` bytes. A region that reaches past the
 * memory is E_TRUNCATED (a cut .vmem); regions that overlap, physically or in the file, are E_CORRUPT.
 */
export function layoutRegions(regions: readonly VmwareRegion[] | undefined, memBytes: bigint, where: string): VmwareRegion[] {
  if (regions === undefined) return memBytes > 0n ? [{ range: { start: 0n, end: memBytes }, memOffset: 0n }] : [];
  const byFile = [...regions].sort((a, b) => (a.memOffset < b.memOffset ? -1 : a.memOffset > b.memOffset ? 1 : 0));
  let fileEnd = 0n;
  for (const r of byFile) {
    const len = r.range.end - r.range.start;
    if (r.memOffset < fileEnd) throw corrupt(`VMware memory region at physical ${hex(r.range.start)} shares pages of ${where} with another region`, r.memOffset);
    fileEnd = r.memOffset + len;
    if (fileEnd > memBytes) {
      throw truncated(`VMware memory region at physical ${hex(r.range.start)} is stored up to byte ${hex(fileEnd)} of ${where}, which holds only ${memBytes} bytes`, r.memOffset, { physical: hex(r.range.start), needs: hex(fileEnd), has: memBytes.toString() });
    }
  }
  const byAddr = [...regions].sort((a, b) => (a.range.start < b.range.start ? -1 : a.range.start > b.range.start ? 1 : 0));
  for (let i = 1; i < byAddr.length; i++) {
    if (byAddr[i]!.range.start < byAddr[i - 1]!.range.end) throw corrupt(`VMware memory regions overlap at physical ${hex(byAddr[i]!.range.start)}`, byAddr[i]!.memOffset);
  }
  if (byAddr.length > 0 && byAddr[byAddr.length - 1]!.range.end > 1n << 64n) throw corrupt('VMware memory region runs past the end of the address space', 0n);
  return byAddr;
}
