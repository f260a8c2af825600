/**
 * Mutation fuzzing of every reader: valid small files (written through the real pipeline) are damaged at random —
 * bit flips, truncations, header fields overwritten with extreme values, bytes inserted, deleted or duplicated,
 * sidecar maps edited — and each variant is opened and read in full. The only acceptable outcomes are success
 * (with sane runs and reads of the asked length) or a MemdumpError with a format code. Anything else (RangeError,
 * TypeError, ERR_OUT_OF_RANGE, a plain Error, a hang, a runaway allocation) fails and prints the case seed.
 *
 * Reproduce one case: MEMDUMP_FUZZ_ONLY=<format>:<seed> node --test dist/test/property/parser-fuzz.test.js
 * More cases: MEMDUMP_FUZZ_SCALE=10 (multiplies every count).
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { ByteReader } from '../../src/core/bytes.js';
import { MemdumpError } from '../../src/core/errors.js';
import { RandomAccessFile } from '../../src/core/file.js';
import { type Range, isSortedDisjoint } from '../../src/core/ranges.js';
import { openAvml } from '../../src/formats/avml.js';
import { encodeNote, parseNotes } from '../../src/formats/elf-parse.js';
import { openImage } from '../../src/formats/registry.js';
import { contentHash } from '../../src/pipeline/info.js';
import { SIDECAR_SUFFIX, loadSidecar } from '../../src/formats/sidecar.js';
import type { FormatName, MemoryImage } from '../../src/formats/types.js';
import { parseIomem, ramRanges } from '../../src/sources/iomem.js';
import { sparseImage } from '../fixtures/generate.js';
import { tempDir } from '../helpers/cli.js';
import { writeWith } from '../helpers/job.js';
import { FORMAT_CODES, FUZZ_ONLY as ONLY, FUZZ_SCALE as SCALE, classify, openAndReadAll, readAll } from '../helpers/fuzz.js';
import { MemorySource } from '../helpers/memory-source.js';
import { Prng } from '../helpers/prng.js';

const IOMEM_CODES = new Set(['E_CORRUPT', 'E_TOO_LARGE', 'E_IOMEM_HIDDEN', 'E_NO_SOURCE']);
const VMCOREINFO = { name: 'VMCOREINFO', type: 0, desc: Buffer.from('OSRELEASE=6.1.0-fuzz\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=ffffffff82a1b2c0\n') };

// ---------------------------------------------------------------------------------------------------------------
// Harness

class Tally {
  readonly counts = new Map<string, number>();
  add(o: string): void {
    this.counts.set(o, (this.counts.get(o) ?? 0) + 1);
  }
  get total(): number {
    let t = 0;
    for (const v of this.counts.values()) t += v;
    return t;
  }
  toString(): string {
    return [...this.counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  }
}

/**
 * Drive `runCase(seed)` over `n` seeds with fast-check (which prints the failing seed and its own replay seed);
 * MEMDUMP_FUZZ_ONLY=name:seed replays one case.
 */
async function fuzz(name: string, n: number, runCase: (seed: number) => Promise<string>): Promise<Tally> {
  const tally = new Tally();
  if (ONLY) {
    const [only, seed] = ONLY.split(':');
    if (only === name) tally.add(await runCase(Number(seed)));
    return tally;
  }
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), async (seed) => {
      tally.add(await runCase(seed));
    }),
    { numRuns: n * SCALE, endOnFailure: true, includeErrorInReport: true },
  );
  return tally;
}

