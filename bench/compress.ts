/**
 * Transport compression on memory-like data: which compressor, which level, on which thread (issue 4).
 *
 * Input: the mixed file (bench/mixed-file.ts: ¼ random, ¼ zeros, ½ text, per MiB), BENCH_COMPRESS_MIB MiB
 * (default 1024) in /dev/shm, held in memory and fed in 1 MiB chunks so only compression is timed. Every row gives
 * wall-clock MiB/s of uncompressed input, MiB per CPU-second (all threads of the process, or of the child for a
 * CLI: the cost per core on a machine whose other core hashes), and the stored/plain ratio.
 *
 * Rows: Node's zlib (sync per chunk on the main thread, one streaming Gzip, per-chunk async in the libuv pool with
 * 1–4 in flight), CompressSink itself (gzip parallel 0 = main thread, the "before"; 2 = the default; zstd 1–4 in
 * flight, the recommended transport compression), decompressStream of each sink's output, the
 * gzip/pigz/zstd CLIs, and zstd npm bindings when they can be loaded: from the project's node_modules, or from
 * BENCH_ZSTD_MODULES (colon-separated node_modules folders of a scratch install; nothing is installed here).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createGzip, gzip, gzipSync } from 'node:zlib';
import { CompressSink, type TransportCompression } from '../src/sinks/compress.js';
import { decompressStream } from '../src/sinks/decompress.js';
import type { OutputSink, Receipt } from '../src/sinks/types.js';
import { writeMixedFile } from './mixed-file.js';

const MIB = 1 << 20;

export interface CompressRow {
  name: string;
  threads: string;
  mibPerSec: number;
  mibPerCpuSec: number;
  ratio: number;
}

function childCpuSeconds(): number {
  // fields 16/17 of /proc/self/stat: user+system clock ticks of waited-for children (USER_HZ is 100 on Linux)
  const f = readFileSync('/proc/self/stat', 'latin1').split(') ')[1]!.split(' ');
  return (Number(f[13]) + Number(f[14])) / 100;
}

async function timed(name: string, threads: string, plain: number, fn: () => Promise<number>): Promise<CompressRow> {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const stored = await fn();
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuSec = (cpu.user + cpu.system) / 1e6;
  return { name, threads, mibPerSec: plain / MIB / sec, mibPerCpuSec: plain / MIB / cpuSec, ratio: stored / plain };
}

/** Chunks compressed by an async function, `depth` at a time, outputs taken in order (what CompressSink does). */
async function ordered(chunks: Buffer[], depth: number, fn: (b: Buffer) => Promise<Buffer>): Promise<number> {
  let stored = 0;
  const q: Promise<Buffer>[] = [];
  for (const c of chunks) {
    q.push(fn(c));
    if (q.length >= depth) stored += (await q.shift()!).length;
  }
  for (const p of q) stored += (await p).length;
  return stored;
}

const gzipAsync = (b: Buffer, level: number) =>
  new Promise<Buffer>((resolve, reject) => gzip(b, { level }, (e, out) => (e ? reject(e) : resolve(out))));

function streamGzip(chunks: Buffer[], level: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const gz = createGzip({ level, chunkSize: 256 * 1024 });
    let stored = 0;
    gz.on('data', (d: Buffer) => (stored += d.length));
    gz.on('end', () => resolve(stored));
    gz.on('error', reject);
    let i = 0;
    const pump = () => {
      while (i < chunks.length) if (!gz.write(chunks[i++]!)) return void gz.once('drain', pump);
      gz.end();
    };
    pump();
  });
}

class NullSink implements OutputSink {
  readonly describe = 'null';
  private pos = 0n;
  get position(): bigint {
    return this.pos;
  }
  async write(buf: Buffer): Promise<void> {
    this.pos += BigInt(buf.length);
  }
  async writeZeros(n: bigint): Promise<void> {
    this.pos += n;
  }
  async finish(): Promise<Receipt> {
    return { path: 'null', bytes: this.pos, complete: true };
  }
  async abort(): Promise<Receipt> {
    return { path: 'null', bytes: this.pos, complete: false };
  }
}

async function viaSink(chunks: Buffer[], algo: TransportCompression, level: number, parallel: number): Promise<number> {
  const inner = new NullSink();
  const sink = CompressSink.create(inner, algo, level, { parallel });
  for (const c of chunks) await sink.write(c);
  await sink.finish();
  return Number(inner.position);
}

