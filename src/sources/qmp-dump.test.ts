import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from '../core/errors.js';
import { encodeNote } from '../formats/elf-parse.js';
import { Prng } from '../../test/helpers/prng.js';
import { type Seg, qemuLikeElf } from '../../test/helpers/vm-elf.js';
import { PipeReader, QemuDumpSource, type DumpHeaders, readDumpHeaders } from './qmp-dump.js';
import { openPipe } from './qmp-client.js';

/** Feed `buf` in uneven pieces, as a pipe delivers it. */
function streamOf(buf: Buffer, seed = 1): Readable {
  const rng = new Prng(seed);
  const parts: Buffer[] = [];
  for (let o = 0; o < buf.length; ) {
    const n = 1 + rng.int(70_000);
    parts.push(buf.subarray(o, o + n));
    o += n;
  }
  return Readable.from(parts);
}

function sourceOf(buf: Buffer, atEnd: () => Promise<void> = async () => undefined, highWater?: number) {
  const reader = new PipeReader(streamOf(buf), highWater === undefined ? {} : { highWater });
  return readDumpHeaders(reader).then((headers: DumpHeaders) => ({ reader, headers, src: new QemuDumpSource({ path: 'test', kind: 'file', reader, headers, info: {}, atEnd }) }));
}

async function readAll(src: QemuDumpSource, chunk: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const r of src.ranges) {
    const parts: Buffer[] = [];
    for (let a = r.start; a < r.end; ) {
      const want = Number(r.end - a < BigInt(chunk) ? r.end - a : BigInt(chunk));
      const b = Buffer.alloc(want);
      const n = await src.read(a, b, want);
      assert.ok(n > 0 && n <= want);
      parts.push(b.subarray(0, n));
      a += BigInt(n);
    }
    out.push(Buffer.concat(parts));
  }
  return out;
}

test('streams a QEMU-layout ELF: runs, notes, bytes in order, atEnd once after the last byte', async () => {
  const rng = new Prng(7);
  const segs: Seg[] = [
    { paddr: 0n, data: rng.bytes(300_000), gap: 0 },
    { paddr: 0x100000n, data: rng.bytes(123_457), gap: 5 },
    { paddr: 0xfffc0000n, data: rng.bytes(65_536), gap: 0 },
  ];
  const notes = Buffer.concat([encodeNote({ name: 'CORE', type: 1, desc: rng.bytes(144) }), encodeNote({ name: 'VMCOREINFO', type: 0, desc: Buffer.from('OSRELEASE=6.1.0\n') })]);
  let ends = 0;
  const { src, headers } = await sourceOf(qemuLikeElf(segs, notes, 11), async () => void ends++, 100_000);
  assert.deepEqual(src.ranges, segs.map((s) => ({ start: s.paddr, end: s.paddr + BigInt(s.data.length) })));
  assert.deepEqual(src.notes.map((n) => n.name), ['CORE', 'VMCOREINFO']);
  assert.equal(headers.machine, 62);
  const got = await readAll(src, 40_000);
  got.forEach((b, i) => assert.ok(b.equals(segs[i]!.data), `run ${i}`));
  assert.equal(ends, 1);
  assert.equal(src.info['trailingStreamBytes'], '11');
});

test('adjacent PT_LOADs that are adjacent in the stream too become one run', async () => {
  const rng = new Prng(3);
  const segs: Seg[] = [
    { paddr: 0n, data: rng.bytes(4096), gap: 0 },
    { paddr: 4096n, data: rng.bytes(4096), gap: 0 },
    { paddr: 8192n, data: rng.bytes(4096), gap: 1 },
  ];
  const { src } = await sourceOf(qemuLikeElf(segs, Buffer.alloc(0)));
  assert.deepEqual(src.ranges, [
    { start: 0n, end: 8192n },
    { start: 8192n, end: 12288n },
  ]);
  const got = await readAll(src, 1 << 20);
  assert.ok(Buffer.concat(got).equals(Buffer.concat(segs.map((s) => s.data))));
});

test('a read out of order is E_UNSUPPORTED; a stream cut short is E_TRUNCATED and atEnd never runs', async () => {
  const rng = new Prng(11);
  const segs: Seg[] = [
    { paddr: 0n, data: rng.bytes(10_000), gap: 0 },
    { paddr: 0x10000n, data: rng.bytes(10_000), gap: 0 },
  ];
  const elf = qemuLikeElf(segs, Buffer.alloc(0));
  const a = await sourceOf(elf);
  await assert.rejects(a.src.read(0x10000n, Buffer.alloc(10), 10), (e: MemdumpError) => e.code === 'E_UNSUPPORTED');
  await assert.rejects(a.src.read(100n, Buffer.alloc(10), 10), (e: MemdumpError) => e.code === 'E_UNSUPPORTED');

  let ended = false;
  const b = await sourceOf(elf.subarray(0, elf.length - 500), async () => void (ended = true));
  await assert.rejects(readAll(b.src, 4096), (e: MemdumpError) => e.code === 'E_TRUNCATED');
  assert.equal(ended, false);
});

