/**
 * npm run bench: each entry runs memdump and its peer on the same input in the same run and prints ratios.
 * Targets (issue #2): pipeline ≥ 2.5× dc3dd and ≥ 0.9× md5sum with peak RSS ≤ 256 MiB; in a QEMU guest,
 * kcore acquisition ≥ 0.8× dd. BENCH_ONLY=pipeline,snappy,guest selects entries.
 */
import { benchPipeline } from './pipeline.js';
import { benchSnappy } from './snappy.js';
import { benchGuest } from './guest.js';

const only = (process.env.BENCH_ONLY ?? 'pipeline,snappy,guest').split(',');
const mib = (b: number, s: number) => (b / 2 ** 20 / s).toFixed(0);
const verdict = (ok: boolean) => (ok ? 'meets target' : 'BELOW TARGET');

if (only.includes('pipeline')) {
  const r = await benchPipeline();
  const s = r.seconds;
  const line = (name: string, sec: number | null, what: string) => sec !== null && console.log(`${name.padEnd(34)} ${sec.toFixed(2)} s  ${mib(r.bytes, sec).padStart(5)} MiB/s  ${what}`);
  console.log(`\n## pipeline: ${(r.bytes / 2 ** 30).toFixed(1)} GiB image file as source, in /dev/shm, page cache warm; best of ${process.env.BENCH_RUNS ?? 2}`);
  line('memdump acquire → LiME file', s.memdumpFile, 'md5+sha1+sha256 + 64 MiB SHA-256 windows');
  line('memdump acquire -o - > /dev/null', s.memdumpNull, 'same digests and windows');
  line('dc3dd hash=md5 hash=sha256 of=file', s.dc3ddFile, '');
  line('dc3dd hash=md5 hash=sha256 of=/dev/null', s.dc3ddNull, '');
  line('md5sum', s.md5sum, 'reads only, one digest');
  console.log(`peak RSS ${r.memdumpPeakRssMiB.toFixed(0)} MiB (${verdict(r.memdumpPeakRssMiB <= 256)}: ≤ 256 MiB)`);
  const ratio = (a: number | null, b: number | null) => (a !== null && b !== null ? b / a : null);
  const show = (label: string, v: number | null, target: number) => v !== null && console.log(`${label.padEnd(44)} ${v.toFixed(2)}× (${verdict(v >= target)}: ≥ ${target}×)`);
  show('ratio vs dc3dd, both writing a file', ratio(s.memdumpFile, s.dc3ddFile), 2.5);
  show('ratio vs dc3dd, both writing to /dev/null', ratio(s.memdumpNull, s.dc3ddNull), 2.5);
  show('ratio vs md5sum (memdump to /dev/null)', ratio(s.memdumpNull, s.md5sum), 0.9);
  show('ratio vs md5sum (memdump writing a file)', ratio(s.memdumpFile, s.md5sum), 0.9);
}

if (only.includes('snappy')) {
  console.log('\n## snappy (native, napi-rs) on 64 KiB chunks of memory-like data');
  for (const r of await benchSnappy()) console.log(`${r.name.padEnd(40)} ${r.mibPerSec.toFixed(0)} MiB/s`);
}

if (only.includes('guest')) {
  const r = await benchGuest();
  if (!r) console.log('\n## guest: qemu-system-x86_64 not installed, skipped');
  else {
    console.log(`\n## in a QEMU (TCG) guest, ${r.memoryMiB} MiB: /proc/kcore read rate, same RAM`);
    console.log(`dd bs=1M (biggest direct-map segment, ${(r.ddBytes / 2 ** 20).toFixed(0)} MiB)  ${mib(r.ddBytes, r.ddSeconds)} MiB/s`);
    console.log(`memdump acquire -o - --digests none  ${mib(r.memdumpBytes, r.memdumpNoHashSeconds)} MiB/s  ratio ${r.ratioNoHash.toFixed(2)}× (${verdict(r.ratioNoHash >= 0.8)}: ≥ 0.8×)`);
    console.log(`memdump acquire -o - (md5+sha1+sha256)  ${mib(r.memdumpBytes, r.memdumpSeconds)} MiB/s  ratio ${r.ratio.toFixed(2)}× (guest has ${r.cpus} vCPU under TCG emulation)`);
  }
}