function cliRow(name: string, threads: string, input: string, plain: number, cmd: string, args: string[]): CompressRow | undefined {
  const out = input + '.out';
  const cpu0 = childCpuSeconds();
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/bin/sh', ['-c', `exec "$0" "$@" < "${input}" > "${out}"`, cmd, ...args]);
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuSec = childCpuSeconds() - cpu0;
  if (r.status !== 0) return undefined;
  const stored = statSync(out).size;
  unlinkSync(out);
  return { name, threads, mibPerSec: plain / MIB / sec, mibPerCpuSec: plain / MIB / cpuSec, ratio: stored / plain };
}

function loader(): (name: string) => unknown {
  const dirs = [import.meta.url, ...(process.env['BENCH_ZSTD_MODULES'] ?? '').split(':').filter(Boolean).map((d) => pathToFileURL(join(d, 'x.js')).href)];
  return (name) => {
    for (const d of dirs) {
      try {
        return createRequire(d)(name);
      } catch {
        // not installed there
      }
    }
    return undefined;
  };
}

interface ZstdNapi {
  Compressor: new () => { setParameters(p: Record<string, unknown>): void; compress(b: Buffer): Buffer };
}
interface MongoZstd {
  compress(b: Buffer, level?: number): Promise<Buffer>;
}
interface ToonZstd {
  Encoder: new (level: number) => { encode(b: Buffer): Promise<Buffer>; encodeSync(b: Buffer): Buffer };
}
interface ZstdCodec {
  ZstdCodec: { run(cb: (z: { Simple: new () => { compress(b: Uint8Array, level: number): Uint8Array } }) => void): void };
}
interface BokuwebZstd {
  init(): Promise<void>;
  compress(b: Uint8Array, level: number): Uint8Array;
}

async function zstdRows(chunks: Buffer[], plain: number): Promise<CompressRow[]> {
  const load = loader();
  const rows: CompressRow[] = [];
  // pure-JS/wasm encoders are an order of magnitude slower: a quarter of the input is enough to rank them
  const quarter = chunks.slice(0, Math.max(1, chunks.length >> 2));
  const qPlain = quarter.reduce((n, c) => n + c.length, 0);
  const napi = load('zstd-napi') as ZstdNapi | undefined;
  if (napi) {
    for (const level of [1, 3]) {
      const c = new napi.Compressor();
      c.setParameters({ compressionLevel: level });
      rows.push(await timed(`zstd-napi L${level} sync per chunk`, '1 (main)', plain, async () => chunks.reduce((n, b) => n + c.compress(b).length, 0)));
    }
  }
  const mongo = load('@mongodb-js/zstd') as MongoZstd | undefined;
  if (mongo) {
    for (const level of [1, 3]) {
      // 1.2.2's entry point drops the level argument: both rows compress at level 3
      for (const depth of [1, 2]) rows.push(await timed(`@mongodb-js/zstd "L${level}" async`, `${depth} in flight`, plain, () => ordered(chunks, depth, (b) => mongo.compress(b, level))));
    }
  }
  const toon = load('@toondepauw/node-zstd') as ToonZstd | undefined;
  if (toon) {
    const e = new toon.Encoder(1);
    rows.push(await timed('@toondepauw/node-zstd L1 sync', '1 (main)', plain, async () => chunks.reduce((n, b) => n + e.encodeSync(b).length, 0)));
    rows.push(await timed('@toondepauw/node-zstd L1 async', '2 in flight', plain, () => ordered(chunks, 2, (b) => e.encode(b))));
  }
  const codec = load('zstd-codec') as ZstdCodec | undefined;
  if (codec) {
    const simple = await new Promise<{ compress(b: Uint8Array, level: number): Uint8Array }>((resolve) => codec.ZstdCodec.run((z) => resolve(new z.Simple())));
    rows.push(await timed('zstd-codec (emscripten) L1', '1 (main)', qPlain, async () => quarter.reduce((n, b) => n + simple.compress(b, 1).length, 0)));
  }
  const boku = load('@bokuweb/zstd-wasm') as BokuwebZstd | undefined;
  if (boku) {
    await boku.init();
    rows.push(await timed('@bokuweb/zstd-wasm L1', '1 (main)', qPlain, async () => quarter.reduce((n, b) => n + boku.compress(b, 1).length, 0)));
  }
  return rows;
}

