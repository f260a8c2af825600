/**
 * Oracle for the E01 reader: sets written by ewfacquire (ewf-tools 20140813) from seeded data must read back through
 * memdump byte for byte as the input and as `ewfexport -f raw` gives them; details must say what `ewfinfo` says; the
 * media digests must be what `ewfverify` computes; and damage ewfverify rejects must be E_CORRUPT here.
 * Covered: compression none/fast/best, one segment and -S sets, a size that is not a whole number of chunks, a size
 * that is not a whole number of sectors (ewfacquire's own inconsistent output), every EWF-E01 flavour ewfacquire
 * writes (-f encase1…6, ftk, linen5/6, and ewf/smart/ewfx), more than 99 segments (.EAA naming), error2 runs.
 * Skipped only when ewfacquire is not installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { adler32 } from '../../src/core/adler32.js';
import { RandomAccessFile } from '../../src/core/file.js';
import { type E01Image, e01MediaDigests, openE01 } from '../../src/formats/e01.js';
import { tempDir } from '../helpers/cli.js';
import { expectCodeAsync } from '../helpers/expect-code.js';
import { Prng } from '../helpers/prng.js';

const HAVE = spawnSync('ewfacquire', ['-V']).status === 0;
const skip = HAVE ? false : 'ewfacquire (ewf-tools) is not installed';
const CHUNK = 32768;

/** Seeded bytes at AES-CTR speed (100 MiB in well under a second). */
function keystream(seed: number, n: number): Buffer {
  const key = createHash('sha256').update(`memdump-ewf-${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** Random, zero, text and low-entropy stretches: both compressed and stored chunks (`noise` of 4 kinds are random). */
function mixed(seed: number, size: number, noise = 1): Buffer {
  const rng = new Prng(seed);
  const rand = keystream(seed, size);
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; ) {
    const n = Math.min(size - at, 1000 + rng.int(70000));
    const kind = rng.int(4);
    if (kind < noise) rand.copy(out, at, at, at + n);
    else if (kind === noise) out.write(`ewf oracle ${seed} ${at}\n`.repeat(Math.ceil(n / 16)), at, n, 'latin1');
    else if (kind === noise + 1) for (let i = 0; i < n; i++) out[at + i] = rand[at + i]! & 7;
    at += n;
  }
  return out;
}

function run(cmd: string, args: string[]): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { env: { ...process.env, TZ: 'UTC' }, encoding: 'utf8', maxBuffer: 1 << 26 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function acquire(dir: string, data: Buffer, args: string[], name = 'acq'): string {
  const input = path.join(dir, `${name}.in`);
  writeFileSync(input, data);
  const r = run('ewfacquire', ['-u', '-q', '-t', path.join(dir, name), ...args, input]);
  assert.equal(r.code, 0, r.out);
  const first = readdirSync(dir).find((f) => f.startsWith(`${name}.`) && /\.[Ees]01$/.test(f));
  assert.ok(first, `ewfacquire wrote no first segment: ${r.out}`);
  return path.join(dir, first);
}

function ewfexport(dir: string, e01: string): Buffer {
  const target = path.join(dir, `${path.basename(e01)}.export`);
  const r = run('ewfexport', ['-u', '-q', '-f', 'raw', '-t', target, e01]);
  assert.equal(r.code, 0, r.out);
  return readFileSync(existsSync(target + '.raw') ? target + '.raw' : target);
}

/** ewfinfo's "Key:\tvalue" lines (dates in ISO 8601, UTC). */
function ewfinfo(e01: string, ...flags: string[]): Map<string, string> {
  const r = run('ewfinfo', ['-d', 'iso8601', ...flags, e01]);
  assert.equal(r.code, 0, r.out);
  const m = new Map<string, string>();
  for (const line of r.out.split('\n')) {
    const x = /^\t([^\t:][^:]*):\t+(.*)$/.exec(line);
    if (x && !m.has(x[1]!)) m.set(x[1]!, x[2]!);
  }
  return m;
}

function ewfverify(e01: string): { ok: boolean; md5: string | undefined; sha1: string | undefined; out: string } {
  const r = run('ewfverify', ['-q', '-d', 'sha1', e01]);
  return { ok: r.code === 0, md5: /MD5 hash calculated over data:\s+([0-9a-f]{32})/.exec(r.out)?.[1], sha1: /SHA1(?: hash calculated over data)?:\s+([0-9a-f]{40})/.exec(r.out)?.[1], out: r.out };
}

async function open(p: string): Promise<E01Image> {
  return openE01(await RandomAccessFile.open(p));
}

async function readAll(img: E01Image): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let a = 0n; a < img.mediaBytes; a += 1n << 20n) parts.push(await img.read(a, Number(img.mediaBytes - a < 1n << 20n ? img.mediaBytes - a : 1n << 20n)));
  return Buffer.concat(parts);
}

const COMPRESSION: Record<string, string> = { 'no compression': 'none', 'good (fast) compression': 'deflate:fast', 'best compression': 'deflate:best' };

for (const compression of ['none', 'fast', 'best'] as const) {
  for (const segmented of [false, true]) {
    test(`ewfacquire -c ${compression}${segmented ? ' -S 1MiB' : ''}: bytes, details and digests agree with ewfexport, ewfinfo, ewfverify`, { skip }, async (t) => {
      const dir = tempDir(t, 'memdump-ewf-oracle-');
      const seed = compression.length * 10 + (segmented ? 1 : 0);
      const data = mixed(seed, 3 * 1024 * 1024 + 512 * 13); // not a whole number of chunks
      const args = ['-c', `deflate:${compression}`, '-C', `case ${seed}`, '-D', 'memory of host-α', '-e', 'J. Examiner', '-E', `EV-${seed}`, '-N', 'seeded oracle', '-m', 'removable', '-d', 'sha1'];
      const e01 = acquire(dir, data, segmented ? [...args, '-S', '1MiB'] : args);
      const exported = ewfexport(dir, e01);
      assert.ok(exported.equals(data), 'ewfexport gives back the input');
      const img = await open(e01);
      try {
        assert.ok((await readAll(img)).equals(exported), 'our bytes are ewfexport bytes');
        const segs = img.details['segments'] as { path: string; firstChunk: number; chunks: number }[];
        assert.equal(segs.length > 1, segmented);
        // Reads straddling chunk boundaries, segment boundaries first.
        const rng = new Prng(seed);
        const spots = [...segs.slice(1).map((s) => s.firstChunk * CHUNK), ...Array.from({ length: 150 }, () => (1 + rng.int(Math.floor(data.length / CHUNK) - 1)) * CHUNK)];
        for (const b of spots) {
          const a = b - 1 - rng.int(3000);
          const n = Math.min(data.length - a, 2 + rng.int(70000));
          assert.ok((await img.read(BigInt(a), n)).equals(data.subarray(a, a + n)), `read ${a}+${n}`);
        }
        const info = ewfinfo(e01);
        const d = img.details;
        assert.equal(d['caseNumber'], info.get('Case number'));
        assert.equal(d['description'], info.get('Description'));
        assert.equal(d['examiner'], info.get('Examiner name'));
        assert.equal(d['evidenceNumber'], info.get('Evidence number'));
        assert.equal(d['notes'], info.get('Notes'));
        assert.equal(d['os'], info.get('Operating system used'));
        assert.equal(d['software'], info.get('Software version used'));
        assert.equal(d['acquiredAt'], `${info.get('Acquisition date')}Z`);
        assert.equal(d['mediaType'] + ' disk', info.get('Media type'));
        assert.equal(d['isPhysical'], info.get('Is physical') === 'yes');
        assert.equal(String(d['bytesPerSector']), info.get('Bytes per sector'));
        assert.equal(String(d['sectorsPerChunk']), info.get('Sectors per chunk'));
        assert.equal(d['sectorCount'], info.get('Number of sectors'));
        assert.equal(d['mediaBytes'], /\((\d+) bytes\)/.exec(info.get('Media size') ?? '')?.[1]);
        assert.equal(d['compression'], COMPRESSION[info.get('Compression level') ?? '']);
        assert.deepEqual(d['storedDigests'], { md5: info.get('MD5'), sha1: info.get('SHA1') });
        assert.equal(d['variant'], 'encase6');
        const ours = await e01MediaDigests(img);
        const theirs = ewfverify(e01);
        assert.ok(theirs.ok, theirs.out);
        assert.deepEqual({ md5: ours.md5, sha1: ours.sha1 }, { md5: theirs.md5, sha1: theirs.sha1 });
        assert.equal(ours.md5, createHash('md5').update(data).digest('hex'));
      } finally {
        await img.close();
      }
    });
  }
}

for (const where of ['inside the deflate stream', 'in the zlib adler32']) {
  test(`damage ewfverify rejects (a byte ${where} of a compressed chunk) is E_CORRUPT naming that chunk`, { skip }, async (t) => {
    const dir = tempDir(t, 'memdump-ewf-oracle-');
    const data = mixed(40, 1024 * 1024);
    const e01 = acquire(dir, data, ['-c', 'deflate:fast']);
    const f = readFileSync(e01);
    // The largest compressed chunk (a flip in a tiny stream of repeats may decode to the same bytes: ewfverify and
    // zlib then both accept it, rightly).
    let tbl = 13;
    while (f.subarray(tbl, tbl + 6).toString('latin1') !== 'table\0') tbl = Number(f.readBigUInt64LE(tbl + 16));
    const base = Number(f.readBigUInt64LE(tbl + 84));
    const entry = (i: number) => base + (f.readUInt32LE(tbl + 100 + 4 * i) & 0x7fffffff);
    const compressed = [...Array(f.readUInt32LE(tbl + 76) - 1).keys()].filter((i) => f.readUInt32LE(tbl + 100 + 4 * i) >>> 31 === 1);
    const c = compressed.reduce((best, i) => (entry(i + 1) - entry(i) > entry(best + 1) - entry(best) ? i : best));
    const at = where.includes('adler32') ? entry(c + 1) - 2 : (entry(c) + entry(c + 1)) >> 1;
    f[at] = f[at]! ^ 0x20;
    writeFileSync(e01, f);
    assert.equal(ewfverify(e01).ok, false, 'ewfverify notices');
    const img = await open(e01);
    try {
      const e = await expectCodeAsync(img.read(BigInt(c * CHUNK), CHUNK), 'E_CORRUPT');
      assert.equal(e.details['chunk'], c);
      assert.equal(e.details['offset'], '0x' + entry(c).toString(16));
      assert.ok((await img.read(BigInt((c - 1) * CHUNK), CHUNK)).equals(data.subarray((c - 1) * CHUNK, c * CHUNK)));
      await expectCodeAsync(e01MediaDigests(img), 'E_CORRUPT');
    } finally {
      await img.close();
    }
  });
}

const FLAVOURS: Record<string, { variant: string; file: string }> = {
  encase1: { variant: 'encase1', file: 'EnCase 1' },
  encase2: { variant: 'encase2', file: 'EnCase 2' },
  encase3: { variant: 'encase2', file: 'EnCase 2' },
  encase4: { variant: 'encase4', file: 'EnCase 4' },
  encase5: { variant: 'encase5', file: 'EnCase 5' },
  encase6: { variant: 'encase6', file: 'EnCase 6' },
  encase7: { variant: 'encase6', file: 'EnCase 6' },
  ftk: { variant: 'ftk', file: 'FTK Imager' },
  linen5: { variant: 'linen5', file: 'linen 5' },
  linen6: { variant: 'linen6', file: 'linen 6' },
  ewf: { variant: 'ewf-s01', file: '' },
  smart: { variant: 'ewf-s01', file: '' },
  ewfx: { variant: 'ewfx', file: '' },
};

test('every flavour ewfacquire writes (-f) reads as ewfexport reads it; the variant matches ewfinfo', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-ewf-oracle-');
  const data = mixed(50, 2 * 1024 * 1024 + 512 * 3, 2);
  for (const [format, want] of Object.entries(FLAVOURS)) {
    const e01 = acquire(dir, data, ['-f', format, '-c', 'deflate:fast', '-S', '1MiB', '-C', 'flavour'], format);
    const img = await open(e01);
    try {
      assert.ok((await readAll(img)).equals(ewfexport(dir, e01)), format);
      assert.ok((img.details['segments'] as unknown[]).length > 1, `${format}: a multi-segment set`);
      assert.equal(img.details['variant'], want.variant, format);
      if (want.file) assert.equal(ewfinfo(e01).get('File format'), want.file, format);
      assert.equal(img.details['caseNumber'], 'flavour', format);
      assert.equal((img.details['storedDigests'] as { md5: string }).md5, (await e01MediaDigests(img)).md5, format);
    } finally {
      await img.close();
    }
  }
});

test('an input that is not whole sectors: ewfacquire stores the tail, ewfexport and we stop at the last sector', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-ewf-oracle-');
  const data = mixed(60, 300_000); // 585.9 sectors
  const e01 = acquire(dir, data, ['-c', 'deflate:fast']);
  const img = await open(e01);
  try {
    const media = Math.floor(data.length / 512) * 512;
    assert.equal(img.mediaBytes, BigInt(media));
    const ours = await readAll(img);
    assert.ok(ours.equals(ewfexport(dir, e01)));
    assert.ok(ours.equals(data.subarray(0, media)));
    const v = ewfverify(e01);
    assert.equal(v.ok, false, 'ewfverify fails: the stored MD5 covers the whole input');
    const d = await e01MediaDigests(img);
    assert.equal(d.md5, v.md5, 'our media MD5 is what ewfverify calculates');
    assert.notEqual(d.md5, (img.details['storedDigests'] as { md5: string }).md5);
  } finally {
    await img.close();
  }
});

test('more than 99 segments: .E99 is followed by .EAA, as libewf names them', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-ewf-oracle-');
  const data = keystream(70, 102 * 1024 * 1024);
  const e01 = acquire(dir, data, ['-c', 'none', '-S', '1MiB']);
  assert.ok(existsSync(e01.replace(/01$/, 'AA')), 'ewfacquire wrote .EAA');
  const img = await open(e01);
  try {
    const segs = img.details['segments'] as { path: string; firstChunk: number }[];
    assert.ok(segs.length > 100);
    assert.equal(path.extname(segs[99]!.path), '.EAA');
    assert.equal(path.extname(segs[100]!.path), '.EAB');
    for (const s of segs.slice(95)) {
      const a = s.firstChunk * CHUNK - 100;
      assert.ok((await img.read(BigInt(a), 200)).equals(data.subarray(a, a + 200)));
    }
    const d = await e01MediaDigests(img);
    assert.equal(d.md5, createHash('md5').update(data).digest('hex'));
    assert.equal(d.md5, (img.details['storedDigests'] as { md5: string }).md5);
  } finally {
    await img.close();
  }
});

test('error2 runs (added to a real set) are the ones ewfinfo -e lists', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-ewf-oracle-');
  const data = mixed(80, 512 * 1024);
  const e01 = acquire(dir, data, ['-c', 'deflate:fast']);
  const f = readFileSync(e01);
  let done = 13;
  while (f.subarray(done, done + 5).toString('latin1') !== 'done\0') done = Number(f.readBigUInt64LE(done + 16));
  const runs = [
    [64, 8],
    [500, 64],
    [1000, 1],
  ] as const;
  const head = Buffer.alloc(520);
  head.writeUInt32LE(runs.length, 0);
  head.writeUInt32LE(adler32(head, 1, 0, 516), 516);
  const list = Buffer.alloc(runs.length * 8 + 4);
  runs.forEach(([s, n], i) => (list.writeUInt32LE(s, 8 * i), list.writeUInt32LE(n, 8 * i + 4)));
  list.writeUInt32LE(adler32(list, 1, 0, runs.length * 8), runs.length * 8);
  const section = (type: string, at: number, size: number, next: number) => {
    const d = Buffer.alloc(76);
    d.write(type, 'latin1');
    d.writeBigUInt64LE(BigInt(next), 16);
    d.writeBigUInt64LE(BigInt(size), 24);
    d.writeUInt32LE(adler32(d, 1, 0, 72), 72);
    return d;
  };
  const size = 76 + head.length + list.length;
  writeFileSync(e01, Buffer.concat([f.subarray(0, done), section('error2', done, size, done + size), head, list, section('done', done + size, 0, done + size)]));
  const listed = [...run('ewfinfo', ['-e', e01]).out.matchAll(/at sector\(s\): (\d+) - \d+ number: (\d+)/g)].map((m) => ({ firstSector: m[1], sectors: m[2] }));
  assert.equal(listed.length, runs.length);
  const img = await open(e01);
  try {
    assert.deepEqual(img.details['errorRuns'], listed);
    assert.ok((await readAll(img)).equals(data));
  } finally {
    await img.close();
  }
  assert.ok(ewfverify(e01).ok);
});
