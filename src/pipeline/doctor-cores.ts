import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { parseLimits } from '../sources/proc-info.js';
import { type DoctorContext, type DoctorResult, ok, warn } from './doctor.js';

/**
 * Core-dump settings. memdump writes its own process cores (it does not go through the kernel's core_pattern),
 * so these lines are about evidence: whether a crashing (perhaps exploited) process leaves a core, and where it
 * lands, which is often the disk being investigated.
 */
export async function coreChecks(ctx: DoctorContext): Promise<DoctorResult[]> {
  return [await corePattern(ctx), await suidDumpable(ctx), await systemdCore(ctx), await ulimitCore(ctx)];
}

async function corePattern(ctx: DoctorContext): Promise<DoctorResult> {
  const p = await ctx.read('proc/sys/kernel/core_pattern');
  if (p === undefined) return warn('core-pattern', 'core_pattern unknown', '/proc/sys/kernel/core_pattern could not be read', 'check that /proc is mounted');
  if (p.startsWith('|')) {
    const prog = p.slice(1).trim().split(/\s+/)[0] ?? '';
    if (/systemd-coredump/.test(prog)) {
      return warn(
        'core-pattern',
        `piped to systemd-coredump (${p})`,
        'crash cores go to systemd-coredump: kept compressed under /var/lib/systemd/coredump or in the journal, capped and rotated by coredump.conf, on the disk being investigated; existing cores may be evidence and may be rotated away',
        'collect existing cores first (coredumpctl list; coredumpctl dump PID -o FILE to external storage); to keep new cores off the disk: sysctl kernel.core_pattern=/mnt/external/core.%e.%p.%t',
      );
    }
    if (/apport/.test(prog)) {
      return warn('core-pattern', `piped to apport (${p})`, 'crash cores go to apport, which writes reports under /var/crash on the disk being investigated and drops cores of unpackaged programs', 'collect /var/crash first; to keep raw cores: sysctl kernel.core_pattern=/mnt/external/core.%e.%p.%t');
    }
    return warn('core-pattern', `piped to ${prog}`, `crash cores are handed to ${prog}; where they end up depends on that program`, 'find out where it stores cores and collect them; or sysctl kernel.core_pattern=/mnt/external/core.%e.%p.%t');
  }
  if (p === '') return warn('core-pattern', 'core_pattern is empty', 'the kernel writes no core files at all', 'sysctl kernel.core_pattern=/mnt/external/core.%e.%p.%t');
  return ok('core-pattern', `core files are written to "${p}" (relative names land in the crashing process's working directory)`);
}

async function suidDumpable(ctx: DoctorContext): Promise<DoctorResult> {
  const v = await ctx.read('proc/sys/fs/suid_dumpable');
  if (v === undefined) return warn('suid-dumpable', 'suid_dumpable unknown', '/proc/sys/fs/suid_dumpable could not be read', 'check that /proc is mounted');
  if (v === '0') {
    return warn(
      'suid-dumpable',
      'suid_dumpable=0',
      'processes that changed credentials (setuid programs, daemons that dropped privileges) are not dumpable: they leave no core when they crash, and their /proc/PID/mem is readable only with CAP_SYS_PTRACE',
      'run memdump process as root; for crash cores: sysctl fs.suid_dumpable=2 (such cores readable by root only)',
    );
  }
  if (v === '1') return ok('suid-dumpable', 'suid_dumpable=1 (debug: every process dumps core as its current user)');
  if (v === '2') return ok('suid-dumpable', 'suid_dumpable=2 (suidsafe: credential-changing processes dump core readable by root)');
  return warn('suid-dumpable', `suid_dumpable=${v}`, 'unknown value', 'check /proc/sys/fs/suid_dumpable');
}

/** The value of `key` in [Manager] of a systemd INI text; undefined when not set. Later assignments win. */
export function managerSetting(text: string, key: string): string | undefined {
  let section = '';
  let value: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    if (section === 'Manager' && eq > 0 && line.slice(0, eq).trim() === key) value = line.slice(eq + 1).trim();
  }
  return value;
}

/** Drop-in directories in systemd's precedence order: a file name in /etc masks the same name in /run and /usr/lib. */
const DROPIN_DIRS = ['etc/systemd/system.conf.d', 'run/systemd/system.conf.d', 'usr/lib/systemd/system.conf.d'];
const MAX_DROPINS = 256;

async function systemdCore(ctx: DoctorContext): Promise<DoctorResult> {
  const files: [string, string][] = [];
  const main = await ctx.read('etc/systemd/system.conf');
  if (main !== undefined) files.push(['/etc/systemd/system.conf', main]);
  const byName = new Map<string, string>();
  for (const d of DROPIN_DIRS) {
    const names = await fsp.readdir(join(ctx.root, d)).catch(() => [] as string[]);
    for (const n of names.filter((n) => n.endsWith('.conf')).slice(0, MAX_DROPINS)) if (!byName.has(n)) byName.set(n, `${d}/${n}`);
  }
  for (const n of [...byName.keys()].sort()) {
    const rel = byName.get(n)!;
    const text = await ctx.read(rel);
    if (text !== undefined) files.push(['/' + rel, text]);
  }
  if (files.length === 0) return ok('systemd-core', 'no systemd system.conf (not systemd, or defaults)');
  let value: string | undefined;
  let from = '';
  for (const [path, text] of files) {
    const v = managerSetting(text, 'DefaultLimitCORE');
    if (v !== undefined) [value, from] = [v, path];
  }
  if (value === undefined) return ok('systemd-core', 'DefaultLimitCORE not set (systemd\'s built-in default applies to services)');
  const soft = value.split(':')[0]!.trim();
  if (soft === '0') {
    return warn('systemd-core', `DefaultLimitCORE=${value} (${from})`, 'services started by systemd run with a core size limit of 0: a crashing service leaves no core', `set DefaultLimitCORE=infinity in ${from} and systemctl daemon-reexec (affects services started afterwards)`);
  }
  return ok('systemd-core', `DefaultLimitCORE=${value} (${from})`);
}

async function ulimitCore(ctx: DoctorContext): Promise<DoctorResult> {
  const text = await ctx.read('proc/self/limits');
  const lim = text === undefined ? undefined : parseLimits(text).find((l) => l.name === 'Max core file size');
  if (!lim) return warn('ulimit-core', 'ulimit -c unknown', '/proc/self/limits could not be read', 'run ulimit -c in the shell');
  if (lim.soft === '0') {
    return warn('ulimit-core', `ulimit -c is 0 (hard ${lim.hard})`, 'processes started from this shell leave no core when they crash (memdump process is unaffected: it writes its own core)', lim.hard === '0' ? 'the hard limit is 0 too: raise it as root (ulimit -Hc unlimited)' : 'ulimit -c unlimited');
  }
  return ok('ulimit-core', `ulimit -c is ${lim.soft}${lim.units && lim.soft !== 'unlimited' ? ` ${lim.units}` : ''}`);
}
