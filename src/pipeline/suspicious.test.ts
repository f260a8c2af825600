import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { preadAt } from '../core/file.js';
import { type Mapping, parseMaps } from '../sources/maps.js';
import { grepRegions } from './regions.js';
import { type Finding, elfScannable, findSuspicious } from './suspicious.js';
import { fakeMem } from '../../test/helpers/fake-memory.js';

const PAGE = 4096;
const NO_READ = async (): Promise<undefined> => undefined;

function capturesDir(): string {
  const nearBuild = fileURLToPath(new URL('../../../test/fixtures/captures/', import.meta.url));
  return existsSync(join(nearBuild, 'regions-node20-worker.maps')) ? nearBuild : join(process.cwd(), 'test/fixtures/captures');
}

function brief(fs: readonly Finding[]): string[] {
  return fs.map((f) => `${f.start.toString(16)} ${f.kind}`);
}

function mapping(line: string): Mapping {
  return parseMaps(line + '\n')[0]!;
}

/** A 64-byte ELF header like the loader sees: this node binary's own. */
const REAL_ELF = readFileSync(process.execPath).subarray(0, 64);


function anon(start: bigint, length: number, perms = 'rw-p', path = ''): Mapping {
  const inode = path === '' || path.startsWith('[') ? '0' : '4242';
  return mapping(`${start.toString(16)}-${(start + BigInt(length)).toString(16)} ${perms} 00000000 00:00 ${inode}${path ? ' ' + path : ''}`);
}

test('mapping kinds: each suspicious shape, several kinds per mapping kept apart, kernel code and plain files never', async () => {
  const maps = parseMaps(
    [
      '00400000-00401000 r-xp 00001000 fe:00 100 /usr/bin/app',
      '00500000-00501000 rwxp 00001000 fe:00 100 /usr/bin/legacy-textrel',
      '7f0020000000-7f0020010000 rwxp 00000000 00:00 0',
      '7f0020010000-7f0020020000 r-xp 00000000 00:00 0 [anon:dalvik-jit-code-cache]',
      '7f0020020000-7f0020021000 r-xp 00000000 00:01 77 /memfd:stage2 (deleted)',
      '7f0020021000-7f0020022000 rw-p 00000000 00:01 78 /memfd:data (deleted)',
      '7f0020022000-7f0020023000 r-xp 00000000 fe:00 555 /tmp/.x/dropped.so (deleted)',
      '7f0020023000-7f0020024000 r--p 00000000 fe:00 556 /tmp/.x/notes.txt (deleted)',
      '7f0020024000-7f0020025000 r-xs 00000000 00:01 99 /dev/zero (deleted)',
      '7f0020025000-7f0020026000 rwxs 00000000 00:01 98 /SYSV0000abcd (deleted)',
      '7f0020026000-7f0020027000 --xp 00000000 00:00 0',
      '7f0020027000-7f0020028000 -wxp 00000000 00:00 0',
      '7f0020028000-7f0020029000 rwxp 00000000 fe:00 557 /tmp/.x/selfmod.bin (deleted)',
      '7f0030204000-7f0030206000 r-xp 00000000 00:00 0 [vdso]',
      '7f0030206000-7f0030207000 r-xp 00000000 00:00 0 [uprobes]',
      '7ffc00000000-7ffc00021000 rwxp 00000000 00:00 0 [stack]',
      'ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]',
    ].join('\n'),
  );
  // given out of order: the result is sorted by address, then kind
  const f = await findSuspicious([...maps].reverse(), NO_READ);
  assert.deepEqual(brief(f), [
    '500000 rwx',
    '7f0020000000 anon-exec',
    '7f0020000000 rwx',
    '7f0020010000 anon-exec',
    '7f0020020000 memfd-exec',
    '7f0020022000 deleted-exec',
    '7f0020024000 anon-exec',
    '7f0020025000 anon-exec',
    '7f0020025000 rwx',
    '7f0020026000 anon-exec',
    '7f0020027000 anon-exec',
    '7f0020027000 rwx',
    '7f0020028000 rwx',
    '7f0020028000 deleted-exec',
    '7ffc00000000 anon-exec',
    '7ffc00000000 rwx',
  ]);
  const at = (start: bigint, kind: string): Finding => f.find((x) => x.start === start && x.kind === kind)!;
  assert.match(at(0x7f0020000000n, 'anon-exec').detail, /common in JIT runtimes \(V8, JVM, \.NET\)/);
  assert.match(at(0x7f0020000000n, 'rwx').detail, /common in JIT runtimes \(V8, JVM, \.NET\)/);
  assert.doesNotMatch(at(0x500000n, 'rwx').detail, /JIT/);
  assert.match(at(0x7f0020020000n, 'memfd-exec').detail, /fileless/);
  assert.match(at(0x7f0020022000n, 'deleted-exec').detail, /upgraded/);
  const x = at(0x7f0020010000n, 'anon-exec');
  assert.deepEqual([x.end, x.perms, x.path], [0x7f0020020000n, 'r-xp', '[anon:dalvik-jit-code-cache]']);
});

