/**
 * Mutation fuzzing of the crash dump reader in the style of test/property/parser-fuzz.test.ts: valid seeded dumps
 * (every layout) are damaged — bit flips, truncation, header and summary fields overwritten with extreme values,
 * bytes inserted or deleted — and opened and read in full. Acceptable: success with sane runs and exact reads, or a
 * MemdumpError with a format code. Anything else fails and names the seed.
 * Replay: MEMDUMP_FUZZ_ONLY=wincrash:<seed> node --test dist/src/formats/wincrash-fuzz.test.js
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { type CrashOptions, crashDump, crashTruth } from '../../test/fixtures/wincrash.js';
import { tempDir } from '../../test/helpers/cli.js';
import { FORMAT_CODES, FUZZ_ONLY as ONLY, FUZZ_SCALE as SCALE, classify, readAll } from '../../test/helpers/fuzz.js';
import { Prng } from '../../test/helpers/prng.js';
import { wincrash } from './wincrash.js';
import { OFF32, OFF64 } from './wincrash-header.js';


interface Field {
  off: number;
  width: 1 | 2 | 4 | 8;
}

/** Where the reader takes lengths, offsets, counts and magics from. */
function fieldsOf(bits: 32 | 64, layout: CrashOptions['layout']): Field[] {
  const f: Field[] = [{ off: 0, width: 4 }, { off: 4, width: 4 }];
  if (bits === 64) {
    f.push({ off: OFF64.dumpType, width: 4 }, { off: OFF64.attributes, width: 4 }, { off: OFF64.physicalMemoryBlock, width: 4 }, { off: OFF64.physicalMemoryBlock + 8, width: 8 });
    for (let i = 0; i < 6; i++) f.push({ off: OFF64.physicalMemoryBlock + 16 + 16 * i, width: 8 }, { off: OFF64.physicalMemoryBlock + 24 + 16 * i, width: 8 });
    f.push({ off: OFF64.directoryTableBase, width: 8 }, { off: OFF64.kdDebuggerDataBlock, width: 8 }, { off: OFF64.machineImageType, width: 4 });
  } else {
    f.push({ off: OFF32.dumpType, width: 4 }, { off: OFF32.attributes, width: 4 }, { off: OFF32.physicalMemoryBlock, width: 4 }, { off: OFF32.physicalMemoryBlock + 4, width: 4 });
    for (let i = 0; i < 6; i++) f.push({ off: OFF32.physicalMemoryBlock + 8 + 8 * i, width: 4 }, { off: OFF32.physicalMemoryBlock + 12 + 8 * i, width: 4 });
    f.push({ off: OFF32.directoryTableBase, width: 4 }, { off: OFF32.kdDebuggerDataBlock, width: 4 }, { off: OFF32.paeEnabled, width: 1 });
  }
  const s = bits === 64 ? 0x2000 : 0x1000;
  if (layout === 'bitmap') f.push({ off: s, width: 4 }, { off: s + 4, width: 4 }, { off: s + 0x20, width: 8 }, { off: s + 0x28, width: 8 }, { off: s + 0x30, width: 8 }, { off: s + 0x38, width: 8 });
  if (layout === 'summary-old') f.push({ off: s, width: 4 }, { off: s + 0x0c, width: 4 }, { off: s + 0x10, width: 4 }, { off: s + 0x14, width: 4 }, { off: s + (bits === 64 ? 0x28 : 0x20), width: 8 });
  if (layout === 'rdmp') f.push({ off: s, width: 4 }, { off: s + 4, width: 4 }, { off: s + 0x10, width: 8 }, { off: s + 0x18, width: 8 }, { off: s + 0x28, width: 8 }, { off: s + 0x30, width: 8 }, { off: s + 0x38, width: 8 });
  return f;
}

const MASK = { 1: 0xffn, 2: 0xffffn, 4: 0xffffffffn, 8: (1n << 64n) - 1n } as const;

function extremes(width: Field['width'], size: number): bigint[] {
  const s = BigInt(size);
  const pages = s / 4096n;
  return [0n, 1n, 2n, 4n, 5n, 6n, 8n, 10n, s, s - 1n, s + 1n, s / 2n, pages, pages + 1n, pages - 1n, 0x2000n, 0x2038n, 0x7fffffffn, 0xffffffffn, 1n << 52n, 1n << 63n, (1n << 64n) - 1n].map((v) => (v < 0n ? 0n : v) & MASK[width]);
}