export async function benchCompressRows(): Promise<CompressRow[]> {
  const mib = Number(process.env['BENCH_COMPRESS_MIB'] ?? 1024);
  const dir = existsSync('/dev/shm') ? '/dev/shm' : '/tmp';
  const file = join(dir, `memdump-bench-compress-${process.pid}.bin`);
  writeMixedFile(file, mib * MIB);
  try {
    const all = readFileSync(file);
    const chunks: Buffer[] = [];
    for (let off = 0; off < all.length; off += MIB) chunks.push(all.subarray(off, off + MIB));
    const plain = all.length;
    const rows: CompressRow[] = [];
    for (const level of [1, 6]) {
      rows.push(await timed(`zlib gzipSync L${level} per 1 MiB chunk`, '1 (main)', plain, async () => chunks.reduce((n, c) => n + gzipSync(c, { level }).length, 0)));
      rows.push(await timed(`zlib createGzip L${level} one stream`, '1 (pool)', plain, () => streamGzip(chunks, level)));
      for (const depth of [1, 2, 4]) rows.push(await timed(`zlib gzip L${level} async per chunk`, `${depth} in flight`, plain, () => ordered(chunks, depth, (c) => gzipAsync(c, level))));
    }
    for (const parallel of [0, 1, 2, 4]) {
      rows.push(await timed(`CompressSink gzip L1 parallel=${parallel}`, parallel === 0 ? '1 (main)' : `${parallel} in flight`, plain, () => viaSink(chunks, 'gzip', 1, parallel)));
    }
    // zstd has no synchronous binding: parallel 0 is one block at a time in the pool, the same as 1
    for (const parallel of [1, 2, 4]) {
      rows.push(await timed(`CompressSink zstd L3 parallel=${parallel}`, `${parallel} in flight`, plain, () => viaSink(chunks, 'zstd', 3, parallel)));
    }
    // the analyst's side: decompressStream over the sink's own output
    for (const [algo, level] of [['gzip', 1], ['zstd', 3]] as const) {
      const inner: Buffer[] = [];
      const collect = new (class extends NullSink {
        override async write(b: Buffer): Promise<void> {
          inner.push(Buffer.from(b));
          await super.write(b);
        }
      })();
      const s = CompressSink.create(collect, algo, level);
      for (const c of chunks) await s.write(c);
      await s.finish();
      const stored = inner.reduce((n, b) => n + b.length, 0);
      rows.push(
        await timed(`decompressStream ${algo} (of CompressSink L${level})`, '1 (pool)', plain, async () => {
          async function* src(): AsyncGenerator<Buffer> {
            yield* inner;
          }
          let n = 0;
          for await (const b of decompressStream(algo, src())) n += b.length;
          if (n !== plain) throw new Error(`decompressed ${n} of ${plain}`);
          return stored;
        }),
      );
    }
    const clis: [string, string, string, string[]][] = [
      ['gzip -1 (CLI)', '1', 'gzip', ['-1', '-c']],
      ['gzip -6 (CLI)', '1', 'gzip', ['-6', '-c']],
      ['pigz -1 -p1 (CLI)', '1', 'pigz', ['-1', '-p', '1', '-c']],
      ['pigz -1 -p2 (CLI)', '2', 'pigz', ['-1', '-p', '2', '-c']],
      ['pigz -6 -p2 (CLI)', '2', 'pigz', ['-6', '-p', '2', '-c']],
      ['zstd -1 -T1 (CLI)', '1', 'zstd', ['-1', '-T1', '-q', '-c']],
      ['zstd -1 -T2 (CLI)', '2', 'zstd', ['-1', '-T2', '-q', '-c']],
      ['zstd -3 -T1 (CLI)', '1', 'zstd', ['-3', '-T1', '-q', '-c']],
      ['zstd -3 -T2 (CLI)', '2', 'zstd', ['-3', '-T2', '-q', '-c']],
    ];
    for (const [name, threads, cmd, args] of clis) {
      const r = cliRow(name, threads, file, plain, cmd, args);
      rows.push(r ?? { name: `${name}: not installed`, threads, mibPerSec: NaN, mibPerCpuSec: NaN, ratio: NaN });
    }
    rows.push(...(await zstdRows(chunks, plain)));
    return rows;
  } finally {
    rmSync(file, { force: true });
  }
}

export async function benchCompress(): Promise<void> {
  const rows = await benchCompressRows();
  const mib = Number(process.env['BENCH_COMPRESS_MIB'] ?? 1024);
  console.log(`\n## transport compression: ${mib} MiB of the mixed file (¼ random, ¼ zeros, ½ text), 1 MiB chunks, ${process.env['UV_THREADPOOL_SIZE'] ?? 4} libuv threads`);
  console.log(`${'what'.padEnd(46)} ${'threads'.padEnd(12)} ${'MiB/s'.padStart(7)} ${'MiB/cpu-s'.padStart(9)} ${'ratio'.padStart(6)}`);
  for (const r of rows) {
    console.log(`${r.name.padEnd(46)} ${r.threads.padEnd(12)} ${r.mibPerSec.toFixed(0).padStart(7)} ${r.mibPerCpuSec.toFixed(0).padStart(9)} ${r.ratio.toFixed(3).padStart(6)}`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchCompress();
