/**
 * VMware checkpoint files (.vmss suspended state, .vmsn snapshot): header, group table and tag streams.
 *
 * Sources (layouts learned from, nothing copied):
 * - Volatility 3, volatility3/framework/layers/vmware.py (VmwareLayer._read_header: magics, "<4sII" header,
 *   "64sQQ" group entries, tag flags byte / name-length byte, 62-63 large-data form, regions from regionPPN/...)
 * - crash-utility, vmware_vmss.h / vmware_vmss.c (VMware's own description: the tag is a u16 whose high byte is
 *   the name length and whose low byte holds index count (bits 7-6) and value size (bits 5-0); value size 63 is a
 *   block, 62 a compressed block; a block carries u64 size on disk, u64 size in memory, u16 padding, then the
 *   padding and the data; the "Memory" block holds guest memory when it is embedded)
 *
 * File layout:
 *   u32 magic, u32 version, u32 group count
 *   group count × { char name[64] (NUL-terminated), u64 tags offset, u64 size }
 *   per group at its offset: tags, ended by a zero u16
 *   tag: u8 flags, u8 name length, name, (flags >> 6) × u32 index, then
 *        flags & 0x3f < 62: that many value bytes (little-endian)
 *        62 / 63:           block: size on disk, size in memory (u32 each when the magic's low nibble is 0,
 *                           "version 0" in Volatility; u64 otherwise), u16 padding length, padding, data
 *
 * Bounds: at most MAX_GROUPS groups and MAX_TAGS tags per walked group; every tag consumes at least two bytes and
 * every offset is checked against the file size before it is read, so a walk is linear in the file; tags are handed
 * to a visitor and not kept, so a walk never holds more than one read window.
 */
import { ByteReader, corrupt, truncated } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { RandomAccessFile } from '../core/file.js';

/** Magic (LE u32) → what VMware and its readers call it. */
export const VMWARE_MAGICS: ReadonlyMap<number, string> = new Map([
  [0xbed0bed0, 'old (32-bit sizes)'],
  [0xbed2bed0, 'checkpoint (32-bit sizes)'],
  [0xbad1bad1, 'restored'],
  [0xbad2bad2, 'not restorable'],
  [0xbed2bed2, 'checkpoint'],
  [0xbed3bed3, 'partial checkpoint'],
]);

export const HEADER_SIZE = 12;
export const GROUP_ENTRY_SIZE = 80;
export const GROUP_NAME_SIZE = 64;
export const MAX_GROUPS = 4096;
/** Tags walked per group: real memory groups hold tens, cpu groups a few hundred per vCPU. */
export const MAX_TAGS = 1 << 16;
export const TAG_BLOCK = 63;
export const TAG_BLOCK_COMPRESSED = 62;
const WINDOW = 64 * 1024;

export interface VmwareGroup {
  readonly name: string;
  readonly offset: bigint;
  readonly size: bigint;
}

export interface VmwareHeader {
  readonly magic: number;
  readonly version: number;
  /** Width of a block's two size fields: 4 for the magics whose low nibble is 0, else 8. */
  readonly sizeWidth: 4 | 8;
  readonly groups: readonly VmwareGroup[];
}

export interface VmwareBlock {
  /** File offset of the block's data (after its padding). */
  readonly offset: bigint;
  readonly diskSize: bigint;
  readonly memSize: bigint;
  readonly compressed: boolean;
}

export interface VmwareTag {
  readonly name: string;
  readonly indices: readonly number[];
  /** File offset of the tag itself. */
  readonly at: bigint;
  /** Little-endian value of a scalar of at most 8 bytes; undefined for longer scalars and blocks. */
  readonly value?: bigint;
  /** Length of a scalar value in bytes (0-61). */
  readonly valueSize?: number;
  readonly block?: VmwareBlock;
}

export function isVmwareMagic(magic: number): boolean {
  return VMWARE_MAGICS.has(magic);
}

