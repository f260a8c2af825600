import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { type HiberFixtureOptions, type HiberLayoutName, PAGE, assertTruth, defaultMap, expectCode, pageContent, truthHash, writeHiberfil } from '../../test/fixtures/hiberfil.js';
import { tempDir } from '../../test/helpers/cli.js';
import { Prng } from '../../test/helpers/prng.js';
import { MemdumpError } from '../core/errors.js';
import { isSortedDisjoint } from '../core/ranges.js';
import { contentHash } from '../pipeline/info.js';
import { hiberfil, looksWiped } from './hiberfil.js';
import { openImage } from './registry.js';

const FORMAT_CODES = new Set(['E_TRUNCATED', 'E_CORRUPT', 'E_TOO_LARGE', 'E_UNKNOWN_FORMAT', 'E_UNSUPPORTED']);

const LAYOUTS: { layout: HiberLayoutName; variant: string; kinds: string[] }[] = [
  { layout: 'win7-x64', variant: 'win7-x64', kinds: ['stored', 'lz77'] },
  { layout: 'win7-x86', variant: 'win7-x86', kinds: ['stored', 'lz77'] },
  { layout: 'win10', variant: 'win10-1703+', kinds: ['stored', 'lz77', 'huffman'] },
  { layout: 'vista-x86', variant: 'vista-x86', kinds: ['stored', 'lz77'] },
  { layout: 'win10-1607', variant: 'win10-1607', kinds: ['stored', 'lz77', 'huffman'] },
  { layout: 'win10-1507', variant: 'win10-1507', kinds: ['stored', 'lz77', 'huffman'] },
  { layout: 'win8', variant: 'win8', kinds: ['stored', 'lz77', 'huffman'] },
];

for (const { layout, variant, kinds } of LAYOUTS) {
  test(`${layout}: detected, runs and every byte equal the truth, header fields in details`, async (t) => {
    const dir = tempDir(t, 'memdump-hiber-');
    for (const seed of [1, 2, 3]) {
      const path = join(dir, `${layout}-${seed}.sys`);
      const opts: HiberFixtureOptions = { seed, layout, shuffleKernel: seed !== 1, splitEntries: seed === 2 };
      const fx = writeHiberfil(path, opts);
      const img = await openImage(path);
      try {
        assert.equal(img.format, 'hiberfil');
        await assertTruth(img, seed, defaultMap(seed));
        const d = img.details;
        assert.equal(d['signature'], 'HIBR');
        assert.equal(d['layout'], layout.startsWith('win') && !layout.startsWith('win7') ? 'win8+' : 'win7');
        assert.equal(d['layoutChosenBy'], 'LengthSelf');
        assert.equal(d['layoutVariant'], variant);
        assert.equal(d['pageSize'], 4096);
        assert.equal(d['systemTime'], fx.systemTime);
        assert.equal(d['pages'], fx.pages);
        assert.equal(d['duplicatePages'], 0);
        const seen = d['compression'] as Record<string, number>;
        for (const k of Object.keys(seen)) assert.ok(kinds.includes(k), `unexpected kind ${k}`);
        for (const [k, n] of Object.entries(fx.blocks)) assert.equal(seen[k] ?? 0, n, `${k} blocks`);
        if (d['layout'] === 'win7') assert.equal(d['cr3'], '0x' + fx.cr3!.toString(16));
        assert.equal(await contentHash(img), truthHash(seed, defaultMap(seed)));
      } finally {
        await img.close();
      }
    }
  });
}

test('every compression kind appears across the fixtures, and a file of each single kind reads back', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-');
  for (const [layout, kind] of [['win7-x64', 'lz77'], ['win7-x64', 'stored'], ['win10', 'huffman'], ['win10', 'lz77'], ['win10', 'stored']] as const) {
    const path = join(dir, `${layout}-${kind}.sys`);
    const fx = writeHiberfil(path, { seed: 9, layout, kinds: [kind] });
    assert.ok(fx.blocks[kind] > 0, `${layout} ${kind} fixture has no ${kind} blocks`);
    const img = await openImage(path);
    try {
      await assertTruth(img, 9, defaultMap(9));
      assert.ok(((img.details['compression'] as Record<string, number>)[kind] ?? 0) > 0);
      // stored pages have a file offset holding exactly their bytes; compressed ones have none
      const file = readFileSync(path);
      for (const [s, n] of defaultMap(9)) {
        const off = img.fileOffsetOf!(BigInt(s * PAGE + 5));
        if (kind !== 'stored') assert.equal(off, undefined);
        else if (off !== undefined) assert.ok(file.subarray(Number(off) - 5, Number(off) - 5 + PAGE).equals(pageContent(9, s)));
        else assert.fail(`stored page ${s} has no file offset`);
        assert.equal(img.fileOffsetOf!(BigInt((s + n) * PAGE)), undefined);
      }
    } finally {
      await img.close();
    }
  }
});

