/**
 * Smoke test of the QEMU rig (test/helpers/qemu-guest.ts): boots the Debian
 * cloud kernel under TCG, runs Node in the guest, plants 256 pattern pages
 * with the in-guest `pattern` helper, and checks that QEMU's own
 * dump-guest-memory (ELF, paging=false) holds every one of them at the
 * physical address /proc/self/pagemap reported inside the guest.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { findPatternPages, patternPage, PATTERN_PAGE_SIZE, startPatternScript } from '../helpers/pattern.js';
import {
  findExecutable,
  hex,
  parseElf64ProgramHeaders,
  PT_LOAD,
  readElf64ProgramHeaders,
  withGuest,
  type ElfProgramHeader,
} from '../helpers/qemu-guest.js';

const SEED = 1234n;
const PAGES = 256;
const qemu = findExecutable('qemu-system-x86_64');

const RUN_SH = `#!/bin/sh
${startPatternScript(SEED, PAGES, '/work/pattern.ready')}cat /proc/iomem > /work/iomem.txt
ls -l /proc/kcore > /work/kcore.txt
head -c 4096 /proc/kcore > /work/kcore-head.bin
uname -r > /work/uname.txt
ls /memdump > /work/memdump-ls.txt
t0=$(cut -d' ' -f1 /proc/uptime)
node -e 'console.log(process.version)' > /work/node.txt || exit 4
t1=$(cut -d' ' -f1 /proc/uptime)
node -e 'console.log(process.version)' > /dev/null || exit 4
t2=$(cut -d' ' -f1 /proc/uptime)
echo "$t0 $t1 $t2" > /work/node-timing.txt
exit 0
`;

function describeLoads(phdrs: readonly ElfProgramHeader[]): string[] {
  return phdrs
    .filter((p) => p.type === PT_LOAD)
    .map((p) => `p_offset=${hex(p.offset)} p_vaddr=${hex(p.vaddr)} p_paddr=${hex(p.paddr)} p_filesz=${hex(p.filesz)}`);
}

/** Scan every PT_LOAD of an ELF memory dump for pattern pages; returns index → physical addresses. */
async function scanDump(file: string, seed: bigint): Promise<Map<bigint, bigint[]>> {
  const phdrs = await readElf64ProgramHeaders(file);
  const found = new Map<bigint, bigint[]>();
  const fh = await fs.open(file, 'r');
  try {
    const chunkSize = 16 * 1024 * 1024; // multiple of the page size
    const buf = Buffer.alloc(chunkSize);
    for (const ph of phdrs) {
      if (ph.type !== PT_LOAD || ph.filesz === 0n) continue;
      const size = Number(ph.filesz);
      for (let pos = 0; pos < size; pos += chunkSize) {
        const want = Math.min(chunkSize, size - pos);
        const { bytesRead } = await fh.read(buf, 0, want, Number(ph.offset) + pos);
        assert.equal(bytesRead, want, `short read in dump at ${Number(ph.offset) + pos}`);
        const view = buf.subarray(0, want);
        for (const hit of findPatternPages(view, seed)) {
          if (hit.offset + PATTERN_PAGE_SIZE > want) continue;
          const page = view.subarray(hit.offset, hit.offset + PATTERN_PAGE_SIZE);
          if (!page.equals(patternPage(seed, hit.index))) continue;
          const paddr = ph.paddr + BigInt(pos + hit.offset);
          const list = found.get(hit.index) ?? [];
          list.push(paddr);
          found.set(hit.index, list);
        }
      }
    }
  } finally {
    await fh.close();
  }
  return found;
}

