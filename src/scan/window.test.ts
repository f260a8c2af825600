import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { featureSnippet } from '../../test/fixtures/scan-corpus-kinds.js';
import { Rng } from '../../test/fixtures/scan-corpus-rng.js';
import { textBlock } from '../../test/fixtures/scan-corpus-text.js';
import { FEATURE_KINDS as CORPUS_KINDS } from '../../test/fixtures/scan-corpus-types.js';
import { windows } from './run.js';
import { SCANNERS } from './scanners/index.js';
import { LOOK_BEHIND, MAX_FEATURE_LENGTH } from './types.js';
import { runOf, textViews } from './view.js';
import { scanWindow, type Hit, type WindowConfig } from './window.js';

const CFG: WindowConfig = { scanners: SCANNERS, maxDepth: 3, maxDecoded: 1 << 20, maxDecodedPerWindow: 8 << 20 };

test('a printable run longer than a regex piece is one run, and text indices map back to bytes', () => {
  const long = 'x'.repeat(10_000);
  const buf = Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from(long), Buffer.from([0xff]), Buffer.from('short'), Buffer.from([0]), Buffer.from('hello world')]);
  const v = textViews(buf).ascii;
  assert.equal(v.runs, 2, 'the 5-byte run is dropped, the 10,000-byte run is whole');
  assert.equal(v.text, `${long}\0\0hello world`, 'runs apart by more than one NUL byte are joined by two');
  const i = v.text.indexOf('world');
  const r = runOf(v, i);
  assert.equal((v.rawStarts[r] as number) + (i - (v.textStarts[r] as number)), buf.indexOf('world'));
});

test('runs apart by exactly one NUL are joined by one \\0 (C string lists, bash history in memory); other gaps by two', () => {
  const ascii = Buffer.from('#1700000000\0git status\0\0make -j4\0\x01tail -f x\0');
  assert.equal(textViews(ascii).ascii.text, '#1700000000\0git status\0\0make -j4\0\0tail -f x');
  const wide = Buffer.concat([Buffer.from('first line', 'utf16le'), Buffer.alloc(2), Buffer.from('second', 'utf16le'), Buffer.alloc(4), Buffer.from('third!', 'utf16le')]);
  const v = textViews(wide).utf16;
  assert.equal(v.text, 'first line\0second\0\0third!');
  assert.deepEqual([...v.textStarts], [0, 11, 19]);
  assert.deepEqual([...v.textEnds], [10, 17, 25]);
  assert.deepEqual([...v.rawStarts], [0, 22, 38]);
});

test('UTF-16LE runs are decoded to characters and placed at their first byte, at either alignment', () => {
  for (const pad of [0, 1]) {
    const text = 'contact alice.smith@acme.com now';
    const buf = Buffer.concat([Buffer.alloc(7 + pad, 0xff), Buffer.from(text, 'utf16le'), Buffer.alloc(4)]);
    const v = textViews(buf).utf16;
    assert.equal(v.runs, 1);
    assert.equal(v.text, text);
    assert.equal(v.rawStarts[0], 7 + pad);
  }
});

test('a feature is reported by the window that owns its first byte only', () => {
  const line = Buffer.from('\nuser_email = alice.smith@acme.com\n');
  const buf = Buffer.concat([Buffer.alloc(1000, 0xee), line, Buffer.alloc(1000, 0xee)]);
  const at = buf.indexOf('alice');
  const emails = (from: number, to: number): Hit[] => scanWindow(buf, from, to, CFG).hits.filter((h) => h.kind === 'email');
  assert.deepEqual(emails(0, at).map((h) => h.rel), []);
  assert.deepEqual(emails(at, at + 1).map((h) => h.rel), [String(at)]);
  assert.deepEqual(emails(at + 1, buf.length).map((h) => h.rel), []);
});