test('unaligned reads across pages, blocks and runs return the truth; reads outside the runs are E_CORRUPT', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-');
  for (const layout of ['win7-x64', 'win10'] as const) {
    const path = join(dir, `${layout}.sys`);
    writeHiberfil(path, { seed: 5, layout, shuffleKernel: true });
    const map = defaultMap(5);
    const img = await openImage(path);
    try {
      const p = new Prng(77);
      for (let i = 0; i < 200; i++) {
        const [s, n] = map[p.int(map.length)]!;
        const off = p.int(n * PAGE);
        const len = 1 + p.int(n * PAGE - off);
        const want = Buffer.concat(Array.from({ length: n }, (_, k) => pageContent(5, s + k))).subarray(off, off + len);
        assert.ok((await img.read(BigInt(s * PAGE + off), len)).equals(want), `read ${s}+${off} len ${len}`);
      }
      const [s, n] = map[0]!;
      await expectCode(img.read(BigInt((s + n) * PAGE), 1), 'E_CORRUPT', /not in any run/);
      await expectCode(img.read(BigInt((s + n) * PAGE - 1), 2), 'E_CORRUPT', /not in any run/);
      await expectCode(img.read(1n << 63n, 1), 'E_CORRUPT');
      // bad lengths are coded errors, and a huge read outside the runs allocates nothing first
      await expectCode(img.read(0n, -1), 'E_CORRUPT');
      await expectCode(img.read(0n, 1.5), 'E_CORRUPT');
      await expectCode(img.read(BigInt((s + n) * PAGE), 2 ** 29), 'E_CORRUPT', /not in any run/);
      await expectCode(img.read(-4096n, 1), 'E_CORRUPT');
    } finally {
      await img.close();
    }
  }
});

test('a wiped header (all zeros, as left after resume) is E_UNSUPPORTED saying the memory is gone, detected without --input-format', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-');
  for (const layout of ['win7-x64', 'win10'] as const) {
    const path = join(dir, `${layout}.sys`);
    writeHiberfil(path, { seed: 6, layout });
    const b = readFileSync(path);
    b.fill(0, 0, PAGE);
    writeFileSync(path, b);
    const e = await expectCode(openImage(path), 'E_UNSUPPORTED', /resumes from the file, so the memory it held is gone/);
    assert.equal(e.details['reason'], 'resumed');
    await expectCode(openImage(path, 'hiberfil'), 'E_UNSUPPORTED', /memory it held is gone/);
  }
  // "WAKE" over broken tables is the same story; "WAKE" over intact tables still reads
  const path = join(dir, 'wake.sys');
  writeHiberfil(path, { seed: 6, layout: 'win10', signature: 'WAKE' });
  const img = await openImage(path);
  assert.equal(img.details['signature'], 'WAKE');
  await img.close();
  const b = readFileSync(path);
  b.fill(0, 7 * PAGE, 8 * PAGE);
  writeFileSync(path, b);
  const e = await expectCode(openImage(path), 'E_UNSUPPORTED', /signature "WAKE"/);
  assert.equal(e.details['reason'], 'resumed');
});

