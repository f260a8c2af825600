import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { isMemdumpError } from '../core/errors.js';
import { kernelRanges, parseIomem, ramRanges } from './iomem.js';

const CAPTURES = new URL('../../../test/fixtures/captures/', import.meta.url);

test('nested RAM entries (virtio_mem, kmem) count; inclusive ends keep their last byte', () => {
  const text = [
    '00000000-00000fff : Reserved',
    '00001000-0009fbff : System RAM',
    '00100000-7ffdffff : System RAM',
    '  51c00000-52a01fff : Kernel code',
    '100000000-13fffffff : virtio0',
    '  100000000-107ffffff : System RAM (virtio_mem)',
    '140000000-147ffffff : dax0.0',
    '  140000000-147ffffff : System RAM (kmem)',
    'fd000000-fdffffff : 0000:00:02.0',
  ].join('\n');
  const e = parseIomem(text);
  assert.deepEqual(ramRanges(e), [
    { start: 0x1000n, end: 0x9fc00n },
    { start: 0x100000n, end: 0x7ffe0000n },
    { start: 0x100000000n, end: 0x108000000n },
    { start: 0x140000000n, end: 0x148000000n },
  ]);
  assert.deepEqual(kernelRanges(e), [{ name: 'Kernel code', range: { start: 0x51c00000n, end: 0x52a02000n } }]);
});

test('a capture saved with CRLF line ends parses the same', () => {
  const lf = '00001000-0009fbff : System RAM\n  00100000-001fffff : Kernel code\n';
  assert.deepEqual(parseIomem(lf.replace(/\n/g, '\r\n')), parseIomem(lf));
});

test('a non-root view (all zeros) is E_IOMEM_HIDDEN, not an empty machine', () => {
  const text = '00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n  00000000-00000000 : Kernel code\n';
  assert.throws(() => ramRanges(parseIomem(text)), { code: 'E_IOMEM_HIDDEN' });
});

test('real captures parse and yield RAM', () => {
  for (const name of readdirSync(CAPTURES).filter((n) => n.endsWith('.iomem'))) {
    const ram = ramRanges(parseIomem(readFileSync(new URL(name, CAPTURES), 'utf8')));
    assert.ok(ram.length > 0, name);
  }
});

test('the Debian 12 QEMU guest capture: two RAM ranges, kernel image inside the second', () => {
  const e = parseIomem(readFileSync(new URL('qemu-debian12-6.1-512m.iomem', CAPTURES), 'utf8'));
  assert.deepEqual(ramRanges(e), [
    { start: 0x1000n, end: 0x9fc00n },
    { start: 0x100000n, end: 0x1ffd7000n },
  ]);
  assert.deepEqual(
    kernelRanges(e).map((k) => k.name),
    ['Kernel code', 'Kernel rodata', 'Kernel data', 'Kernel bss'],
  );
});

test('parser throws only coded errors on mutated input', () => {
  const base = '00001000-0009fbff : System RAM\n00100000-7ffdffff : System RAM\n';
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), fc.integer({ min: 0, max: base.length }), (junk, at) => {
      try {
        ramRanges(parseIomem(base.slice(0, at) + junk + base.slice(at)));
      } catch (e) {
        assert.ok(isMemdumpError(e), `uncoded error: ${String(e)}`);
      }
    }),
    { numRuns: 1000 },
  );
});
