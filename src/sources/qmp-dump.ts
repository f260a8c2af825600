import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { ByteReader, corrupt, truncated } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { Range } from '../core/ranges.js';
import { EHDR_SIZE, MAX_NOTE_BYTES, PHDR_SIZE, PN_XNUM, PT_LOAD, PT_NOTE, isElf64Le, parseNotes } from '../formats/elf-parse.js';
import type { ImageNote } from '../formats/types.js';
import type { PhysicalSource, SourceKind } from './types.js';

/**
 * QEMU's dump-guest-memory written into a pipe (its write end handed to QEMU with getfd) and read as a stream: the ELF header, program headers and notes
 * first, then each PT_LOAD's bytes in file order. Nothing of the guest touches our disk except the evidence
 * container itself, and no second copy of the memory is needed. The price is that reads are strictly sequential:
 * the source serves runs in order and each run front to back, which is exactly how copyMemory asks.
 */

/** Error codes a read of this source can end with; none of them may become a zero-filled page. */
export const STREAM_FATAL: ReadonlySet<string> = new Set(['E_SOURCE_READ', 'E_TRUNCATED', 'E_CORRUPT', 'E_UNSUPPORTED', 'E_INTERRUPTED']);
/** A QEMU dump of x86 ends with the last PT_LOAD; tolerate (and count) a little trailing data from other versions. */
const MAX_TRAILING = 64n << 20n;
const MAX_PHNUM = 0xfffe;

export interface PipeReaderOptions {
  /** Pause the stream above this many buffered bytes (the writer then blocks in the kernel, not in our memory). */
  highWater?: number;
  /**
   * No byte for this long while a read waits: fail with E_SOURCE_READ and close our end, so QEMU's next write fails
   * (EPIPE), its dump ends and QEMU resumes the guest it paused. 0 = never.
   */
  stallMs?: number;
}

/**
 * The reading end of the pipe QEMU writes the dump into. Bytes are buffered up to a bound; beyond it the stream
 * is paused, so a slow sink holds QEMU back through the pipe instead of growing our memory.
 */