test('corrupt tables, blocks and truncation give coded errors naming the offset', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-');
  const base7 = join(dir, 'w7.sys');
  writeHiberfil(base7, { seed: 8, layout: 'win7-x64', kinds: ['lz77'] });
  const b7 = readFileSync(base7);
  const variant = (name: string, f: (b: Buffer) => Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, f(Buffer.from(b7)));
    return p;
  };
  // the first Xpress block's signature
  await expectCode(openImage(variant('magic.sys', (b) => (b.write('Xpress!!', 7 * PAGE, 'latin1'), b)), 'hiberfil'), 'E_CORRUPT', /Xpress block signature/);
  // an entry that ends before it starts
  await expectCode(openImage(variant('entry.sys', (b) => (b.writeBigUInt64LE(0n, 6 * PAGE + 24), b))), 'E_CORRUPT', /ends .* before it starts/);
  // more entries than a page holds
  await expectCode(openImage(variant('count.sys', (b) => (b.writeUInt32LE(400, 6 * PAGE + 8), b))), 'E_CORRUPT', /lists 400 entries/);
  // the file cut inside the blocks
  await expectCode(openImage(variant('cut.sys', (b) => b.subarray(0, 7 * PAGE + 100))), 'E_TRUNCATED');
  // a compressed block whose bytes are garbage opens (tables are fine) and fails on read
  const garbled = variant('garbled.sys', (b) => (b.fill(0xff, 7 * PAGE + 32, 7 * PAGE + 64), b));
  const img = await openImage(garbled);
  try {
    await expectCode(img.read(img.runs[0]!.start, PAGE), 'E_CORRUPT', /does not decompress/);
  } finally {
    await img.close();
  }

  const base10 = join(dir, 'w10.sys');
  writeHiberfil(base10, { seed: 8, layout: 'win10' });
  const b10 = readFileSync(base10);
  const v10 = (name: string, f: (b: Buffer) => Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, f(Buffer.from(b10)));
    return p;
  };
  await expectCode(openImage(v10('set0.sys', (b) => (b.writeUInt32LE(0, 7 * PAGE), b))), 'E_CORRUPT', /lists 0 page runs/);
  await expectCode(openImage(v10('bigset.sys', (b) => (b.writeUInt32LE(1 | (0x3fffff << 8), 7 * PAGE), b))), 'E_CORRUPT', /bytes of data/);
  // LengthSelf names the build: its offsets are reported, not swapped for another build's
  await expectCode(openImage(v10('nokernel.sys', (b) => (b.writeBigUInt64LE(1n << 40n, 0x70), b.writeBigUInt64LE(1n << 40n, 0x68), b))), 'E_CORRUPT', /LengthSelf 0x3e0\): FirstKernelRestorePage 0x10000000000 is not a page/);
  await expectCode(openImage(v10('nokernel0.sys', (b) => (b.writeBigUInt64LE(1n << 40n, 0x70), b.writeBigUInt64LE(1n << 40n, 0x68), b.writeUInt32LE(0, 0x0c), b))), 'E_CORRUPT', /no Windows 8\/10\/11 restore section/);
  await expectCode(openImage(v10('cut10.sys', (b) => b.subarray(0, 7 * PAGE + 200))), 'E_TRUNCATED');
  await expectCode(openImage(v10('sig.sys', (b) => (b.write('link', 0, 'latin1'), b)), 'hiberfil'), 'E_UNSUPPORTED', /holds no hibernated memory/);
  await expectCode(openImage(v10('arch.sys', (b) => (b.writeUInt32LE(0, 0x18), b)), 'hiberfil'), 'E_UNSUPPORTED', /page size/);
});

test('property: any sorted page map, in any layout and compression mix, reads back as written', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-prop-');
  const layouts = ['win7-x64', 'win7-x86', 'vista-x86', 'win10', 'win10-1607', 'win10-1507', 'win8'] as const;
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      fc.constantFrom(...layouts),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 40 })), { minLength: 1, maxLength: 12 }),
      fc.subarray(['stored', 'lz77', 'huffman'] as const, { minLength: 1 }),
      async (seed, layout, gaps, kinds) => {
        const map: [number, number][] = [];
        let at = 1;
        for (const [gap, len] of gaps) {
          at += gap + (map.length > 0 ? 1 : 0);
          map.push([at, len]);
          at += len;
        }
        const usable = layout.startsWith('win7') || layout === 'vista-x86' ? kinds.filter((k) => k !== 'huffman') : kinds;
        const path = join(dir, `p${n++}.sys`);
        writeHiberfil(path, { seed, layout, map, kinds: usable.length > 0 ? usable : ['stored'], shuffleKernel: seed % 2 === 0, splitEntries: seed % 3 === 0 });
        const img = await openImage(path);
        try {
          await assertTruth(img, seed, map);
        } finally {
          await img.close();
        }
      },
    ),
    { numRuns: 60 },
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Detection of wiped headers and what details say.