/**
 * Cheap check for detect(): a known magic, a plausible group count, a printable first group name. A group table
 * cut by the end of the file still counts, so that open() can say E_TRUNCATED rather than "unknown format".
 */
export function looksLikeVmware(head: Buffer): boolean {
  if (head.length < HEADER_SIZE + GROUP_ENTRY_SIZE) return false;
  if (!isVmwareMagic(head.readUInt32LE(0))) return false;
  const n = head.readUInt32LE(8);
  if (n === 0 || n > MAX_GROUPS) return false;
  const c = head[HEADER_SIZE]!;
  return c >= 0x20 && c < 0x7f;
}

/** Header and group table; groups whose tags lie outside the file are kept (only walking them fails). */
export async function readVmwareHeader(file: RandomAccessFile): Promise<VmwareHeader> {
  const h = new ByteReader(await file.readExact(0n, HEADER_SIZE, 'VMware header'), 0n, 'VMware header');
  const magic = h.u32(0);
  if (!isVmwareMagic(magic)) {
    throw new MemdumpError('E_UNKNOWN_FORMAT', `${file.path}: not a VMware state file (magic ${hex(magic)})`, { details: { offset: '0x0', magic: hex(magic) } });
  }
  const version = h.u32(4);
  const count = h.u32(8);
  if (count === 0) throw corrupt('VMware state file has no groups', 8n);
  if (count > MAX_GROUPS) throw new MemdumpError('E_TOO_LARGE', `VMware state file claims ${count} groups (limit ${MAX_GROUPS})`, { details: { offset: '0x8' } });
  const tableBytes = count * GROUP_ENTRY_SIZE;
  if (BigInt(HEADER_SIZE + tableBytes) > file.size) throw truncated(`VMware group table (${count} groups) runs past the end of the file`, BigInt(HEADER_SIZE));
  const t = new ByteReader(await file.readExact(BigInt(HEADER_SIZE), tableBytes, 'VMware group table'), BigInt(HEADER_SIZE), 'VMware group table');
  const groups: VmwareGroup[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * GROUP_ENTRY_SIZE;
    groups.push({ name: t.cstr(o, GROUP_NAME_SIZE), offset: t.u64(o + GROUP_NAME_SIZE), size: t.u64(o + GROUP_NAME_SIZE + 8) });
  }
  return { magic, version, sizeWidth: (magic & 0xf) === 0 ? 4 : 8, groups };
}

/**
 * Sequential reads through one window, so a walk over thousands of small tags costs a few reads. Fields are read
 * straight from the window (no view, reader or promise per field): a hostile group of 64 Ki tags then makes little
 * garbage.
 */
class Cursor {
  buf: Buffer = Buffer.alloc(0);
  private base = 0n;
  constructor(
    private readonly file: RandomAccessFile,
    private readonly what: string,
  ) {}

  /**
   * Make `n` bytes at `pos` (n ≤ WINDOW) available and answer their index in `buf`; a promise only when the window
   * has to move. E_TRUNCATED naming the offset when the file ends first.
   */
  need(pos: bigint, n: number): number | Promise<number> {
    const at = pos - this.base;
    if (at >= 0n && at + BigInt(n) <= BigInt(this.buf.length)) return Number(at);
    return this.move(pos, n);
  }

  private async move(pos: bigint, n: number): Promise<number> {
    if (pos + BigInt(n) > this.file.size) throw truncated(`${this.what} runs past the end of the file`, pos, { need: n });
    const left = this.file.size - pos;
    const len = left < BigInt(WINDOW) ? Number(left) : WINDOW;
    this.buf = await this.file.readExact(pos, len, this.what);
    this.base = pos;
    return 0;
  }
}

function uintLE(b: Buffer, at: number, n: number): bigint {
  if (n === 0) return 0n;
  if (n <= 6) return BigInt(b.readUIntLE(at, n));
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i]!);
  return v;
}

