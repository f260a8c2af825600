import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import type { MemoryImage } from './types.js';
import type { CrashHeader } from './wincrash-header.js';
import { kdbgState, translate } from './wincrash-kdbg.js';

/** 16 MiB of physical memory from address 0, with a hole at [8 MiB, 9 MiB) that reads as "not in any run". */
function memory(): { mem: Buffer; img: MemoryImage } {
  const mem = Buffer.alloc(16 << 20);
  const hole = (a: bigint) => a >= 8n << 20n && a < 9n << 20n;
  const img: MemoryImage = {
    format: 'raw',
    runs: [{ start: 0n, end: 8n << 20n }, { start: 9n << 20n, end: 16n << 20n }],
    notes: [],
    details: {},
    async read(addr, length) {
      if (hole(addr) || addr + BigInt(length) > BigInt(mem.length)) throw new MemdumpError('E_CORRUPT', 'not in any run');
      return Buffer.from(mem.subarray(Number(addr), Number(addr) + length));
    },
    async close() {},
  };
  return { mem, img };
}

function header(h: Partial<CrashHeader>): CrashHeader {
  return { machineImageType: 0x8664, directoryTableBase: 0x1000n, paeEnabled: undefined, kdDebuggerDataBlock: 0n, ...h } as CrashHeader;
}

const idx = (va: bigint, shift: bigint) => Number((va >> shift) & 0x1ffn) * 8;

test('x64: 4 KiB, 2 MiB and 1 GiB pages translate; a missing entry or a table outside the dump does not', async () => {
  const { mem, img } = memory();
  const h = header({});
  const va = 0xfffff80012345678n;
  // PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000 -> page 0x7000
  mem.writeBigUInt64LE(0x2003n, 0x1000 + idx(va, 39n));
  mem.writeBigUInt64LE(0x3003n, 0x2000 + idx(va, 30n));
  mem.writeBigUInt64LE(0x4003n, 0x3000 + idx(va, 21n));
  mem.writeBigUInt64LE(0x8000000000007003n, 0x4000 + idx(va, 12n)); // NX bit set: not part of the address
  assert.equal(await translate(img, h, va), 0x7678n);
  // the same PD entry as a 2 MiB page at 0x400000
  mem.writeBigUInt64LE(0x400083n, 0x3000 + idx(va, 21n));
  assert.equal(await translate(img, h, va), 0x400000n + (va & 0x1fffffn));
  // the PDPT entry as a 1 GiB page at 0x40000000
  mem.writeBigUInt64LE(0x40000083n, 0x2000 + idx(va, 30n));
  assert.equal(await translate(img, h, va), 0x40000000n + (va & 0x3fffffffn));
  // not present
  mem.writeBigUInt64LE(0x40000082n, 0x2000 + idx(va, 30n));
  assert.equal(await translate(img, h, va), undefined);
  // next table in the hole: undefined, not an error
  mem.writeBigUInt64LE(0x800003n, 0x2000 + idx(va, 30n));
  assert.equal(await translate(img, h, va), undefined);
});

test('32-bit: PAE (with a 2 MiB page) and non-PAE (with a 4 MiB page) translate', async () => {
  const { mem, img } = memory();
  const va = 0x8123a678n;
  // PAE: PDPT at 0x1020 (32-byte aligned CR3), PD 0x2000, PT 0x3000, page 0x5000
  mem.writeBigUInt64LE(0x2001n, 0x1020 + Number(va >> 30n) * 8);
  mem.writeBigUInt64LE(0x3003n, 0x2000 + idx(va, 21n));
  mem.writeBigUInt64LE(0x5003n, 0x3000 + idx(va, 12n));
  const pae = header({ machineImageType: 0x14c, paeEnabled: true, directoryTableBase: 0x1020n });
  assert.equal(await translate(img, pae, va), 0x5678n);
  mem.writeBigUInt64LE(0x600083n, 0x2000 + idx(va, 21n));
  assert.equal(await translate(img, pae, va), 0x600000n + (va & 0x1fffffn));
  // non-PAE: PD at 0x9000 (4-byte entries), 4 MiB page at 0xc00000
  mem.writeUInt32LE(0xc00083, 0x9000 + Number(va >> 22n) * 4);
  const flat = header({ machineImageType: 0x14c, paeEnabled: false, directoryTableBase: 0x9000n });
  assert.equal(await translate(img, flat, va), 0xc00000n + (va & 0x3fffffn));
});

test('kdbgState tells plain, encoded, untranslatable and unset apart', async () => {
  const { mem, img } = memory();
  const va = 0xfffff80000100000n;
  mem.writeBigUInt64LE(0x2003n, 0x1000 + idx(va, 39n));
  mem.writeBigUInt64LE(0x3003n, 0x2000 + idx(va, 30n));
  mem.writeBigUInt64LE(0x200083n, 0x3000 + idx(va, 21n)); // 2 MiB page at 0x200000
  const h = header({ kdDebuggerDataBlock: va + 0x80n });
  mem.write('KDBG', 0x300090, 'latin1'); // va is 0x100000 into its 2 MiB page
  mem.writeUInt32LE(0x368, 0x300094);
  assert.equal(await kdbgState(img, h), 'plain (KDBG tag at physical 0x300080, size 0x368)');
  mem.writeUInt32LE(0xdeadbeef, 0x300090);
  assert.match(await kdbgState(img, h), /^encoded or damaged/);
  assert.match(await kdbgState(img, header({ kdDebuggerDataBlock: 0xfffff80100000000n })), /does not translate/);
  assert.equal(await kdbgState(img, header({})), 'not set in the header');
  assert.match(await kdbgState(img, header({ machineImageType: 0xaa64, kdDebuggerDataBlock: va })), /^not checked \(no page walk/);
});
