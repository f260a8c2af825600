/**
 * The finders against the seeded scan corpus: every planted gzip, zlib, zip and base64 region must be found at its
 * exact offset (zip: every member at its local header), once, when the corpus is cut into windows the way the
 * engine cuts it (look-behind before `from`, overlap after `to`). Containers found outside those regions are
 * counted by where they sit.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { writeCorpus } from '../../../test/fixtures/scan-corpus.js';
import type { Region } from '../../../test/fixtures/scan-corpus-types.js';
import { findBase64InRuns } from './base64.js';
import { findGzip } from './gzip.js';
import type { DecodeBudget, Decoded } from './types.js';
import { findZip } from './zip.js';
import { findZlib } from './zlib.js';

const MiB = 1024 * 1024;
const WINDOW = MiB;
const LOOK_BEHIND = 4096;
const OVERLAP = 256 * 1024;
const dir = mkdtempSync(join('/dev/shm', 'memdump-decode-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Finder = (buf: Buffer, text: string, runs: Int32Array, from: number, to: number, b: DecodeBudget) => Decoded[];
const FINDERS: Record<string, Finder> = {
  gzip: (buf, _t, _r, from, to, b) => findGzip(buf, from, to, b),
  zlib: (buf, _t, _r, from, to, b) => findZlib(buf, from, to, b),
  zip: (buf, _t, _r, from, to, b) => findZip(buf, from, to, b),
  base64: (_b, text, runs, from, to, b) => findBase64InRuns(text, runs, from, to, b),
};

function runsOf(text: string): Int32Array {
  const r: number[] = [];
  for (const m of text.matchAll(/[\x20-\x7e\t\n\r]{6,}/g)) r.push(m.index, m.index + m[0].length);
  return Int32Array.from(r);
}

for (const seed of [77, 78, 79, 80]) test(`scan corpus seed ${seed} (8 MiB, 1 MiB windows): every container region found at its exact offset, exactly once`, async () => {
  const path = join(dir, `corpus-${seed}.bin`);
  const { regions } = await writeCorpus(path, { seed, size: 8 * MiB });
  const file = readFileSync(path);
  const found: Record<string, Decoded[]> = { gzip: [], zlib: [], zip: [], base64: [] };
  const cpu: Record<string, number> = { gzip: 0, zlib: 0, zip: 0, base64: 0 };
  for (let ws = 0; ws < file.length; ws += WINDOW) {
    const bs = Math.max(0, ws - LOOK_BEHIND);
    const buf = file.subarray(bs, Math.min(file.length, ws + WINDOW + OVERLAP));
    const text = buf.toString('latin1');
    const runs = runsOf(text);
    for (const [name, f] of Object.entries(FINDERS)) {
      const c0 = process.cpuUsage();
      const got = f(buf, text, runs, ws - bs, Math.min(WINDOW, file.length - ws) + ws - bs, { maxOutput: 16 * MiB, remaining: 256 * MiB });
      const c = process.cpuUsage(c0);
      cpu[name]! += (c.user + c.system) / 1000;
      for (const d of got) found[name]!.push({ ...d, start: d.start + bs, end: d.end + bs });
    }
  }
  const byKind = (k: Region['kind']): Region[] => regions.filter((g) => g.kind === k);
  const containers = regions.filter((g) => ['gzip', 'zlib', 'zip', 'base64', 'utf16'].includes(g.kind));
  const lines: string[] = [];
  for (const kind of ['gzip', 'zlib', 'zip', 'base64'] as const) {
    const got = found[kind]!;
    const starts = got.map((d) => d.start);
    assert.equal(new Set(starts).size, starts.length, `${kind}: a container reported twice`);
    const want = byKind(kind);
    let hits = 0;
    const matched = new Set<Decoded>();
    for (const g of want) {
      const off = Number(g.offset);
      const end = off + g.length;
      if (kind === 'zip') {
        const members = got.filter((d) => d.start >= off && d.start < end);
        assert.ok(members.length >= 2 && members[0]!.start === off, `zip at ${off}: members at ${members.map((d) => d.start)}`);
        members.forEach((d) => matched.add(d));
      } else {
        const d = got.find((x) => x.start === off);
        assert.ok(d, `${kind} region at ${off} (${g.length} bytes) not found`);
        assert.equal(d.end, end, `${kind} at ${off}: end`);
        assert.equal(d.truncated, false);
        matched.add(d);
      }
      hits++;
    }
    const extra = got.filter((d) => !matched.has(d));
    const nestedIn = extra.map((d) => containers.find((g) => d.start >= Number(g.offset) && d.start < Number(g.offset) + g.length)?.kind).filter((k) => k !== undefined);
    const nested = nestedIn.length;
    // Plain base64 text shows through a stored zip member; inside a base64 region it would be a double report.
    assert.ok(nestedIn.every((k) => k === 'zip'), `${kind} inside ${nestedIn.join(',')}`);
    const inText = extra.filter((d) => regions.some((g) => g.kind === 'text' && d.start >= Number(g.offset) && d.start < Number(g.offset) + g.length)).length;
    lines.push(`${kind}: ${hits}/${want.length} regions found, ${extra.length} others (${nested} inside other containers, ${inText} in text regions, ${extra.length - nested - inText} elsewhere), cpu ${cpu[kind]!.toFixed(1)} ms`);
    // Outside containers and text, a report is a false positive from random bytes or zeros.
    assert.equal(extra.length - nested - inText, 0, `${kind}: containers in random data`);
  }
  for (const l of lines) console.log(`# corpus ${seed} ${l}`);
  rmSync(path);
});
