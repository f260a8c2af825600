/**
 * Mutation fuzzing of the E01 reader on small real ewfacquire sets: bit flips, truncations, fields overwritten with
 * extreme values (descriptor next/size, table counts and base offsets, entries, volume geometry), with the affected
 * checksums recomputed half of the time so the damage gets past the adler32 gates into the deeper checks. Each variant
 * is opened, hashed through e01MediaDigests and read in full and at random. The only acceptable outcomes are success
 * or a MemdumpError with a format code; anything else, a hang or a runaway allocation fails and prints the seed.
 *
 * Reproduce one case: MEMDUMP_FUZZ_ONLY=<name>:<seed>; more cases: MEMDUMP_FUZZ_SCALE=10.
 * Skipped only when ewfacquire is not installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { adler32 } from '../../src/core/adler32.js';
import { MemdumpError } from '../../src/core/errors.js';
import { RandomAccessFile } from '../../src/core/file.js';
import { e01, e01MediaDigests, openE01 } from '../../src/formats/e01.js';
import { tempDir } from '../helpers/cli.js';
import { Prng } from '../helpers/prng.js';

const HAVE = spawnSync('ewfacquire', ['-V']).status === 0;
const skip = HAVE ? false : 'ewfacquire (ewf-tools) is not installed';
const CODES = new Set(['E_TRUNCATED', 'E_CORRUPT', 'E_TOO_LARGE', 'E_UNSUPPORTED', 'E_NOT_FOUND']);
/** A hang guard, not a speed test: a healthy case takes milliseconds. */
const CASE_MS = 20_000;
const RSS_LIMIT = 1.5 * 2 ** 30;
const SCALE = Math.max(1, Number(process.env['MEMDUMP_FUZZ_SCALE'] ?? 1) || 1);
const ONLY = process.env['MEMDUMP_FUZZ_ONLY'];

interface Fixture {
  /** Segment files, in order. */
  files: Buffer[];
  /** Where descriptors and the fields behind them are, per file: [offset, width, checksummed range]. */
  fields: { file: number; off: number; width: 1 | 2 | 4 | 8; sum?: [number, number] }[];
}

function media(seed: number, size: number): Buffer {
  const p = new Prng(seed);
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; ) {
    const n = Math.min(size - at, 2000 + p.int(40000));
    const k = p.int(3);
    if (k === 0) p.bytes(n).copy(out, at);
    else if (k === 1) out.write(`fuzz ${at} `.repeat(n), at, n, 'latin1');
    at += n;
  }
  return out;
}

/** Walk a segment file's chain (trusting it: this is the pristine fixture) and list the fields worth mutating. */
function fieldsOf(file: number, b: Buffer): Fixture['fields'] {
  const out: Fixture['fields'] = [{ file, off: 9, width: 2 }];
  for (let at = 13; at + 76 <= b.length; ) {
    const type = b.subarray(at, at + 16).toString('latin1').replace(/\0.*$/s, '');
    const desc: [number, number] = [at, at + 72];
    out.push({ file, off: at, width: 4, sum: desc }, { file, off: at + 16, width: 8, sum: desc }, { file, off: at + 24, width: 8, sum: desc });
    const body = at + 76;
    if (type === 'table' || type === 'table2') {
      const count = b.readUInt32LE(body);
      const head: [number, number] = [body, body + 20];
      const list: [number, number] = [body + 24, body + 24 + 4 * count];
      out.push({ file, off: body, width: 4, sum: head }, { file, off: body + 8, width: 8, sum: head });
      for (const i of [0, 1, count >> 1, count - 2, count - 1]) if (i >= 0 && i < count) out.push({ file, off: body + 24 + 4 * i, width: 4, sum: list });
    } else if (type === 'volume' || type === 'data') {
      const v: [number, number] = [body, body + 1048];
      for (const o of [0, 4, 8, 12, 16]) out.push({ file, off: body + o, width: o === 16 ? 8 : 4, sum: v });
    } else if (type === 'digest' || type === 'hash') {
      out.push({ file, off: body, width: 8, sum: [body, body + (type === 'hash' ? 32 : 76)] });
    }
    const next = Number(b.readBigUInt64LE(at + 16));
    if (next <= at) break;
    at = next;
  }
  return out;
}

const EXTREMES: Record<1 | 2 | 4 | 8, bigint[]> = {
  1: [0n, 1n, 0x7fn, 0x80n, 0xffn],
  2: [0n, 1n, 2n, 3n, 0xffffn],
  4: [0n, 1n, 76n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 65534n, 65535n, 1n << 20n],
  8: [0n, 13n, 76n, 0xffffffffn, 1n << 31n, 1n << 53n, 1n << 63n, (1n << 64n) - 1n],
};

