/**
 * Oracle for the E01 writer: libewf's own tools (ewf-tools 20140813) must accept what we write. ewfverify checks
 * every chunk (zlib stream or Adler-32) and compares the media MD5 with the hash section; ewfinfo shows the case
 * fields, media type and error runs from header2/volume/error2; ewfexport reproduces the media byte for byte.
 * A segment set is written to base.E01, base.E02, … by a small file-set sink below.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Range } from '../../src/core/ranges.js';
import { segmentExtension } from '../../src/formats/e01-layout.js';
import { createE01Writer, type E01Summary } from '../../src/formats/e01-write.js';
import type { ByteSink, MediaDescription } from '../../src/formats/types.js';
import { tempDir } from '../helpers/cli.js';
import { mixedContent } from '../helpers/mixed-content.js';

const hasEwf = spawnSync('ewfverify', ['-V']).status === 0;
const skip = hasEwf ? false : 'ewfverify (ewf-tools) is not installed';

/** Writes base.E01, then base.E02… on newSegment(). */
class FileSetSink implements ByteSink {
  private fd: number;
  private n = 1;
  private pos = 0n;
  readonly files: string[] = [];
  constructor(private readonly base: string) {
    this.fd = this.open();
  }
  private open(): number {
    const p = `${this.base}.${segmentExtension(this.n)}`;
    this.files.push(p);
    return openSync(p, 'wx', 0o600);
  }
  get position(): bigint {
    return this.pos;
  }
  async write(buf: Buffer): Promise<void> {
    writeSync(this.fd, buf);
    this.pos += BigInt(buf.length);
  }
  async writeZeros(n: bigint): Promise<void> {
    await this.write(Buffer.alloc(Number(n)));
  }
  async newSegment(): Promise<void> {
    closeSync(this.fd);
    this.n++;
    this.fd = this.open();
  }
  close(): void {
    closeSync(this.fd);
  }
}

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const content = (seed: number, n: number) => mixedContent(seed, n, (p) => 4096 * (1 + p.int(24)));

const MEDIA: MediaDescription = {
  type: 'memory',
  caseNumber: 'CASE-2024-17',
  examiner: 'Jane Examiner',
  evidenceNumber: 'EV-0042',
  notes: 'oracle run',
  description: 'memdump test memory',
  acquired: new Date('2024-05-06T07:08:09Z'),
};

/** Write runs [start, end) filled with seeded content; returns the summary and the media ewfexport must produce. */
async function writeSet(base: string, runs: [number, number][], media: MediaDescription, bad: [bigint, number][] = []): Promise<{ summary: E01Summary; media: Buffer; files: string[] }> {
  const rs: Range[] = runs.map(([s, e]) => ({ start: BigInt(s), end: BigInt(e) }));
  const end = runs[runs.length - 1]![1];
  const padded = Buffer.alloc(Math.ceil(end / 512) * 512);
  const sink = new FileSetSink(base);
  const writer = createE01Writer(sink, { runs: rs, notes: [], media });
  await writer.begin();
  for (let i = 0; i < rs.length; i++) {
    await writer.beginRange(rs[i]!);
    for (const [a, n] of bad) if (a >= rs[i]!.start && a < rs[i]!.end) writer.badBytes(a, n);
    const d = content(100 + i, runs[i]![1] - runs[i]![0]);
    d.copy(padded, runs[i]![0]);
    for (let off = 0; off < d.length; off += 1 << 20) await writer.data(d.subarray(off, Math.min(d.length, off + (1 << 20))));
    await writer.endRange();
  }
  await writer.end();
  sink.close();
  return { summary: writer.summary(), media: padded, files: sink.files };
}

function exportRaw(dir: string, first: string): Buffer {
  const target = join(dir, 'exported');
  const r = run('ewfexport', ['-q', '-u', '-f', 'raw', '-t', target, first]);
  assert.equal(r.status, 0, r.out);
  return readFileSync(`${target}.raw`);
}