function report(t: { diagnostic: (s: string) => void }, name: string, tally: Tally, minKinds = 2): void {
  t.diagnostic(`${name}: ${tally.total} cases: ${tally.toString()}`);
  if (!ONLY) assert.ok(tally.counts.size >= minKinds, `${name}: the mutations reached only ${tally.toString()}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Binary mutations

interface Field {
  off: number;
  width: 1 | 2 | 4 | 8;
}

const MASK = { 1: 0xffn, 2: 0xffffn, 4: 0xffffffffn, 8: (1n << 64n) - 1n } as const;

function extremes(width: Field['width'], size: number): bigint[] {
  const s = BigInt(size);
  const common = [0n, 1n, s, s - 1n, s + 1n, s / 2n, s - 32n, s + 4096n];
  const byWidth: Record<Field['width'], bigint[]> = {
    1: [0x7fn, 0x80n, 0xffn],
    2: [0x7fffn, 0x8000n, 0xfffen, 0xffffn, 56n, 64n],
    4: [0x7fffffffn, 0x80000000n, 0xfffffffen, 0xffffffffn, 0x10000n, 0x10001n, 0x100000n],
    8: [0xffffffffn, 0x100000000n, 1n << 53n, (1n << 53n) + 1n, 1n << 63n, (1n << 64n) - 1n, (1n << 64n) - s, 1n << 40n],
  };
  return [...common, ...byWidth[width]].map((v) => (v < 0n ? 0n : v) & MASK[width]);
}

function writeUInt(b: Buffer, off: number, width: Field['width'], v: bigint): boolean {
  if (off < 0 || off + width > b.length) return false;
  if (width === 8) b.writeBigUInt64LE(v & MASK[8], off);
  else if (width === 4) b.writeUInt32LE(Number(v & MASK[4]), off);
  else if (width === 2) b.writeUInt16LE(Number(v & MASK[2]), off);
  else b[off] = Number(v & MASK[1]);
  return true;
}

type Special = (b: Buffer, p: Prng, steps: string[]) => Buffer;

/** Apply 1-3 random mutations; `fields` are where the format keeps lengths, offsets and magics. */
function mutate(base: Buffer, fields: readonly Field[], p: Prng, special?: Special): { buf: Buffer; steps: string[] } {
  let b: Buffer = Buffer.from(base);
  const steps: string[] = [];
  const near = () => {
    if (fields.length > 0 && p.int(2) === 0) {
      const f = fields[p.int(fields.length)]!;
      return Math.max(0, f.off + p.int(5) - 2);
    }
    return b.length > 0 ? p.int(b.length) : 0;
  };
  const n = 1 + p.int(3);
  for (let k = 0; k < n; k++) {
    const op = p.int(special ? 12 : 11);
    if (op <= 1) {
      const flips = 1 + p.int(8);
      for (let i = 0; i < flips && b.length > 0; i++) {
        const at = Math.min(near(), b.length - 1);
        const bit = p.int(8);
        b[at]! ^= 1 << bit;
        steps.push(`flip ${at}.${bit}`);
      }
    } else if (op === 2) {
      if (b.length === 0) continue;
      const at = p.int(b.length);
      const v = p.int(256);
      b[at] = v;
      steps.push(`set ${at}=${v}`);
    } else if (op === 3) {
      const at = Math.min(near(), b.length);
      b = b.subarray(0, at);
      steps.push(`truncate ${at}`);
    } else if (op <= 6) {
      // overwrite a field with an extreme value (of its width, sometimes of another)
      const f = fields.length > 0 && p.int(5) !== 0 ? fields[p.int(fields.length)]! : { off: b.length > 0 ? p.int(b.length) & ~3 : 0, width: ([2, 4, 8] as const)[p.int(3)]! };
      const width = p.int(6) === 0 ? ([1, 2, 4, 8] as const)[p.int(4)]! : f.width;
      const xs = extremes(width, b.length);
      const v = p.int(8) === 0 ? p.next64() & MASK[width] : xs[p.int(xs.length)]!;
      if (writeUInt(b, f.off, width, v)) steps.push(`u${width * 8}@${f.off}=0x${v.toString(16)}`);
    } else if (op === 7) {
      const at = Math.min(near(), b.length);
      const ins = p.bytes(1 + p.int(p.int(4) === 0 ? 512 : 16));
      b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
      steps.push(`insert ${ins.length}@${at}`);
    } else if (op === 8) {
      const at = Math.min(near(), b.length);
      const len = 1 + p.int(p.int(4) === 0 ? 4096 : 16);
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
      steps.push(`delete ${len}@${at}`);
    } else if (op === 9) {
      // copy a slice over another place (a header where data was, a length where a magic was, ...)
      if (b.length < 2) continue;
      const from = near() % b.length;
      const to = near() % b.length;
      const len = Math.min(1 + p.int(64), b.length - from, b.length - to);
      b.copy(b, to, from, from + len);
      steps.push(`copy ${len}@${from}->${to}`);
    } else if (op === 10) {
      const junk = p.int(3) === 0 ? Buffer.alloc(1 + p.int(64)) : p.bytes(1 + p.int(64));
      b = Buffer.concat([b, junk]);
      steps.push(`append ${junk.length}`);
    } else if (special) {
      b = special(b, p, steps);
    }
  }
  return { buf: b, steps };
}

// ---------------------------------------------------------------------------------------------------------------
// Where each format keeps its fields (parsed from the valid base file, test-side)

function limeFields(b: Buffer): Field[] {
  const f: Field[] = [];
  for (let h = 0; h + 32 <= b.length; ) {
    f.push({ off: h, width: 4 }, { off: h + 4, width: 4 }, { off: h + 8, width: 8 }, { off: h + 16, width: 8 }, { off: h + 24, width: 8 });
    h += 32 + Number(b.readBigUInt64LE(h + 16) - b.readBigUInt64LE(h + 8) + 1n);
  }
  return f;
}

function elfFields(b: Buffer): Field[] {
  const f: Field[] = [];
  for (const [off, width] of [[4, 1], [5, 1], [16, 2], [18, 2], [32, 8], [40, 8], [52, 2], [54, 2], [56, 2], [58, 2], [60, 2], [62, 2]] as const) f.push({ off, width });
  const phnum = b.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const o = 64 + i * 56;
    for (const [d, width] of [[0, 4], [4, 4], [8, 8], [16, 8], [24, 8], [32, 8], [40, 8], [48, 8]] as const) f.push({ off: o + d, width });
    if (b.readUInt32LE(o) === 4) {
      // note headers inside the PT_NOTE segment
      const start = Number(b.readBigUInt64LE(o + 8));
      const end = start + Number(b.readBigUInt64LE(o + 32));
      for (let n = start; n + 12 <= end; ) {
        f.push({ off: n, width: 4 }, { off: n + 4, width: 4 }, { off: n + 8, width: 4 });
        n += 12 + ((b.readUInt32LE(n) + 3) & ~3) + ((b.readUInt32LE(n + 4) + 3) & ~3);
      }
    }
  }
  return f;
}

function varint(b: Buffer, at: number): number {
  let v = 0;
  let scale = 1;
  for (let i = 0; i < 5; i++) {
    const x = b[at + i]!;
    v += (x & 0x7f) * scale;
    if (x < 0x80) break;
    scale *= 128;
  }
  return v;
}

function avmlFields(b: Buffer): Field[] {
  const f: Field[] = [];
  for (let h = 0; h + 32 <= b.length; ) {
    f.push({ off: h, width: 4 }, { off: h + 4, width: 4 }, { off: h + 8, width: 8 }, { off: h + 16, width: 8 }, { off: h + 24, width: 8 });
    const length = Number(b.readBigUInt64LE(h + 16) - b.readBigUInt64LE(h + 8) + 1n);
    let pos = h + 32;
    f.push({ off: pos, width: 4 }); // stream identifier header
    pos += 10;
    for (let produced = 0; produced < length; ) {
      const type = b[pos]!;
      const body = b.readUIntLE(pos + 1, 3);
      f.push({ off: pos, width: 1 }, { off: pos, width: 4 }, { off: pos + 4, width: 4 });
      if (type === 1) produced += body - 4;
      else if (type === 0) {
        f.push({ off: pos + 8, width: 1 }, { off: pos + 8, width: 4 });
        produced += varint(b, pos + 8);
      }
      pos += 4 + body;
    }
    f.push({ off: pos, width: 8 }); // the u64 stream length
    h = pos + 8;
  }
  return f;
}

/** ELF: switch to PN_XNUM with the section header somewhere in the file and an extreme count. */
const elfSpecial: Special = (b, p, steps) => {
  if (b.length < 64) return b;
  const shoff = p.int(3) === 0 ? b.length - 64 + p.int(80) : p.int(b.length);
  const count = [0n, 1n, 0xffffn, 0x10000n, 0x100000n, 0x100001n, 0xffffffffn, BigInt(Math.floor(b.length / 56))][p.int(8)]!;
  b.writeUInt16LE(0xffff, 56);
  b.writeBigUInt64LE(BigInt(shoff), 40);
  writeUInt(b, shoff + 44, 4, count);
  steps.push(`xnum shoff=${shoff} count=${count}`);
  return b;
};

/** AVML: cut at a record boundary or move a trailer so the back-to-front scan follows it somewhere else. */
const avmlSpecial: Special = (b, p, steps) => {
  if (b.length < 8) return b;
  const v = BigInt(p.int(b.length));
  b.writeBigUInt64LE(v, b.length - 8);
  steps.push(`trailer=${v}`);
  return b;
};

// ---------------------------------------------------------------------------------------------------------------
// Base files

interface Base {
  format: FormatName;
  bytes: Buffer;
  fields: Field[];
  sidecar?: string;
}

async function bases(dir: string, format: FormatName): Promise<Base[]> {
  const out: Base[] = [];
  const seeds = [
    { seed: 11, maxRuns: 4, maxRunBytes: 3000 },
    { seed: 12, maxRuns: 6, maxRunBytes: 800 },
    { seed: 13, maxRuns: 3, maxRunBytes: 40_000 },
    { seed: 14, maxRuns: 2, maxRunBytes: 150_000 }, // AVML: records of several chunks
  ];
  for (const s of seeds) {
    const img = sparseImage(s.seed, { maxRuns: s.maxRuns, maxRunBytes: s.maxRunBytes });
    const { path } = await writeWith(new MemorySource(img, [VMCOREINFO]), format, dir, `base-${s.seed}.${format}`);
    const bytes = readFileSync(path);
    const fields = format === 'lime' ? limeFields(bytes) : format === 'elf' ? elfFields(bytes) : format === 'avml' ? avmlFields(bytes) : [];
    const base: Base = { format, bytes, fields };
    if (format === 'raw' || format === 'padded') base.sidecar = readFileSync(path + SIDECAR_SUFFIX, 'utf8');
    // the base itself opens and reads back
    await openAndReadAll(path, `base ${format} ${s.seed}`);
    out.push(base);
  }
  return out;
}

/** openAvml with the forward walk forced, closing the file when it fails. */
async function openAvmlWalk(path: string): Promise<MemoryImage> {
  const file = await RandomAccessFile.open(path);
  try {
    return await openAvml(file, { scan: 'walk' });
  } catch (e) {
    await file.close();
    throw e;
  }
}

type T = { diagnostic: (s: string) => void; after: (fn: () => void) => void };

async function fuzzBinary(t: T, format: 'lime' | 'elf' | 'avml', n: number): Promise<void> {
  const dir = tempDir(t, `memdump-fuzz-${format}-`);
  const bs = await bases(dir, format);
  const path = join(dir, `case.${format}`);
  const special = format === 'elf' ? elfSpecial : format === 'avml' ? avmlSpecial : undefined;
  const tally = await fuzz(format, n, async (seed) => {
    const p = new Prng(seed);
    const base = bs[p.int(bs.length)]!;
    const { buf, steps } = mutate(base.bytes, base.fields, p, special);
    const label = `${format} case seed ${seed} (replay: MEMDUMP_FUZZ_ONLY=${format}:${seed}) [${steps.join(', ')}]`;
    writeFileSync(path, buf);
    const o = await classify(label, FORMAT_CODES, () => openAndReadAll(path, label));
    if (format === 'avml') {
      // The forward walk (the fallback path) must be just as safe, and never read different memory. AVML puts each
      // stream's length after the stream, so a crafted file can parse one way backwards from its trailers and
      // another way forwards (a chunk whose first 8 bytes equal the length so far looks like the trailer): the
      // two may then disagree on *whether* the file is valid, but two successful readings must agree byte for byte.
      let walked: string | undefined;
      const w = await classify(`${label} (scan: walk)`, FORMAT_CODES, async () => {
        const img = await openAvmlWalk(path);
        try {
          await readAll(img, label);
          walked = await contentHash(img);
        } finally {
          await img.close();
        }
      });
      if (o === 'ok' && w === 'ok') {
        const img = await openImage(path);
        try {
          assert.equal(walked, await contentHash(img), `${label}: the trailer scan and the forward walk read different memory`);
        } finally {
          await img.close();
        }
      }
    }
    return o;
  });
  report(t, format, tally, 3);
}


test('fuzz LiME: mutated files open and read, or fail with a format error code', async (t) => {
  await fuzzBinary(t, 'lime', 600);
});

test('fuzz ELF: mutated files (PN_XNUM included) open and read, or fail with a format error code', async (t) => {
  await fuzzBinary(t, 'elf', 600);
});

test('fuzz AVML: mutated files open and read (trailer scan and forward walk), or fail with a format error code', async (t) => {
  await fuzzBinary(t, 'avml', 600);
});

// ---------------------------------------------------------------------------------------------------------------
// Sidecar maps (JSON) and the raw / padded files they describe

const WEIRD_VALUES: unknown[] = [
  '0x0',
  '0x1',
  '0xffffffffffffffff',
  '0x10000000000000000',
  '0x' + 'f'.repeat(40),
  '0X10',
  '0x',
  '10',
  '-0x1',
  '0x1g',
  '',
  0,
  -1,
  1.5,
  2 ** 53 + 2,
  1e308,
  null,
  true,
  [],
  {},
];

function pick<T>(p: Prng, xs: readonly T[]): T {
  return xs[p.int(xs.length)]!;
}

/** Edit a sidecar map: structurally when it still parses, else (or also) as text. */
function mutateJson(text: string, p: Prng): { text: string; steps: string[] } {
  const steps: string[] = [];
  let s = text;
  const n = 1 + p.int(3);
  for (let k = 0; k < n; k++) {
    let obj: unknown;
    try {
      obj = JSON.parse(s);
    } catch {
      obj = undefined;
    }
    const op = p.int(10);
    if (obj && typeof obj === 'object' && op < 6) {
      const o = obj as Record<string, unknown>;
      const runs = Array.isArray(o['runs']) ? (o['runs'] as Record<string, unknown>[]) : [];
      const which = p.int(9);
      if (which === 0 && runs.length > 1) {
        const i = p.int(runs.length);
        const j = p.int(runs.length);
        [runs[i], runs[j]] = [runs[j]!, runs[i]!];
        steps.push(`swap runs ${i} ${j}`);
      } else if (which <= 2 && runs.length > 0) {
        const r = pick(p, runs);
        const key = pick(p, ['start', 'end', 'fileOffset']);
        const v = p.int(3) === 0 ? '0x' + p.next64().toString(16) : pick(p, WEIRD_VALUES);
        if (r && typeof r === 'object') r[key] = v;
        steps.push(`run.${key}=${JSON.stringify(v)}`);
      } else if (which === 3 && runs.length > 0) {
        const r = pick(p, runs);
        if (r && typeof r === 'object') [r['start'], r['end']] = [r['end'], r['start']];
        steps.push('swap start/end');
      } else if (which === 4 && runs.length > 0) {
        const i = p.int(runs.length);
        if (p.int(2) === 0) runs.splice(i, 0, { ...runs[i]! });
        else runs.splice(i, 1);
        steps.push(`dup/del run ${i}`);
      } else if (which === 5) {
        const key = pick(p, ['kind', 'version', 'container', 'runs', 'notes']);
        const v = pick(p, ['raw', 'padded', 'lime', 'memdump-map', 2, 1, '1', ...WEIRD_VALUES]);
        o[key] = v;
        steps.push(`${key}=${JSON.stringify(v)}`);
      } else if (which === 6) {
        const key = pick(p, Object.keys(o));
        if (key !== undefined) delete o[key];
        steps.push(`delete ${key}`);
      } else if (which === 7) {
        const notes = Array.isArray(o['notes']) ? (o['notes'] as unknown[]) : (o['notes'] = []);
        const note = { name: pick(p, ['VMCOREINFO', '', 'x'.repeat(300)]), type: pick(p, [0, 1, -1, 1.5, 2 ** 40, '0']), desc: pick(p, ['', '!!!', 'QUJD', 'A'.repeat(10_000), 5]) };
        (notes as unknown[]).push(note);
        steps.push(`note ${JSON.stringify(note).slice(0, 60)}`);
      } else {
        // a run past every other, or one that ends exactly at 2^64
        runs.push({ start: '0xfffffffffffff000', end: pick(p, ['0x10000000000000000', '0xffffffffffffffff', '0xfffffffffffff001']), fileOffset: pick(p, ['0x0', '0x10', '0xffffffffffffffff']) });
        steps.push('run near 2^64');
      }
      s = JSON.stringify(o, null, 1);
    } else {
      const at = s.length > 0 ? p.int(s.length) : 0;
      const t = p.int(5);
      if (t === 0) {
        s = s.slice(0, at);
        steps.push(`cut ${at}`);
      } else if (t === 1) {
        s = s.slice(0, at) + s.slice(at + 1 + p.int(8));
        steps.push(`del @${at}`);
      } else if (t === 2) {
        const c = pick(p, [...'{}[]",:0x123456789abcdefABCDEF-. \n\\', '\u0000', '\u00e9', 'null', '"0x']);
        s = s.slice(0, at) + c + s.slice(at);
        steps.push(`ins ${JSON.stringify(c)}@${at}`);
      } else if (t === 3) {
        const m = [...s.matchAll(/"0x[0-9a-f]+"/g)];
        if (m.length > 0) {
          const hit = pick(p, m);
          const v = JSON.stringify(pick(p, WEIRD_VALUES));
          s = s.slice(0, hit.index) + v + s.slice(hit.index! + hit[0].length);
          steps.push(`hex ${hit[0]}->${v}`);
        }
      } else {
        const len = 1 + p.int(40);
        s = s.slice(0, at) + s.slice(at, at + len) + s.slice(at);
        steps.push(`dup ${len}@${at}`);
      }
    }
  }
  return { text: s, steps };
}

test('fuzz raw and padded files with sidecar maps: mutated data and/or maps open and read, or fail with a format error code', async (t) => {
  const dir = tempDir(t, 'memdump-fuzz-flat-');
  const bs = [...(await bases(dir, 'raw')), ...(await bases(dir, 'padded'))];
  const tally = await fuzz('flat', 600, async (seed) => {
    const p = new Prng(seed);
    const base = bs[p.int(bs.length)]!;
    const path = join(dir, `case.${base.format}`);
    const what = p.int(20);
    const data = what < 7 || what >= 17 ? mutate(base.bytes, [], p) : { buf: base.bytes, steps: [] };
    const map = what >= 7 ? mutateJson(base.sidecar!, p) : { text: base.sidecar!, steps: [] };
    const noMap = what === 19; // the map lost: a file without magic
    writeFileSync(path, data.buf);
    if (noMap) rmSync(path + SIDECAR_SUFFIX, { force: true });
    else writeFileSync(path + SIDECAR_SUFFIX, map.text);
    const label = `${base.format} case seed ${seed} (replay: MEMDUMP_FUZZ_ONLY=flat:${seed}) [data: ${data.steps.join(', ')}; map: ${noMap ? 'removed' : map.steps.join(', ')}]`;
    return classify(label, FORMAT_CODES, () => openAndReadAll(path, label));
  });
  report(t, 'raw/padded + sidecar', tally, 3);
});

test('fuzz loadSidecar: mutated JSON maps load as sorted, disjoint runs with offsets, or fail with E_CORRUPT', async (t) => {
  const dir = tempDir(t, 'memdump-fuzz-map-');
  const texts = [...(await bases(dir, 'raw')), ...(await bases(dir, 'padded'))].map((b) => b.sidecar!);
  const data = join(dir, 'm.raw');
  const tally = await fuzz('sidecar', 800, async (seed) => {
    const p = new Prng(seed);
    const { text, steps } = mutateJson(pick(p, texts), p);
    writeFileSync(data + SIDECAR_SUFFIX, text);
    const label = `sidecar case seed ${seed} (replay: MEMDUMP_FUZZ_ONLY=sidecar:${seed}) [${steps.join(', ')}]`;
    return classify(label, new Set(['E_CORRUPT']), async () => {
      const side = await loadSidecar(data);
      assert.ok(side, label);
      assert.ok(isSortedDisjoint(side.runs), `${label}: runs not sorted`);
      assert.equal(side.fileOffsets.length, side.runs.length, label);
      for (const r of side.runs) assert.ok(r.end >= r.start, label);
      assert.ok(side.container === 'raw' || side.container === 'padded', label);
    });
  });
  report(t, 'loadSidecar', tally);
});

// ---------------------------------------------------------------------------------------------------------------
// /proc/iomem

const IOMEM = `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000c0000-000c99ff : Video ROM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-7ffdffff : System RAM
  51c00000-52a01fff : Kernel code
  52a02000-5341bfff : Kernel rodata
  53400000-5370ffff : Kernel data
  53c5f000-53ffffff : Kernel bss
7ffe0000-7fffffff : Reserved
100000000-13fffffff : System RAM
140000000-17fffffff : hv_balloon
  140000000-15fffffff : System RAM (virtio_mem)
fd000000-fdffffff : 0000:00:02.0
  fd000000-fdffffff : bochs-drm
fec00000-fec003ff : IOAPIC 0
fee00000-fee00fff : Local APIC
`;

function mutateIomem(text: string, p: Prng): { text: string; steps: string[] } {
  let lines = text.split('\n');
  const steps: string[] = [];
  const n = 1 + p.int(4);
  for (let k = 0; k < n; k++) {
    const i = p.int(Math.max(1, lines.length));
    const op = p.int(11);
    if (op === 0) {
      lines.splice(i, 1);
      steps.push(`del line ${i}`);
    } else if (op === 1) {
      lines.splice(i, 0, lines[p.int(lines.length)] ?? '');
      steps.push(`dup line ${i}`);
    } else if (op === 2) {
      const j = p.int(lines.length);
      [lines[i], lines[j]] = [lines[j] ?? '', lines[i] ?? ''];
      steps.push(`swap lines ${i} ${j}`);
    } else if (op === 3) {
      lines[i] = ' '.repeat(p.int(7)) + (lines[i] ?? '').trimStart();
      steps.push(`indent line ${i}`);
    } else if (op <= 5) {
      const v = pick(p, ['0', '00000000', 'ffffffffffffffff', 'f'.repeat(40), '', 'g1', '-1', '0x10', p.next64().toString(16)]);
      const line = lines[i] ?? '';
      let which = p.int(2);
      lines[i] = line.replace(/[0-9a-fA-F]+/g, (m) => (which-- === 0 ? v : m));
      steps.push(`number in line ${i} -> ${JSON.stringify(v)}`);
    } else if (op === 6) {
      lines = lines.map((l) => l.replace(/[0-9a-f]+-[0-9a-f]+/, '00000000-00000000'));
      if (p.int(2) === 0) lines.push('00100000-7ffdffff : System RAM');
      steps.push('hide addresses');
    } else if (op === 7) {
      const s = lines.join('\n');
      const at = p.int(s.length + 1);
      const c = pick(p, ['-', ' : ', ':', ' ', '\r', '\t', '\n', 'System RAM', '(', '\u0000', 'é', '0']);
      lines = (s.slice(0, at) + c + s.slice(at)).split('\n');
      steps.push(`ins ${JSON.stringify(c)}@${at}`);
    } else if (op === 8) {
      const s = lines.join('\n');
      const at = p.int(s.length + 1);
      lines = (s.slice(0, at) + s.slice(at + 1 + p.int(12))).split('\n');
      steps.push(`del chars @${at}`);
    } else if (op === 9) {
      lines = lines.map((l) => l + (p.int(4) === 0 ? '\r' : ''));
      steps.push('CR endings');
    } else {
      const rename = pick(p, ['System RAM', 'System RAM (kmem)', 'System RAMBO', 'system ram', 'Reserved', 'Persistent Memory']);
      lines[i] = (lines[i] ?? '').replace(/ : .*$/, ' : ' + rename);
      steps.push(`name line ${i} -> ${rename}`);
    }
  }
  if (p.int(100) === 0) {
    lines = [...lines, ...Array.from({ length: 70_000 }, () => '00100000-001fffff : System RAM')];
    steps.push('70,000 more lines');
  }
  return { text: lines.join('\n'), steps };
}

test('fuzz parseIomem + ramRanges: mutated iomem gives sorted disjoint RAM inside System RAM lines, or a coded error', async (t) => {
  // the unmutated text keeps the last byte of every range (AVML's off-by-one not repeated)
  assert.deepEqual(ramRanges(parseIomem(IOMEM)), [
    { start: 0x1000n, end: 0x9fc00n },
    { start: 0x100000n, end: 0x7ffe0000n },
    { start: 0x100000000n, end: 0x160000000n },
  ]);
  const tally = await fuzz('iomem', 3000, async (seed) => {
    const p = new Prng(seed);
    const { text, steps } = mutateIomem(IOMEM, p);
    const label = `iomem case seed ${seed} (replay: MEMDUMP_FUZZ_ONLY=iomem:${seed}) [${steps.join(', ')}]`;
    return classify(label, IOMEM_CODES, async () => {
      const entries = parseIomem(text);
      const ram = ramRanges(entries);
      assert.ok(ram.length > 0, label);
      assert.ok(isSortedDisjoint(ram), `${label}: not sorted/disjoint`);
      for (let i = 1; i < ram.length; i++) assert.ok(ram[i]!.start > ram[i - 1]!.end, `${label}: touching ranges not merged`);
      const sys = entries.filter((e) => /^System RAM\b/.test(e.name)).map((e) => e.range);
      for (const r of ram) {
        assert.ok(r.end > r.start, label);
        // every byte of r lies in some System RAM entry: walk it through the (possibly overlapping) entries
        let at = r.start;
        while (at < r.end) {
          const next = sys.filter((s: Range) => s.start <= at && s.end > at).reduce((m, s) => (s.end > m ? s.end : m), at);
          assert.ok(next > at, `${label}: ${at} is not in any System RAM line`);
          at = next;
        }
      }
    });
  });
  report(t, 'iomem', tally, 3);
});

// ---------------------------------------------------------------------------------------------------------------
// ELF notes

test('fuzz parseNotes: mutated note segments parse into notes inside the segment, or fail with a format error code', async (t) => {
  const core = Buffer.alloc(336);
  core.writeUInt32LE(1234, 32);
  const bases = [
    Buffer.concat([encodeNote({ name: 'CORE', type: 1, desc: core }), encodeNote(VMCOREINFO)]),
    Buffer.concat([encodeNote(VMCOREINFO), Buffer.alloc(64)]), // kcore pads its note segment with zeros
    Buffer.concat([encodeNote({ name: 'CORE', type: 3, desc: Buffer.alloc(136, 0x41) }), encodeNote({ name: 'LINUX', type: 0x202, desc: Buffer.alloc(1000, 7) }), encodeNote({ name: '', type: 6, desc: Buffer.alloc(0) })]),
  ];
  const fieldsOf = (b: Buffer): Field[] => {
    const f: Field[] = [];
    for (let n = 0; n + 12 <= b.length; ) {
      const namesz = b.readUInt32LE(n);
      const descsz = b.readUInt32LE(n + 4);
      if (namesz === 0 && descsz === 0 && b.readUInt32LE(n + 8) === 0) break;
      f.push({ off: n, width: 4 }, { off: n + 4, width: 4 }, { off: n + 8, width: 4 });
      n += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3);
    }
    return f;
  };
  const fields = bases.map(fieldsOf);
  const tally = await fuzz('notes', 3000, async (seed) => {
    const p = new Prng(seed);
    const i = p.int(bases.length);
    const { buf, steps } = mutate(bases[i]!, fields[i]!, p);
    const offset = BigInt(p.int(2) === 0 ? 0 : 0x1000 + p.int(0x10000));
    const label = `notes case seed ${seed} (replay: MEMDUMP_FUZZ_ONLY=notes:${seed}) [${steps.join(', ')}]`;
    return classify(label, FORMAT_CODES, async () => {
      const notes = parseNotes(new ByteReader(buf, offset, 'ELF note'));
      let bytes = 0;
      for (const n of notes) {
        assert.ok(Number.isInteger(n.type) && n.type >= 0 && n.type <= 0xffffffff, label);
        bytes += 12 + n.name.length + n.desc.length;
      }
      assert.ok(bytes <= buf.length, `${label}: notes hold ${bytes} bytes, the segment has ${buf.length}`);
    });
  });
  report(t, 'parseNotes', tally);
});
