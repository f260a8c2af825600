import assert from 'node:assert/strict';

/** A fake process memory for the selection logic: `mem` laid out from `base`; reads of chunks starting at an address in `holes` are unreadable; every read is recorded. */
export function fakeMem(base: bigint, mem: Buffer, holes: ReadonlySet<bigint> = new Set()) {
  const calls: [bigint, number][] = [];
  const read = async (addr: bigint, length: number): Promise<Buffer | undefined> => {
    calls.push([addr, length]);
    if (holes.has(addr)) return undefined;
    const off = Number(addr - base);
    assert.ok(off >= 0 && off + length <= mem.length, `read outside the fake memory at ${addr.toString(16)}`);
    return Buffer.from(mem.subarray(off, off + length));
  };
  return { read, calls };
}
