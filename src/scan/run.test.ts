import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RandomStream } from '../../test/fixtures/scan-corpus-rng.js';
import { tempDir } from '../../test/helpers/cli.js';
import { openScanInput } from './input.js';
import { ScanOutput } from './output.js';
import { runScan } from './run.js';

test('a stop while windows are queued ends the scan as interrupted, with no stray rejection from the queued ones', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'in.bin');
  writeFileSync(file, new RandomStream(5).take(4 << 20));
  const stray: unknown[] = [];
  const onStray = (e: unknown): void => void stray.push(e);
  process.on('unhandledRejection', onStray);
  t.after(() => void process.off('unhandledRejection', onStray));
  const input = await openScanInput(file, 'plain');
  const out = await ScanOutput.create(join(dir, 'out'), ['email'], ['test'], false);
  const ac = new AbortController();
  try {
    const totals = await runScan(input, out, {
      init: { scanners: ['email'], maxDepth: 0, maxDecoded: 1 << 20, maxDecodedPerWindow: 1 << 20 },
      workers: 2,
      chunkSize: 64 * 1024,
      signal: ac.signal,
      // stop as the first window is collected: the next ones are queued or running
      onProgress: () => ac.abort(),
    });
    assert.equal(totals.interrupted, true);
    assert.ok(totals.windows >= 1 && totals.bytesScanned < 4n << 20n);
  } finally {
    await out.finish();
    await input.close();
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(stray, []);
});