// 1507 first: its 0x230 (1703's KernelPagesProcessed) holds BootPagesWritten, a small page count
test('wiped-header detection needs a well-formed table or two chained sets; its error names --input-format raw', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-wiped-');
  const p = new Prng(404);
  // raw memory: zero page 0, random pages, one 12-byte "set" at page 15 whose successor would lie past the head
  const raw = Buffer.concat(Array.from({ length: 64 }, (_, i) => (i === 0 ? Buffer.alloc(PAGE) : p.bytes(PAGE))));
  Buffer.from('010010000100000000000000', 'hex').copy(raw, 15 * PAGE);
  assert.equal(looksWiped(raw.subarray(0, 65536)), false);
  assert.equal(hiberfil.detect(raw.subarray(0, 65536), BigInt(raw.length)), false);
  let hits = 0;
  for (let i = 0; i < 500; i++) {
    const b = Buffer.alloc(65536);
    for (let o = PAGE; o < b.length; o += 4) b.writeUInt32LE(p.int(2) === 0 ? 0 : p.int(0x10000), o);
    if (looksWiped(b)) hits++;
  }
  assert.equal(hits, 0, 'small-integer heads taken for wiped hibernation files');
  // the real thing is still recognised, and the error says how it was recognised
  const layouts = ['win7-x64', 'win7-x86', 'win10', 'win8'] as const;
  for (let seed = 0; seed < 24; seed++) {
    const layout = layouts[seed % layouts.length]!;
    const path = join(dir, `${layout}-${seed}.sys`);
    // big maps: the first compression set often reaches past the 64 KiB head
    writeHiberfil(path, { seed, layout, map: defaultMap(seed, 4), chainDepth: 2 });
    const b = readFileSync(path);
    b.fill(0, 0, PAGE);
    writeFileSync(path, b);
    assert.ok(looksWiped(b.subarray(0, 65536)), `${layout} seed ${seed}`);
    const e = await expectCode(openImage(path), 'E_UNSUPPORTED', /--input-format raw/);
    assert.equal(e.details['detectedBy'], 'wiped-header heuristic');
  }
});

