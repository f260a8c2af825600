/**
 * Mutation fuzzing of the kdump reader in the style of test/property/parser-fuzz.test.ts: small seeded dumps
 * (plain, flattened in order, shuffled and overlapping, incomplete; every compression) are damaged — bit flips, header, sub-header,
 * page_desc and flattened-record fields set to extreme values, truncation, bytes inserted or deleted — and each
 * variant is opened and read in full. Acceptable: success with sane runs and exact reads, or a MemdumpError with a
 * format code. A hang, an uncoded error or a runaway allocation fails and names the seed.
 *
 * Replay one case: MEMDUMP_FUZZ_ONLY=kdump:<seed>; more cases: MEMDUMP_FUZZ_SCALE=10.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { kdumpFixture } from '../../test/fixtures/kdump.js';
import { tempDir } from '../../test/helpers/cli.js';
import { FORMAT_CODES, FUZZ_ONLY as ONLY, FUZZ_SCALE as SCALE, classify, openAndReadAll } from '../../test/helpers/fuzz.js';
import { Prng } from '../../test/helpers/prng.js';


interface Field {
  off: number;
  width: 1 | 2 | 4 | 8;
  be?: boolean;
}

/** Header, sub-header, the first page_descs and (flattened) the first record headers. */
function fieldsOf(b: Buffer): Field[] {
  const f: Field[] = [];
  let base = 0;
  if (b.subarray(0, 12).toString('latin1') === 'makedumpfile') {
    f.push({ off: 16, width: 8, be: true }, { off: 24, width: 8, be: true });
    for (let p = 4096, k = 0; p + 16 <= b.length && k < 12; k++) {
      f.push({ off: p, width: 8, be: true }, { off: p + 8, width: 8, be: true });
      const size = Number(b.readBigInt64BE(p + 8));
      if (size < 0) break;
      p += 16 + size;
    }
    base = 4096 + 16; // the first record holds the disk_dump_header (in-order fixtures)
  }
  for (const o of [8, 408, 424, 428, 432, 436, 440, 452, 460]) f.push({ off: base + o, width: 4 });
  const bs = b.length >= base + 432 ? b.readInt32LE(base + 428) : 4096;
  for (const o of [0, 8, 12, 16, 24, 32, 40, 48, 56, 80, 88, 96]) f.push({ off: base + (bs > 0 && bs < 1 << 20 ? bs : 4096) + o, width: 8 });
  if (base === 0 && b.length > 440) {
    const descAt = (1 + b.readInt32LE(432) + b.readUInt32LE(436)) * bs;
    for (let k = 0; k < 8; k++) f.push({ off: descAt + k * 24, width: 8 }, { off: descAt + k * 24 + 8, width: 4 }, { off: descAt + k * 24 + 12, width: 4 });
  }
  return f.filter((x) => x.off >= 0 && x.off + x.width <= b.length);
}

const EXTREME = [0n, 1n, 2n, 0x7fn, 0xffn, 0x7fffn, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x7fffffffffffffffn, 0xffffffffffffffffn, 4096n, 4095n, 4097n, 1n << 40n];

function mutate(base: Buffer, fields: Field[], p: Prng): { buf: Buffer; steps: string[] } {
  let buf = Buffer.from(base);
  const steps: string[] = [];
  for (let k = 0, n = 1 + p.int(3); k < n; k++) {
    const op = p.int(10);
    if (op < 4 && fields.length > 0) {
      const f = fields[p.int(fields.length)]!;
      if (f.off + f.width > buf.length) continue;
      const v = p.int(3) === 0 ? p.next64() : EXTREME[p.int(EXTREME.length)]!;
      const m = BigInt.asUintN(f.width * 8, v);
      if (f.width === 8) f.be ? buf.writeBigUInt64BE(m, f.off) : buf.writeBigUInt64LE(m, f.off);
      else if (f.width === 4) f.be ? buf.writeUInt32BE(Number(m), f.off) : buf.writeUInt32LE(Number(m), f.off);
      else if (f.width === 2) buf.writeUInt16LE(Number(m), f.off);
      else buf[f.off] = Number(m);
      steps.push(`field@${f.off}=${m}`);
    } else if (op < 7) {
      for (let j = 0, m = 1 + p.int(8); j < m; j++) {
        const at = p.int(buf.length);
        buf[at] = buf[at]! ^ (1 << p.int(8));
      }
      steps.push('bit flips');
    } else if (op === 7) {
      const at = p.int(buf.length);
      buf = buf.subarray(0, at);
      steps.push(`cut ${at}`);
    } else if (op === 8) {
      const at = p.int(buf.length);
      buf = Buffer.concat([buf.subarray(0, at), p.bytes(1 + p.int(64)), buf.subarray(at)]);
      steps.push(`insert @${at}`);
    } else {
      const at = p.int(buf.length);
      buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1 + p.int(64))]);
      steps.push(`delete @${at}`);
    }
  }
  return { buf, steps };
}

test('fuzz kdump: mutated dumps open and read, or fail with a format error code', async (t) => {
  const dir = tempDir(t, 'memdump-kdump-fuzz-');
  const bases: Buffer[] = [];
  for (const [i, o] of [{ compression: 'mixed' as const }, { compression: 'lzo' as const }, { compression: 'zstd' as const, headerVersion: 3 }, { compression: 'snappy' as const, incomplete: 30 }].entries()) {
    for (const flat of [undefined, 'ordered', 'shuffled', 'overlapping'] as const) bases.push((await kdumpFixture({ seed: 900 + i, maxMapnr: 120, ...o }, flat)).bytes);
  }
  const fields = bases.map(fieldsOf);
  const tally = new Map<string, number>();
  const runCase = async (seed: number): Promise<void> => {
    const p = new Prng(seed);
    const i = p.int(bases.length);
    const { buf, steps } = mutate(bases[i]!, fields[i]!, p);
    const path = join(dir, 'case.kdump');
    writeFileSync(path, buf);
    const label = `kdump case seed ${seed} base ${i} (replay: MEMDUMP_FUZZ_ONLY=kdump:${seed}) [${steps.join(', ')}]`;
    const outcome = await classify(label, FORMAT_CODES, () => openAndReadAll(path, label));
    tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
  };
  if (ONLY) {
    const [name, seed] = ONLY.split(':');
    if (name === 'kdump') await runCase(Number(seed));
    return;
  }
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), runCase), { numRuns: 800 * SCALE, endOnFailure: true, includeErrorInReport: true });
  t.diagnostic(`kdump: ${[...tally.entries()].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.ok(tally.size >= 3, `mutations reached only ${[...tally.keys()].join(', ')}`);
});
