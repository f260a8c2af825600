import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../../test/helpers/cli.js';
import { parseReport } from './report.js';
import { acquireSwaps, swapImageName } from './swap-acquire.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('swap image names are flat, safe and unique', () => {
  const taken = new Set<string>();
  assert.equal(swapImageName('/dev/sda2', taken), 'dev_sda2');
  assert.equal(swapImageName('/swap file', taken), 'swap_file');
  assert.equal(swapImageName('/swap\nfile', taken), 'swap_file_2');
  assert.equal(swapImageName('/../..', taken), '__..', 'never . or ..');
});

test('acquireSwaps (the API behind `swap` and `acquire --include-swap`) from a ROOT/proc/swaps naming a file', async (t) => {
  const dir = tempDir(t);
  const root = join(dir, 'root');
  mkdirSync(join(root, 'proc'), { recursive: true });
  const area = join(dir, 'page file');
  const data = Buffer.alloc(64 * 1024, 0x5a);
  data.write('SWAPSPACE2', 4086, 'latin1');
  writeFileSync(area, data);
  writeFileSync(join(root, 'proc/swaps'), `Filename\tType\tSize\tUsed\tPriority\n${area.replace(/ /g, '\\040')}\tfile\t60\t4\t-2\n/old\\040(deleted)\tfile\t8\t0\t-3\n`);
  const out = join(dir, 'host.lime.swap');
  const res = await acquireSwaps({ dir: out, all: false, root, argv: ['memdump', 'acquire', '--include-swap'], caseFields: { case: 'C' }, digests: ['sha256'], windowSize: 0n, maxDiskUsage: 100, retries: 2, verify: true });
  assert.equal(res.exitCode, 0);
  assert.equal(statSync(out).mode & 0o777, 0o700);
  assert.deepEqual(res.areas.map((a) => [a.area.path, a.status]), [[area, 'COMPLETE'], ['/old', 'SKIPPED']]);
  const got = res.areas[0]!;
  assert.equal(got.output, join(out, `${area.slice(1).replace(/[^A-Za-z0-9._-]+/g, '_')}.raw`));
  assert.ok(readFileSync(got.output!).equals(data));
  assert.equal(got.digests.sha256, sha256(data));
  assert.match(got.message, /^source unchanged/);
  const rep = parseReport(readFileSync(got.reportPath!, 'utf8'), 'report');
  assert.equal(rep.command, 'swap');
  assert.deepEqual(rep.image?.device.swap, { type: 'file', sizeKiB: '60', usedKiB: '4', priority: -2 });
  assert.match(String(rep.source.info.io), /^(direct|buffered \(O_DIRECT)/);
  assert.equal(rep.options.swapFound, '/proc/swaps');
  assert.match(res.areas[1]!.message, /deleted swap file/);
  // nothing to acquire: no directory
  writeFileSync(join(root, 'proc/swaps'), 'Filename\tType\tSize\tUsed\tPriority\n');
  const none = await acquireSwaps({ dir: join(dir, 'none'), all: false, root, argv: [], caseFields: {}, digests: ['md5'], windowSize: 0n, maxDiskUsage: 100, retries: 0, verify: false });
  assert.deepEqual(none.areas, []);
  assert.ok(!existsSync(join(dir, 'none')));
});