function mutate(base: Buffer, fields: readonly Field[], p: Prng): { buf: Buffer; steps: string[] } {
  let b: Buffer = Buffer.from(base);
  const steps: string[] = [];
  const n = 1 + p.int(3);
  for (let k = 0; k < n; k++) {
    const op = p.int(10);
    const near = () => (p.int(2) === 0 ? Math.max(0, fields[p.int(fields.length)]!.off + p.int(9) - 4) : p.int(Math.max(1, b.length)));
    if (op <= 1) {
      for (let i = 1 + p.int(8); i > 0 && b.length > 0; i--) {
        const at = Math.min(near(), b.length - 1);
        b[at]! ^= 1 << p.int(8);
        steps.push(`flip ${at}`);
      }
    } else if (op === 2) {
      const at = Math.min(near(), b.length);
      b = b.subarray(0, at);
      steps.push(`truncate ${at}`);
    } else if (op <= 6) {
      const f = fields[p.int(fields.length)]!;
      const xs = extremes(f.width, b.length);
      const v = p.int(6) === 0 ? p.next64() & MASK[f.width] : xs[p.int(xs.length)]!;
      if (f.off + f.width <= b.length) {
        if (f.width === 8) b.writeBigUInt64LE(v, f.off);
        else if (f.width === 4) b.writeUInt32LE(Number(v), f.off);
        else if (f.width === 2) b.writeUInt16LE(Number(v), f.off);
        else b[f.off] = Number(v);
        steps.push(`u${f.width * 8}@${f.off.toString(16)}=0x${v.toString(16)}`);
      }
    } else if (op === 7) {
      const at = Math.min(near(), b.length);
      const ins = p.bytes(1 + p.int(p.int(4) === 0 ? 4096 : 16));
      b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
      steps.push(`insert ${ins.length}@${at}`);
    } else if (op === 8) {
      const at = Math.min(near(), b.length);
      const len = 1 + p.int(p.int(4) === 0 ? 8192 : 16);
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
      steps.push(`delete ${len}@${at}`);
    } else {
      // a bitmap region full of set bits, or random bitmap bytes
      const at = Math.min(0x1038 + p.int(0x1100), b.length);
      b.fill(p.int(2) === 0 ? 0xff : p.int(256), at, Math.min(b.length, at + 1 + p.int(64)));
      steps.push(`fill @${at}`);
    }
  }
  return { buf: b, steps };
}

/** Through the reader itself (not openImage), so a mutation that breaks detection is counted, not skipped. */
async function openAndReadAll(path: string, label: string): Promise<void> {
  const file = await RandomAccessFile.open(path);
  try {
    if (!wincrash.detect(await file.readAt(0n, 65536), file.size)) throw new MemdumpError('E_UNKNOWN_FORMAT', 'not detected');
    await readAll(await wincrash.open(file, { path }), label);
  } finally {
    await file.close();
  }
}

test('fuzz the Windows crash dump reader: mutated dumps open and read, or fail with a format error code', async (t) => {
  const dir = tempDir(t, 'memdump-fuzz-wincrash-');
  const variants: CrashOptions[] = [
    { bits: 64, layout: 'full', kdbg: 'plain' },
    { bits: 64, layout: 'bitmap', summary: 'FDMP', maxRuns: 12, maxRunPages: 5 },
    { bits: 64, layout: 'bitmap', summary: 'SDMP', kdbg: 'plain' },
    { bits: 32, layout: 'full', pae: true, kdbg: 'plain' },
    { bits: 32, layout: 'full', pae: false, kdbg: 'plain' },
    { bits: 32, layout: 'bitmap' },
    { bits: 64, layout: 'rdmp', rdmpType: 10 },
    { bits: 64, layout: 'rdmp', rdmpType: 8 },
    { bits: 64, layout: 'rdmp', rdmpType: 10, rdmpReversed: true, maxRuns: 5 },
    { bits: 64, layout: 'summary-old', newFields: true },
    { bits: 32, layout: 'summary-old', kdbg: 'plain' },
  ];
  const bases = variants.map((o, i) => ({ bytes: crashDump(crashTruth(100 + i, { ...o, maxRunPages: o.maxRunPages ?? 6 })), fields: fieldsOf(o.bits, o.layout) }));
  const path = join(dir, 'case.dmp');
  const tally = new Map<string, number>();
  const runCase = async (seed: number) => {
    const p = new Prng(seed);
    const base = bases[p.int(bases.length)]!;
    const { buf, steps } = mutate(base.bytes, base.fields, p);
    writeFileSync(path, buf);
    const label = `wincrash case seed ${seed} (replay: MEMDUMP_FUZZ_ONLY=wincrash:${seed}) [${steps.join(', ')}]`;
    const outcome = await classify(label, FORMAT_CODES, () => openAndReadAll(path, label));
    tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
  };
  if (ONLY) {
    const [name, seed] = ONLY.split(':');
    if (name === 'wincrash') await runCase(Number(seed));
    return;
  }
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), runCase), { numRuns: 1500 * SCALE, endOnFailure: true });
  t.diagnostic(`wincrash: ${[...tally.entries()].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const k of ['ok', 'E_TRUNCATED', 'E_CORRUPT', 'E_UNSUPPORTED']) assert.ok((tally.get(k) ?? 0) > 0, `the mutations never reached ${k}: ${[...tally.entries()].join('; ')}`);
});
