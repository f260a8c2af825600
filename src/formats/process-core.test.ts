import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteReader } from '../core/bytes.js';
import { MemdumpError } from '../core/errors.js';
import {
  type CoreProcess,
  type CoreThread,
  NT_AUXV,
  NT_FILE,
  NT_FPREGSET,
  NT_PRPSINFO,
  NT_PRSTATUS,
  NT_SIGINFO,
  NT_X86_XSTATE,
  coreNotes,
  ntFile,
  padXstate,
  permsToFlags,
  processCoreFormat,
  prpsinfo,
  prstatus,
} from './process-core.js';
import { elfCoreHeader } from './elf.js';

const proc: CoreProcess = {
  pid: 4242,
  ppid: 1,
  pgrp: 4242,
  sid: 4000,
  uid: 1000,
  gid: 1001,
  state: 'S',
  nice: -5,
  flags: 0x400100n,
  comm: 'a-very-long-command-name',
  psargs: 'prog ' + 'x'.repeat(200),
  auxv: Buffer.from('auxv-bytes'),
  siginfo: Buffer.alloc(128, 1),
  files: [
    { start: 0x400000n, end: 0x401000n, offset: 0n, path: '/bin/prog' },
    { start: 0x7f0000000000n, end: 0x7f0000003000n, offset: 0x2000n, path: '/lib/libc.so.6' },
  ],
  pageSize: 4096n,
};

function thread(tid: number, withRegs = true): CoreThread {
  const regs = Buffer.alloc(216);
  for (let i = 0; i < 27; i++) regs.writeBigUInt64LE(BigInt(tid) * 1000n + BigInt(i), i * 8);
  return { tid, regs: withRegs ? regs : undefined, fpregs: withRegs ? Buffer.alloc(512, 2) : undefined, xstate: undefined, cursig: 0, sigpend: 0x4n, sighold: 0x10000n, utimeUs: 2_500_000n, stimeUs: 10n };
}

test('NT_PRSTATUS is 336 bytes with tid, signal masks, times and the registers at their kernel offsets', () => {
  const b = prstatus(proc, thread(4243));
  assert.equal(b.length, 336);
  assert.equal(b.readInt32LE(32), 4243);
  assert.equal(b.readInt32LE(36), 1);
  assert.equal(b.readInt32LE(44), 4000);
  assert.equal(b.readBigUInt64LE(16), 0x4n);
  assert.equal(b.readBigUInt64LE(24), 0x10000n);
  assert.equal(b.readBigInt64LE(48), 2n); // utime seconds
  assert.equal(b.readBigInt64LE(56), 500000n); // utime microseconds
  assert.equal(b.readBigUInt64LE(112), 4243000n); // r15, the first register of user_regs_struct
  assert.equal(b.readBigUInt64LE(112 + 16 * 8), 4243016n); // rip
  assert.equal(b.readInt32LE(328), 1);
  const bare = prstatus(proc, thread(7, false));
  assert.equal(bare.readInt32LE(328), 0);
  assert.ok(bare.subarray(112, 328).equals(Buffer.alloc(216)));
});

test('NT_PRPSINFO keeps fname to 15 bytes and psargs to 79, NUL-terminated', () => {
  const b = prpsinfo(proc);
  assert.equal(b.length, 136);
  assert.equal(b[0], 1); // 'S' is state 1
  assert.equal(String.fromCharCode(b[1]!), 'S');
  assert.equal(b.readInt8(3), -5);
  assert.equal(b.readUInt32LE(16), 1000);
  assert.equal(b.readUInt32LE(20), 1001);
  assert.equal(b.readInt32LE(24), 4242);
  assert.equal(b.subarray(40, 56).toString('latin1'), 'a-very-long-com\0');
  assert.equal(b[56 + 79], 0);
  assert.equal(b.subarray(56, 61).toString(), 'prog ');
});

test('NT_FILE: count, page size, triples in pages, then the paths', () => {
  const b = ntFile(proc);
  const r = new ByteReader(b, 0n, 'NT_FILE');
  assert.equal(r.u64(0), 2n);
  assert.equal(r.u64(8), 4096n);
  assert.deepEqual([r.u64(16), r.u64(24), r.u64(32)], [0x400000n, 0x401000n, 0n]);
  assert.deepEqual([r.u64(40), r.u64(48), r.u64(56)], [0x7f0000000000n, 0x7f0000003000n, 2n]);
  assert.equal(b.subarray(64).toString(), '/bin/prog\0/lib/libc.so.6\0');
});

