import { promises as fs } from 'node:fs';
import { isAbsolute } from 'node:path';
import { MemdumpError } from '../core/errors.js';
import { type Change, type Runner, sysctlPath } from './apply.js';
import { lstatOrNull, snapshot, under } from './state.js';

export const SYSTEMD_DROPIN = '/etc/systemd/system.conf.d/50-memdump-coredump.conf';
/** sysctl.d files are applied in file-name order across /etc, /run and /usr/lib: 99 sorts after systemd's 50-coredump.conf. */
export const SYSCTL_DROPIN = '/etc/sysctl.d/99-memdump-coredump.conf';
export const DEFAULT_CRASH_DIR = '/var/crash';
/** The kernel's CORENAME_MAX_SIZE: a longer core_pattern is silently truncated. */
const CORE_PATTERN_MAX = 127;

export interface Detection {
  /** The crash handler that owns core_pattern now (pattern points at it), or that is installed and may claim it. */
  handler: 'systemd-coredump' | 'apport' | null;
  active: boolean;
  corePattern: string | null;
  evidence: string[];
}

const APPORT_FILES = ['/usr/share/apport/apport', '/lib/systemd/system/apport.service', '/usr/lib/systemd/system/apport.service', '/etc/init.d/apport'];
const COREDUMP_FILES = ['/usr/lib/systemd/systemd-coredump', '/lib/systemd/systemd-coredump', '/usr/lib/sysctl.d/50-coredump.conf'];

async function readText(root: string, path: string): Promise<string | null> {
  const b = await snapshot(root, path);
  return b.exists && b.content !== null ? Buffer.from(b.content, 'base64').toString('utf8') : null;
}

export async function detectCrashHandlers(root: string): Promise<Detection> {
  const raw = await readText(root, sysctlPath('kernel.core_pattern'));
  const corePattern = raw === null ? null : raw.replace(/\n$/, '');
  const evidence: string[] = [];
  const present = async (paths: string[]) => {
    const found: string[] = [];
    for (const p of paths) if (await lstatOrNull(under(root, p)).catch(() => null)) found.push(p);
    return found;
  };
  const cdFiles = await present(COREDUMP_FILES);
  const apFiles = await present(APPORT_FILES);
  let handler: Detection['handler'] = null;
  let active = false;
  if (corePattern && /^\|\s*\S*systemd-coredump\b/.test(corePattern)) [handler, active] = ['systemd-coredump', true];
  else if (corePattern && /^\|\s*\S*apport\b/.test(corePattern)) [handler, active] = ['apport', true];
  else if (apFiles.length) handler = 'apport';
  else if (cdFiles.length) handler = 'systemd-coredump';
  if (active) evidence.push(`kernel.core_pattern is ${JSON.stringify(corePattern)}`);
  for (const f of handler === 'apport' ? apFiles : handler === 'systemd-coredump' ? cdFiles : []) evidence.push(`${f} exists`);
  return { handler, active, corePattern, evidence };
}

export interface CoredumpOptions {
  root: string;
  /** A directory for core files, or 'memdump' for the pipe handler. */
  pattern: string;
  /** Where `memdump core-handler` writes (pipe mode only). */
  handlerDir?: string;
  /** argv the kernel should exec for the pipe handler: [node, .../main.js] (absolute paths). */
  handlerArgv: readonly string[];
  override: boolean;
}

export interface CoredumpPlan {
  changes: Change[];
  detection: Detection;
  notes: string[];
  corePattern: string;
  crashDir: string;
}