export class PipeReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private readonly highWater: number;
  private readonly stallMs: number;
  /** Stream offset of the next byte read() returns. */
  position = 0n;

  /** Read the pipe end `fd` (owned from now on: closed when the reader is destroyed or the stream ends). */
  static fromFd(fd: number, o: PipeReaderOptions = {}): PipeReader {
    return new PipeReader(new Socket({ fd, readable: true, writable: false }), o);
  }

  /** `stream`: any byte stream (tests feed a Readable). */
  constructor(
    private readonly sock: Readable,
    o: PipeReaderOptions = {},
  ) {
    this.highWater = o.highWater ?? 8 << 20;
    this.stallMs = o.stallMs ?? 0;
    this.sock.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.buffered += c.length;
      if (this.buffered >= this.highWater) this.sock.pause();
      this.notify();
    });
    const ended = () => {
      this.ended = true;
      this.notify();
    };
    this.sock.on('end', ended).on('close', ended);
    this.sock.on('error', (e) => {
      this.failure ??= e;
      this.notify();
    });
  }

  /** Stop reading: QEMU's next write fails with EPIPE and its dump ends. A pending read rejects with `reason`. */
  destroy(reason: Error): void {
    this.failure ??= reason;
    this.sock.destroy();
    this.chunks = [];
    this.buffered = 0;
    this.notify();
  }

  get destroyed(): boolean {
    return this.failure !== undefined;
  }

  /** Up to `len` bytes into buf[off…]; 0 only at end of stream. */
  async read(buf: Buffer, off: number, len: number): Promise<number> {
    while (this.buffered === 0) {
      if (this.failure) throw this.failure;
      if (this.ended) return 0;
      await this.waitForData();
    }
    if (this.failure) throw this.failure;
    let n = 0;
    while (n < len && this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const take = Math.min(c.length, len - n);
      c.copy(buf, off + n, 0, take);
      n += take;
      if (take === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
    }
    this.buffered -= n;
    this.position += BigInt(n);
    if (this.buffered < this.highWater / 2 && this.sock.isPaused()) this.sock.resume();
    return n;
  }

  async readExact(len: number, what: string): Promise<Buffer> {
    const b = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = await this.read(b, got, len - got);
      if (n === 0) throw truncated(`QEMU's dump stream ended inside the ${what}`, this.position);
      got += n;
    }
    return b;
  }

  /** Discard bytes up to stream offset `to`; returns how many were discarded (fewer only at end of stream). */
  async skipTo(to: bigint): Promise<bigint> {
    const scratch = Buffer.allocUnsafe(64 << 10);
    let skipped = 0n;
    while (this.position < to) {
      const want = to - this.position < BigInt(scratch.length) ? Number(to - this.position) : scratch.length;
      const n = await this.read(scratch, 0, want);
      if (n === 0) break;
      skipped += BigInt(n);
    }
    return skipped;
  }

  private waitForData(): Promise<void> {
    return new Promise<void>((r) => {
      const timer =
        this.stallMs > 0
          ? setTimeout(() => {
              this.destroy(new MemdumpError('E_SOURCE_READ', `QEMU sent no byte of the dump for ${Math.round(this.stallMs / 1000)} s at stream offset ${hex(this.position)}; closed the stream so QEMU ends the dump (--stall-timeout)`, { details: { streamOffset: hex(this.position), stallMs: this.stallMs } }));
            }, this.stallMs)
          : undefined;
      this.wake = () => {
        if (timer) clearTimeout(timer);
        r();
      };
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

export interface LoadRun {
  start: bigint;
  end: bigint;
  /** Stream offset of the run's first byte. */
  offset: bigint;
}

export interface DumpHeaders {
  machine: number;
  notes: ImageNote[];
  loads: LoadRun[];
  /** PT_LOADs whose memsz exceeds filesz: the excess is not in the dump. */
  shortLoads: number;
}

/**
 * Read QEMU's ELF header, program headers and notes from the stream. Everything is bounded before allocation, and
 * the layout must be one a single forward pass can serve: notes before the first PT_LOAD's bytes, PT_LOAD bytes in
 * ascending file offset and ascending, disjoint physical address (what QEMU writes with paging:false).
 */
export async function readDumpHeaders(r: PipeReader): Promise<DumpHeaders> {
  const eh = new ByteReader(await r.readExact(EHDR_SIZE, 'ELF header'), 0n, 'ELF header');
  if (!isElf64Le(eh.buf)) throw new MemdumpError('E_UNSUPPORTED', 'QEMU did not write a little-endian ELF64 dump (a 32-bit or big-endian guest?); dump it to a file and use memdump convert');
  const machine = eh.u16(18);
  const phoff = eh.u64(32);
  const phentsize = eh.u16(54);
  const phnum = eh.u16(56);
  if (phentsize !== PHDR_SIZE) throw corrupt(`ELF program header size ${phentsize}, expected ${PHDR_SIZE}`, 54n);
  if (phnum === PN_XNUM || phnum > MAX_PHNUM) throw new MemdumpError('E_UNSUPPORTED', `QEMU's dump has ${phnum === PN_XNUM ? 'more than 65534' : phnum} program headers; streaming supports up to ${MAX_PHNUM}`);
  if (phoff < BigInt(EHDR_SIZE)) throw corrupt(`ELF program headers at ${hex(phoff)} overlap the ELF header`, 32n);
  await r.skipTo(phoff);
  const ph = new ByteReader(await r.readExact(phnum * PHDR_SIZE, 'ELF program headers'), phoff, 'ELF program headers');
  const segs: { type: number; offset: bigint; paddr: bigint; filesz: bigint; memsz: bigint }[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = i * PHDR_SIZE;
    segs.push({ type: ph.u32(o), offset: ph.u64(o + 8), paddr: ph.u64(o + 24), filesz: ph.u64(o + 32), memsz: ph.u64(o + 40) });
  }
  const noteSegs = segs.filter((s) => s.type === PT_NOTE && s.filesz > 0n).sort((a, b) => (a.offset < b.offset ? -1 : 1));
  const loadSegs = segs.filter((s) => s.type === PT_LOAD && s.filesz > 0n);
  const firstData = loadSegs.reduce((m, s) => (s.offset < m ? s.offset : m), 1n << 64n);
  const notes: ImageNote[] = [];
  let noteBudget = BigInt(MAX_NOTE_BYTES);
  for (const s of noteSegs) {
    if (s.offset < r.position || s.offset + s.filesz > firstData) throw new MemdumpError('E_UNSUPPORTED', `QEMU's dump has a note segment at ${hex(s.offset)} that a forward read cannot reach before the memory`);
    if (s.filesz > noteBudget) throw new MemdumpError('E_TOO_LARGE', `ELF notes exceed ${MAX_NOTE_BYTES} bytes`);
    noteBudget -= s.filesz;
    await r.skipTo(s.offset);
    notes.push(...parseNotes(new ByteReader(await r.readExact(Number(s.filesz), 'ELF notes'), s.offset, 'ELF note')));
  }
  const loads: LoadRun[] = [];
  let shortLoads = 0;
  let lastOffsetEnd = r.position;
  for (const s of [...loadSegs].sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0))) {
    const end = s.paddr + s.filesz;
    if (end > 1n << 64n || s.offset + s.filesz > 1n << 63n) throw corrupt(`PT_LOAD at ${hex(s.paddr)} of ${s.filesz} bytes overflows`, phoff);
    if (s.offset < lastOffsetEnd) throw new MemdumpError('E_UNSUPPORTED', `QEMU's dump stores PT_LOAD bytes at ${hex(s.offset)} before earlier data ends (${hex(lastOffsetEnd)}); not readable in one pass`);
    const prev = loads[loads.length - 1];
    if (prev && s.paddr < prev.end) throw new MemdumpError('E_UNSUPPORTED', `QEMU's dump stores physical ${hex(s.paddr)} after ${hex(prev.end)}: runs out of address order cannot be streamed`);
    if (s.memsz > s.filesz) shortLoads++;
    if (prev && prev.end === s.paddr && prev.offset + (prev.end - prev.start) === s.offset) prev.end = end;
    else loads.push({ start: s.paddr, end, offset: s.offset });
    lastOffsetEnd = s.offset + s.filesz;
  }
  if (loads.length === 0) throw new MemdumpError('E_CORRUPT', "QEMU's dump has no PT_LOAD with data: the guest has no RAM to dump?");
  return { machine, notes, loads, shortLoads };
}

export interface QemuDumpSourceOptions {
  path: string;
  kind: SourceKind;
  reader: PipeReader;
  headers: DumpHeaders;
  info: Record<string, unknown>;
  /**
   * Runs once the last byte of the last run has been read, before that byte is handed on (the stream's tail drains
   * meanwhile): waits for QEMU's verdict on the dump. If it throws, the read fails and the copy is INCOMPLETE.
   */
  atEnd: () => Promise<void>;
}

/** The streamed dump as a PhysicalSource whose reads must come in address order. */
export class QemuDumpSource implements PhysicalSource {
  readonly kind: SourceKind;
  readonly path: string;
  readonly ranges: readonly Range[];
  readonly pageSize = 4096;
  readonly notes: readonly ImageNote[];
  readonly info: Record<string, unknown>;
  private run = 0;
  private next: bigint;
  private finished = false;

  constructor(private readonly o: QemuDumpSourceOptions) {
    this.kind = o.kind;
    this.path = o.path;
    this.ranges = o.headers.loads.map((l) => ({ start: l.start, end: l.end }));
    this.notes = o.headers.notes;
    this.info = o.info;
    this.next = o.headers.loads[0]!.start;
  }

  async read(addr: bigint, buf: Buffer, length: number): Promise<number> {
    try {
      return await this.readInOrder(addr, buf, length);
    } catch (e) {
      // the read policy reports only the code; the report keeps what happened
      this.info['streamError'] ??= (e as Error).message;
      throw e;
    }
  }

  private async readInOrder(addr: bigint, buf: Buffer, length: number): Promise<number> {
    const loads = this.o.headers.loads;
    if (addr !== this.next || addr === loads[this.run]!.end) {
      // only forward to the start of a later run (which may begin where this one ends, stored elsewhere)
      const k = loads.findIndex((l, i) => i > this.run && l.start === addr);
      if (k < 0 || this.next !== loads[this.run]!.end) {
        throw new MemdumpError('E_UNSUPPORTED', `a streamed QEMU dump is read in order: asked for ${hex(addr)}, next is ${hex(this.next)}`);
      }
      this.run = k;
      this.next = addr;
    }
    const load = loads[this.run]!;
    const at = load.offset + (addr - load.start);
    if (this.o.reader.position < at) {
      const want = at - this.o.reader.position;
      if ((await this.o.reader.skipTo(at)) < want) throw this.early(addr);
    }
    const n = await this.o.reader.read(buf, 0, Number(load.end - addr < BigInt(length) ? load.end - addr : BigInt(length)));
    if (n === 0) throw this.early(addr);
    this.next = addr + BigInt(n);
    if (this.next === load.end && this.run === loads.length - 1 && !this.finished) {
      this.finished = true;
      // QEMU's verdict first, while the rest of the stream drains beside it: end-of-file alone proves nothing
      // (QEMU closes the pipe on failure too) and, if anything else held the write end, would never come
      const drain = this.drainTrailing();
      drain.catch(() => undefined);
      await this.o.atEnd();
      await drain;
    }
    return n;
  }

  private async drainTrailing(): Promise<void> {
    const scratch = Buffer.allocUnsafe(64 << 10);
    let trailing = 0n;
    for (let m; (m = await this.o.reader.read(scratch, 0, scratch.length)) > 0; ) {
      trailing += BigInt(m);
      if (trailing > MAX_TRAILING) throw new MemdumpError('E_UNSUPPORTED', `QEMU's dump has more than ${MAX_TRAILING} bytes after the last PT_LOAD`);
    }
    if (trailing > 0n) this.info['trailingStreamBytes'] = trailing.toString();
  }

  async close(): Promise<void> {
    this.o.reader.destroy(new MemdumpError('E_INTERRUPTED', 'the dump stream was closed'));
  }

  private early(addr: bigint): MemdumpError {
    return new MemdumpError('E_TRUNCATED', `QEMU's dump stream ended at stream offset ${hex(this.o.reader.position)}, before physical ${hex(addr)} (QEMU failed or was stopped)`, { details: { streamOffset: hex(this.o.reader.position) } });
  }
}