test('ELF scan: every page start, across chunk boundaries; never a header that is not at a page start', async () => {
  const base = 0x7f1234560000n;
  const chunk = 4 * PAGE;
  const mem = Buffer.alloc(3 * chunk, 0x90);
  const aligned = [0, chunk - PAGE, chunk, 2 * chunk + PAGE, 3 * chunk - PAGE];
  for (const o of aligned) REAL_ELF.copy(mem, o);
  // bare magic off page starts: inside a page, right before a chunk boundary, split by a chunk boundary
  for (const o of [0x1010, chunk + 0x101, chunk - 4, 2 * chunk - 1, 2 * chunk + 0x800]) mem.write('\x7fELF', o, 'latin1');
  const { read, calls } = fakeMem(base, mem);
  const f = await findSuspicious([anon(base, mem.length)], read, { chunkSize: chunk });
  assert.deepEqual(
    f.map((x) => x.start - base),
    aligned.map(BigInt),
  );
  assert.ok(f.every((x) => x.kind === 'elf-in-anon' && x.end === base + BigInt(mem.length) && x.perms === 'rw-p'));
  assert.deepEqual(
    calls.map(([a, l]) => [a - base, l]),
    [
      [0n, chunk],
      [BigInt(chunk), chunk],
      [BigInt(2 * chunk), chunk],
    ],
  );
});

test('ELF scan with the default 4 MiB chunks: headers on both sides of the boundary and in a short last chunk', async () => {
  const base = 0x7f0000000000n;
  const MiB4 = 4 << 20;
  const mem = Buffer.alloc(2 * MiB4 + 2 * PAGE, 0);
  const aligned = [MiB4 - PAGE, MiB4, 2 * MiB4 + PAGE];
  for (const o of aligned) REAL_ELF.copy(mem, o);
  for (const o of [MiB4 + 8, MiB4 + PAGE - 2]) mem.write('\x7fELF', o, 'latin1');
  const { read, calls } = fakeMem(base, mem);
  const f = await findSuspicious([anon(base, mem.length)], read);
  assert.deepEqual(
    f.map((x) => x.start - base),
    aligned.map(BigInt),
  );
  assert.deepEqual(
    calls.map(([, l]) => l),
    [MiB4, MiB4, 2 * PAGE],
  );
});

test('ELF scan: what is scanned (anonymous, [heap], memfd) and what not (files, deleted files, [vdso], unreadable)', async () => {
  const page = Buffer.alloc(PAGE);
  REAL_ELF.copy(page);
  const maps = [
    anon(0x10000n, PAGE, 'r--p', '/usr/lib/libfoo.so'),
    anon(0x20000n, PAGE, 'r--p', '/tmp/libgone.so (deleted)'),
    anon(0x30000n, PAGE, 'r--p', '[vdso]'),
    anon(0x40000n, PAGE, '---p'),
    anon(0x50000n, PAGE, 'rw-p', '[heap]'),
    anon(0x60000n, PAGE, 'r--p', '/memfd:blob (deleted)'),
    anon(0x70000n, PAGE, 'rw-p', '[anon:named]'),
    anon(0x80000n, PAGE, 'rw-s', '/dev/zero (deleted)'),
    anon(0x90000n, PAGE, 'rw-p'),
  ];
  assert.deepEqual(
    maps.map(elfScannable),
    [false, false, false, false, true, true, true, true, true],
  );
  const calls: bigint[] = [];
  const f = await findSuspicious(maps, async (addr) => {
    calls.push(addr);
    return Buffer.from(page);
  });
  assert.deepEqual(brief(f), ['50000 elf-in-anon', '60000 elf-in-anon', '70000 elf-in-anon', '80000 elf-in-anon', '90000 elf-in-anon']);
  assert.deepEqual(calls, [0x50000n, 0x60000n, 0x70000n, 0x80000n, 0x90000n]);
});

