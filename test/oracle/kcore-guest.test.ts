/**
 * Proof on a real kernel: a Debian cloud kernel boots under QEMU (TCG); inside the guest a helper plants
 * known pages and stays alive, and memdump acquires /proc/kcore to the guest's disk. The host then takes the
 * hypervisor's own dump (QMP dump-guest-memory) and checks that every planted page sits at the same physical
 * address in both, that the guest's own pagemap agrees, and that kernel text pages are identical.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { isSortedDisjoint, normalize, subtract } from '../../src/core/ranges.js';
import { openImage } from '../../src/formats/registry.js';
import type { MemoryImage } from '../../src/formats/types.js';
import { imageChunks } from '../../src/pipeline/info.js';
import { verify } from '../../src/pipeline/verify.js';
import { kernelRanges, parseIomem, ramRanges } from '../../src/sources/iomem.js';
import { findPatternPages, patternPage, PATTERN_PAGE_SIZE, startPatternScript } from '../helpers/pattern.js';
import { findExecutable, withGuest } from '../helpers/qemu-guest.js';

const SEED = 0x5eedn;
const PAGES = 2048;
const TEXT_PAGES = 300;
const qemu = findExecutable('qemu-system-x86_64');

const RUN_SH = `#!/bin/sh
${startPatternScript(SEED, PAGES, '/work/pattern.ready')}cat /proc/iomem > /work/iomem.txt
memdump acquire --source auto -o /work/dump.lime --case QEMU-PROOF --examiner ci --hash-window 16M
echo $? > /work/acquire.rc
sync
exit 0
`;

/** physical address of every planted page found in an image */
async function patternAddresses(img: MemoryImage): Promise<Map<bigint, bigint[]>> {
  const found = new Map<bigint, bigint[]>();
  for await (const { addr, data } of imageChunks(img, 16n << 20n)) {
    // runs are page-aligned in both dumps, so page boundaries in memory are 4096-aligned in `data`
    const skew = Number((4096n - (addr % 4096n)) % 4096n);
    for (const hit of findPatternPages(data.subarray(skew), SEED)) {
      const off = skew + hit.offset;
      if (off + PATTERN_PAGE_SIZE > data.length) continue;
      if (!data.subarray(off, off + PATTERN_PAGE_SIZE).equals(patternPage(SEED, hit.index))) continue;
      const list = found.get(hit.index) ?? [];
      list.push(addr + BigInt(off));
      found.set(hit.index, list);
    }
  }
  return found;
}

test('acquire from a real /proc/kcore matches the hypervisor\'s own dump', { skip: qemu ? false : 'qemu-system-x86_64 not installed', timeout: 15 * 60_000 }, async (t) => {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'memdump-kcore-proof-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  await withGuest({ memoryMiB: 512, runScript: RUN_SH, timeoutMs: 600_000 }, async (g) => {
    assert.equal(g.exitStatus, 0, `run.sh failed:\n${g.console.slice(-4000)}`);
    const qemuDump = path.join(tmp, 'qemu.elf');
    await g.dumpGuestMemory(qemuDump);
    await g.quit();
    const runLog = (await g.readFile('run.log')).toString();
    t.diagnostic(runLog.split('\n').slice(-12).join(' | '));
    assert.equal((await g.readFile('acquire.rc')).toString().trim(), '0', `memdump acquire failed in the guest:\n${runLog}`);
    for (const f of ['dump.lime', 'dump.lime.report.json', 'dump.lime.log', 'iomem.txt', 'pattern.ready.pfns']) await g.copyOut(f, path.join(tmp, f));
    const ctx = path.join(tmp, 'context');
    await fs.mkdir(ctx);
    for (const f of ['iomem.txt', 'vmcoreinfo.txt', 'kallsyms.txt', 'modules.txt']) await g.copyOut(`dump.lime.context/${f}`, path.join(ctx, f));

    // the report and the file agree
    const v = await verify(path.join(tmp, 'dump.lime'));
    assert.equal(v.verdict, 'MATCH');
    const report = JSON.parse(await fs.readFile(path.join(tmp, 'dump.lime.report.json'), 'utf8'));
    assert.equal(report.status, 'COMPLETE');
    assert.equal(report.source.kind, 'kcore');
    t.diagnostic(`guest acquisition: ${report.memoryMap.acquiredBytes} bytes in ${report.time.durationMs} ms; not in kcore: ${JSON.stringify(report.source.info.ramNotInKcore)}`);
    assert.match(await fs.readFile(path.join(ctx, 'vmcoreinfo.txt'), 'utf8'), /OSRELEASE=6\./);
    assert.match(await fs.readFile(path.join(ctx, 'kallsyms.txt'), 'utf8'), / T _stext/);

    // the map: sorted, disjoint, inside RAM, and covering all RAM but what kcore itself leaves out
    const iomem = parseIomem(await fs.readFile(path.join(tmp, 'iomem.txt'), 'utf8'));
    const ram = ramRanges(iomem);
    const ours = await openImage(path.join(tmp, 'dump.lime'));
    const theirs = await openImage(qemuDump);
    try {
      assert.ok(isSortedDisjoint(ours.runs));
      assert.deepEqual(subtract(ours.runs, ram), [], 'nothing outside System RAM');
      const missing = subtract(ram, ours.runs);
      for (const m of missing) assert.ok(m.end - m.start < 0x2000n, `RAM missing from the dump: 0x${m.start.toString(16)}-0x${m.end.toString(16)}`);

      // every planted page at the same physical address in both dumps and in the guest's pagemap
      const pfns = new Map(
        (await fs.readFile(path.join(tmp, 'pattern.ready.pfns'), 'utf8'))
          .trim()
          .split('\n')
          .map((l) => l.split(/\s+/))
          .map(([i, pfn]) => [BigInt(i!), BigInt('0x' + pfn!.replace(/^0x/, '')) * 4096n] as const),
      );
      const a = await patternAddresses(ours);
      const b = await patternAddresses(theirs);
      assert.equal(a.size, PAGES, `memdump dump holds ${a.size} of ${PAGES} planted pages`);
      assert.equal(b.size, PAGES, `QEMU dump holds ${b.size} of ${PAGES} planted pages`);
      for (let i = 0n; i < BigInt(PAGES); i++) {
        assert.deepEqual(a.get(i), b.get(i), `page ${i}: memdump ${a.get(i)} vs QEMU ${b.get(i)}`);
        assert.deepEqual(a.get(i), [pfns.get(i)], `page ${i} vs guest pagemap`);
      }

      // stable kernel text: the first TEXT_PAGES pages of "Kernel code" are byte-identical
      const code = kernelRanges(iomem).find((k) => k.name === 'Kernel code');
      assert.ok(code, 'iomem lists Kernel code');
      const start = (code.range.start + 4095n) & ~4095n;
      let differing = 0;
      for (let p = 0; p < TEXT_PAGES; p++) {
        const at = start + BigInt(p) * 4096n;
        if (!(await ours.read(at, 4096)).equals(await theirs.read(at, 4096))) differing++;
      }
      t.diagnostic(`kernel text: ${TEXT_PAGES - differing} of ${TEXT_PAGES} pages identical from 0x${start.toString(16)}`);
      assert.equal(differing, 0);
      assert.ok(normalize(ours.runs).length >= 1);
    } finally {
      await ours.close();
      await theirs.close();
    }
  });
});
