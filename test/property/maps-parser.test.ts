/**
 * /proc/PID/maps and smaps parsers: random mappings rendered the way fs/proc/task_mmu.c prints them parse back
 * equal, and damaged text either parses or fails with MemdumpError E_CORRUPT — never another exception.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from '../../src/core/errors.js';
import { type Mapping, parseMaps, parseSmaps } from '../../src/sources/maps.js';

const U64 = (1n << 64n) - 1n;
/** show_vma_header_prefix: seq_setwidth(m, 25 + sizeof(void *) * 6 - 1), so names start at column 73 or later. */
const NAME_COLUMN = 72;

const hex = (n: bigint, width: number) => n.toString(16).padStart(width, '0');

function renderHeader(m: Mapping): string {
  const prefix = `${hex(m.start, 8)}-${hex(m.end, 8)} ${m.perms} ${hex(m.offset, 8)} ${m.dev} ${m.inode} `;
  if (m.path === '') return prefix;
  return prefix.padEnd(NAME_COLUMN, ' ') + ' ' + m.path.replace(/\n/g, '\\012');
}

const kb = (b: bigint) => `${(b / 1024n).toString()} kB`.padStart(8 + 3, ' ');

function renderSmaps(m: Mapping): string {
  const lines = [renderHeader(m), `Size:           ${kb(m.end - m.start)}`];
  if (m.rss !== undefined) lines.push(`Rss:            ${kb(m.rss)}`, 'Pss:                   0 kB');
  if (m.anonymous !== undefined) lines.push(`Anonymous:      ${kb(m.anonymous)}`, 'KSM:                   0 kB');
  if (m.swap !== undefined) lines.push(`Swap:           ${kb(m.swap)}`, 'THPeligible:           0');
  if (m.vmFlags !== undefined) lines.push(`VmFlags: ${m.vmFlags.map((f) => f + ' ').join('')}`);
  return lines.join('\n');
}

const address = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }), fc.bigInt({ min: 1n << 53n, max: U64 - 1n }), fc.bigInt({ min: 0n, max: U64 - 1n }));

// a path segment may hold spaces, newlines, backslashes, non-ASCII, and look like a flag or a field
const segment = fc.string({
  unit: fc.constantFrom('a', 'b', 'Z', '0', '7', '.', '-', '_', ' ', '  ', '\n', '\\', '\\n', 'é', '日', '\t', ':', '(', ')', '[', ']', 'kB', 'deleted'),
  minLength: 1,
  maxLength: 12,
});
const path = fc
  .oneof(
    fc.constant(''),
    fc.constantFrom('[heap]', '[stack]', '[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]', '[anon:jit cache]', '[anon_shmem:ring]', '/dev/zero (deleted)', '/SYSV0000abcd (deleted)'),
    fc.tuple(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([segs, del]) => '/' + segs.join('/') + (del ? ' (deleted)' : '')),
  )
  // the kernel escapes only newline, so a name holding a literal backslash-octal sequence cannot round-trip;
  // a trailing CR is read as a CRLF line end
  .filter((p) => !/\\[0-3][0-7]{2}/.test(p) && !p.endsWith('\r'));

const kbBytes = fc.bigInt({ min: 0n, max: 1n << 40n }).map((k) => k * 1024n);
const flag = fc.constantFrom('rd', 'wr', 'ex', 'sh', 'mr', 'mw', 'me', 'ms', 'gd', 'pf', 'io', 'dd', 'ht', 'ac', 'de', 'sd', 'um', 'uw', '??');

const mapping = fc
  .record({
    start: address,
    len: fc.oneof(fc.bigInt({ min: 1n, max: 1n << 20n }), fc.bigInt({ min: 1n, max: U64 })),
    r: fc.boolean(),
    w: fc.boolean(),
    x: fc.boolean(),
    s: fc.boolean(),
    offset: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: U64 })),
    maj: fc.integer({ min: 0, max: 0xfff }),
    min: fc.integer({ min: 0, max: 0xfffff }),
    inode: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: U64 })),
    path,
    rss: fc.option(kbBytes, { nil: undefined }),
    anonymous: fc.option(kbBytes, { nil: undefined }),
    swap: fc.option(kbBytes, { nil: undefined }),
    vmFlags: fc.option(fc.array(flag, { maxLength: 8 }), { nil: undefined }),
  })
  .map((g) => {
    const end = g.start + g.len > U64 ? U64 : g.start + g.len;
    const perms = (g.r ? 'r' : '-') + (g.w ? 'w' : '-') + (g.x ? 'x' : '-') + (g.s ? 's' : 'p');
    const m: Mapping = {
      start: g.start,
      end,
      perms,
      read: g.r,
      write: g.w,
      exec: g.x,
      shared: g.s,
      offset: g.offset,
      dev: `${g.maj.toString(16).padStart(2, '0')}:${g.min.toString(16).padStart(2, '0')}`,
      inode: g.inode,
      path: g.path,
      deleted: g.path.endsWith(' (deleted)'),
    };
    if (g.rss !== undefined) m.rss = g.rss;
    if (g.anonymous !== undefined) m.anonymous = g.anonymous;
    if (g.swap !== undefined) m.swap = g.swap;
    if (g.vmFlags !== undefined) m.vmFlags = g.vmFlags;
    return m;
  });

