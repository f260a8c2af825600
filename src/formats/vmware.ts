/**
 * VMware memory: a checkpoint (.vmss suspended state, .vmsn snapshot) whose memory lies in the .vmem beside it or
 * in its own "Memory" block, and a .vmem found alone (raw memory from physical 0, as VMware writes it for small
 * guests; above 3 GiB only the state file's regions place it right). Layouts: vmware-tags.ts and vmware-map.ts.
 *
 * Companions share the basename: X.vmem ↔ X.vmss or X.vmsn (snapshots: NAME-SnapshotN.vmem ↔ NAME-SnapshotN.vmsn),
 * the .vmss preferred as Volatility does, names matched without regard to case. openImage asks companionOf() before
 * any magic (a .vmem is guest memory: its first bytes can look like anything); for a .vmem with no state file
 * beside it companionOf answers the .vmem itself, so that it is still read (flat) and `info` can say that its map
 * is a guess. A companion that exists but is no regular file (a directory, a symlink loop) is E_NOT_FOUND naming
 * it, never a silent fallback to the flat guess.
 *
 * fileOffsetOf/firstAddressIn speak of the file holding the memory (details.memory): the .vmem, or the state file
 * when its "Memory" block holds the memory.
 */
import { basename, dirname, extname, join } from 'node:path';
import { MemdumpError, hex } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { RunIndex } from './run-index.js';
import { isVmemPath, notAFile, siblings } from './vmware-files.js';
import { MemoryCollector, layoutRegions, type VmwareRegion } from './vmware-map.js';
import { VMWARE_MAGICS, looksLikeVmware, readVmwareHeader, walkGroupTags, type VmwareGroup, type VmwareHeader, type VmwareTag } from './vmware-tags.js';
import type { FormatReader, MemoryImage } from './types.js';

/** Group names listed in details, at most. */
const MAX_LISTED_GROUPS = 256;
/** Tags of the cpu group walked for numVCPUs and vCPU 0's CR3: a few hundred per vCPU, both near the start. */
const MAX_CPU_TAGS = 1 << 16;
/** Format errors a damaged cpu group may raise; the memory does not depend on it, so they become cpusProblem. */
const CPU_GROUP_CODES = new Set(['E_TRUNCATED', 'E_CORRUPT', 'E_TOO_LARGE']);

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
  /** Offsets are in the file that holds the memory (details.memory: the .vmem, or the state file's Memory block). */
  fileOffsetOf(addr: bigint): bigint | undefined {
    return this.index.fileOffsetOf(addr);
  }
  firstAddressIn(start: bigint, end: bigint): bigint | undefined {
    return this.index.firstAddressIn(start, end);
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

interface CpuFacts {
  readonly cpus?: number | string;
  readonly cr3?: string;
  readonly cpusProblem?: string;
}

/**
 * numVCPUs and vCPU 0's CR3 from the cpu group (crash vmware_vmss.c: "cpu:numVCPUs"; "CR64" either as a scalar
 * indexed [cpu, n] or as a block indexed [cpu] holding CR0..CR4 as u64s). The walk stops once both are known.
 * Nothing here is needed to read memory, so a damaged group is reported, not thrown.
 */
async function cpuFacts(file: RandomAccessFile, header: VmwareHeader, group: VmwareGroup | undefined): Promise<CpuFacts> {
  if (!group) return {};
  let cpus: VmwareTag | undefined;
  let cr3: bigint | undefined;
  const done = (): boolean => cpus !== undefined && cr3 !== undefined;
  // synchronous but for the rare CR64 block: a promise per tag would be most of a long group's cost
  const visit = (t: VmwareTag): boolean | Promise<boolean> => {
    if (t.name === 'cpu:numVCPUs' && t.indices.length === 0 && cpus === undefined) cpus = t;
    else if (t.name === 'CR64' && t.indices[0] === 0 && cr3 === undefined) {
      if (t.indices.length === 2 && t.indices[1] === 3 && t.value !== undefined) cr3 = t.value;
      else if (t.indices.length === 1 && t.block && !t.block.compressed && t.block.diskSize >= 32n && t.block.memSize === t.block.diskSize) {
        return file.readExact(t.block.offset + 24n, 8, 'VMware CR64 block').then((b) => {
          cr3 = b.readBigUInt64LE(0);
          return done();
        });
      }
    }
    return done();
  };
  let problem: string | undefined;
  try {
    await walkGroupTags(file, header, group, visit, MAX_CPU_TAGS);
  } catch (e) {
    if (!(e instanceof MemdumpError && CPU_GROUP_CODES.has(e.code))) throw e;
    // past the walk's limit after numVCPUs only CR3 is missing, and a group that long is not damaged for that
    if (!(e.code === 'E_TOO_LARGE' && cpus !== undefined)) problem = `cpu group unreadable: ${e.message}`;
  }
  const out: { cpus?: number | string; cr3?: string; cpusProblem?: string } = {};
  if (cpus) {
    const v = cpus.value;
    if (v === undefined) problem ??= `cpu:numVCPUs at offset ${hex(cpus.at)} is not a number`;
    else if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      out.cpus = v.toString();
      problem ??= `cpu:numVCPUs at offset ${hex(cpus.at)} is ${v}, not a plausible CPU count`;
    } else out.cpus = Number(v);
  } else if (problem === undefined) problem = 'cpu group has no cpu:numVCPUs';
  if (cr3 !== undefined) out.cr3 = hex(cr3);
  if (problem !== undefined) out.cpusProblem = problem;
  return out;
}

