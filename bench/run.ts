/**
 * npm run bench: each entry runs memdump and its peer on the same input in the same run and prints ratios.
 * Targets (issue #2): pipeline ≥ 2.5× dc3dd and ≥ 0.9× md5sum with peak RSS ≤ 256 MiB; in a QEMU guest,
 * kcore acquisition ≥ 0.8× dd. Issue #3: `memdump process` of a 2 GiB process ≤ 0.5× gcore's wall time, target
 * stopped ≤ 0.5 s writing to /dev/null, peak RSS ≤ 256 MiB. Issue #5: `memdump image` to E01 ≥ 2× ewfacquire
 * deflate:fast and to raw with md5+sha256 ≥ 2.5× dc3dd. Issue #4: 4 GiB over TLS on loopback into `memdump receive`
 * with hashing on both sides against nc and socat+sha256sum, receiver peak RSS ≤ 256 MiB; transport compression
 * (gzip vs zstd) throughput. Issue #6: how long `memdump vm` pauses a QEMU guest against QEMU's own
 * dump-guest-memory to a file. Issue #7: `memdump scan` (all scanners) on the 1 GiB seeded scan corpus against yara,
 * grep and strings: ≥ 60 MiB/s (3× bulk_extractor), recall ≥ 99% per kind, peak RSS ≤ 512 MiB.
 * BENCH_ONLY=pipeline,snappy,guest,process,image,delivery,compress,vm,scan selects entries.
 */
import { benchPipeline } from './pipeline.js';
import { benchSnappy } from './snappy.js';
import { benchGuest } from './guest.js';
import { benchProcess } from './process.js';
import { benchImage } from './image.js';
import { benchDelivery } from './delivery.js';
import { benchCompress } from './compress.js';
import { benchVm } from './vm.js';
import { benchScan } from './scan.js';

const only = (process.env.BENCH_ONLY ?? 'pipeline,snappy,guest,process,image,delivery,compress,vm,scan').split(',');
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

if (only.includes('process')) {
  const r = await benchProcess();
  if (!r) console.log('\n## process: gcore or gcc not installed, skipped');
  else {
    console.log(`\n## process: a parked 5-thread process with ${r.mib} MiB of touched anonymous memory; output in /dev/shm`);
    for (const x of r.runs) {
      console.log(`${x.name.padEnd(48)} ${x.seconds.toFixed(2)} s  stopped ${x.stoppedMs === null ? '?' : (x.stoppedMs / 1000).toFixed(2) + ' s'}${x.peakRssMiB === null ? '' : `  peak RSS ${x.peakRssMiB.toFixed(0)} MiB`}`);
    }
    const by = (n: string) => r.runs.find((x) => x.name.startsWith(n))!;
    const g = by('gcore → file');
    const gn = by('gdb gcore → /dev/null');
    const show = (label: string, v: number, target: number, le = true) => console.log(`${label.padEnd(64)} ${v.toFixed(2)} (${verdict(le ? v <= target : v >= target)}: ${le ? '≤' : '≥'} ${target})`);
    show('wall ratio memdump/gcore to a file, default digests', by('memdump process → file (md5').seconds / g.seconds, 0.5);
    show('wall ratio memdump/gcore to a file, sha256 only', by('memdump process → file (--digests sha256').seconds / g.seconds, 0.5);
    show('wall ratio memdump/gcore to /dev/null, default digests', by('memdump process → /dev/null (md5').seconds / gn.seconds, 0.5);
    show('wall ratio memdump/gcore to /dev/null, no digests', by('memdump process → /dev/null (--digests none').seconds / gn.seconds, 0.5);
    show('target stopped (s) → /dev/null, default digests', (by('memdump process → /dev/null (md5').stoppedMs ?? 0) / 1000, 0.5);
    show('target stopped (s) → /dev/null, no digests', (by('memdump process → /dev/null (--digests none').stoppedMs ?? 0) / 1000, 0.5);
    show('peak RSS (MiB), worst memdump run', Math.max(...r.runs.filter((x) => x.peakRssMiB !== null).map((x) => x.peakRssMiB!)), 256);
  }
}