export function corePatternFor(o: Pick<CoredumpOptions, 'pattern' | 'handlerDir' | 'handlerArgv'>): { pattern: string; dir: string } {
  if (o.pattern === 'memdump') {
    const dir = o.handlerDir ?? DEFAULT_CRASH_DIR;
    // options first, then "--": %e is the process name, which the crashing user chooses ("-h", "--dir=/x"), and
    // must never be parsed as an option (the core would be lost)
    const words = [...o.handlerArgv, 'core-handler', ...(dir === DEFAULT_CRASH_DIR ? [] : ['--dir', dir]), '--', '%P', '%e', '%t'];
    // the kernel splits the pattern on spaces and execs argv[0] directly (no shell, no PATH)
    for (const w of [...o.handlerArgv, dir]) {
      if (!isAbsolute(w) || /\s/.test(w)) throw new MemdumpError('E_USAGE', `the pipe handler needs absolute paths without spaces; got ${JSON.stringify(w)}`);
    }
    const pattern = '|' + words.join(' ');
    if (pattern.length > CORE_PATTERN_MAX) throw new MemdumpError('E_USAGE', `core_pattern would be ${pattern.length} bytes; the kernel keeps only ${CORE_PATTERN_MAX}. Install memdump under a shorter path (or symlink node and memdump into /usr/local/bin)`);
    return { pattern, dir };
  }
  const dir = o.pattern.replace(/\/+$/, '') || '/';
  if (dir.split('/').some((c) => c === '..' || c === '.')) throw new MemdumpError('E_USAGE', `--pattern must not contain "." or ".." components; got ${JSON.stringify(o.pattern)}`);
  if (!isAbsolute(dir) || /\s|%/.test(dir)) throw new MemdumpError('E_USAGE', `--pattern must be "memdump" or an absolute directory without spaces or %; got ${JSON.stringify(o.pattern)}`);
  const pattern = `${dir}/core.%e.%p.%t`;
  if (pattern.length > CORE_PATTERN_MAX) throw new MemdumpError('E_USAGE', `core_pattern ${pattern} is longer than the kernel's ${CORE_PATTERN_MAX} bytes`);
  return { pattern, dir };
}

export const SYSTEMD_CONTENT = '# Written by "memdump config coredumps --apply"; undo with "memdump config coredumps --revert".\n# Lets every service dump core (the default limit is 0 for most units).\n[Manager]\nDefaultLimitCORE=infinity\n';

