import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { RunIndex } from './run-index.js';
import { loadSidecar } from './sidecar.js';
import type { ByteSink, ContainerWriter, FormatSpec, ImageNote, MemoryImage, WritePlan } from './types.js';

/** Offsets at which each run's bytes start in a padded (offset = address) or raw (concatenated) file. */
export function flatOffsets(kind: 'raw' | 'padded', runs: readonly Range[]): bigint[] {
  let pos = 0n;
  return runs.map((r) => {
    const at = kind === 'padded' ? r.start : pos;
    pos += r.end - r.start;
    return at;
  });
}

class FlatImage implements MemoryImage {
  constructor(
    readonly format: 'raw' | 'padded',
    private readonly file: RandomAccessFile,
    private readonly index: RunIndex,
    readonly notes: readonly ImageNote[],
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

function flatFormat(kind: 'raw' | 'padded'): FormatSpec {
  return {
    name: kind,
    extension: kind === 'raw' ? 'raw' : 'padded',
    description:
      kind === 'raw'
        ? 'ranges concatenated without addresses (map kept in FILE.map.json; needs --allow-raw)'
        : 'file offset = physical address, zeros in holes (map kept in FILE.map.json)',
    needsSidecarMap: true,
    // no magic: only chosen explicitly or through a sidecar map
    detect: () => false,
    async open(file, options) {
      const side = options.sidecarRuns ? undefined : await loadSidecar(file.path);
      const runs = options.sidecarRuns ?? side?.runs ?? (file.size > 0n ? [{ start: 0n, end: file.size }] : []);
      const offsets = side ? side.fileOffsets : flatOffsets(kind, runs);
      const index = new RunIndex(kind);
      runs.forEach((r, i) => {
        const off = offsets[i]!;
        if (off + (r.end - r.start) > file.size) {
          throw new MemdumpError('E_TRUNCATED', `${kind} file ends before run ${hex(r.start)}-${hex(r.end - 1n)} (needs ${off + (r.end - r.start)} bytes, has ${file.size})`, {
            details: { offset: hex(file.size) },
          });
        }
        index.add(r, off, 0n);
      });
      return new FlatImage(kind, file, index, side?.notes ?? [], { map: side ? 'sidecar' : 'none (whole file from address 0)' });
    },
    createWriter(out: ByteSink, plan: WritePlan): ContainerWriter {
      return {
        async begin() {},
        async beginRange(r) {
          if (kind === 'padded' && r.start > out.position) await out.writeZeros(r.start - out.position);
        },
        data: (chunk) => out.write(chunk),
        async endRange() {},
        async end() {},
      };
    },
  };
}

export const padded = flatFormat('padded');
export const raw = flatFormat('raw');
