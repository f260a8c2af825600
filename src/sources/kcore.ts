import { MemdumpError, hex } from '../core/errors.js';
import { RandomAccessFile, preadAt } from '../core/file.js';
import { type Range, intersect, normalize, rangeToJson, subtract, totalLength } from '../core/ranges.js';
import { PT_LOAD, readElfHeaders, readElfNotes, type ProgramHeader } from '../formats/elf-parse.js';
import type { ImageNote } from '../formats/types.js';
import type { PhysicalSource } from './types.js';

/** p_paddr values the kernel uses for segments that are not physical RAM (vmalloc, modules, vmemmap). */
const NO_PADDR = new Set([0xffffffffffffffffn, 0xffffffffn]);
const MASK64 = (1n << 64n) - 1n;

export interface KcorePiece {
  range: Range;
  fileOffset: bigint;
  /** 'direct-map' or 'other' (e.g. the kernel-text segment), for the report. */
  via: 'direct-map' | 'other';
}

export interface KcorePlan {
  pieces: KcorePiece[];
  /** RAM from iomem that no kcore segment covers. */
  uncovered: Range[];
  directMapDelta: bigint;
}

/**
 * Decide where each physical byte of RAM is read in kcore. Each byte goes out once: the direct-map segments
 * (the delta vaddr-paddr shared by most bytes) are preferred; the kernel-text segment aliases RAM the direct
 * map already covers and is used only for what the direct map lacks.
 */
export function planKcore(phdrs: readonly ProgramHeader[], ram: readonly Range[]): KcorePlan {
  const loads = phdrs.filter((p) => p.type === PT_LOAD && p.memsz > 0n);
  const physical = loads.filter((p) => !NO_PADDR.has(p.paddr));
  if (physical.length > 0 && physical.every((p) => p.paddr === 0n)) {
    throw new MemdumpError(
      'E_UNSUPPORTED',
      '/proc/kcore carries no physical addresses (p_paddr is 0: kernel older than 4.11); use --source crash or --source mem',
      { details: { segments: physical.length } },
    );
  }
  const byDelta = new Map<bigint, bigint>();
  for (const p of physical) {
    const d = (p.vaddr - p.paddr) & MASK64;
    byDelta.set(d, (byDelta.get(d) ?? 0n) + p.filesz);
  }
  let directMapDelta = 0n;
  let best = -1n;
  for (const [d, size] of byDelta) if (size > best) [best, directMapDelta] = [size, d];

  const pieces: KcorePiece[] = [];
  let remaining = normalize(ram);
  for (const pass of ['direct-map', 'other'] as const) {
    for (const p of physical) {
      const isDirect = ((p.vaddr - p.paddr) & MASK64) === directMapDelta;
      if ((pass === 'direct-map') !== isDirect) continue;
      const seg: Range = { start: p.paddr, end: p.paddr + p.filesz };
      for (const r of intersect(remaining, [seg])) pieces.push({ range: r, fileOffset: p.offset + (r.start - p.paddr), via: pass });
      remaining = subtract(remaining, [seg]);
    }
  }
  pieces.sort((a, b) => (a.range.start < b.range.start ? -1 : 1));
  return { pieces, uncovered: remaining, directMapDelta };
}

export class KcoreSource implements PhysicalSource {
  readonly kind = 'kcore' as const;
  readonly pageSize = 4096;
  readonly ranges: Range[];

  private constructor(
    private readonly file: RandomAccessFile,
    private readonly plan: KcorePlan,
    readonly notes: ImageNote[],
    readonly info: Record<string, unknown>,
  ) {
    this.ranges = normalize(plan.pieces.map((p) => p.range));
  }

  get path(): string {
    return this.file.path;
  }

  static async open(path: string, ram: readonly Range[]): Promise<KcoreSource> {
    const file = await RandomAccessFile.open(path);
    try {
      const h = await readElfHeaders(file);
      const plan = planKcore(h.phdrs, ram);
      if (plan.pieces.length === 0) throw new MemdumpError('E_NO_SOURCE', `${path} has no segment covering any System RAM range`);
      const notes = (await readElfNotes(file, h.phdrs)).filter((n) => n.name === 'VMCOREINFO');
      const info = {
        segments: h.phdrs
          .filter((p) => p.type === PT_LOAD)
          .map((p) => ({ offset: hex(p.offset), vaddr: hex(p.vaddr), paddr: hex(p.paddr), size: p.filesz.toString() })),
        directMapDelta: hex(plan.directMapDelta),
        viaOtherSegments: plan.pieces.filter((p) => p.via === 'other').map((p) => rangeToJson(p.range)),
        ramNotInKcore: plan.uncovered.map(rangeToJson),
        ramNotInKcoreBytes: totalLength(plan.uncovered).toString(),
        vmcoreinfo: notes.length > 0,
      };
      return new KcoreSource(file, plan, notes, info);
    } catch (e) {
      await file.close();
      throw e;
    }
  }

  private find(addr: bigint): KcorePiece | undefined {
    let lo = 0;
    let hi = this.plan.pieces.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const p = this.plan.pieces[mid]!;
      if (addr < p.range.start) hi = mid - 1;
      else if (addr >= p.range.end) lo = mid + 1;
      else return p;
    }
    return undefined;
  }

  async read(addr: bigint, buf: Buffer, length: number): Promise<number> {
    const p = this.find(addr);
    if (!p) throw Object.assign(new Error(`no kcore segment for ${hex(addr)}`), { code: 'ENXIO' });
    const n = Number(p.range.end - addr < BigInt(length) ? p.range.end - addr : BigInt(length));
    return preadAt(this.file.fd, buf, 0, n, p.fileOffset + (addr - p.range.start));
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