async function openState(file: RandomAccessFile, path: string): Promise<MemoryImage> {
  const header = await readVmwareHeader(file);
  const memGroup = header.groups.find((g) => g.name === 'memory');
  if (!memGroup) throw new MemdumpError('E_CORRUPT', `${path}: VMware state file has no "memory" group`, { details: { offset: '0xc', groups: header.groups.length } });
  const collector = new MemoryCollector();
  await walkGroupTags(file, header, memGroup, collector.visit);
  const facts = collector.finish();
  const cpu = await cpuFacts(file, header, header.groups.find((g) => g.name === 'cpu'));
  const common = {
    stateFile: escapeControl(path),
    magic: hex(header.magic),
    magicMeaning: VMWARE_MAGICS.get(header.magic),
    version: header.version,
    groupCount: header.groups.length,
    groups: header.groups.slice(0, MAX_LISTED_GROUPS).map((g) => escapeControl(g.name)),
    ...cpu,
    ...(facts.alignMask !== undefined ? { alignMask: hex(facts.alignMask) } : {}),
    map: facts.regions ? `${facts.regions.length} region(s) from regionsCount/regionPPN/regionPageNum/regionSize` : 'flat from physical 0 (no regions in the memory group)',
  };
  const vmems = await siblings(path, ['vmem']);
  if (facts.embedded) {
    const { block: b, bytes, note } = facts.embedded;
    const regions = layoutRegions(facts.regions, bytes, 'the "Memory" block');
    const vmem = vmems.find((p) => p.file);
    return new VmwareImage([file], file, indexOf(regions, b.offset), {
      ...common,
      memoryIn: 'embedded',
      memory: `"Memory" block at ${hex(b.offset)}, ${bytes} bytes`,
      ...(note !== undefined ? { memoryBlockNote: note } : {}),
      ...(vmem
        ? { vmemIgnored: true, vmemNote: `${escapeControl(vmem.path)} is not read: the state file holds the guest memory in its own "Memory" block` }
        : {}),
      regions: regions.map(regionJson),
    });
  }
  const found = vmems.find((p) => p.file);
  if (!found) {
    const odd = vmems[0];
    if (odd && !odd.file) throw notAFile(odd, `the .vmem holding the memory of ${escapeControl(path)}`);
    const expected = join(dirname(path), basename(path, extname(path)) + '.vmem');
    throw new MemdumpError('E_NOT_FOUND', `${path} keeps its memory in ${expected}, which is not there: put the .vmem beside the state file`, {
      details: { expected },
    });
  }
  const vmemPath = found.path;
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
    const found = await siblings(path, ['vmss', 'vmsn']);
    const state = found.find((p) => p.file);
    if (state) return state.path;
    // a state file is there but cannot be read: reading the .vmem flat would misplace RAM above the PCI hole
    const odd = found[0];
    if (odd && !odd.file) throw notAFile(odd, `the state file describing ${escapeControl(path)}`);
    return path;
  },
};