test('ELF scan: an unreadable chunk is skipped and the scan goes on; the detail decodes the header', async () => {
  const base = 0x100000n;
  const mem = Buffer.alloc(3 * 2 * PAGE);
  REAL_ELF.copy(mem, 0);
  REAL_ELF.copy(mem, 2 * PAGE); // in the unreadable chunk
  REAL_ELF.copy(mem, 5 * PAGE);
  mem.write('\x7fELF\x09\x09', PAGE, 'latin1'); // magic with nonsense class/data: still reported
  const { read } = fakeMem(base, mem, new Set([base + 2n * BigInt(PAGE)]));
  const f = await findSuspicious([anon(base, mem.length)], read, { chunkSize: 2 * PAGE });
  assert.deepEqual(
    f.map((x) => x.start - base),
    [0n, BigInt(PAGE), 5n * BigInt(PAGE)],
  );
  const cls = REAL_ELF[4] === 2 ? 'ELF64' : 'ELF32';
  const type = { 2: 'ET_EXEC', 3: 'ET_DYN' }[REAL_ELF.readUInt16LE(16)] ?? 'type';
  const machine = { 62: 'x86-64', 183: 'AArch64' }[REAL_ELF.readUInt16LE(18)] ?? 'machine';
  assert.ok(f[0]!.detail.startsWith(`ELF header (${cls} LSB ${type} ${machine}) at page start 0x100000 in anonymous mapping 0x100000-0x106000 rw-p:`), f[0]!.detail);
  assert.match(f[1]!.detail, /^ELF header \(class\/data bytes after the magic not valid\)/);
});

test('ELF scan: at most 16 headers per mapping, and the last one says more were left out', async () => {
  const base = 0x200000n;
  const many = Buffer.alloc(20 * PAGE);
  for (let i = 0; i < 20; i++) REAL_ELF.copy(many, i * PAGE);
  const f = await findSuspicious([anon(base, many.length), anon(0x400000n, 16 * PAGE)], fakeMemMulti([[base, many], [0x400000n, many.subarray(0, 16 * PAGE)]]));
  const first = f.filter((x) => x.start < 0x400000n);
  const second = f.filter((x) => x.start >= 0x400000n);
  assert.equal(first.length, 16);
  assert.equal(first[15]!.start, base + 15n * BigInt(PAGE));
  assert.match(first[15]!.detail, /more than 16 ELF headers in this mapping: only the first 16 are reported/);
  assert.ok(first.slice(0, 15).every((x) => !/more than/.test(x.detail)));
  // exactly 16: all reported, no note
  assert.equal(second.length, 16);
  assert.ok(second.every((x) => !/more than/.test(x.detail)));
  const capped = await findSuspicious([anon(base, many.length)], fakeMemMulti([[base, many]]), { maxElfPerMapping: 2 });
  assert.equal(capped.length, 2);
  assert.match(capped[1]!.detail, /only the first 2 are reported/);
});

function fakeMemMulti(parts: [bigint, Buffer][]) {
  return async (addr: bigint, length: number): Promise<Buffer | undefined> => {
    for (const [b, m] of parts) {
      if (addr >= b && addr + BigInt(length) <= b + BigInt(m.length)) return Buffer.from(m.subarray(Number(addr - b), Number(addr - b) + length));
    }
    return undefined;
  };
}

test('findSuspicious rejects a chunk size that is not a page multiple', async () => {
  await assert.rejects(findSuspicious([], NO_READ, { chunkSize: 5000 }), RangeError);
  await assert.rejects(findSuspicious([], NO_READ, { maxElfPerMapping: 0 }), RangeError);
});

// ---------------------------------------------------------------- real captures (see regions.test.ts)

