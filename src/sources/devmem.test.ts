import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Prng } from '../../test/helpers/prng.js';
import { runCli, tempDir } from '../../test/helpers/cli.js';
import { iomemText } from '../../test/fixtures/generate.js';
import { openImage } from '../formats/registry.js';
import { OffsetSource } from './devmem.js';

const RAM = [
  { start: 0x1000n, end: 0x9fc00n },
  { start: 0x100000n, end: 0x300000n },
];

function physical(): Buffer {
  return new Prng(7).bytes(0x300000);
}

test('/dev/crash reads whole aligned pages and returns exactly the bytes asked for', async (t) => {
  const dir = tempDir(t);
  const mem = physical();
  writeFileSync(join(dir, 'crash'), mem);
  const src = await OffsetSource.open('crash', join(dir, 'crash'), RAM);
  try {
    const buf = Buffer.alloc(10000);
    // an unaligned start: the source returns what is left of that page, the policy asks again for the rest
    const n = await src.read(0x100123n, buf, 10000);
    assert.equal(n, 4096 - 0x123);
    assert.deepEqual(buf.subarray(0, n), mem.subarray(0x100123, 0x100123 + n));
  } finally {
    await src.close();
  }
});

test('acquire --source crash and --source mem from a device tree give the same LiME as the memory', async (t) => {
  const dir = tempDir(t);
  const mem = physical();
  for (const d of ['proc', 'dev', 'sys/kernel/security']) mkdirSync(join(dir, 'root', d), { recursive: true });
  writeFileSync(join(dir, 'root/proc/iomem'), iomemText(RAM));
  writeFileSync(join(dir, 'root/dev/crash'), mem);
  writeFileSync(join(dir, 'root/dev/mem'), mem);
  for (const source of ['crash', 'mem', 'auto']) {
    const out = join(dir, `${source}.lime`);
    const r = await runCli(['acquire', '--root', join(dir, 'root'), '--source', source, '-o', out, '--no-context', '-q', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const img = await openImage(out);
    try {
      assert.deepEqual(img.runs, RAM);
      for (const x of RAM) assert.deepEqual(await img.read(x.start, Number(x.end - x.start)), mem.subarray(Number(x.start), Number(x.end)));
    } finally {
      await img.close();
    }
    if (source === 'auto') {
      const rep = JSON.parse(readFileSync(out + '.report.json', 'utf8'));
      assert.equal(rep.source.kind, 'crash', 'auto falls back from a missing kcore to /dev/crash');
      assert.match(rep.source.attempts[0].reason, /does not exist/);
    }
  }
});
