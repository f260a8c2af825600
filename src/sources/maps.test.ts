import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isMemdumpError } from '../core/errors.js';
import { type Mapping, isAnonymousLike, parseMaps, parseSmaps, readMappings } from './maps.js';

const CAPTURES = new URL('../../../test/fixtures/captures/', import.meta.url);
const capture = (name: string) => readFileSync(new URL(name, CAPTURES), 'utf8');

function at(ms: readonly Mapping[], start: bigint): Mapping {
  const m = ms.find((x) => x.start === start);
  assert.ok(m, `no mapping at 0x${start.toString(16)}`);
  return m;
}

function withoutSmaps(m: Mapping): Mapping {
  const { vmFlags: _f, rss: _r, anonymous: _a, swap: _s, ...rest } = m;
  return rest;
}

test('sleep capture (Debian 12, kernel 6.18): every mapping, smaps fields in bytes, vsyscall above 2^53', () => {
  const ms = parseSmaps(capture('sleep-debian12-6.18.smaps'));
  assert.equal(ms.length, 37);
  assert.deepEqual(ms[0], {
    start: 0x55959e21f000n,
    end: 0x55959e221000n,
    perms: 'r--p',
    read: true,
    write: false,
    exec: false,
    shared: false,
    offset: 0n,
    dev: 'fe:00',
    inode: 260875n,
    path: '/usr/bin/sleep',
    deleted: false,
    rss: 8192n,
    anonymous: 0n,
    swap: 0n,
    vmFlags: ['rd', 'mr', 'mw', 'me'],
  });
  const libcText = at(ms, 0x7fa51a0f2000n);
  assert.equal(libcText.offset, 0x26000n);
  assert.equal(libcText.rss, 952n * 1024n);
  assert.equal(libcText.exec, true);
  assert.equal(at(ms, 0x7fa51a29b000n).anonymous, 16n * 1024n, 'libc RELRO holds anonymous (COW) pages');
  assert.deepEqual(at(ms, 0x7ffc23cfb000n).vmFlags, ['rd', 'wr', 'mr', 'mw', 'me', 'gd', 'ac']);
  assert.equal(at(ms, 0x7ffc23cfb000n).path, '[stack]');
  assert.deepEqual(at(ms, 0x7fa51a2bc000n).vmFlags, ['rd', 'mr', 'pf', 'io', 'de', 'dd']);
  assert.equal(at(ms, 0x7fa51a2c0000n).path, '[vvar_vclock]');
  assert.equal(at(ms, 0x7fa51a2b2000n).shared, true);
  const anon = at(ms, 0x7fa51a0c9000n);
  assert.equal(anon.path, '', 'the trailing space after the inode is not a path');
  const vsys = ms[ms.length - 1]!;
  assert.equal(vsys.start, 0xffffffffff600000n);
  assert.equal(vsys.path, '[vsyscall]');
  assert.equal(vsys.perms, '--xp');
  assert.ok(ms.every((m, i) => i === 0 || m.start >= ms[i - 1]!.end));
});

test('maps and smaps of the same process agree on every maps field; maps leaves smaps fields unset', () => {
  const maps = parseMaps(capture('sleep-debian12-6.18.maps'));
  const smaps = parseSmaps(capture('sleep-debian12-6.18.smaps'));
  assert.deepEqual(maps, smaps.map(withoutSmaps));
  assert.ok(maps.every((m) => !('vmFlags' in m) && !('rss' in m)));
});