if (only.includes('image')) {
  const r = await benchImage();
  console.log(`\n## image: ${(r.bytes / 2 ** 30).toFixed(1)} GiB mixed file (¼ random, ¼ zeros, ½ text) in /dev/shm, page cache warm; best of ${process.env.BENCH_RUNS ?? 2}`);
  if (r.missing.length) console.log(`peers not installed: ${r.missing.join(', ')}`);
  for (const x of r.rows) console.log(`${x.name.padEnd(44)} ${x.seconds.toFixed(2)} s  ${mib(r.bytes, x.seconds).padStart(5)} MiB/s${x.peakRssMiB === null ? '' : `  peak RSS ${x.peakRssMiB.toFixed(0)} MiB`}`);
  const sec = (n: string) => r.rows.find((x) => x.name.startsWith(n))?.seconds;
  const show = (label: string, ours: number | undefined, peer: number | undefined, target: number) =>
    ours !== undefined && peer !== undefined && console.log(`${label.padEnd(58)} ${(peer / ours).toFixed(2)}× (${verdict(peer / ours >= target)}: ≥ ${target}×)`);
  show('E01: memdump vs ewfacquire deflate:fast (md5)', sec('memdump image --format e01'), sec('ewfacquire -c deflate:fast (md5)'), 2);
  show('E01: memdump vs ewfacquire deflate:fast -d sha1', sec('memdump image --format e01'), sec('ewfacquire -c deflate:fast -d sha1'), 2);
  show('raw: memdump (md5,sha256) vs dc3dd hash=md5 hash=sha256', sec('memdump image --format raw'), sec('dc3dd'), 2.5);
  const floor = sec('md5sum');
  const dd = sec('dc3dd');
  if (floor !== undefined && dd !== undefined) console.log(`${'best ratio any MD5-computing tool could reach (dc3dd / md5sum)'.padEnd(58)} ${(dd / floor).toFixed(2)}×`);
}

if (only.includes('delivery')) {
  const r = await benchDelivery();
  console.log(`\n## delivery: ${(r.bytes / 2 ** 30).toFixed(1)} GiB image over loopback, /dev/shm both ends; best of ${process.env.BENCH_RUNS ?? 2}`);
  if (r.missing.length) console.log(`peers not installed: ${r.missing.join(', ')}`);
  for (const x of r.rows) {
    const rss = [x.senderRssMiB !== null ? `sender peak RSS ${x.senderRssMiB.toFixed(0)} MiB` : '', x.receiverRssMiB !== null ? `receiver peak RSS ${x.receiverRssMiB.toFixed(0)} MiB` : ''].filter(Boolean).join(', ');
    console.log(`${x.name.padEnd(52)} ${x.seconds.toFixed(2)} s  ${mib(r.bytes, x.seconds).padStart(5)} MiB/s  ${rss}`);
  }
  const sec = (n: string) => r.rows.find((x) => x.name.startsWith(n))?.seconds;
  const ratio = (label: string, ours: number | undefined, peer: number | undefined) => ours !== undefined && peer !== undefined && console.log(`${label.padEnd(64)} ${(peer / ours).toFixed(2)}×`);
  ratio('throughput ratio memdump (sha256) / socat TLS + sha256sum both sides', sec('memdump acquire --to tls:// → receive (sha256)'), sec('socat'));
  ratio('throughput ratio memdump (md5,sha1,sha256) / socat TLS + sha256sum', sec('memdump acquire --to tls:// → receive (md5'), sec('socat'));
  ratio('throughput ratio memdump (sha256) / nc plain TCP', sec('memdump acquire --to tls:// → receive (sha256)'), sec('nc'));
  const worst = Math.max(...r.rows.filter((x) => x.receiverRssMiB !== null).map((x) => x.receiverRssMiB!));
  console.log(`receiver peak RSS ${worst.toFixed(0)} MiB (${verdict(worst <= 256)}: ≤ 256 MiB)`);
}

if (only.includes('compress')) await benchCompress();

if (only.includes('vm')) {
  const r = await benchVm();
  if (!r) console.log('\n## vm: qemu-system-x86_64 not installed, skipped');
  else {
    console.log(`\n## vm: a running ${r.memMiB} MiB QEMU (TCG) guest; output in /dev/shm; best of ${process.env.BENCH_RUNS ?? 2}`);
    const peer = r.runs.find((x) => x.name.startsWith('QEMU'))!;
    for (const x of r.runs) console.log(`${x.name.padEnd(52)} paused ${(x.pausedMs / 1000).toFixed(2)} s  wall ${x.wallSeconds.toFixed(2)} s  ${mib(r.memMiB * 2 ** 20, x.pausedMs / 1000)} MiB/s  pause ${(x.pausedMs / peer.pausedMs).toFixed(2)}× QEMU's`);
  }
}

if (only.includes('scan')) await benchScan();