test('details: stale contents of a resumed ("WAKE") file, FirstSecureRestorePage and the VBS pages left out', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-details-');
  const cases = [
    [{ seed: 2, layout: 'win10', signature: 'WAKE' }, /contents may be stale/, '0x3'],
    [{ seed: 2, layout: 'win10-1607' }, /VBS secure kernel .* not included/, '0x3'],
    [{ seed: 2, layout: 'win10', vbs: false }, undefined, '0x0'],
    [{ seed: 2, layout: 'win8' }, undefined, undefined],
    [{ seed: 2, layout: 'win7-x64', signature: 'wake' }, /contents may be stale/, undefined],
  ] as const;
  for (const [opts, caveat, secure] of cases) {
    const path = join(dir, `${opts.layout}-${opts.seed}.sys`);
    writeHiberfil(path, opts);
    const img = await openImage(path);
    try {
      const caveats = img.details['caveats'] as string[] | undefined;
      if (caveat) assert.ok(caveats?.some((c) => caveat.test(c)), `${JSON.stringify(opts)}: ${JSON.stringify(caveats)}`);
      else assert.equal(caveats, undefined);
      assert.equal(img.details['firstSecureRestorePage'], secure);
    } finally {
      await img.close();
    }
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Mutation fuzz in the style of test/property/parser-fuzz.test.ts: only coded format errors, no hang, bounded RSS.

function mutate(base: Buffer, hot: readonly number[], p: Prng): { buf: Buffer; steps: string[] } {
  let b: Buffer = Buffer.from(base);
  const steps: string[] = [];
  const near = () => (p.int(2) === 0 ? hot[p.int(hot.length)]! + p.int(16) : p.int(b.length));
  for (let k = 1 + p.int(3); k > 0; k--) {
    const op = p.int(8);
    const at = Math.min(near(), Math.max(0, b.length - 1));
    if (op <= 2) {
      b[at]! ^= 1 << p.int(8);
      steps.push(`flip ${at}`);
    } else if (op === 3) {
      b = b.subarray(0, at);
      steps.push(`truncate ${at}`);
    } else if (op === 4 && at + 8 <= b.length) {
      const v = [0n, 1n, 0xffn, 0xffffffffn, 1n << 52n, (1n << 64n) - 1n, BigInt(b.length), BigInt(b.length >> 12)][p.int(8)]!;
      if (p.int(2) === 0) b.writeBigUInt64LE(v, at);
      else b.writeUInt32LE(Number(v & 0xffffffffn), at);
      steps.push(`u@${at}=${v}`);
    } else if (op === 5) {
      const len = 1 + p.int(64);
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
      steps.push(`delete ${len}@${at}`);
    } else if (op === 6) {
      const ins = p.bytes(1 + p.int(32));
      b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
      steps.push(`insert ${ins.length}@${at}`);
    } else {
      const from = near() % Math.max(1, b.length);
      const len = Math.min(1 + p.int(64), b.length - from, b.length - at);
      if (len > 0) b.copy(b, at, from, from + len);
      steps.push(`copy ${len}@${from}->${at}`);
    }
  }
  return { buf: b, steps };
}

test('fuzz: mutated hibernation files open and read fully, or fail with a format error code', async (t) => {
  const dir = tempDir(t, 'memdump-hiber-fuzz-');
  const bases: { buf: Buffer; hot: number[] }[] = [];
  for (const layout of ['win7-x64', 'win7-x86', 'vista-x86', 'win10', 'win10-1507', 'win8'] as const) {
    const path = join(dir, `base-${layout}.sys`);
    writeHiberfil(path, { seed: 21, layout, map: [[1, 3], [8, 20], [40, 2]] });
    const buf = readFileSync(path);
    // header fields, table/set headers and the first bytes of blocks
    const hot = [0, 0x0c, 0x14, 0x18, 0x4c, 0x50, 0x58, 0x60, 0x68, 0x70, 0x1c8, 0x218, 0x220, 0x230, 0x330, 0x398, 2 * PAGE + 0x10, 6 * PAGE, 6 * PAGE + 16, 7 * PAGE, 7 * PAGE + 8, 7 * PAGE + 32];
    bases.push({ buf, hot });
  }
  const tally = new Map<string, number>();
  const casePath = join(dir, 'case.sys');
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), async (seed) => {
      const p = new Prng(seed);
      const base = bases[p.int(bases.length)]!;
      const { buf, steps } = mutate(base.buf, base.hot, p);
      writeFileSync(casePath, buf);
      const label = `hiberfil fuzz seed ${seed} [${steps.join(', ')}]`;
      let timer: NodeJS.Timeout | undefined;
      const run = async () => {
        const img = await openImage(casePath, 'hiberfil');
        try {
          assert.ok(isSortedDisjoint(img.runs), label);
          for (const r of img.runs) {
            assert.ok(r.end > r.start, label);
            for (let a = r.start; a < r.end; a += 1n << 20n) {
              const n = Number(r.end - a < 1n << 20n ? r.end - a : 1n << 20n);
              assert.equal((await img.read(a, n)).length, n, label);
            }
          }
        } finally {
          await img.close();
        }
      };
      let outcome = 'ok';
      try {
        await Promise.race([run(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${label}: hang`)), 10_000)))]);
      } catch (e) {
        if (!(e instanceof MemdumpError) || !FORMAT_CODES.has(e.code)) throw new Error(`${label}: unacceptable outcome: ${e instanceof Error ? e.stack : String(e)}`);
        outcome = e.code;
      } finally {
        clearTimeout(timer);
      }
      assert.ok(process.memoryUsage().rss < 1.5 * 2 ** 30, `${label}: RSS`);
      tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
    }),
    { numRuns: 600, endOnFailure: true },
  );
  t.diagnostic(`hiberfil fuzz: ${[...tally.entries()].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.ok(tally.size >= 3, `mutations reached only ${[...tally.keys()].join(', ')}`);
});