test('mapper capture: \\012 decodes to a newline, spaces kept, (deleted) marked, shmem kinds named', () => {
  const ms = parseSmaps(capture('mapper-debian12-6.18.smaps'));
  const data = at(ms, 0x7e0000080000n);
  assert.equal(data.path, '/tmp/cap/data file\nline2.bin');
  assert.equal(data.deleted, false);
  assert.equal(data.perms, 'rw-s');
  const gone = at(ms, 0x7e00000c0000n);
  assert.equal(gone.path, '/tmp/cap/gone.bin (deleted)');
  assert.equal(gone.deleted, true);
  assert.equal(at(ms, 0x7e0000060000n).path, '/memfd:ring buf (deleted)');
  assert.equal(at(ms, 0x7e00000e0000n).path, '/SYSV00000000 (deleted)');
  assert.equal(at(ms, 0x7e0000040000n).path, '/dev/zero (deleted)');
  assert.deepEqual(at(ms, 0x7e0000030000n).vmFlags, ['rd', 'wr', 'mr', 'mw', 'me', 'ac', 'dd']);
  assert.equal(at(ms, 0x7e0000010000n).anonymous, 0n, 'untouched anonymous mapping');
  assert.equal(at(ms, 0x7e00000a0000n).anonymous, 4096n, 'written private file mapping holds a COW page');
});

test('isAnonymousLike follows gdb: no path, pseudo names, shmem and deleted files; real files are not', () => {
  const ms = parseSmaps(capture('mapper-debian12-6.18.smaps'));
  const kind = (start: bigint) => isAnonymousLike(at(ms, start));
  for (const s of [0x7e0000000000n, 0x7e0000040000n, 0x7e0000060000n, 0x7e0000070000n, 0x7e00000c0000n, 0x7e00000e0000n, 0x55dfa4f7c000n]) {
    assert.equal(kind(s), true, `0x${s.toString(16)} ${at(ms, s).path}`);
  }
  for (const s of [0x7e0000080000n, 0x7e00000b0000n, 0x55df77173000n, 0x7f051ff0a000n]) {
    assert.equal(kind(s), false, `0x${s.toString(16)} ${at(ms, s).path}`);
  }
  const line = (path: string, inode = '0') => parseMaps(`7f0000000000-7f0000001000 rw-p 00000000 00:00 ${inode}   ${path}`)[0]!;
  assert.equal(isAnonymousLike(line('[anon:jit cache]')), true);
  assert.equal(isAnonymousLike(line('[anon_shmem:ring]', '42')), true, 'named shmem carries an inode but is anonymous');
  assert.equal(isAnonymousLike(line('/dev/zero', '4')), true);
  assert.equal(isAnonymousLike(line('/memfd:wayland-shm', '12')), true, 'memfd even without (deleted)');
  assert.equal(isAnonymousLike(line('/SYSV0000abcd', '1')), true);
  assert.equal(isAnonymousLike(line('/usr/lib/memfd:not', '12')), false);
  assert.equal(isAnonymousLike(line('/dev/zeroes', '4')), false);
  assert.equal(isAnonymousLike(line('/usr/lib/libdeleted.so', '9')), false);
});

test('trailing newline, blank lines, CRLF, missing trailing space and wide fields are accepted', () => {
  const text = [
    '',
    '00400000-00401000 r-xp 00000000 103:02 18446744073709551615  /opt/a  b  ',
    '',
    'fffffffffffff000-ffffffffffffffff rw-p ffffffffffff0000 00:00 0',
    '7f0000000000-7f0000001000 rw-p 00000000 00:00 0                          [heap]',
    '',
  ].join('\r\n');
  const ms = parseMaps(text);
  assert.equal(ms.length, 3);
  assert.equal(ms[0]!.path, '/opt/a  b  ', 'inner and trailing spaces of a path are kept');
  assert.equal(ms[0]!.dev, '103:02');
  assert.equal(ms[0]!.inode, 18446744073709551615n);
  assert.equal(ms[1]!.end, 0xffffffffffffffffn);
  assert.equal(ms[1]!.offset, 0xffffffffffff0000n);
  assert.equal(ms[1]!.path, '');
  assert.equal(ms[2]!.path, '[heap]');
  assert.deepEqual(parseMaps(''), []);
  assert.deepEqual(parseSmaps('\n\n'), []);
});