export async function planCoredumps(o: CoredumpOptions): Promise<CoredumpPlan> {
  const { pattern, dir } = corePatternFor(o);
  const detection = await detectCrashHandlers(o.root);
  const notes: string[] = [];
  const changes: Change[] = [];
  const keepHandler = detection.active && !o.override && detection.corePattern !== pattern;
  if (keepHandler) {
    notes.push(
      `${detection.handler} handles core dumps on this host (${detection.evidence.join('; ')}). kernel.core_pattern is left alone: ` +
        (detection.handler === 'systemd-coredump' ? 'cores are kept by systemd-coredump (list them with "coredumpctl list", extract with "coredumpctl dump PID -o FILE").' : 'apport writes crash reports to /var/crash/*.crash (unpack with "apport-unpack").') +
        ' Pass --override to replace it with ' + JSON.stringify(pattern) + ' (revert puts the current one back).',
    );
  }
  if (detection.handler === 'apport' && (o.override || !detection.active)) notes.push('apport rewrites kernel.core_pattern whenever its service starts: disable it ("systemctl disable --now apport") or re-run this after it starts.');
  if (detection.handler === 'systemd-coredump' && o.override) notes.push(`systemd's /usr/lib/sysctl.d/50-coredump.conf is overridden at boot by ${SYSCTL_DROPIN} (later file name wins).`);

  const current = async (key: string) => (await readText(o.root, sysctlPath(key)))?.replace(/\n$/, '') ?? null;
  const sysctls: [string, string, string][] = [];
  if (!keepHandler) sysctls.push(['kernel.core_pattern', pattern, o.pattern === 'memdump' ? 'cores are piped to memdump core-handler, which writes them hashed and reported' : `cores are written to ${dir}`]);
  sysctls.push(['fs.suid_dumpable', '2', 'setuid and privilege-changing processes dump too (root-only readable cores; needs an absolute or pipe core_pattern)']);

  const systemd = await readText(o.root, SYSTEMD_DROPIN);
  const systemdMode = (await snapshot(o.root, SYSTEMD_DROPIN)) as { mode?: number };
  if (systemd !== SYSTEMD_CONTENT || systemdMode.mode !== 0o644) {
    changes.push({ kind: 'file', path: SYSTEMD_DROPIN, content: SYSTEMD_CONTENT, mode: 0o644, why: 'systemd: no core size limit for services (DefaultLimitCORE=infinity)' });
  }
  const crash = await snapshot(o.root, dir);
  if (crash.exists && crash.type !== 'dir') throw new MemdumpError('E_USAGE', `${dir} exists under ${o.root} and is not a directory; choose another --pattern/--dir`);
  // The pipe handler runs as root: its directory stays private. A plain pattern needs 1777 (the kernel writes as
  // the crashing user), but only on /var/crash or a directory created for it: making an existing /etc or /
  // world-writable would hand root to any user.
  const mode = o.pattern === 'memdump' ? 0o700 : 0o1777;
  const pipeDirExists = o.pattern === 'memdump' && crash.exists; // root writes there whatever its mode: leave it as it is
  if (crash.exists && crash.mode !== mode && dir !== DEFAULT_CRASH_DIR && !pipeDirExists) {
    throw new MemdumpError('E_USAGE', `${dir} already exists (mode ${(crash.mode ?? 0).toString(8)}); memdump will not change the mode of an existing directory other than ${DEFAULT_CRASH_DIR}: choose a new directory`);
  }
  if (!pipeDirExists && (!crash.exists || crash.mode !== mode)) changes.push({ kind: 'dir', path: dir, mode, why: mode === 0o700 ? `${dir}: private to root, where the pipe handler (running as root) stores cores` : `${dir}: world-writable with the sticky bit, as the kernel writes cores as the crashing user` });

  const conf = '# Written by "memdump config coredumps --apply"; undo with "memdump config coredumps --revert".\n' + sysctls.map(([k, v]) => `${k} = ${v}\n`).join('');
  const confNow = await readText(o.root, SYSCTL_DROPIN);
  if (confNow !== conf) changes.push({ kind: 'file', path: SYSCTL_DROPIN, content: conf, mode: 0o644, why: 'the same sysctl values at every boot' });
  for (const [k, v, why] of sysctls) {
    const now = await current(k);
    // an offline tree (a mounted image, a container rootfs) has no /proc/sys: the sysctl.d file applies at its next boot
    if (now === null) notes.push(`${sysctlPath(k)} does not exist under ${o.root}: ${k} is only set at the next boot, by ${SYSCTL_DROPIN}`);
    else if (now !== v) changes.push({ kind: 'sysctl', key: k, value: v, why });
  }
  if (changes.some((c) => c.kind === 'file' && c.path === SYSTEMD_DROPIN)) changes.push({ kind: 'command', argv: ['systemctl', 'daemon-reexec'], why: 'make systemd re-read system.conf.d (running services keep their limit until restarted)' });
  return { changes, detection, notes, corePattern: keepHandler ? (detection.corePattern ?? '') : pattern, crashDir: dir };
}

/** After revert the systemd manager must drop our DefaultLimitCORE again. */
export function coredumpRevertCommands(entries: readonly { path: string }[]): string[][] {
  return entries.some((e) => e.path === SYSTEMD_DROPIN) ? [['systemctl', 'daemon-reexec']] : [];
}

/**
 * The live runner: only on the real root, and only when the tool exists (containers and minimal hosts lack
 * systemctl). Anything else is reported as not run, never silently skipped.
 */
export function hostRunner(root: string, exec: (argv: readonly string[]) => Promise<{ code: number | null; message: string }>): Runner {
  return async (argv) => {
    if (root !== '/') return { ran: false, code: null, message: `not run: --root ${root} is not the live host` };
    const tool = argv[0]!;
    let found: string | undefined;
    for (const d of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
      if (await fs.access(`${d}/${tool}`).then(() => true, () => false)) {
        found = `${d}/${tool}`;
        break;
      }
    }
    if (!found) return { ran: false, code: null, message: `not run: ${tool} is not installed` };
    const r = await exec([found, ...argv.slice(1)]);
    return { ran: true, ...r };
  };
}
