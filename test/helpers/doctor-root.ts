import { mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { devIdOf } from '../../src/sources/block-geometry.js';
import { fakeRoot, type KcoreLayout } from '../fixtures/generate.js';

/**
 * Fixture trees for `memdump doctor`: a healthy host (root, all capabilities, /proc/kcore readable, no
 * container, plenty of space, output on its own device, quiet system), and one change per failure mode.
 */

export const DOCTOR_LAYOUT: KcoreLayout = {
  ram: [
    { start: 0x1000n, end: 0x9fc00n },
    { start: 0x100000n, end: 0x500000n },
  ],
  textPaddr: 0x200000n,
  textSize: 0x100000n,
  dataBase: 1n << 40n,
  withVmcoreinfo: false,
};

/** Every capability up to CAP_CHECKPOINT_RESTORE (40), as root's CapEff reads on a 5.9+ kernel. */
export const ALL_CAPS = (1n << 41n) - 1n;

export const capEff = (mask: bigint) => mask.toString(16).padStart(16, '0');
export const statusText = (mask: bigint) => `Name:\tmemdump\nUmask:\t0022\nState:\tR (running)\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapPrm:\t${capEff(mask)}\nCapEff:\t${capEff(mask)}\n`;

/** The kernel's format: "%-25s %-20s %-20s %-10s". */
export function limitsText(coreSoft: string, coreHard = 'unlimited'): string {
  const row = (n: string, s: string, h: string, u: string) => `${n.padEnd(25)} ${s.padEnd(20)} ${h.padEnd(20)} ${u.padEnd(10)}`;
  return [
    row('Limit', 'Soft Limit', 'Hard Limit', 'Units'),
    row('Max cpu time', 'unlimited', 'unlimited', 'seconds'),
    row('Max file size', 'unlimited', 'unlimited', 'bytes'),
    row('Max core file size', coreSoft, coreHard, 'bytes'),
    row('Max open files', '1024', '524288', 'files'),
  ].join('\n') + '\n';
}

/** One /proc/self/mountinfo line. */
export const mountLine = (id: number, devId: string, mountPoint: string, fsType: string, source: string) =>
  `${id} 1 ${devId} / ${mountPoint} rw,relatime shared:1 - ${fsType} ${source} rw\n`;

/** major:minor of the filesystem holding `path` (what doctor compares against mountinfo). */
export const devIdOfPath = (path: string) => devIdOf(statSync(path, { bigint: true }).dev);

/** A device id that is surely not `other`'s. */
export const otherDevId = (other: string) => (other === '259:77' ? '259:78' : '259:77');

export const SWAPS_HEADER = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n';

export function healthyFiles(outputDir: string): Record<string, string> {
  const outDev = devIdOfPath(outputDir);
  return {
    'proc/self/status': statusText(ALL_CAPS),
    'proc/sys/kernel/osrelease': '6.1.0-21-amd64',
    'proc/sys/kernel/arch': 'x86_64',
    'proc/version': 'Linux version 6.1.0-21-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.90-1\n',
    'proc/sys/kernel/yama/ptrace_scope': '1\n',
    'proc/1/cgroup': '0::/init.scope\n',
    'proc/1/environ': 'HOME=/\0TERM=linux\0BOOT_IMAGE=/vmlinuz\0',
    'proc/1/comm': 'systemd\n',
    'proc/1234/comm': 'sshd\n',
    'proc/self/mountinfo': mountLine(22, otherDevId(outDev), '/', 'ext4', '/dev/nvme0n1p2') + mountLine(23, '0:21', '/proc', 'proc', 'proc') + mountLine(40, outDev, '/mnt/evidence', 'ext4', '/dev/sdb1'),
    'proc/meminfo': 'MemTotal:          16384 kB\nMemFree:            8192 kB\n',
    'proc/sys/kernel/core_pattern': 'core\n',
    'proc/sys/fs/suid_dumpable': '2\n',
    'etc/systemd/system.conf': '[Manager]\n#DefaultLimitCORE=\n',
    'proc/self/limits': limitsText('unlimited'),
    'proc/swaps': SWAPS_HEADER,
    'proc/loadavg': '0.10 0.20 0.30 1/200 1234\n',
    'proc/cpuinfo': [0, 1, 2, 3].map((i) => `processor\t: ${i}\nmodel name\t: Fixture CPU\n`).join('\n'),
    'proc/uptime': '86400.00 300000.00\n',
  };
}

export interface DoctorRootOptions {
  /** Files to write (relative to the root) or, with null, to remove. */
  files?: Record<string, string | null>;
  lockdown?: string;
  /** Symlinks to create: relative path → target. */
  links?: Record<string, string>;
}

/** A doctor fixture tree in `dir`: the healthy host with `o` applied. */
export function doctorRoot(dir: string, outputDir: string, o: DoctorRootOptions = {}): string {
  fakeRoot(dir, DOCTOR_LAYOUT, o.lockdown ? { lockdown: o.lockdown } : {});
  const files = { ...healthyFiles(outputDir), ...o.files };
  for (const [rel, text] of Object.entries(files)) {
    const p = join(dir, rel);
    if (text === null) {
      rmSync(p, { force: true, recursive: true });
      continue;
    }
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  }
  for (const [rel, target] of Object.entries(o.links ?? {})) {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    symlinkSync(target, p);
  }
  return dir;
}