test('smaps blocks without VmFlags (old kernels) leave vmFlags unset; unknown keys are ignored', () => {
  const ms = parseSmaps('00400000-00402000 r--p 00000000 08:01 5 /bin/x\nRss: 8 kB\nNewKey:   7 pages\nTHPeligible: 0\n');
  assert.equal(ms[0]!.rss, 8192n);
  assert.equal(ms[0]!.vmFlags, undefined);
  assert.equal(ms[0]!.anonymous, undefined);
});

function corrupt(fn: () => unknown, line: number, what: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isMemdumpError(e, 'E_CORRUPT'), String(e));
    assert.match(e.message, new RegExp(`line ${line}\\b`));
    assert.match(e.message, what);
    assert.equal(e.details['line'], line);
    return true;
  });
}

test('malformed input is E_CORRUPT naming the line', () => {
  const ok = '00400000-00401000 r-xp 00000000 08:01 5 /bin/x\n';
  corrupt(() => parseMaps(ok + '\n00401000-00400000 r-xp 00000000 08:01 5 /bin/x\n'), 3, /ends at or before/);
  corrupt(() => parseMaps(ok + '00401000-00401000 r-xp 00000000 08:01 5 /bin/x\n'), 2, /ends at or before/);
  corrupt(() => parseMaps(ok + 'Rss: 4 kB\n'), 2, /not "start-end/);
  corrupt(() => parseMaps(ok + '00401000-00402000 rwxq 00000000 08:01 5\n'), 2, /not "start-end/);
  corrupt(() => parseMaps(ok + '10000000000000000-10000000000001000 r--p 00000000 08:01 5\n'), 2, /not "start-end/);
  corrupt(() => parseMaps(ok + '00401000-00402000 r--p 00000000 08:01 99999999999999999999\n'), 2, /inode/);
  corrupt(() => parseMaps(ok + '00401000-00402000 r--p 00000000 08:01\n'), 2, /not "start-end/);
  corrupt(() => parseSmaps('Rss: 4 kB\n' + ok), 1, /before any mapping/);
  corrupt(() => parseSmaps(ok + 'Rss:  four kB\n'), 2, /Rss value/);
  corrupt(() => parseSmaps(ok + 'Anonymous: 4 MB\n'), 2, /Anonymous value/);
  corrupt(() => parseSmaps(ok + 'VmFlags: rd wrx\n'), 2, /VmFlags/);
  corrupt(() => parseSmaps(ok + 'Size: 4 kB\n   \n garbage\n'), 4, /nor "Key: value"/);
});

test('readMappings reads smaps, falls back to maps when smaps cannot be read, and codes a missing process', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'memdump-maps-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const smaps = capture('sleep-debian12-6.18.smaps');
  const maps = capture('sleep-debian12-6.18.maps');
  mkdirSync(join(root, '10'));
  writeFileSync(join(root, '10', 'smaps'), smaps);
  writeFileSync(join(root, '10', 'maps'), 'not read');
  const a = await readMappings(10, root);
  assert.equal(a.smaps, true);
  assert.deepEqual(a.mappings, parseSmaps(smaps));
  // a directory named smaps fails to read (EISDIR), like a kernel without CONFIG_PROC_PAGE_MONITOR
  mkdirSync(join(root, '11', 'smaps'), { recursive: true });
  writeFileSync(join(root, '11', 'maps'), maps);
  const b = await readMappings(11, root);
  assert.equal(b.smaps, false);
  assert.deepEqual(b.mappings, parseMaps(maps));
  await assert.rejects(readMappings(12, root), { code: 'E_NOT_FOUND' });
  await assert.rejects(readMappings(0, root), { code: 'E_USAGE' });
  await assert.rejects(readMappings(1.5, root), { code: 'E_USAGE' });
});

test('readMappings on this process sees its own stack with smaps fields', async () => {
  const { mappings, smaps } = await readMappings(process.pid);
  assert.equal(smaps, true);
  const stack = mappings.find((m) => m.path === '[stack]');
  assert.ok(stack);
  assert.ok(stack.vmFlags?.includes('gd'));
  assert.ok((stack.anonymous ?? 0n) > 0n);
});
