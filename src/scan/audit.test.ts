import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isMemdumpError } from '../core/errors.js';
import { Prng } from '../../test/helpers/prng.js';
import { buildSecretPrograms, secretProgramsMissing, startSecretProgram } from '../../test/helpers/secret-programs.js';
import { auditSecrets, type AuditResult } from './audit.js';
import { openProcessInput, type ScanInput } from './input.js';
import { secretForms, type SecretForm } from './secret.js';

const PAGE = 4096;
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function alnum(rng: Prng, n: number): Buffer {
  let s = '';
  for (let i = 0; i < n; i++) s += ALNUM[rng.int(ALNUM.length)];
  return Buffer.from(s);
}

/** Memory at `base` whose reads throw on any page in `bad` (a failed process_vm_readv), like an unmapped page. */
function fakeInput(base: bigint, mem: Buffer, bad: Set<number>, regions: { start: number; end: number; label: string }[], error: () => Error = () => new Error('EFAULT')): ScanInput {
  return {
    description: { kind: 'fake' },
    addressing: 'virtual',
    regions: regions.map((r) => ({ start: base + BigInt(r.start), end: base + BigInt(r.end), label: r.label })),
    async read(addr, buf, length) {
      const off = Number(addr - base);
      for (let p = Math.floor(off / PAGE); p * PAGE < off + length; p++) if (bad.has(p)) throw error();
      mem.copy(buf, 0, off, off + length);
    },
    close: async () => undefined,
  };
}

// Two regions with a gap; bad pages inside the first; planted needles never straddle a region edge.
const rng = new Prng(2024);
const forms = secretForms([alnum(rng, 20), alnum(rng, 33)]);
const SIZE = 96 * 1024;
const BASE = 0x7f0000000000n;
const REGIONS = [
  { start: 0, end: 64 * 1024, label: 'r0' },
  { start: 68 * 1024, end: SIZE, label: 'r1' },
];
const BAD = new Set([3, 4, 9]);
const mem = rng.bytes(SIZE);
const planted: [number, SecretForm][] = [];
const free = (at: number, len: number): boolean =>
  REGIONS.some((r) => r.start <= at && at + len <= r.end) && !planted.some(([o, g]) => at < o + g.needle.length + 1 && o < at + len + 1);
for (let i = 0; i < 60; i++) {
  const f = forms[rng.int(forms.length)]!;
  const at = rng.int(SIZE - f.needle.length);
  if (!free(at, f.needle.length)) continue;
  f.needle.copy(mem, at);
  planted.push([at, f]);
}
// A UTF-16 needle ends in a NUL byte: written without it, right before a bad page, the zero fill would complete it.
const utf = forms.find((f) => f.form === 'utf16le' && f.secret === 1)!;
const cut = utf.needle.subarray(0, utf.needle.length - 1);
for (const p of [3, 9]) {
  const at = p * PAGE - cut.length;
  assert.ok(free(at, cut.length + 1));
  cut.copy(mem, at);
  mem[p * PAGE] = 0xff;
}
// ... and one right after a bad page, wholly readable: found.
const after = forms.find((f) => f.form === 'exact' && f.secret === 0)!;
assert.ok(free(10 * PAGE, after.needle.length));
after.needle.copy(mem, 10 * PAGE);
planted.push([10 * PAGE, after]);
planted.sort((a, b) => a[0] - b[0]);
const touchesBad = (o: number, len: number) => [...BAD].some((p) => o < (p + 1) * PAGE && p * PAGE < o + len);
const want = planted.filter(([o, f]) => !touchesBad(o, f.needle.length)).map(([o, f]) => `${o}:${f.secret}:${f.form}`);
const got = (r: AuditResult) => r.hits.map((h) => `${Number(BigInt(h.address) - BASE)}:${h.secret}:${h.form}`);
const joined = (r: AuditResult): [number, number][] => {
  const out: [number, number][] = [];
  for (const u of r.unreadable) {
    const s = Number(u.start - BASE);
    const e = Number(u.end - BASE);
    const l = out[out.length - 1];
    // windows that are not page-aligned list pages past their owned part too: ranges may overlap
    if (l && s <= l[1]) l[1] = Math.max(l[1], e);
    else out.push([s, e]);
  }
  return out;
};

test('page-aligned windows of any size: every planted needle exactly once, none on or into an unreadable page (property)', async () => {
  assert.ok(want.length >= 30, `planted ${want.length}`);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 20 }), async (pages) => {
      const r = await auditSecrets(fakeInput(BASE, mem, BAD, REGIONS), forms, { chunk: pages * PAGE });
      assert.equal(r.bytesScanned, BigInt(SIZE - 4 * 1024));
      assert.deepEqual(got(r), want);
      assert.deepEqual(joined(r), [
        [3 * PAGE, 5 * PAGE],
        [9 * PAGE, 10 * PAGE],
      ]);
      assert.equal(r.unreadableBytes, BigInt(3 * PAGE));
      for (const h of r.hits) assert.equal(h.region, BigInt(h.address) - BASE < 64n * 1024n ? 'r0' : 'r1');
    }),
    { numRuns: 20, seed: 11 },
  );
});