test('ewfverify, ewfinfo and ewfexport accept a single-segment E01 with holes, padding and an error run', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-ewf-');
  const base = join(dir, 'one');
  const { summary, media, files } = await writeSet(base, [[4096, 3_000_000], [5_000_000, 6_000_003]], MEDIA, [[8192n, 4096]]);
  assert.equal(files.length, 1);
  const v = run('ewfverify', ['-q', `${base}.E01`]);
  assert.equal(v.status, 0, v.out);
  assert.match(v.out, new RegExp(`MD5 hash calculated over data:\\s+${summary.mediaDigests.md5}`));
  assert.match(v.out, new RegExp(`SHA1:\\s+${summary.mediaDigests.sha1}`));
  const info = run('ewfinfo', [`${base}.E01`]);
  assert.equal(info.status, 0, info.out);
  for (const re of [
    /Case number:\s+CASE-2024-17\n/,
    /Description:\s+memdump test memory\n/,
    /Examiner name:\s+Jane Examiner\n/,
    /Evidence number:\s+EV-0042\n/,
    /Notes:\s+oracle run\n/,
    /Software version used:\s+memdump \S+\n/,
    /Media type:\s+memory \(RAM\)\n/,
    /Compression level:\s+good \(fast\) compression\n/,
    new RegExp(`Media size:.*\\(${summary.storedBytes} bytes\\)`),
    /at sector\(s\): 16 - 23 number: 8/,
  ]) {
    assert.match(info.out, re);
  }
  assert.equal(summary.storedBytes, String(media.length));
  assert.ok(exportRaw(dir, `${base}.E01`).equals(media), 'ewfexport reproduces the padded media');
});

test('a segment set (base.E01, base.E02, …) verifies and exports byte for byte; best compression, fixed media', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-ewf-');
  const base = join(dir, 'set');
  const media: MediaDescription = { ...MEDIA, type: 'fixed', compression: 'best', segmentBytes: 400_000n };
  const r = await writeSet(base, [[0, 2_000_000], [2_500_000, 4_200_000]], media);
  assert.ok(r.files.length >= 4, `${r.files.length} segment files`);
  assert.deepEqual(
    r.summary.segments.map((s) => s.path),
    r.files.map((_, i) => segmentExtension(i + 1)),
  );
  r.summary.segments.forEach((s, i) => assert.equal(Number(s.bytes), readFileSync(r.files[i]!).length));
  const v = run('ewfverify', ['-q', r.files[0]!]);
  assert.equal(v.status, 0, v.out);
  const info = run('ewfinfo', [r.files[0]!]);
  assert.match(info.out, /Media type:\s+fixed disk\n/);
  assert.match(info.out, /Compression level:\s+best compression\n/);
  assert.ok(exportRaw(dir, r.files[0]!).equals(r.media));
});

/** Offsets (in the file) of one compressed and one stored chunk, found through the first table. */
function chunkOffsets(file: Buffer): { compressed: number; stored: number } {
  let off = 13;
  const found: { compressed?: number; stored?: number } = {};
  while (found.compressed === undefined || found.stored === undefined) {
    const type = file.toString('latin1', off, off + 16).replace(/\0+$/, '');
    assert.ok(type !== 'done', 'both kinds of chunk present');
    if (type === 'table') {
      const n = file.readUInt32LE(off + 76);
      const base = Number(file.readBigUInt64LE(off + 84));
      for (let e = 0; e + 1 < n; e++) {
        const v = file.readUInt32LE(off + 100 + 4 * e);
        const mid = base + (((v & 0x7fffffff) + (file.readUInt32LE(off + 104 + 4 * e) & 0x7fffffff)) >> 1);
        if (v & 0x80000000) found.compressed ??= mid;
        else found.stored ??= mid;
      }
    }
    off = Number(file.readBigUInt64LE(off + 16));
  }
  return found as { compressed: number; stored: number };
}

test('one flipped byte inside a chunk (compressed or stored) makes ewfverify fail', { skip }, async (t) => {
  const dir = tempDir(t, 'memdump-ewf-');
  const base = join(dir, 'good');
  await writeSet(base, [[0, 1_500_000]], MEDIA);
  const good = readFileSync(`${base}.E01`);
  assert.equal(run('ewfverify', ['-q', `${base}.E01`]).status, 0);
  const at = chunkOffsets(good);
  for (const [kind, off] of Object.entries(at)) {
    const bad = Buffer.from(good);
    bad[off] = bad[off]! ^ 0x20;
    const p = join(dir, `bad-${kind}.E01`);
    writeFileSync(p, bad);
    const v = run('ewfverify', ['-q', p]);
    assert.notEqual(v.status, 0, `${kind} chunk corrupted at ${off}, ewfverify says:\n${v.out}`);
  }
});
