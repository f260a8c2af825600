import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { decoySnippet, featureSnippet } from '../../../test/fixtures/scan-corpus-kinds.js';
import { RandomStream, Rng } from '../../../test/fixtures/scan-corpus-rng.js';
import { fillerLine, textBlock } from '../../../test/fixtures/scan-corpus-text.js';
import { FEATURE_KINDS } from '../types.js';
import { findBase64, findBase64InRuns } from './base64.js';
import type { DecodeBudget, Decoded } from './types.js';

const MiB = 1024 * 1024;
const budget = (maxOutput = 16 * MiB, remaining = 64 * MiB): DecodeBudget => ({ maxOutput, remaining });
const b64 = (data: Buffer, args: string[]): string => execFileSync('base64', args, { input: data }).toString('latin1').replace(/\n$/, '');

/** The printable runs the engine extracts, as start/end pairs. */
function runsOf(text: string): Int32Array {
  const r: number[] = [];
  for (const m of text.matchAll(/[\x20-\x7e\t\n\r]{6,}/g)) r.push(m.index, m.index + m[0].length);
  return Int32Array.from(r);
}
const both = (text: string, from: number, to: number, b = budget()): Decoded[] => {
  const a = findBase64(text, from, to, { ...b });
  const r = findBase64InRuns(text, runsOf(text), from, to, b);
  assert.deepEqual(r.map((d) => [d.start, d.end]), a.map((d) => [d.start, d.end]), 'runs API agrees');
  return a;
};

test('base64(1) output, wrapped at 76 and 64, CRLF, and -w0, in text and random bytes: exact extent and data', () => {
  const rnd = new RandomStream(3);
  const payloads = [gzipSync(Buffer.from(textBlock(new Rng(1, 'b'), 3000, []).text)), rnd.take(1000), Buffer.from('hello, this is plain text for base64 blocks\n'), rnd.take(57), rnd.take(56), rnd.take(55)];
  const forms: ((b: Buffer) => string)[] = [(b) => b64(b, []), (b) => b64(b, ['-w', '64']), (b) => b64(b, ['-w0']), (b) => b64(b, []).replace(/\n/g, '\r\n')];
  let text = '';
  const want: [number, number, Buffer][] = [];
  for (const p of payloads) {
    for (const form of forms) {
      const enc = form(p);
      text += `${fillerLine(new Rng(text.length, 'f'))}\n` + (want.length % 3 === 0 ? 'data: ' : want.length % 3 === 1 ? '\0\n' : rnd.take(40).toString('latin1') + '\n');
      want.push([text.length, text.length + enc.length, p]);
      text += `${enc}\n`;
    }
  }
  const found = both(text, 0, text.length);
  assert.deepEqual(found.map((d) => [d.start, d.end]), want.map((w) => [w[0], w[1]]));
  found.forEach((d, i) => assert.ok(d.data.equals(want[i]![2]), `block ${i}`));
});

test('not base64: paths, identifiers, base64url/JWT segments, hosts, URLs, non-canonical padding', () => {
  const neg = [
    '/usr/lib/x86_64-linux-gnu/libcrypto3.so',
    'see /var/lib/docker/overlay2/abcdef0123456789/merged',
    'AbstractSingletonProxyFactoryBeanWithExtras',
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
    'https://cdn.example.com/assets/0123456789abcdefABCDEFGH/app',
    'my-component-name-with-dashes-ABCDEFGHIJKLMNOPQRSTUVWX',
    'CONFIG_SOME_LONG_KERNEL_OPTION_NAME_X86_64',
    'ABCDEFGHIJKLMNOPQRSTUVWXYZab=c',
    'SGVsbG8gd29ybGQgaGVsbG8gd29ybGQ9', // 32 chars, decodes, but that is real base64: must be found (control)
    'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=', // canonical: found (control)
    'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVp=', // non-canonical padding: not found
  ];
  const text = neg.map((l) => `${l}\n`).join('');
  const found = both(text, 0, text.length).map((d) => text.slice(d.start, d.end));
  assert.deepEqual(found, [neg[8], neg[9]]);
});

test('corpus filler text and decoys: zero blocks; feature snippets: only base64-bearing kinds', () => {
  const r = new Rng(9, 'filler');
  const filler = textBlock(r, 2 * MiB, []).text;
  assert.equal(both(filler, 0, filler.length).length, 0);
  let decoys = '';
  for (let i = 0; i < 500; i++) decoys += `${decoySnippet(i, r).text}\n`;
  assert.equal(both(decoys, 0, decoys.length).length, 0, 'decoys');
  const perKind: Record<string, number> = {};
  for (const kind of FEATURE_KINDS) {
    let t = '';
    for (let i = 0; i < 50; i++) t += `${featureSnippet(kind, r).text}\n`;
    const n = both(t, 0, t.length).length;
    if (n > 0) perKind[kind] = n;
  }
  console.log(`# base64 blocks in 50 snippets per kind: ${JSON.stringify(perKind)}`);
  for (const k of Object.keys(perKind)) assert.ok(/pem|ssh|azure|aws|basic|jwt|password/.test(k), `unexpected base64 in ${k}`);
});