test('windows of any size, not page-aligned: no duplicate, nothing unplanted, everything a page away from a bad page found (property)', async () => {
  const far = planted.filter(([o, f]) => ![...BAD].some((p) => o < (p + 2) * PAGE && (p - 1) * PAGE < o + f.needle.length)).map(([o, f]) => `${o}:${f.secret}:${f.form}`);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 30_000 }), async (chunk) => {
      const r = await auditSecrets(fakeInput(BASE, mem, BAD, REGIONS), forms, { chunk });
      const g = got(r);
      assert.equal(new Set(g).size, g.length, 'duplicates');
      for (const k of g) assert.ok(want.includes(k), `unplanted or zero-completed hit ${k}`);
      for (const k of far) assert.ok(g.includes(k), `missed ${k}`);
      // readWindow retries page by page from the window start: what it lists covers every bad page
      for (const p of BAD) assert.ok(joined(r).some(([s, e]) => s <= p * PAGE && (p + 1) * PAGE <= e), `page ${p} not listed`);
    }),
    { numRuns: 60, seed: 12 },
  );
});

test('auditSecrets: progress, abort, a bad chunk option, and a process that exits mid-audit', async () => {
  const progress: bigint[] = [];
  await auditSecrets(fakeInput(BASE, mem, new Set(), REGIONS), forms, { chunk: 10_000, onProgress: (d, t) => (assert.equal(t, BigInt(SIZE - 4096)), progress.push(d)) });
  assert.ok(progress.length > 5 && progress.every((d, i) => i === 0 || d > progress[i - 1]!));
  assert.equal(progress.at(-1), BigInt(SIZE - 4096));
  const ac = new AbortController();
  ac.abort();
  const r = await auditSecrets(fakeInput(BASE, mem, new Set(), REGIONS), forms, { signal: ac.signal });
  assert.deepEqual([r.interrupted, r.hits.length, r.bytesScanned], [true, 0, 0n]);
  for (const chunk of [0, -1, 1.5, Number.NaN]) await assert.rejects(auditSecrets(fakeInput(BASE, mem, new Set(), REGIONS), forms, { chunk }), (e: unknown) => isMemdumpError(e, 'E_USAGE'));
  const gone = fakeInput(BASE, mem, new Set([12]), REGIONS, () => Object.assign(new Error('no such process'), { code: 'ESRCH' }));
  await assert.rejects(auditSecrets(gone, forms), (e: unknown) => isMemdumpError(e, 'E_NOT_FOUND'));
});

const missing = secretProgramsMissing();

test('a live process that keeps a secret: exact, UTF-16, base64 and hex copies are found at their addresses', { skip: missing }, async (t) => {
  const exes = buildSecretPrograms(t);
  const r = new Prng(0x5ec7e7);
  const secret = alnum(r, 24);
  const never = alnum(r, 24); // given to no process: must be found nowhere
  const fs = secretForms([secret, never]);
  const p = await startSecretProgram(t, exes['secret-keeper'], secret);
  const audit = async (o: { chunk?: number } = {}): Promise<AuditResult> => {
    const input = await openProcessInput(p.pid);
    try {
      return await auditSecrets(input, fs, o);
    } finally {
      await input.close();
    }
  };
  const res = await audit();
  assert.ok(res.bytesScanned > 0n);
  assert.deepEqual(
    res.hits.filter((h) => h.secret === 1),
    [],
  );
  for (const h of res.hits) assert.match(h.address, /^0x[0-9a-f]+$/);
  const at = (form: string, start: bigint, len: number) => res.hits.some((h) => h.secret === 0 && h.form === form && BigInt(h.address) >= start && BigInt(h.address) < start + BigInt(len));
  assert.ok(at('exact', p.info.stack, 24), 'exact copy on the stack');
  assert.ok(at('exact', p.info.heap, 24), 'exact copy on the heap');
  assert.ok(at('utf16le', p.info.utf16, 48), 'UTF-16LE copy');
  assert.ok(at('base64', p.info.base64, p.info.base64Len), 'base64 copy');
  assert.ok(at('hex', p.info.hex, 48), 'hex copy');
  assert.ok(res.hits.some((h) => h.region.endsWith('[stack]')) && res.hits.some((h) => h.region.endsWith('[heap]')));
  assert.ok(!res.hits.some((h) => /\[(vvar|vvar_vclock|vsyscall)\]$/.test(h.region)));
  // a needle across every window boundary is found once: a tiny odd chunk gives the same hits
  const small = await audit({ chunk: 4099 });
  const key = (x: AuditResult) => x.hits.map((h) => `${h.secret}:${h.form}:${h.address}`).sort();
  assert.deepEqual(key(small), key(res));
  t.diagnostic(`keeper: ${res.hits.length} hits in ${res.bytesScanned} bytes, ${res.unreadable.length} unreadable ranges`);
});

test('a live process that wiped its secret holds no form of it', { skip: missing }, async (t) => {
  const exes = buildSecretPrograms(t);
  const r = new Prng(0x5ec7e8);
  const secret = alnum(r, 24);
  const p = await startSecretProgram(t, exes['secret-wiper'], secret);
  const input = await openProcessInput(p.pid);
  const res = await auditSecrets(input, secretForms([secret])).finally(() => input.close());
  assert.ok(res.bytesScanned > 100_000n, `scanned ${res.bytesScanned}`);
  assert.deepEqual(res.hits, []);
  // the addresses the copies lived at were read (so "nothing found" is not "nothing read")
  assert.ok(input.regions.some((g) => g.start <= p.info.stack && p.info.stack < g.end));
  assert.ok(!res.unreadable.some((u) => u.start <= p.info.stack && p.info.stack < u.end));
});