test('capture node 20 + worker: V8 code spaces are anon-exec + rwx (expected for JIT); [vdso], [vsyscall] and files are not', async () => {
  const maps = parseMaps(readFileSync(join(capturesDir(), 'regions-node20-worker.maps'), 'utf8'));
  const f = await findSuspicious(maps, NO_READ);
  assert.deepEqual(brief(f), ['7f64a8003000 anon-exec', '7f64a8003000 rwx', '7f64cefc3000 anon-exec', '7f64cefc3000 rwx']);
  assert.ok(f.every((x) => x.detail.includes('common in JIT runtimes (V8, JVM, .NET)')));
});

test('capture python 3.11 injected: deleted file r-x, anon rwx, memfd r-x; nothing else in a plain CPython', async () => {
  const maps = parseMaps(readFileSync(join(capturesDir(), 'regions-python311-injected.maps'), 'utf8'));
  const f = await findSuspicious(maps, NO_READ);
  assert.deepEqual(brief(f), ['7ff605666000 deleted-exec', '7ff6061ba000 anon-exec', '7ff6061ba000 rwx', '7ff6062fe000 memfd-exec']);
  assert.equal(f[0]!.path, '/tmp/memdump-dropped-1px5vr03.bin (deleted)');
  assert.equal(f[3]!.path, '/memfd:payload (deleted)');
});

// ---------------------------------------------------------------- live processes

/** Reads another process's memory through /proc/PID/mem, as the CLI's fallback does; a failed read → undefined. */
function procMem(pid: number | 'self') {
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const read = async (addr: bigint, length: number): Promise<Buffer | undefined> => {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = await preadAt(fd, buf, done, length - done, addr + BigInt(done));
      } catch {
        break;
      }
      if (n === 0) break;
      done += n;
    }
    return done === 0 ? undefined : buf.subarray(0, done);
  };
  return { read, close: () => closeSync(fd) };
}

/**
 * Made the regions-python311-injected capture. Anonymous rwx with an ELF header at page 1 and a bare magic at
 * page 2 + 16; anonymous rw with an ELF header at page 0 and a secret across the page 1/2 boundary; a memfd
 * holding an ELF page mapped r-x; a file mapped r-x and then deleted. Prints the addresses, waits for stdin EOF.
 */
const INJECT_PY = `
import ctypes, json, mmap, os, sys, tempfile
PAGE = mmap.PAGESIZE
elf = open('/proc/self/exe', 'rb').read(PAGE)
def addr(m): return ctypes.addressof(ctypes.c_char.from_buffer(m))
rwx = mmap.mmap(-1, 4 * PAGE, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
rwx[PAGE:PAGE + 64] = elf[:64]
rwx[2 * PAGE + 16:2 * PAGE + 20] = b'\\x7fELF'
anon = mmap.mmap(-1, 3 * PAGE, flags=mmap.MAP_PRIVATE)
anon[0:64] = elf[:64]
secret = b'memdump-secret-7d1'
anon[2 * PAGE - 7:2 * PAGE - 7 + len(secret)] = secret
fd = os.memfd_create('payload')
os.write(fd, elf)
mfd = mmap.mmap(fd, PAGE, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_EXEC)
t = tempfile.NamedTemporaryFile(prefix='memdump-dropped-', suffix='.bin', delete=False)
t.write(elf); t.close()
dfd = os.open(t.name, os.O_RDONLY)
dmap = mmap.mmap(dfd, PAGE, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_EXEC)
os.unlink(t.name)
print(json.dumps({'pid': os.getpid(), 'rwx': addr(rwx), 'anon': addr(anon), 'deleted': t.name, 'secretAt': addr(anon) + 2 * PAGE - 7}), flush=True)
sys.stdin.read()
`;

interface Injected {
  pid: number;
  rwx: number;
  anon: number;
  deleted: string;
  secretAt: number;
}

async function startInjected(): Promise<{ child: ChildProcess; info: Injected } | string> {
  const child = spawn('python3', ['-c', INJECT_PY], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => {
    child.on('error', (e) => resolve(`python3 not runnable: ${e.message}`));
    child.on('exit', (code) => resolve(`python3 exited (${code}): ${err.trim().split('\n').pop() ?? ''}`));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve({ child, info: JSON.parse(out) as Injected });
    });
  });
}