test(
  'qemu guest: boots, runs node, and the QEMU ELF dump holds every pattern page at its pagemap address',
  {
    skip: qemu ? false : 'qemu-system-x86_64 not found on PATH (apt-get install qemu-system-x86)',
    timeout: 15 * 60_000,
  },
  async (t) => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'memdump-qemu-smoke-'));
    try {
      const started = Date.now();
      await withGuest({ memoryMiB: 512, runScript: RUN_SH, timeoutMs: 300_000 }, async (g) => {
        t.diagnostic(`kernel ${g.assets.packageName} ${g.assets.packageVersion} (${g.assets.kernelVersion})`);
        t.diagnostic(
          `prepare ${g.timings.prepareMs.toFixed(0)} ms; QEMU spawn→/init ${g.timings.bootMs?.toFixed(0)} ms; ` +
            `→run.sh ${g.timings.runStartMs?.toFixed(0)} ms; →done ${g.timings.doneMs.toFixed(0)} ms`,
        );
        assert.equal(g.exitStatus, 0, `run.sh failed; console:\n${g.console.slice(-4000)}`);

        const dumpPath = path.join(tmp, 'guest.elf');
        const d0 = Date.now();
        await g.dumpGuestMemory(dumpPath);
        const dumpMs = Date.now() - d0;
        await g.quit();
        assert.equal(g.running, false);
        const dumpSize = (await fs.stat(dumpPath)).size;
        t.diagnostic(`dump-guest-memory: ${dumpSize} bytes in ${dumpMs} ms`);

        const names = (await g.listDisk()).map((e) => e.name);
        for (const f of ['run.sh', 'run.log', 'iomem.txt', 'node.txt', 'pattern.ready', 'pattern.ready.pfns']) {
          assert.ok(names.includes(f), `${f} missing from the work disk (have: ${names.join(' ')})`);
        }

        await g.copyOut('/work/node.txt', path.join(tmp, 'node.txt'));
        await g.copyOut('iomem.txt', path.join(tmp, 'iomem.txt'));
        const nodeVersion = (await fs.readFile(path.join(tmp, 'node.txt'), 'utf8')).trim();
        const iomem = await fs.readFile(path.join(tmp, 'iomem.txt'), 'utf8');
        assert.match(nodeVersion, /^v\d+\.\d+\.\d+$/);
        assert.equal(nodeVersion, process.version, 'guest runs the host Node binary');
        assert.match(iomem, /System RAM/);

        const [t0, t1, t2] = (await g.readFile('node-timing.txt')).toString().trim().split(/\s+/).map(Number);
        if (t0 !== undefined && t1 !== undefined && t2 !== undefined) {
          t.diagnostic(`guest node -e: first ${((t1 - t0) * 1000).toFixed(0)} ms, second ${((t2 - t1) * 1000).toFixed(0)} ms`);
        }
        t.diagnostic(`guest uname -r: ${(await g.readFile('uname.txt')).toString().trim()}`);
        t.diagnostic(`guest ls -l /proc/kcore: ${(await g.readFile('kcore.txt')).toString().trim()}`);
        t.diagnostic(`guest /memdump: ${(await g.readFile('memdump-ls.txt')).toString().trim().split('\n').join(' ')}`);
        for (const line of iomem.trimEnd().split('\n')) t.diagnostic(`iomem: ${line}`);

        // /proc/kcore layout as the guest kernel presents it.
        const kcoreHead = await g.readFile('kcore-head.bin');
        const kcoreLoads = describeLoads(parseElf64ProgramHeaders(kcoreHead));
        assert.ok(kcoreLoads.length > 0, 'kcore has PT_LOAD segments');
        for (const l of kcoreLoads) t.diagnostic(`kcore PT_LOAD ${l}`);

        // The hypervisor's view.
        const dumpPhdrs = await readElf64ProgramHeaders(dumpPath);
        for (const l of describeLoads(dumpPhdrs)) t.diagnostic(`qemu dump PT_LOAD ${l}`);

        const s0 = Date.now();
        const found = await scanDump(dumpPath, SEED);
        t.diagnostic(`scanned dump in ${Date.now() - s0} ms: ${found.size} distinct pattern pages`);
        const missing: number[] = [];
        for (let i = 0; i < PAGES; i++) if (!found.has(BigInt(i))) missing.push(i);
        assert.deepEqual(missing, [], 'every pattern page is in the QEMU dump');
        const dup = [...found.entries()].filter(([, v]) => v.length > 1);
        if (dup.length > 0) t.diagnostic(`pages found more than once: ${dup.length}`);

        // Physical addresses agree with what the guest's pagemap said.
        const pfns = (await g.readFile('pattern.ready.pfns')).toString().trim().split('\n');
        assert.equal(pfns.length, PAGES);
        let pfnChecked = 0;
        for (const line of pfns) {
          const [idx, pfnHex] = line.split(' ');
          assert.ok(idx !== undefined && pfnHex !== undefined, `bad pfns line ${line}`);
          const pfn = BigInt('0x' + pfnHex);
          if (pfn === 0n) continue; // pagemap hid the frame
          const addrs = found.get(BigInt(idx)) ?? [];
          assert.ok(addrs.includes(pfn * 4096n), `page ${idx}: pagemap pfn ${hex(pfn)} vs dump ${addrs.map(hex).join(',')}`);
          pfnChecked++;
        }
        assert.equal(pfnChecked, PAGES, 'pagemap exposed every frame (guest runs as root)');
        const sample = [0, 1, PAGES - 1].map((i) => `${i}@${(found.get(BigInt(i)) ?? []).map(hex).join(',')}`);
        t.diagnostic(`pattern pages (index@paddr): ${sample.join(' ')} …`);
      });
      t.diagnostic(`total ${Date.now() - started} ms`);
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  },
);
