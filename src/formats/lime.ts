import { ByteReader, corrupt, truncated } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';
import { type Range, fromInclusive } from '../core/ranges.js';
import type { ByteSink, ContainerWriter, FormatSpec, MemoryImage, WritePlan } from './types.js';
import { RunIndex } from './run-index.js';

export const LIME_MAGIC = 0x4c694d45;
export const LIME_HEADER_SIZE = 32;
/** Caps the record count a reader accepts, so a corrupt file cannot make us build an unbounded index. */
export const MAX_RECORDS = 1 << 20;

/** 32-byte LiME header: magic, version, start, end (inclusive), reserved. */
export function limeHeader(magic: number, version: number, r: Range): Buffer {
  const b = Buffer.alloc(LIME_HEADER_SIZE);
  b.writeUInt32LE(magic, 0);
  b.writeUInt32LE(version, 4);
  b.writeBigUInt64LE(r.start, 8);
  b.writeBigUInt64LE(r.end - 1n, 16);
  return b;
}

export interface LimeHeader {
  magic: number;
  version: number;
  range: Range;
}

/** Parse and validate one record header at `offset`; `fileSize` bounds the record's data. */
export function parseLimeHeader(buf: Buffer, offset: bigint): LimeHeader {
  const r = new ByteReader(buf, offset, 'LiME header');
  const magic = r.u32(0);
  const version = r.u32(4);
  const first = r.u64(8);
  const last = r.u64(16);
  if (last < first) throw corrupt(`LiME record ends (${hex(last)}) before it starts (${hex(first)})`, offset);
  if (last === 0xffffffffffffffffn) throw corrupt('LiME record end overflows the address space', offset);
  return { magic, version, range: fromInclusive(first, last) };
}

class LimeImage implements MemoryImage {
  readonly format = 'lime' as const;
  readonly notes = [];
  constructor(
    private readonly file: RandomAccessFile,
    private readonly index: RunIndex,
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

export const lime: FormatSpec = {
  name: 'lime',
  extension: 'lime',
  description: 'LiME v1: 32-byte header per physical range, then the bytes (Volatility, Rekall, LiME)',
  needsSidecarMap: false,
  detect(head) {
    return head.length >= LIME_HEADER_SIZE && head.readUInt32LE(0) === LIME_MAGIC && head.readUInt32LE(4) === 1;
  },
  async open(file) {
    const index = new RunIndex('LiME');
    let pos = 0n;
    while (pos < file.size) {
      if (index.count >= MAX_RECORDS) throw new MemdumpError('E_TOO_LARGE', `LiME file has more than ${MAX_RECORDS} records`);
      if (file.size - pos < LIME_HEADER_SIZE) throw truncated('LiME file ends inside a record header', pos);
      const h = parseLimeHeader(await file.readExact(pos, LIME_HEADER_SIZE, 'LiME header'), pos);
      if (h.magic !== LIME_MAGIC) throw corrupt(`bad LiME magic 0x${h.magic.toString(16)}`, pos, { expected: hex(LIME_MAGIC) });
      if (h.version !== 1) throw corrupt(`unsupported LiME version ${h.version}`, pos);
      const len = h.range.end - h.range.start;
      const dataAt = pos + BigInt(LIME_HEADER_SIZE);
      if (dataAt + len > file.size) {
        throw truncated(`LiME record ${formatRec(h.range)} needs ${len} bytes, file has ${file.size - dataAt}`, dataAt);
      }
      index.add(h.range, dataAt, pos);
      pos = dataAt + len;
    }
    return new LimeImage(file, index, { records: index.count });
  },
  createWriter(out: ByteSink, _plan: WritePlan): ContainerWriter {
    return {
      async begin() {},
      async beginRange(r) {
        await out.write(limeHeader(LIME_MAGIC, 1, r));
      },
      data: (chunk) => out.write(chunk),
      async endRange() {},
      async end() {},
    };
  },
};

function formatRec(r: Range): string {
  return `${hex(r.start)}-${hex(r.end - 1n)}`;
}
