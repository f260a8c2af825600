/**
 * Inside a QEMU (TCG) guest: memdump's /proc/kcore acquisition rate against `dd if=/proc/kcore bs=1M` over the
 * largest direct-map segment (≈ all RAM). memdump's time is its own report's duration (Node's start-up under
 * emulation is not acquisition time); dd's is wall time around dd.
 */
import { findExecutable, withGuest } from '../test/helpers/qemu-guest.js';

export interface GuestResult {
  memoryMiB: number;
  cpus: number;
  ddBytes: number;
  ddSeconds: number;
  memdumpBytes: number;
  memdumpNoHashSeconds: number;
  memdumpSeconds: number;
  ratioNoHash: number;
  ratio: number;
}

const RUN = `#!/bin/sh
set -e
up() { cut -d' ' -f1 /proc/uptime; }
seg=$(node /memdump/dist/bench/kcore-segment.js)
set -- $seg
dd if=/proc/kcore of=/dev/null bs=1M iflag=skip_bytes,count_bytes skip=$1 count=$2 2>/dev/null
t0=$(up); dd if=/proc/kcore of=/dev/null bs=1M iflag=skip_bytes,count_bytes skip=$1 count=$2 2>/dev/null; t1=$(up)
memdump acquire -o - -q --digests none --hash-window 0 --report /work/nohash.json > /dev/null
memdump acquire -o - -q --report /work/hash.json > /dev/null
echo "$2 $t0 $t1" > /work/dd.txt
nproc > /work/nproc.txt
`;

export async function benchGuest(memoryMiB = Number(process.env.BENCH_GUEST_MIB ?? 1024)): Promise<GuestResult | undefined> {
  if (!findExecutable('qemu-system-x86_64')) return undefined;
  return withGuest({ memoryMiB, runScript: RUN, timeoutMs: 900_000 }, async (g) => {
    if (g.exitStatus !== 0) throw new Error(`guest benchmark failed:\n${(await g.readFile('run.log')).toString().slice(-3000)}`);
    const [bytes, t0, t1] = (await g.readFile('dd.txt')).toString().trim().split(/\s+/).map(Number) as [number, number, number];
    const nohash = JSON.parse((await g.readFile('nohash.json')).toString());
    const hash = JSON.parse((await g.readFile('hash.json')).toString());
    await g.quit();
    const mdBytes = Number(nohash.memoryMap.acquiredBytes);
    const ddRate = bytes / (t1 - t0);
    const r = {
      memoryMiB,
      cpus: Number((await g.readFile('nproc.txt')).toString().trim()),
      ddBytes: bytes,
      ddSeconds: t1 - t0,
      memdumpBytes: mdBytes,
      memdumpNoHashSeconds: nohash.time.durationMs / 1000,
      memdumpSeconds: hash.time.durationMs / 1000,
      ratioNoHash: mdBytes / (nohash.time.durationMs / 1000) / ddRate,
      ratio: mdBytes / (hash.time.durationMs / 1000) / ddRate,
    };
    return r;
  });
}