test('live python process: each injected shape is found in its real memory; [vdso] (an ELF image) is not', async (t) => {
  const started = await startInjected();
  if (typeof started === 'string') return t.skip(started);
  const { child, info } = started;
  let mem: ReturnType<typeof procMem> | undefined;
  try {
    try {
      mem = procMem(info.pid);
    } catch (e) {
      return t.skip(`/proc/${info.pid}/mem not readable: ${(e as Error).message}`);
    }
    const maps = parseMaps(readFileSync(`/proc/${info.pid}/maps`, 'utf8'));
    const f = await findSuspicious(maps, mem.read);
    const containing = (a: bigint): Mapping => maps.find((m) => m.start <= a && a < m.end)!;
    const kindsAt = (a: bigint): string[] => f.filter((x) => x.start === a).map((x) => x.kind);
    const rwx = BigInt(info.rwx);
    const anonAt = BigInt(info.anon);

    assert.deepEqual(kindsAt(containing(rwx).start).filter((k) => k !== 'elf-in-anon'), ['anon-exec', 'rwx']);
    assert.deepEqual(kindsAt(rwx + BigInt(PAGE)), ['elf-in-anon']);
    assert.ok(!f.some((x) => x.start >= rwx + 2n * BigInt(PAGE) && x.start < rwx + 3n * BigInt(PAGE)), 'magic at page + 16 is not a finding');
    assert.deepEqual(kindsAt(anonAt), ['elf-in-anon']);

    const memfd = maps.find((m) => m.path === '/memfd:payload (deleted)')!;
    assert.deepEqual(kindsAt(memfd.start), ['memfd-exec', 'elf-in-anon']);
    const deleted = maps.find((m) => m.path === `${info.deleted} (deleted)`)!;
    assert.deepEqual(kindsAt(deleted.start), ['deleted-exec']);

    for (const special of maps.filter((m) => m.path === '[vdso]' || m.path === '[vsyscall]')) {
      assert.ok(!f.some((x) => x.start >= special.start && x.start < special.end), `${special.path} is not a finding`);
    }
    // the vdso really is an ELF image: the exclusion is what keeps it out
    const vdso = maps.find((m) => m.path === '[vdso]');
    if (vdso) assert.equal((await mem.read(vdso.start, 4))?.toString('latin1'), '\x7fELF');
    for (const x of f.filter((y) => y.kind === 'elf-in-anon')) assert.ok(elfScannable(containing(x.start)));

    // grep on real memory: the secret crosses a page boundary, which is a chunk boundary with 4 KiB chunks
    const cut: Mapping = { ...containing(anonAt), start: anonAt, end: anonAt + 3n * BigInt(PAGE) };
    for (const chunkSize of [PAGE, 1 << 20]) {
      const hits = await grepRegions([cut], [Buffer.from('memdump-secret-7d1')], mem.read, { chunkSize });
      assert.deepEqual(hits.get(anonAt), { pattern: '"memdump-secret-7d1"', firstHit: BigInt(info.secretAt) });
    }
  } finally {
    mem?.close();
    child.stdin!.end();
    child.kill();
  }
});

test('this node process: V8 JIT memory, if any, is reported as expected for JIT; [vdso] never', async (t) => {
  let mem: ReturnType<typeof procMem>;
  try {
    mem = procMem('self');
  } catch (e) {
    return t.skip(`/proc/self/mem not readable: ${(e as Error).message}`);
  }
  try {
    const maps = parseMaps(readFileSync('/proc/self/maps', 'utf8'));
    const f = await findSuspicious(maps, mem.read);
    const vdso = maps.filter((m) => m.path === '[vdso]' || m.path === '[vsyscall]');
    assert.ok(!f.some((x) => vdso.some((v) => x.start >= v.start && x.start < v.end)));
    for (const x of f.filter((y) => y.kind === 'anon-exec' || (y.kind === 'rwx' && y.path === ''))) assert.match(x.detail, /common in JIT runtimes \(V8, JVM, \.NET\)/);
    // node maps only itself, libraries and anonymous memory: nothing memfd or deleted
    assert.ok(f.every((x) => x.kind !== 'memfd-exec' && x.kind !== 'deleted-exec'), JSON.stringify(f.map((x) => [x.kind, x.path])));
  } finally {
    mem.close();
  }
});
