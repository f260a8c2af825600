import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { isMemdumpError } from '../core/errors.js';
import { Prng } from '../../test/helpers/prng.js';
import { compileYara, loadYaraSources, type YaraMatch } from './yara.js';

/** Random bytes (seeded) with `plants` written at their offsets. */
function planted(size: number, seed: number, plants: [number, string | Buffer][]): Buffer {
  const b = new Prng(seed).bytes(size);
  for (const [off, s] of plants) (typeof s === 'string' ? Buffer.from(s, 'latin1') : s).copy(b, off);
  return b;
}

const brief = (ms: YaraMatch[]) => ms.map((m) => [m.rule, m.pattern, m.offset, m.length]);

test('a text rule reports each planted string at its offset, with data, tags and meta', () => {
  const offsets = [0, 4093, 65_536, 700_001, (1 << 20) - 24];
  const b = planted(1 << 20, 7, offsets.map((o) => [o, 'MEMDUMP-YARA-PLANT-42'] as [number, string]));
  const rules = compileYara('rule plant : evidence memdump { meta: author = "memdump" level = 3 strings: $p = "MEMDUMP-YARA-PLANT-42" condition: $p }', 't.yar');
  const ms = rules.scan(b, 0, b.length);
  assert.deepEqual(brief(ms), offsets.map((o) => ['plant', '$p', o, 21]));
  for (const m of ms) {
    assert.equal(m.data.toString('latin1'), 'MEMDUMP-YARA-PLANT-42');
    assert.deepEqual(m.tags, ['evidence', 'memdump']);
    assert.deepEqual(m.meta, { author: 'memdump', level: 3 });
    assert.equal(m.namespace, undefined);
  }
  rules.dispose();
});

test('a hex rule with wildcards and a jump matches every planted variant and nothing else', () => {
  const v1 = Buffer.from([0x4d, 0x5a, 0x90, 0x00, 0x11, 0x22, 0x50, 0x45]); // jump of 2
  const v2 = Buffer.from([0x4d, 0x5a, 0xff, 0xee, 0x11, 0x22, 0x33, 0x44, 0x50, 0x45]); // jump of 4
  const near = Buffer.from([0x4d, 0x5a, 0xff, 0xee, 0x11, 0x22, 0x33, 0x44, 0x55, 0x50, 0x45]); // jump of 5: no match
  const b = planted(256 * 1024, 11, [
    [1000, v1],
    [50_000, v2],
    [90_000, near],
    [200_003, v1],
  ]);
  const rules = compileYara('rule mz { strings: $h = { 4D 5A ?? ?? [2-4] 50 45 } condition: $h }', 'hex.yar');
  const ms = rules.scan(b, 0, b.length);
  assert.deepEqual(brief(ms), [
    ['mz', '$h', 1000, 8],
    ['mz', '$h', 50_000, 10],
    ['mz', '$h', 200_003, 8],
  ]);
  assert.deepEqual(ms[1]!.data, v2);
});

test('a regexp with a match at every start is merged into one match per run; touching matches merge too', () => {
  const b = Buffer.alloc(8192);
  b.write('AAAAAAAA', 100);
  b.write('AAAAA', 300);
  b.write('AAA', 400); // too short
  b.write('hellohello', 1000);
  b.write('hello-hello', 2000);
  const rules = compileYara('rule a { strings: $a = /A{4,}/ $h = "hello" condition: any of them }', 're.yar');
  assert.deepEqual(brief(rules.scan(b, 0, b.length)), [
    ['a', '$a', 100, 8],
    ['a', '$a', 300, 5],
    ['a', '$h', 1000, 10],
    ['a', '$h', 2000, 5],
    ['a', '$h', 2006, 5],
  ]);
});

