/**
 * VMware memory: a checkpoint (.vmss suspended state, .vmsn snapshot) whose memory lies in the .vmem beside it or
 * in its own "Memory" block, and a .vmem found alone (raw memory from physical 0, as VMware writes it for small
 * guests; above 3 GiB only the state file's regions place it right). Layouts: vmware-tags.ts and vmware-map.ts.
 *
 * Companions share the basename: X.vmem ↔ X.vmss or X.vmsn (snapshots: NAME-SnapshotN.vmem ↔ NAME-SnapshotN.vmsn),
 * the .vmss preferred as Volatility does. openImage asks companionOf() for a file without magic; for a .vmem with
 * no state file beside it companionOf answers the .vmem itself, so that it is still read (flat) and `info` can say
 * that its map is a guess.
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { MemdumpError, hex } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { RunIndex } from './run-index.js';
import { layoutRegions, memoryFacts, type VmwareRegion } from './vmware-map.js';
import { VMWARE_MAGICS, looksLikeVmware, readGroupTags, readVmwareHeader } from './vmware-tags.js';
import type { FormatReader, MemoryImage } from './types.js';

/** Group names listed in details, at most. */
const MAX_LISTED_GROUPS = 256;

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** X.ext → X.<each of exts>, keeping the case of the original extension. */
function siblings(path: string, exts: readonly string[]): string[] {
  const ext = extname(path);
  const stem = join(dirname(path), basename(path, ext));
  const upper = ext.length > 1 && ext === ext.toUpperCase();
  return exts.map((e) => stem + '.' + (upper ? e.toUpperCase() : e));
}

function isVmemPath(path: string): boolean {
  return extname(path).toLowerCase() === '.vmem';
}

class VmwareImage implements MemoryImage {
  readonly format = 'vmware' as const;
  readonly notes = [];
  constructor(
    private readonly files: readonly RandomAccessFile[],
    private readonly data: RandomAccessFile,
    private readonly index: RunIndex,
    readonly details: Record<string, unknown>,
  ) {}
  get runs(): readonly Range[] {
    return this.index.runs;
  }
  read(addr: bigint, length: number): Promise<Buffer> {
    return this.index.read(this.data, addr, length);
  }
  async close(): Promise<void> {
    for (const f of this.files) await f.close();
  }
}

function indexOf(regions: readonly VmwareRegion[], base: bigint): RunIndex {
  const index = new RunIndex('VMware');
  for (const r of regions) index.add(r.range, base + r.memOffset, r.memOffset);
  return index;
}

function regionJson(r: VmwareRegion): Record<string, string> {
  return { physical: `${hex(r.range.start)}-${hex(r.range.end)}`, memoryOffset: hex(r.memOffset), pages: ((r.range.end - r.range.start) / 4096n).toString() };
}

/** A .vmem without its state file: raw memory from physical 0. */
function openLoneVmem(file: RandomAccessFile): MemoryImage {
  const regions = layoutRegions(undefined, file.size, 'the .vmem');
  return new VmwareImage([file], file, indexOf(regions, 0n), {
    stateFile: null,
    memory: escapeControl(file.path),
    memoryIn: 'vmem',
    map: 'flat from physical 0: no .vmss/.vmsn beside the .vmem (RAM above the PCI hole would be misplaced)',
  });
}

async function openState(file: RandomAccessFile, path: string): Promise<MemoryImage> {
  const header = await readVmwareHeader(file);
  const memGroup = header.groups.find((g) => g.name === 'memory');
  if (!memGroup) throw new MemdumpError('E_CORRUPT', `${path}: VMware state file has no "memory" group`, { details: { offset: '0xc', groups: header.groups.length } });
  const facts = memoryFacts(await readGroupTags(file, header, memGroup));
  const cpuGroup = header.groups.find((g) => g.name === 'cpu');
  const cpuTags = cpuGroup ? await readGroupTags(file, header, cpuGroup) : [];
  const cpus = cpuTags.find((t) => t.name === 'cpu:numVCPUs' && t.indices.length === 0)?.value;
  const common = {
    stateFile: escapeControl(path),
    magic: hex(header.magic),
    magicMeaning: VMWARE_MAGICS.get(header.magic),
    version: header.version,
    groupCount: header.groups.length,
    groups: header.groups.slice(0, MAX_LISTED_GROUPS).map((g) => escapeControl(g.name)),
    ...(cpus !== undefined ? { cpus: Number(cpus) } : {}),
    ...(facts.alignMask !== undefined ? { alignMask: hex(facts.alignMask) } : {}),
    map: facts.regions ? `${facts.regions.length} region(s) from regionsCount/regionPPN/regionPageNum/regionSize` : 'flat from physical 0 (no regions in the memory group)',
  };
  if (facts.embedded) {
    const b = facts.embedded;
    const regions = layoutRegions(facts.regions, b.diskSize, 'the "Memory" block');
    return new VmwareImage([file], file, indexOf(regions, b.offset), {
      ...common,
      memoryIn: 'embedded',
      memory: `"Memory" block at ${hex(b.offset)}, ${b.diskSize} bytes`,
      regions: regions.map(regionJson),
    });
  }
  const vmemPath = siblings(path, ['vmem'])[0]!;
  if (!(await isFile(vmemPath))) {
    throw new MemdumpError('E_NOT_FOUND', `${path} keeps its memory in ${vmemPath}, which is not there: put the .vmem beside the state file`, {
      details: { expected: vmemPath },
    });
  }
  const vmem = await RandomAccessFile.open(vmemPath);
  try {
    const regions = layoutRegions(facts.regions, vmem.size, vmemPath);
    return new VmwareImage([file, vmem], vmem, indexOf(regions, 0n), {
      ...common,
      memoryIn: 'vmem',
      memory: escapeControl(vmemPath),
      regions: regions.map(regionJson),
    });
  } catch (e) {
    await vmem.close();
    throw e;
  }
}

export const vmware: FormatReader = {
  name: 'vmware',
  description: 'VMware suspended state / snapshot (.vmss/.vmsn, memory embedded or in the .vmem beside it)',
  detect: looksLikeVmware,
  async open(file, options) {
    const path = options.path ?? file.path;
    const head = await file.readAt(0n, 4);
    if (head.length === 4 && VMWARE_MAGICS.has(head.readUInt32LE(0))) return openState(file, path);
    if (isVmemPath(path)) return openLoneVmem(file);
    throw new MemdumpError('E_UNKNOWN_FORMAT', `${path}: not a VMware state file${head.length === 4 ? ` (magic ${hex(head.readUInt32LE(0))})` : ''} nor a .vmem`, { details: { offset: '0x0' } });
  },
  async companionOf(path) {
    if (!isVmemPath(path)) return undefined;
    for (const c of siblings(path, ['vmss', 'vmsn'])) if (await isFile(c)) return c;
    return path;
  },
};