test('destroy() fails a pending read with the given coded error', async () => {
  const never = new Readable({ read() {} });
  const r = new PipeReader(never);
  const p = r.read(Buffer.alloc(10), 0, 10);
  r.destroy(new MemdumpError('E_INTERRUPTED', 'stop'));
  await assert.rejects(p, (e: MemdumpError) => e.code === 'E_INTERRUPTED');
});

test('layouts a forward pass cannot serve are refused with E_UNSUPPORTED', async () => {
  const rng = new Prng(5);
  // physical addresses descending in stream order
  const desc = qemuLikeElf(
    [
      { paddr: 0x10000n, data: rng.bytes(100), gap: 0 },
      { paddr: 0n, data: rng.bytes(100), gap: 0 },
    ],
    Buffer.alloc(0),
  );
  await assert.rejects(readDumpHeaders(new PipeReader(streamOf(desc))), (e: MemdumpError) => e.code === 'E_UNSUPPORTED');
  const noLoads = qemuLikeElf([], encodeNote({ name: 'CORE', type: 1, desc: Buffer.alloc(8) }));
  await assert.rejects(readDumpHeaders(new PipeReader(streamOf(noLoads))), (e: MemdumpError) => e.code === 'E_CORRUPT');
});

test('property: mutated headers only ever fail with coded errors, and never hang', async () => {
  const rng = new Prng(99);
  const base = qemuLikeElf(
    [
      { paddr: 0n, data: rng.bytes(2000), gap: 0 },
      { paddr: 0x2000n, data: rng.bytes(3000), gap: 3 },
    ],
    encodeNote({ name: 'CORE', type: 1, desc: rng.bytes(40) }),
  );
  const allowed = new Set(['E_TRUNCATED', 'E_CORRUPT', 'E_TOO_LARGE', 'E_UNSUPPORTED']);
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.nat(64 + 56 * 3 + 60), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(base.length), async (muts, cut) => {
      const m = Buffer.from(base.subarray(0, Math.max(cut, 1)));
      for (const [o, v] of muts) if (o < m.length) m[o] = v;
      try {
        const { src } = await sourceOf(m);
        await readAll(src, 1024);
      } catch (e) {
        assert.ok(e instanceof MemdumpError, `uncoded ${String(e)}`);
        assert.ok(allowed.has(e.code), e.code);
      }
    }),
    { numRuns: 400, seed: 42 },
  );
});

test('stall: no byte for stallMs fails a waiting read with E_SOURCE_READ and closes the stream', async () => {
  let destroyed = false;
  const never = new Readable({
    read() {},
    destroy(_e, cb) {
      destroyed = true;
      cb(null);
    },
  });
  never.push(Buffer.alloc(10));
  const r = new PipeReader(never, { stallMs: 200 });
  assert.equal(await r.read(Buffer.alloc(10), 0, 10), 10, 'buffered bytes are served');
  await assert.rejects(r.read(Buffer.alloc(10), 0, 10), (e: MemdumpError) => e.code === 'E_SOURCE_READ' && /no byte/.test(e.message));
  assert.equal(destroyed, true, 'our end is closed, so the writer gets EPIPE');
});

test('atEnd runs after the last byte of the last run even if end-of-file never comes; the tail drains beside it', async () => {
  const rng = new Prng(3);
  const segs: Seg[] = [{ paddr: 0x1000n, data: rng.bytes(70_000), gap: 0 }];
  const whole = qemuLikeElf(segs, Buffer.alloc(0), 5);
  const open = new Readable({ read() {} });
  open.push(whole); // and never ends
  const reader = new PipeReader(open);
  const headers = await readDumpHeaders(reader);
  let ended = 0;
  const src = new QemuDumpSource({ path: 't', kind: 'file', reader, headers, info: {}, atEnd: async () => {
    ended++;
    open.push(null); // QEMU closes the pipe only once it has reported the dump
  } });
  const got = await readAll(src, 30_000);
  assert.ok(got[0]!.equals(segs[0]!.data));
  assert.equal(ended, 1);
  assert.equal(src.info['trailingStreamBytes'], '5');
});

test('a real pipe: openPipe + fromFd read what the write end carries; end-of-file once every write end is closed', async () => {
  const { readFd, writeFd } = openPipe();
  const r = PipeReader.fromFd(readFd);
  const data = new Prng(11).bytes(200_000);
  const w = createWriteStream('', { fd: writeFd });
  w.end(data);
  const buf = Buffer.alloc(data.length);
  let got = 0;
  for (let n; (n = await r.read(buf, got, buf.length - got)) > 0; ) got += n;
  assert.equal(got, data.length);
  assert.ok(buf.equals(data));
  r.destroy(new MemdumpError('E_INTERRUPTED', 'done'));
});
