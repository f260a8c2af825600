/**
 * The mutation-fuzz harness every reader's fuzz test shares: one case runs under a hang guard and an RSS ceiling,
 * and its outcome is either success (runs sane, every byte readable) or a MemdumpError with a format code.
 * Anything else fails the test with the case's label (which carries the replay seed).
 */
import assert from 'node:assert/strict';
import { MemdumpError } from '../../src/core/errors.js';
import { isSortedDisjoint } from '../../src/core/ranges.js';
import { openImage } from '../../src/formats/registry.js';
import type { MemoryImage } from '../../src/formats/types.js';

/** The codes a reader may throw for a damaged file. */
export const FORMAT_CODES: ReadonlySet<string> = new Set(['E_TRUNCATED', 'E_CORRUPT', 'E_TOO_LARGE', 'E_UNKNOWN_FORMAT', 'E_UNSUPPORTED']);
/** A hang guard, not a speed test: a healthy case takes milliseconds. */
export const CASE_MS = 10_000;
export const RSS_LIMIT = 1.5 * 2 ** 30;
/** MEMDUMP_FUZZ_SCALE=10 multiplies every case count. */
export const FUZZ_SCALE = Math.max(1, Number(process.env['MEMDUMP_FUZZ_SCALE'] ?? 1) || 1);
/** MEMDUMP_FUZZ_ONLY=<name>:<seed> replays one case. */
export const FUZZ_ONLY = process.env['MEMDUMP_FUZZ_ONLY'];
const READ_CHUNK = 1 << 20;

export function describeError(e: unknown): string {
  if (e instanceof MemdumpError) return `MemdumpError ${e.code}: ${e.message}`;
  if (e instanceof Error) return `${e.constructor.name}${(e as { code?: unknown }).code ? ` (${String((e as { code?: unknown }).code)})` : ''}: ${e.stack ?? e.message}`;
  return `non-Error thrown: ${String(e)}`;
}

/** Run one case with a time limit (the timer is always cleared) and check the process stays under the RSS ceiling. */
export async function bounded<T>(label: string, fn: () => Promise<T>, caseMs = CASE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no outcome within ${caseMs} ms (hang?)`)), caseMs);
  });
  try {
    return await Promise.race([fn(), timeout]);
  } finally {
    clearTimeout(timer);
    const rss = process.memoryUsage().rss;
    if (rss > RSS_LIMIT) throw new Error(`${label}: RSS ${(rss / 2 ** 20).toFixed(0)} MiB exceeds ${RSS_LIMIT / 2 ** 20} MiB (unbounded allocation?)`);
  }
}

/** 'ok', or the code of an acceptable MemdumpError; anything else is rethrown as a failure naming the case. */
export async function classify(label: string, allowed: ReadonlySet<string>, fn: () => Promise<void>, caseMs = CASE_MS): Promise<string> {
  try {
    await bounded(label, fn, caseMs);
    return 'ok';
  } catch (e) {
    if (e instanceof MemdumpError && allowed.has(e.code)) {
      assert.ok(e.message.length > 0, `${label}: empty message`);
      return e.code;
    }
    throw new Error(`${label}: unacceptable outcome: ${describeError(e)}`, { cause: e });
  }
}

/** Every run, fully, in chunks of at most 1 MiB; runs must be sorted, disjoint and non-empty, reads exact, details serialisable. */
export async function readAll(img: MemoryImage, label: string): Promise<void> {
  const runs = img.runs;
  assert.ok(isSortedDisjoint(runs), `${label}: runs not sorted and disjoint`);
  assert.doesNotThrow(() => JSON.stringify(img.details, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)), `${label}: details serialise`);
  for (const r of runs) {
    assert.ok(r.end > r.start, `${label}: empty run ${r.start}`);
    for (let a = r.start; a < r.end; ) {
      const n = r.end - a < BigInt(READ_CHUNK) ? Number(r.end - a) : READ_CHUNK;
      const b = await img.read(a, n);
      assert.equal(b.length, n, `${label}: read at ${a} returned ${b.length} of ${n} bytes`);
      a += BigInt(n);
    }
  }
}

/** Open a file by detection (as the CLI does) and read all of it. */
export async function openAndReadAll(path: string, label: string): Promise<void> {
  const img = await openImage(path);
  try {
    await readAll(img, label);
  } finally {
    await img.close();
  }
}
