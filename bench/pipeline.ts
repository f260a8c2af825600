/**
 * acquire-equivalent pipeline on an image file read as a source (file → read policy → LiME → md5+sha1+sha256
 * + 64 MiB windows → file), against dc3dd (hash=md5 hash=sha256, also writing its output) and md5sum alone,
 * on the same input in the same run. Input and outputs live in /dev/shm so the disk's speed is not measured.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../test/helpers/cli.js';
import { Prng } from '../test/helpers/prng.js';

export interface PipelineResult {
  bytes: number;
  /** Best wall seconds per configuration. */
  seconds: Record<'memdumpFile' | 'memdumpNull' | 'dc3ddFile' | 'dc3ddNull' | 'md5sum', number | null>;
  memdumpPeakRssMiB: number;
}

/** Memory-like content: runs of zeros, text, random and repeated bytes, in 64 MiB blocks varied per block. */
export function makeImage(path: string, bytes: number): void {
  const block = 64 << 20;
  const p = new Prng(42);
  const base = Buffer.alloc(block);
  for (let off = 0; off < block; off += 1 << 20) {
    const kind = p.int(4);
    const part = base.subarray(off, off + (1 << 20));
    if (kind === 0) p.bytes(part.length).copy(part);
    else if (kind === 1) part.write('GET /index.html HTTP/1.1\r\nHost: example\r\n'.repeat(30000).slice(0, part.length), 'latin1');
    else if (kind === 2) part.fill(p.int(256));
  }
  const fd = openSync(path, 'w');
  try {
    for (let off = 0, i = 0; off < bytes; off += block, i++) {
      base.writeUInt32LE(i, 0);
      writeSync(fd, base, 0, Math.min(block, bytes - off));
    }
  } finally {
    closeSync(fd);
  }
}

function timed(cmd: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr?.toString().slice(-500)}`);
  return (performance.now() - t0) / 1000;
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function timedToNull(cmd: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync('sh', ['-c', '"$0" "$@" > /dev/null', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr?.toString().slice(-500)}`);
  return (performance.now() - t0) / 1000;
}

export async function benchPipeline(bytes = Number(process.env.BENCH_BYTES ?? 4 * 2 ** 30), runs = Number(process.env.BENCH_RUNS ?? 2)): Promise<PipelineResult> {
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'memdump-bench-'));
  const best: PipelineResult['seconds'] = { memdumpFile: null, memdumpNull: null, dc3ddFile: null, dc3ddNull: null, md5sum: null };
  const keep = (k: keyof PipelineResult['seconds'], s: number) => (best[k] = best[k] === null ? s : Math.min(best[k]!, s));
  let rss = 0;
  try {
    const img = join(dir, 'image.raw');
    makeImage(img, bytes);
    execFileSync('cat', [img], { stdio: ['ignore', 'ignore', 'ignore'] }); // page cache warm for everyone
    const common = ['acquire', '--source', 'file', '--input', img, '-q', '--max-disk-usage', '100'];
    for (let i = 0; i < runs; i++) {
      const out = join(dir, `out${i}.lime`);
      keep('memdumpFile', timed(process.execPath, [CLI, ...common, '-o', out, '--no-context']));
      rss = Math.max(rss, Number(JSON.parse(readFileSync(out + '.report.json', 'utf8')).resources.peakRssBytes) / 2 ** 20);
      rmSync(out);
      keep('memdumpNull', timedToNull(process.execPath, [CLI, ...common, '-o', '-', '--report', join(dir, `r${i}.json`)]));
      if (have('dc3dd')) {
        const dd = join(dir, `dc3dd${i}.raw`);
        keep('dc3ddFile', timed('dc3dd', [`if=${img}`, `of=${dd}`, 'hash=md5', 'hash=sha256']));
        rmSync(dd, { force: true });
        keep('dc3ddNull', timed('dc3dd', [`if=${img}`, 'of=/dev/null', 'hash=md5', 'hash=sha256']));
      }
      keep('md5sum', timed('md5sum', [img]));
    }
    return { bytes, seconds: best, memdumpPeakRssMiB: rss };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
