import { promises as fsp } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { type DoctorContext, type DoctorOptions, type DoctorResult, ok, warn } from './doctor.js';

/**
 * Is memory changing fast right now? A dump takes minutes; pages rewritten meanwhile make it internally
 * inconsistent (smear). Boot, backups, scans and package updates are poor moments.
 */
export async function activityChecks(ctx: DoctorContext, o: DoctorOptions): Promise<DoctorResult[]> {
  return [await load(ctx, o), await uptime(ctx), await busy(ctx)];
}

/** Seconds after boot during which services are still starting and caches filling. */
export const RECENT_BOOT_SECONDS = 600;
const SMEAR = 'memory changes while it is read: the dump will be less consistent (more smear) and analysis may fail on torn structures';

export function cpuCountOf(cpuinfo: string): number {
  return (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
}

async function load(ctx: DoctorContext, o: DoctorOptions): Promise<DoctorResult> {
  const text = await ctx.read('proc/loadavg');
  const f = text?.split(/\s+/) ?? [];
  const l1 = Number(f[0]);
  const l5 = Number(f[1]);
  if (!text || !Number.isFinite(l1) || !Number.isFinite(l5)) return warn('load', 'load average unknown', '/proc/loadavg could not be read', 'check with uptime or top');
  const cpus = o.cpuCount ?? (cpuCountOf((await ctx.read('proc/cpuinfo')) ?? '') || (ctx.live ? availableParallelism() : 0));
  const summary = `load ${f.slice(0, 3).join(' ')} on ${cpus || 'an unknown number of'} CPU(s)`;
  if (cpus > 0 && l1 > cpus) {
    return warn('load', summary, `the 1-minute load exceeds the CPU count: ${SMEAR}; a busy host also slows the capture`, 'if the load is a backup, scan or update, wait for it to finish (or pause it) before capturing; if it is the incident itself, capture now and record the load');
  }
  return ok('load', summary);
}

async function uptime(ctx: DoctorContext): Promise<DoctorResult> {
  const up = Number((await ctx.read('proc/uptime'))?.split(/\s+/)[0]);
  if (!Number.isFinite(up)) return warn('uptime', 'uptime unknown', '/proc/uptime could not be read', 'check with uptime');
  const human = up < 3600 ? `${Math.round(up)} s` : up < 172800 ? `${(up / 3600).toFixed(1)} h` : `${(up / 86400).toFixed(1)} days`;
  if (up < RECENT_BOOT_SECONDS) {
    return warn('uptime', `booted ${human} ago`, `services are still starting and caches filling: ${SMEAR}; a reboot has also erased what memory held before it`, 'wait a few minutes for the system to settle unless the evidence is volatile right now');
  }
  return ok('uptime', `up ${human}`);
}

/** Process names of backups, malware scans, indexers and package managers: big, fast memory churn. */
const CHURN = /^(clamscan|clamd|freshclam|rsync|borg|restic|duplicity|bacula-fd|rsnapshot|updatedb|updatedb\.mlocat|plocate-build|apt|apt-get|dpkg|dnf|yum|rpm|zypper|unattended-upgr|packagekitd|tracker-miner-f|baloo_file)$/;
const MAX_PROCS = 8192;

async function busy(ctx: DoctorContext): Promise<DoctorResult> {
  const pids = (await fsp.readdir(join(ctx.root, 'proc')).catch(() => [] as string[])).filter((n) => /^\d+$/.test(n)).slice(0, MAX_PROCS);
  const found = new Set<string>();
  for (const pid of pids) {
    const comm = await ctx.read(`proc/${pid}/comm`);
    if (comm && CHURN.test(comm)) found.add(comm);
  }
  if (found.size === 0) return ok('activity', 'no backup, scan, indexing or package-manager process running');
  const names = [...found].sort().join(', ');
  return warn('activity', `running: ${names}`, `backups, malware scans, indexers and package managers rewrite much of memory: ${SMEAR}`, `let ${names} finish or pause it before capturing, unless the evidence cannot wait`);
}