test('matches outside [from, to) are dropped, and a run starting before `from` belongs to the earlier window', () => {
  const b = Buffer.alloc(4096);
  for (const o of [10, 500, 1000, 3000]) b.write('NEEDLE', o);
  b.write('AAAAAAAAAA', 1995); // run across 2000
  const rules = compileYara('rule n { strings: $n = "NEEDLE" $a = /A{4,}/ condition: any of them }', 'w.yar');
  assert.deepEqual(brief(rules.scan(b, 500, 2000)), [
    ['n', '$n', 500, 6],
    ['n', '$n', 1000, 6],
    ['n', '$a', 1995, 10],
  ]);
  assert.deepEqual(brief(rules.scan(b, 2000, 4096)), [['n', '$n', 3000, 6]]);
  assert.deepEqual(rules.scan(b, 501, 1000), []);
  assert.deepEqual(rules.scan(b, 3000, 3000), []);
});

test('windows with look-behind and overlap give exactly the whole-buffer matches (property)', () => {
  const size = 96 * 1024;
  const plants: [number, string][] = [];
  const rng = new Prng(99);
  for (let i = 0; i < 60; i++) plants.push([rng.int(size - 40), ['NEEDLE-X', 'AAAAAAAAAAAA', 'hellohellohello', 'MZ\x90\x00PE'][i % 4]!]);
  const b = planted(size, 5, plants);
  const rules = compileYara('rule n { strings: $n = "NEEDLE-X" $a = /A{4,}/ $h = "hello" $m = { 4D 5A ?? 00 50 45 } condition: any of them }', 'p.yar');
  const whole = brief(rules.scan(b, 0, b.length));
  assert.ok(whole.length >= 50);
  const L = 4096;
  fc.assert(
    fc.property(fc.integer({ min: 3000, max: 40_000 }), (w) => {
      const got: (string | number)[][] = [];
      for (let from = 0; from < size; from += w) {
        const to = Math.min(size, from + w);
        const s = Math.max(0, from - L);
        const win = b.subarray(s, Math.min(size, to + L));
        for (const m of rules.scan(win, from - s, to - s)) got.push([m.rule, m.pattern, m.offset + s, m.length]);
      }
      got.sort((x, y) => (x[2] as number) - (y[2] as number) || String(x[1]).localeCompare(String(y[1])));
      assert.deepEqual(got, whole);
    }),
    { numRuns: 15, seed: 4242 },
  );
});

test('a condition-only rule is reported once per window at `from`; private rules and patterns stay private', () => {
  const b = Buffer.alloc(1000);
  b.write('secretpart', 600);
  b.write('public', 700);
  const rules = compileYara(
    [
      'rule big { condition: filesize > 100 }',
      'rule hidden_only { strings: $p = "secretpart" private condition: $p }',
      'private rule helper { strings: $x = "public" condition: $x }',
      'rule uses_helper { condition: helper }',
    ].join('\n'),
    'c.yar',
  );
  assert.deepEqual(brief(rules.scan(b, 200, 900)), [
    ['big', '(condition)', 200, 0],
    ['uses_helper', '(condition)', 200, 0],
    ['hidden_only', '(private)', 600, 0],
  ]);
  // the private match belongs to the window holding it; the condition-only rules to every window
  assert.deepEqual(brief(rules.scan(b, 0, 200)), [
    ['big', '(condition)', 0, 0],
    ['uses_helper', '(condition)', 0, 0],
  ]);
});

test('a syntax error is E_USAGE with file, line and column', () => {
  assert.throws(
    () => compileYara('rule ok { condition: true }\n\nrule broken {\n  strings: $a = "x"\n  condition: $a and\n}\n', 'rules/bad.yar'),
    (e: unknown) => {
      assert.ok(isMemdumpError(e, 'E_USAGE'));
      assert.equal(e.details['origin'], 'rules/bad.yar');
      assert.equal(e.details['line'], 6);
      assert.equal(e.details['column'], 1);
      assert.match(e.message, /rules\/bad\.yar:6:1: error\[E001\]: syntax error: expecting expression/);
      return true;
    },
  );
  // semantic errors too: an unused pattern is an error in YARA-X
  assert.throws(() => compileYara('rule u { strings: $a = "abc" condition: true }', 'u.yar'), (e: unknown) => isMemdumpError(e, 'E_USAGE') && e.details['line'] === 1);
});