function mutate(fx: Fixture, p: Prng): { files: Buffer[]; steps: string[] } {
  const files = fx.files.map((f) => Buffer.from(f));
  const steps: string[] = [];
  const rounds = 1 + p.int(3);
  for (let r = 0; r < rounds; r++) {
    const op = p.int(6);
    if (op <= 2) {
      const f = fx.fields[p.int(fx.fields.length)]!;
      const b = files[f.file]!;
      if (f.off + f.width > b.length) continue;
      const cur = f.width === 8 ? b.readBigUInt64LE(f.off) : BigInt(b.readUIntLE(f.off, f.width));
      const choices = [...EXTREMES[f.width], cur + 1n, cur - 1n, cur + 76n, cur - 76n, cur ^ (1n << BigInt(p.int(f.width * 8)))];
      const v = BigInt.asUintN(f.width * 8, choices[p.int(choices.length)]!);
      if (f.width === 8) b.writeBigUInt64LE(v, f.off);
      else b.writeUIntLE(Number(v), f.off, f.width);
      const resum = f.sum && p.int(2) === 0 && f.sum[1] + 4 <= b.length;
      if (resum) b.writeUInt32LE(adler32(b, 1, f.sum![0], f.sum![1]), f.sum![1]);
      steps.push(`file ${f.file} @${f.off}/${f.width} = ${v}${resum ? ' (checksum fixed)' : ''}`);
    } else if (op === 3) {
      const k = p.int(files.length);
      const b = files[k]!;
      for (let i = 1 + p.int(8); i > 0; i--) {
        const at = p.int(b.length);
        b[at] = b[at]! ^ (1 << p.int(8));
        steps.push(`file ${k} flip @${at}`);
      }
    } else if (op === 4) {
      const k = p.int(files.length);
      const len = p.int(files[k]!.length);
      files[k] = files[k]!.subarray(0, len);
      steps.push(`file ${k} truncated to ${len}`);
    } else {
      const k = p.int(files.length);
      const b = files[k]!;
      const at = p.int(b.length);
      const n = 1 + p.int(200);
      files[k] = p.int(2) === 0 ? Buffer.concat([b.subarray(0, at), p.bytes(n), b.subarray(at)]) : Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + n))]);
      steps.push(`file ${k} ${files[k]!.length > b.length ? 'insert' : 'delete'} ${n} @${at}`);
    }
  }
  return { files, steps };
}

async function exercise(first: string, p: Prng): Promise<void> {
  const head = readFileSync(first).subarray(0, 64);
  e01.detect(head, BigInt(head.length));
  const img = await openE01(await RandomAccessFile.open(first), { indexBudgetChunks: 1 + p.int(40), maxOpenSegments: 1 });
  try {
    assert.ok(img.runs.every((r) => r.end > r.start));
    const d = await e01MediaDigests(img);
    assert.equal(d.bytes, img.mediaBytes);
    for (const r of img.runs) {
      for (let a = r.start; a < r.end; a += 1n << 20n) {
        const n = Number(r.end - a < 1n << 20n ? r.end - a : 1n << 20n);
        assert.equal((await img.read(a, n)).length, n);
      }
    }
  } finally {
    await img.close();
  }
}

async function fuzz(t: { diagnostic: (s: string) => void }, name: string, fx: Fixture, dir: string, runs: number): Promise<void> {
  const tally = new Map<string, number>();
  const paths = fx.files.map((_, i) => join(dir, `${name}.E${String(i + 1).padStart(2, '0')}`));
  const one = async (seed: number) => {
    const p = new Prng(seed);
    const { files, steps } = mutate(fx, p);
    files.forEach((b, i) => writeFileSync(paths[i]!, b));
    const label = `${name}:${seed} [${steps.join('; ')}]`;
    let timer: NodeJS.Timeout | undefined;
    let outcome = 'ok';
    try {
      await Promise.race([exercise(paths[0]!, p), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${label}: no outcome within ${CASE_MS} ms (hang?)`)), CASE_MS)))]);
    } catch (e) {
      if (!(e instanceof MemdumpError && CODES.has(e.code) && e.message.length > 0)) {
        throw new Error(`${label}: unacceptable outcome: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, { cause: e });
      }
      outcome = e.code;
    } finally {
      clearTimeout(timer);
    }
    assert.ok(process.memoryUsage().rss < RSS_LIMIT, `${label}: RSS above ${RSS_LIMIT} (unbounded allocation?)`);
    tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
  };
  if (ONLY) {
    const [only, seed] = ONLY.split(':');
    if (only === name) await one(Number(seed));
    return;
  }
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), one), { numRuns: runs * SCALE, seed: 0x0e01, endOnFailure: true });
  t.diagnostic(`${name}: ${[...tally].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.ok((tally.get('ok') ?? 0) > 0 && (tally.get('E_CORRUPT') ?? 0) > 0 && tally.size >= 3, `${name}: the mutations reached only ${[...tally]}`);
}

function fixture(dir: string, name: string, data: Buffer, args: string[]): Fixture {
  const input = join(dir, `${name}.bin`);
  writeFileSync(input, data);
  const r = spawnSync('ewfacquire', ['-u', '-q', '-t', join(dir, `${name}-src`), ...args, input]);
  assert.equal(r.status, 0, String(r.stderr));
  const files: Buffer[] = [];
  for (let i = 1; ; i++) {
    const p = join(dir, `${name}-src.E${String(i).padStart(2, '0')}`);
    try {
      files.push(readFileSync(p));
    } catch {
      break;
    }
  }
  return { files, fields: files.flatMap((b, i) => fieldsOf(i, b)) };
}

test('E01 reader on mutated single-segment sets: success or a coded error, never a hang', { skip, timeout: 30 * 60_000 }, async (t) => {
  const dir = tempDir(t, 'memdump-e01-fuzz-');
  const fx = fixture(dir, 'one', media(1, 200 * 1024 + 512 * 5), ['-c', 'deflate:fast', '-d', 'sha1', '-C', 'fuzz', '-D', 'd', '-e', 'e', '-E', 'v', '-N', 'n']);
  assert.equal(fx.files.length, 1);
  await fuzz(t, 'one', fx, dir, 400);
});

test('E01 reader on mutated segment sets: success or a coded error, never a hang', { skip, timeout: 30 * 60_000 }, async (t) => {
  const dir = tempDir(t, 'memdump-e01-fuzz-');
  const fx = fixture(dir, 'set', media(2, 3 * 1024 * 1024), ['-c', 'deflate:best', '-S', '1MiB', '-d', 'sha1']);
  assert.ok(fx.files.length >= 2);
  await fuzz(t, 'set', fx, dir, 150);
});