test('containers: gzip, base64 of gzip and UTF-16 inside gzip are reported under their paths', () => {
  const inner = Buffer.from('\nplease contact bob.jones@globex.org for access\n');
  const gz = gzipSync(inner);
  const b64 = Buffer.from(gzipSync(Buffer.from(inner.toString('latin1'), 'utf16le')).toString('base64'));
  const buf = Buffer.concat([Buffer.alloc(100, 0xee), gz, Buffer.alloc(50, 0xee), Buffer.from('\n'), b64, Buffer.from('\n'), Buffer.alloc(10, 0xee)]);
  const { hits } = scanWindow(buf, 0, buf.length, CFG);
  const paths = hits.filter((h) => h.kind === 'email').map((h) => h.rel);
  const k = inner.indexOf('bob');
  assert.deepEqual(paths, [`100-GZIP-${k}`, `${buf.indexOf(b64)}-BASE64-0-GZIP-0-UTF16-${k}`]);
});

/** Absolute paths of the hits of one window, as the worker writes them. */
function absolute(hits: readonly Hit[], start: number): string[] {
  return hits.map((h) => {
    const dash = h.rel.indexOf('-');
    const head = Number(dash < 0 ? h.rel : h.rel.slice(0, dash));
    return `${h.kind} ${start + head}${dash < 0 ? '' : h.rel.slice(dash)} ${h.feature}`;
  });
}

/** Random bytes with feature lines planted plain, in UTF-16 and gzipped, some where chunk boundaries will fall. */
function plantedBuffer(seed: number): Buffer {
  const r = new Rng(seed, 'window-test');
  const parts: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    parts.push(r.bytes(r.range(0, 3000)));
    const s = featureSnippet(CORPUS_KINDS[r.int(CORPUS_KINDS.length)] as (typeof CORPUS_KINDS)[number], r);
    const text = `\n${s.text}\n`;
    const how = r.int(4);
    if (how === 0) parts.push(Buffer.from([0, 0]), Buffer.from(text, 'utf16le'), Buffer.from([0, 0]));
    else if (how === 1) parts.push(gzipSync(Buffer.from(text)));
    else parts.push(Buffer.from(text));
    if (i === 20) {
      // one UTF-16 text far longer than the look-behind: windows see where it starts only through the 4 KiB anchor
      const snips = [0, 1, 2, 3, 4, 5].map(() => ({ ...featureSnippet(CORPUS_KINDS[r.int(CORPUS_KINDS.length)] as (typeof CORPUS_KINDS)[number], r), kind: 'email' as const, decoy: false }));
      parts.push(Buffer.from([0, 0]), Buffer.from(textBlock(r, 20_000, snips).text, 'utf16le'), Buffer.from([0, 0]));
    }
  }
  return Buffer.concat(parts);
}

test('chunk + overlap contract: any chunking finds exactly what one window finds, once, in the same order', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1 << 30 }), fc.integer({ min: 2048, max: 40_000 }), (seed, chunk) => {
      const buf = plantedBuffer(seed);
      const whole = absolute(scanWindow(buf, 0, buf.length, CFG).hits, 0);
      assert.ok(whole.length >= 20, `planted features were found (${whole.length})`);
      const pieces: string[] = [];
      for (const w of windows([{ start: 0n, end: BigInt(buf.length), label: 'buf' }], chunk, MAX_FEATURE_LENGTH)) {
        const start = Number(w.start);
        const win = buf.subarray(start, start + w.length);
        pieces.push(...absolute(scanWindow(win, w.ownFrom, w.ownTo, CFG, start).hits, start));
      }
      assert.deepEqual(pieces, whole);
    }),
    { numRuns: 12 },
  );
});

test('windows: look-behind before each owned chunk, overlap after, clipped to the region', () => {
  const ws = [...windows([{ start: 100n, end: 100n + 50_000n, label: 'r' }], 20_000, 20_000)];
  assert.deepEqual(
    ws.map((w) => [Number(w.start), w.ownFrom, w.ownTo, w.length]),
    [
      [100, 0, 20_000, 40_000],
      [100 + 20_000 - LOOK_BEHIND, LOOK_BEHIND, LOOK_BEHIND + 20_000, LOOK_BEHIND + 30_000],
      [100 + 40_000 - LOOK_BEHIND, LOOK_BEHIND, LOOK_BEHIND + 10_000, LOOK_BEHIND + 10_000],
    ],
  );
});