/** What a visitor answers for each tag: true stops the walk (the caller has what it needs). */
export type TagVisitor = (tag: VmwareTag) => boolean | void | Promise<boolean | void>;

/**
 * Visit the tags of one group, in file order, up to its zero terminator, keeping none of them: a caller retains
 * only the few it needs, so a group of many tags costs time linear in its size and no memory. Block data is
 * skipped, never read: a multi-GiB "Memory" block costs nothing here. More than `maxTags` tags is E_TOO_LARGE.
 * Returns the number of tags visited.
 */
export async function walkGroupTags(file: RandomAccessFile, header: VmwareHeader, group: VmwareGroup, visit: TagVisitor, maxTags = MAX_TAGS): Promise<number> {
  const what = `VMware group "${group.name}"`;
  const cur = new Cursor(file, `${what} tags`);
  let count = 0;
  let pos = group.offset;
  if (pos < BigInt(HEADER_SIZE)) throw corrupt(`${what} starts inside the file header`, pos);
  for (;;) {
    const at = pos;
    const h = cur.need(pos, 2);
    let i = typeof h === 'number' ? h : await h;
    const flags = cur.buf[i]!;
    const nameLen = cur.buf[i + 1]!;
    if (flags === 0 && nameLen === 0) return count;
    if (count >= maxTags) throw new MemdumpError('E_TOO_LARGE', `${what} has more than ${maxTags} tags at offset ${hex(at)}`, { details: { offset: hex(at), limit: maxTags } });
    count++;
    const nindx = flags >> 6;
    const valSize = flags & 0x3f;
    const isBlock = valSize === TAG_BLOCK || valSize === TAG_BLOCK_COMPRESSED;
    const w = header.sizeWidth;
    // everything before the value (or the block's data) at once: at most 2 + 255 + 12 + 18 bytes
    const fixed = 2 + nameLen + nindx * 4 + (isBlock ? 2 * w + 2 : valSize);
    const f = cur.need(pos, fixed);
    i = typeof f === 'number' ? f : await f;
    const b = cur.buf;
    const name = nameLen === 0 ? '' : b.toString('latin1', i + 2, i + 2 + nameLen);
    let o = i + 2 + nameLen;
    const indices: number[] = [];
    for (let k = 0; k < nindx; k++, o += 4) indices.push(b.readUInt32LE(o));
    let tag: VmwareTag;
    if (isBlock) {
      const diskSize = w === 4 ? BigInt(b.readUInt32LE(o)) : b.readBigUInt64LE(o);
      const memSize = w === 4 ? BigInt(b.readUInt32LE(o + 4)) : b.readBigUInt64LE(o + 8);
      const pad = b.readUInt16LE(o + 2 * w);
      const offset = pos + BigInt(fixed + pad);
      if (offset + diskSize > file.size) {
        throw truncated(`${what} tag "${name}" holds ${diskSize} bytes at ${hex(offset)}, past the end of the file (${file.size} bytes)`, at, { tag: name });
      }
      tag = { name, indices, at, block: { offset, diskSize, memSize, compressed: valSize === TAG_BLOCK_COMPRESSED } };
      pos = offset + diskSize;
    } else {
      tag = { name, indices, at, valueSize: valSize, ...(valSize <= 8 ? { value: uintLE(b, o, valSize) } : {}) };
      pos += BigInt(fixed);
    }
    const r = visit(tag);
    if ((r instanceof Promise ? await r : r) === true) return count;
  }
}

/** Every tag of one group (at most `maxTags`), for small groups and tests; readers use walkGroupTags. */
export async function readGroupTags(file: RandomAccessFile, header: VmwareHeader, group: VmwareGroup, maxTags = MAX_TAGS): Promise<VmwareTag[]> {
  const tags: VmwareTag[] = [];
  await walkGroupTags(file, header, group, (t) => void tags.push(t), maxTags);
  return tags;
}