test('notes follow the kernel order: first thread, then the process notes, then the other threads', () => {
  const notes = coreNotes(proc, [thread(4242), { ...thread(4243), xstate: Buffer.alloc(600) }]);
  assert.deepEqual(
    notes.map((n) => n.type),
    [NT_PRSTATUS, NT_PRPSINFO, NT_SIGINFO, NT_AUXV, NT_FILE, NT_FPREGSET, NT_PRSTATUS, NT_FPREGSET, NT_X86_XSTATE],
  );
  assert.equal(notes[8]!.name, 'LINUX');
  assert.equal(notes[6]!.desc.readInt32LE(32), 4243);
  assert.throws(() => coreNotes(proc, []), (e: unknown) => e instanceof MemdumpError && e.code === 'E_INTERNAL');
});

test('XSAVE images are padded to the standard size for their XCR0, as gdb requires', () => {
  const x = Buffer.alloc(2432, 9);
  x.writeBigUInt64LE(0xe7n, 464);
  const p = padXstate(x);
  assert.equal(p.length, 2688);
  assert.ok(p.subarray(0, 2432).equals(x));
  assert.ok(p.subarray(2432).equals(Buffer.alloc(256)));
  x.writeBigUInt64LE(0x2e7n, 464); // with PKRU
  assert.equal(padXstate(x).length, 2696);
  x.writeBigUInt64LE(0x7n, 464); // AVX only: already long enough, left alone
  assert.equal(padXstate(x).length, 2432);
});

test('program headers: PT_NOTE first, PT_LOADs with vaddr, memsz beyond filesz, page-aligned offsets', () => {
  const notes = Buffer.alloc(100, 3);
  const { header, dataOffsets } = elfCoreHeader(
    [
      { vaddr: 0x1000n, paddr: 0n, filesz: 0x2000n, memsz: 0x2000n, flags: permsToFlags('rw-p'), align: 4096n },
      { vaddr: 0x5000n, paddr: 0n, filesz: 0n, memsz: 0x1000n, flags: permsToFlags('---p'), align: 4096n },
      { vaddr: 0x9000n, paddr: 0n, filesz: 0x1000n, memsz: 0x4000n, flags: permsToFlags('r-xp'), align: 4096n },
    ],
    notes,
  );
  assert.equal(header.readUInt16LE(16), 4);
  assert.equal(header.readUInt16LE(56), 4);
  assert.equal(header.readUInt32LE(64), 4); // PT_NOTE
  const ph = (i: number, off: number) => header.readBigUInt64LE(64 + 56 * i + off);
  assert.equal(header.readUInt32LE(64 + 56 + 4), 6);
  assert.equal(header.readUInt32LE(64 + 56 * 3 + 4), 5);
  assert.deepEqual(dataOffsets, [4096n, 4096n + 0x2000n, 4096n + 0x2000n]);
  assert.equal(ph(3, 16), 0x9000n);
  assert.equal(ph(3, 32), 0x1000n);
  assert.equal(ph(3, 40), 0x4000n);
  assert.ok(header.subarray(Number(ph(0, 8)), Number(ph(0, 8)) + 100).equals(notes));
  assert.equal(ph(0, 32), 100n);
});

test('the writer refuses a copy plan that does not match its segments', () => {
  const f = processCoreFormat([{ vaddr: 0x1000n, paddr: 0n, filesz: 0x1000n, memsz: 0x1000n, flags: 4, align: 4096n }], []);
  const sink = { position: 0n, write: async () => {}, writeZeros: async () => {} };
  assert.throws(() => f.createWriter(sink, { runs: [{ start: 0x1000n, end: 0x3000n }], notes: [] }), (e: unknown) => e instanceof MemdumpError && e.code === 'E_INTERNAL');
  assert.doesNotThrow(() => f.createWriter(sink, { runs: [{ start: 0x1000n, end: 0x2000n }], notes: [] }));
});
