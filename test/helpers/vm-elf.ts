export interface Seg {
  paddr: bigint;
  data: Buffer;
  /** Gap in the stream before this segment's bytes. */
  gap: number;
}

/** An ELF64 core laid out as QEMU's dump-guest-memory (paging:false): ehdr, PT_NOTE, PT_LOADs, notes, data. */
export function qemuLikeElf(segs: Seg[], notes: Buffer, trailing = 0): Buffer {
  const phnum = 1 + segs.length;
  const eh = Buffer.alloc(64);
  eh.writeUInt32BE(0x7f454c46, 0);
  eh[4] = 2;
  eh[5] = 1;
  eh[6] = 1;
  eh.writeUInt16LE(4, 16); // ET_CORE
  eh.writeUInt16LE(62, 18); // x86-64
  eh.writeUInt32LE(1, 20);
  eh.writeBigUInt64LE(64n, 32);
  eh.writeUInt16LE(64, 52);
  eh.writeUInt16LE(56, 54);
  eh.writeUInt16LE(phnum, 56);
  const ph = Buffer.alloc(56 * phnum);
  const noteOff = 64 + ph.length;
  ph.writeUInt32LE(4, 0);
  ph.writeBigUInt64LE(BigInt(noteOff), 8);
  ph.writeBigUInt64LE(BigInt(notes.length), 32);
  ph.writeBigUInt64LE(BigInt(notes.length), 40);
  const body: Buffer[] = [];
  let off = noteOff + notes.length;
  segs.forEach((s, i) => {
    off += s.gap;
    body.push(Buffer.alloc(s.gap, 0xee), s.data);
    const o = 56 * (i + 1);
    ph.writeUInt32LE(1, o);
    ph.writeBigUInt64LE(BigInt(off), o + 8);
    ph.writeBigUInt64LE(s.paddr, o + 24);
    ph.writeBigUInt64LE(BigInt(s.data.length), o + 32);
    ph.writeBigUInt64LE(BigInt(s.data.length), o + 40);
    off += s.data.length;
  });
  return Buffer.concat([eh, ph, notes, ...body, Buffer.alloc(trailing, 0x55)]);
}