const withoutSmaps = ({ vmFlags: _f, rss: _r, anonymous: _a, swap: _s, ...rest }: Mapping): Mapping => rest;

test('round trip: maps text rendered like the kernel parses back to the same mappings', () => {
  fc.assert(
    fc.property(fc.array(mapping, { maxLength: 12 }), fc.boolean(), (ms, trailingNewline) => {
      const plain = ms.map(withoutSmaps);
      const text = plain.map(renderHeader).join('\n') + (trailingNewline ? '\n' : '');
      assert.deepEqual(parseMaps(text), plain);
    }),
    { numRuns: 500 },
  );
});

test('round trip: smaps text (with unknown keys between) parses back to the same mappings and smaps fields', () => {
  fc.assert(
    fc.property(fc.array(mapping, { maxLength: 12 }), (ms) => {
      assert.deepEqual(parseSmaps(ms.map(renderSmaps).join('\n') + '\n'), ms);
    }),
    { numRuns: 500 },
  );
});

test('the rendering matches the kernel: re-rendering a real capture reproduces it byte for byte', () => {
  const text = readFileSync(new URL('../../../test/fixtures/captures/sleep-debian12-6.18.maps', import.meta.url), 'utf8');
  assert.equal(parseMaps(text).map(renderHeader).join('\n') + '\n', text);
});

function mutate(text: string, ops: readonly [number, number, string][]): string {
  let s = text;
  for (const [op, at0, junk] of ops) {
    const at = s.length === 0 ? 0 : at0 % (s.length + 1);
    if (op === 0) s = s.slice(0, at) + junk + s.slice(at);
    else if (op === 1) s = s.slice(0, at) + s.slice(at + 1 + (junk.length % 16));
    else if (op === 2) s = s.slice(0, at);
    else if (op === 3) {
      const lines = s.split('\n');
      const i = at % Math.max(1, lines.length);
      lines.splice(i, 0, lines[(i + junk.length) % lines.length] ?? '');
      s = lines.join('\n');
    } else {
      // swap a hex digit for another character, the likeliest damage to a number
      const m = /[0-9a-f]/.exec(s.slice(at));
      if (m) s = s.slice(0, at + m.index) + (junk[0] ?? 'g') + s.slice(at + m.index + 1);
    }
  }
  return s;
}

test('damaged maps and smaps parse or throw MemdumpError E_CORRUPT with a line number, never anything else', () => {
  const junk = fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.constantFrom('-', ' ', '  ', ':', '\n', '\r\n', '\\012', 'ffffffffffffffff', 'fffffffffffffffff', ' kB', 'VmFlags: ', 'Rss: x kB', '\u0000', 'rw-p', '99999999999999999999'),
  );
  const op = fc.tuple(fc.integer({ min: 0, max: 4 }), fc.nat(), junk);
  let failures = 0;
  fc.assert(
    fc.property(fc.array(mapping, { minLength: 1, maxLength: 6 }), fc.array(op, { minLength: 1, maxLength: 4 }), fc.boolean(), (ms, ops, smaps) => {
      const text = mutate(smaps ? ms.map(renderSmaps).join('\n') : ms.map(renderHeader).join('\n'), ops);
      try {
        const out = smaps ? parseSmaps(text) : parseMaps(text);
        for (const m of out) assert.ok(m.end > m.start && m.end <= U64 && m.inode <= U64);
      } catch (e) {
        if (!(e instanceof MemdumpError)) throw e;
        assert.equal(e.code, 'E_CORRUPT');
        assert.match(e.message, /line \d+ /);
        failures++;
      }
    }),
    { numRuns: 2000 },
  );
  assert.ok(failures > 100, `the mutations reached the error paths only ${failures} times`);
});