test('a rule directory: .yar and .yara files, recursively, each compiled with its own positions', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'memdump-yara-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'sub'));
  await writeFile(path.join(dir, 'a.yar'), 'rule from_a { strings: $a = "ALPHA-RULE" condition: $a }\n');
  await writeFile(path.join(dir, 'sub', 'b.YARA'), '// a comment\nrule from_b { strings: $b = { 42 45 54 41 } condition: $b }\n');
  await writeFile(path.join(dir, 'notes.txt'), 'rule ignored { condition: true }\n');
  const src = await loadYaraSources([dir]);
  const rules = compileYara(src, dir);
  const b = planted(8192, 3, [
    [100, 'ALPHA-RULE'],
    [5000, 'BETA'],
  ]);
  assert.deepEqual(brief(rules.scan(b, 0, b.length)), [
    ['from_a', '$a', 100, 10],
    ['from_b', '$b', 5000, 4],
  ]);

  await writeFile(path.join(dir, 'sub', 'c.yar'), 'rule c {\n  condition: nosuchthing\n}\n');
  const bad = await loadYaraSources([dir]);
  assert.throws(
    () => compileYara(bad, dir),
    (e: unknown) => isMemdumpError(e, 'E_USAGE') && e.details['origin'] === path.join(dir, 'sub', 'c.yar') && e.details['line'] === 2 && e.details['column'] === 14,
  );
  await assert.rejects(loadYaraSources([path.join(dir, 'missing.yar')]), (e: unknown) => isMemdumpError(e, 'E_NOT_FOUND'));
  const empty = path.join(dir, 'empty');
  await mkdir(empty);
  await assert.rejects(loadYaraSources([empty]), (e: unknown) => isMemdumpError(e, 'E_USAGE'));
  // a single file named explicitly, whatever its extension
  const one = await loadYaraSources([path.join(dir, 'notes.txt')]);
  assert.deepEqual(brief(compileYara(one, 'x').scan(b, 0, 10)), [['ignored', '(condition)', 0, 0]]);
});

test('rules compile and scan inside a worker thread', async () => {
  const url = new URL('./yara.js', import.meta.url).href;
  const code = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(url)}).then(({ compileYara }) => {
      const r = compileYara('rule w { strings: $w = "WORKER" condition: $w }', 'w.yar');
      const b = Buffer.alloc(4096); b.write('WORKER', 1234);
      parentPort.postMessage(r.scan(b, 0, b.length).map((m) => m.offset));
    });`;
  const got = await new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true });
    w.once('message', resolve);
    w.once('error', reject);
  });
  assert.deepEqual(got, [1234]);
});

test('throughput: 16 MiB of random data, 20 simple rules (diagnostic, no threshold)', (t) => {
  let src = '';
  for (let i = 0; i < 20; i++) src += `rule r${i} { strings: $a = "MEMDUMP-MARK-${i}-" $b = /tok_[0-9a-f]{8}_${i}x/ condition: any of them }\n`;
  const rules = compileYara(src, 'bench.yar');
  const sizes = process.env['MEMDUMP_YARA_BENCH'] ? [16, 256] : [16];
  for (const mib of sizes) {
    const b = new Prng(mib).bytes(mib << 20);
    const at = [17, (mib << 20) - 100];
    for (const o of at) b.write('MEMDUMP-MARK-5-', o);
    rules.scan(b.subarray(0, 1 << 20), 0, 1 << 20); // warm up
    const t0 = performance.now();
    const ms = rules.scan(b, 0, b.length);
    const dt = performance.now() - t0;
    assert.deepEqual(brief(ms), at.map((o) => ['r5', '$a', o, 15]));
    t.diagnostic(`yara ${mib} MiB random, 20 rules: ${dt.toFixed(1)} ms (${((mib / dt) * 1000).toFixed(0)} MiB/s), rss ${process.memoryUsage().rss >> 20} MiB`);
  }
  rules.dispose();
});