test('ownership: the block belongs to the window holding its first char, never to one starting inside it', () => {
  const enc = b64(new RandomStream(4).take(3000), []);
  const text = `x\n${enc}\ny`;
  const s = 2;
  assert.deepEqual(both(text, 0, s + 1).map((d) => [d.start, d.end]), [[s, s + enc.length]]);
  assert.equal(both(text, 0, s).length, 0);
  for (const from of [s + 1, s + 76, s + 77, s + 78, s + 500, s + enc.length - 10]) assert.equal(both(text, from, text.length).length, 0, `from ${from}`);
  const cutAt = s + 1000;
  const [cut] = both(text.slice(0, cutAt), 0, cutAt);
  assert.ok(cut && cut.start === s && cut.end === cutAt && cut.truncated, 'a block cut by the window end is reported, truncated');
  const flat = b64(new RandomStream(4).take(3000), ['-w0']);
  const [cut1] = both(`x ${flat.slice(0, 1001)}`, 0, 3);
  assert.ok(cut1 && cut1.start === 2 && cut1.truncated && cut1.data.length === 750, 'one line cut mid-group');
  const one = b64(new RandomStream(5).take(300), ['-w0']);
  const t2 = `${one} ${one}`;
  assert.deepEqual(both(t2, 1, t2.length).map((d) => d.start), [one.length + 1]);
});

test('budget: a block over the cap is decoded to a prefix and marked truncated', () => {
  const raw = new RandomStream(6).take(30000);
  const enc = b64(raw, []);
  const b = budget(1000, 1 << 20);
  const [d] = findBase64(enc, 0, enc.length, b);
  assert.ok(d && d.truncated && d.data.length <= 1000 && d.data.length > 900 && raw.subarray(0, d.data.length).equals(d.data));
  assert.equal(b.remaining, (1 << 20) - d.data.length);
});

test('16 MiB of random bytes: no blocks (count and time printed for both APIs)', () => {
  for (const seed of [1, 2]) {
    const text = new RandomStream(seed).take(16 * MiB).toString('latin1');
    const runs = runsOf(text);
    findBase64(text, 0, text.length, budget());
    let t0 = process.hrtime.bigint();
    const a = findBase64(text, 0, text.length, budget());
    const whole = Number(process.hrtime.bigint() - t0) / 1e6;
    t0 = process.hrtime.bigint();
    const b = findBase64InRuns(text, runs, 0, text.length, budget());
    const inRuns = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`# base64 random 16 MiB seed ${seed}: ${a.length}/${b.length} blocks, findBase64 ${whole.toFixed(1)} ms, findBase64InRuns ${inRuns.toFixed(1)} ms (${runs.length / 2} runs)`);
    assert.equal(a.length + b.length, 0);
  }
});

test('property: both APIs agree on mixed data, and windows partition the blocks exactly', () => {
  const rnd = new RandomStream(8);
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 400 })), { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 9 }), (parts, cuts) => {
      let text = '';
      for (const [k, n] of parts) {
        const p = rnd.take(n);
        text += k === 0 ? p.toString('latin1') : k === 1 ? `\n${b64(p, [])}\n` : k === 2 ? ` ${p.toString('base64')} ` : `${fillerLine(new Rng(n, 'p'))}\n`;
      }
      const whole = both(text, 0, text.length).map((d) => d.start);
      const edges = [0, ...Array.from({ length: cuts }, (_, i) => Math.floor(((i + 1) * text.length) / (cuts + 1))), text.length];
      const split: number[] = [];
      for (let i = 0; i + 1 < edges.length; i++) split.push(...both(text, edges[i]!, edges[i + 1]!).map((d) => d.start));
      assert.deepEqual(split, whole);
    }),
    { seed: 45, numRuns: 150 },
  );
});

test('property: arbitrary and mutated text never throws, results stay in range and within the cap', () => {
  const base = `key=${b64(new RandomStream(9).take(200), [])}\n`;
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 10 }), fc.nat(400), fc.nat(400), (junk, muts, a, b) => {
      const chars = [...base];
      for (const [i, v] of muts) chars[i] = String.fromCharCode(v);
      const text = junk + chars.join('') + junk;
      const from = Math.min(a, b);
      const to = Math.max(a, b);
      for (const d of both(text, from, to, budget(64, 1 << 20))) assert.ok(d.start >= from && d.start < to && d.end <= text.length && d.data.length <= 64);
    }),
    { seed: 46, numRuns: 500 },
  );
});
