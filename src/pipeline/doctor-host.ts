import { machine } from 'node:os';
import { join } from 'node:path';
import { isMemdumpError } from '../core/errors.js';
import { lockdownMode } from '../sources/lockdown.js';
import { parseMountinfo } from '../sources/device-mounts.js';
import { hexMask, parseStatus } from '../sources/proc-info.js';
import { AUTO_ORDER, selectSource } from '../sources/select.js';
import type { SourceAttempt } from '../sources/types.js';
import { type DoctorContext, type DoctorResult, fail, ok, warn } from './doctor.js';
import { fmt } from './space.js';

/** Bit numbers from linux/capability.h. */
export const CAP = { SYS_RAWIO: 17, SYS_PTRACE: 19, SYS_ADMIN: 21 } as const;

const SUDO = 'run memdump as root (sudo memdump …)';

export async function hostChecks(ctx: DoctorContext): Promise<DoctorResult[]> {
  const status = await ctx.read('proc/self/status');
  const capEff = status === undefined ? undefined : hexMask(parseStatus(status)['CapEff']);
  const has = (bit: number) => capEff !== undefined && (capEff & (1n << BigInt(bit))) !== 0n;
  const lockdownText = await ctx.read('sys/kernel/security/lockdown');
  const lockdown = await lockdownMode(join(ctx.root, 'sys/kernel/security/lockdown'));
  return [
    privileges(ctx, capEff, has),
    ...capabilities(capEff, has),
    await kernel(ctx),
    lockdownCheck(lockdown, lockdownText !== undefined),
    ...(await sources(ctx)),
    await yama(ctx, has(CAP.SYS_PTRACE)),
    await container(ctx),
  ];
}

function privileges(ctx: DoctorContext, capEff: bigint | undefined, has: (b: number) => boolean): DoctorResult {
  if (ctx.euid === 0) return ok('privileges', 'running as root (euid 0)');
  if (has(CAP.SYS_RAWIO) && has(CAP.SYS_ADMIN)) {
    return warn('privileges', `not root (euid ${ctx.euid}) but CAP_SYS_RAWIO and CAP_SYS_ADMIN are effective`, 'capabilities open /proc/kcore and show /proc/iomem, but files owned by root (device nodes, other users\' /proc entries) may still refuse', SUDO);
  }
  const capNote = capEff === undefined ? 'CapEff unknown' : `CapEff ${capEff.toString(16).padStart(16, '0')}`;
  return fail('privileges', `not root (euid ${ctx.euid}, ${capNote})`, 'reading physical memory needs root: /proc/kcore and /dev/mem demand CAP_SYS_RAWIO, and /proc/iomem shows zero addresses without CAP_SYS_ADMIN', SUDO);
}

function capabilities(capEff: bigint | undefined, has: (b: number) => boolean): DoctorResult[] {
  if (capEff === undefined) {
    return [warn('capabilities', 'cannot read CapEff from /proc/self/status', 'the effective capabilities decide which sources open', 'check that /proc is mounted (mount -t proc proc /proc)')];
  }
  const bounding = 'if root still lacks it, a container or a systemd unit dropped it: run on the host, or add the capability (docker run --cap-add …, CapabilityBoundingSet=)';
  return [
    has(CAP.SYS_ADMIN)
      ? ok('cap-sys-admin', 'CAP_SYS_ADMIN effective')
      : fail('cap-sys-admin', 'CAP_SYS_ADMIN missing', '/proc/iomem shows all-zero addresses without it, so the map of physical RAM is unknown', `${SUDO}; ${bounding}`),
    has(CAP.SYS_RAWIO)
      ? ok('cap-sys-rawio', 'CAP_SYS_RAWIO effective')
      : fail('cap-sys-rawio', 'CAP_SYS_RAWIO missing', 'the kernel refuses to open /proc/kcore and /dev/mem without it', `${SUDO}; ${bounding}`),
    has(CAP.SYS_PTRACE)
      ? ok('cap-sys-ptrace', 'CAP_SYS_PTRACE effective')
      : warn('cap-sys-ptrace', 'CAP_SYS_PTRACE missing', 'process dumps (memdump process) can read only this user\'s own, dumpable processes, and Yama may refuse even those', `${SUDO}; ${bounding}`),
  ];
}

/** Architectures whose /proc/kcore layout memdump's tests cover. */
const KNOWN_ARCH = new Set(['x86_64', 'aarch64']);

async function kernel(ctx: DoctorContext): Promise<DoctorResult> {
  const release = (await ctx.read('proc/sys/kernel/osrelease')) ?? /^Linux version (\S+)/.exec((await ctx.read('proc/version')) ?? '')?.[1];
  // /proc/sys/kernel/arch exists on 5.x+ kernels; on a live host uname(2) answers when it does not
  const arch = (await ctx.read('proc/sys/kernel/arch')) ?? (ctx.live ? machine() : undefined);
  if (release === undefined) {
    return warn('kernel', 'kernel release unknown', 'neither /proc/sys/kernel/osrelease nor /proc/version could be read', 'check that /proc is mounted');
  }
  const summary = `Linux ${release}${arch ? ` ${arch}` : ''}`;
  if (arch && !KNOWN_ARCH.has(arch)) {
    return warn('kernel', summary, `${arch} is not an architecture memdump is tested on (x86_64, aarch64)`, 'verify the dump (memdump verify, and open it in Volatility) before relying on it');
  }
  return ok('kernel', summary);
}

function lockdownCheck(mode: string | undefined, present: boolean): DoctorResult {
  if (!present) return ok('lockdown', 'no lockdown file (lockdown LSM not enabled or securityfs not mounted)');
  if (mode === undefined || mode === 'none') return ok('lockdown', 'lockdown=none');
  const fix = 'boot without lockdown (Secure Boot off, or lockdown=none where the kernel allows it), or capture from the hypervisor / with a signed kernel module such as LiME';
  if (mode === 'integrity') return warn('lockdown', 'lockdown=integrity', 'integrity mode blocks /dev/mem; /proc/kcore still works', 'use /proc/kcore (the default, --source auto)');
  if (mode === 'confidentiality') return fail('lockdown', 'lockdown=confidentiality', 'confidentiality mode blocks /proc/kcore and /dev/mem: no userland acquisition of physical memory is possible', fix);
  return warn('lockdown', `lockdown=${mode}`, 'an unknown lockdown mode', fix);
}

const SOURCE_FIX: Record<string, string> = {
  E_PERMISSION: SUDO,
  E_KCORE_LOCKED: 'kernel lockdown blocks this source: see the lockdown line',
  E_IOMEM_HIDDEN: SUDO,
};

function sourceFix(a: SourceAttempt): string {
  if (a.code && SOURCE_FIX[a.code]) return SOURCE_FIX[a.code]!;
  if (a.code === 'E_NOT_FOUND') {
    if (a.source === 'crash') return 'on RHEL-family hosts: modprobe crash; elsewhere use another source';
    if (a.source === 'kcore') return 'the kernel was built without CONFIG_PROC_KCORE, or a container masks it: run on the host';
    return 'the kernel was built without /dev/mem (CONFIG_DEVMEM=n): use another source';
  }
  return 'see the reason; try another source (--source)';
}

/** Each physical source opened through select.ts, so the reasons are exactly what `acquire` would report. */
async function sources(ctx: DoctorContext): Promise<DoctorResult[]> {
  const attempts: SourceAttempt[] = [];
  let ramBytes: bigint | undefined;
  for (const kind of AUTO_ORDER) {
    try {
      const sel = await selectSource({ choice: kind, root: ctx.root });
      ramBytes = sel.ram.reduce((n, r) => n + (r.end - r.start), 0n);
      attempts.push(...sel.attempts);
      await sel.source.close();
    } catch (e) {
      const listed = isMemdumpError(e) ? (e.details?.['attempts'] as SourceAttempt[] | undefined) : undefined;
      if (listed) attempts.push(...listed);
      else {
        const code = isMemdumpError(e) ? e.code : 'E_INTERNAL';
        const path = join(ctx.root, kind === 'kcore' ? 'proc/kcore' : kind === 'crash' ? 'dev/crash' : 'dev/mem');
        attempts.push({ source: kind, path, ok: false, code, reason: (e as Error)?.message ?? String(e) });
      }
    }
  }
  const usable = attempts.filter((a) => a.ok).map((a) => a.source);
  return attempts.map((a) => {
    const id = `source-${a.source}`;
    if (a.ok) return ok(id, `${a.path} opens${ramBytes !== undefined ? ` (${fmt(ramBytes)} of System RAM in /proc/iomem)` : ''}`);
    const reason = `${a.code ?? 'error'}: ${a.reason ?? 'unknown'}`;
    if (usable.length > 0) return warn(id, `${a.source} unusable; ${usable[0]} works`, reason, `nothing to do: acquire uses ${usable[0]}`);
    return fail(id, `${a.source} unusable`, reason, sourceFix(a));
  });
}

async function yama(ctx: DoctorContext, ptrace: boolean): Promise<DoctorResult> {
  const v = await ctx.read('proc/sys/kernel/yama/ptrace_scope');
  if (v === undefined) return ok('yama', 'Yama not enabled (no ptrace_scope)');
  const scope = Number(v);
  if (scope === 0) return ok('yama', 'ptrace_scope=0 (classic ptrace permissions)');
  if (scope === 1) return ok('yama', 'ptrace_scope=1 (restricted to descendants; root with CAP_SYS_PTRACE is exempt)');
  if (scope === 2) {
    const s = 'ptrace_scope=2 (admin-only attach)';
    return ptrace ? ok('yama', s) : warn('yama', s, 'only a process with CAP_SYS_PTRACE may read other processes\' memory', SUDO);
  }
  if (scope === 3) {
    return fail('yama', 'ptrace_scope=3 (no attach)', 'no process, not even root, may ptrace or read another process\'s memory: process dumps are impossible, and the setting cannot be lowered until reboot', 'acquire physical memory instead (memdump acquire) and extract processes from it in Volatility');
  }
  return warn('yama', `ptrace_scope=${v}`, 'unknown value', 'check /proc/sys/kernel/yama/ptrace_scope');
}

/** Signs, each with what it says; any one is enough to call it a container. */
async function container(ctx: DoctorContext): Promise<DoctorResult> {
  const signs: string[] = [];
  let engine: string | undefined;
  if ((await ctx.read('.dockerenv')) !== undefined) (signs.push('/.dockerenv exists'), (engine ??= 'docker'));
  if ((await ctx.read('run/.containerenv')) !== undefined) (signs.push('/run/.containerenv exists'), (engine ??= 'podman'));
  const cg = (await ctx.read('proc/1/cgroup')) ?? '';
  const cgm = /(docker|kubepods|containerd|libpod|lxc|crio)/.exec(cg);
  if (cgm) (signs.push(`/proc/1/cgroup names ${cgm[1]}`), (engine ??= cgm[1]));
  const env = (await ctx.read('proc/1/environ')) ?? '';
  const envm = /(?:^|\0)container=([^\0]*)/.exec(env);
  if (envm) (signs.push(`PID 1 has container=${envm[1]}`), (engine ??= envm[1]));
  const rootMount = parseMountinfo((await ctx.read('proc/self/mountinfo')) ?? '').find((m) => m.mountPoint === '/');
  if (rootMount && rootMount.fsType === 'overlay') signs.push('/ is an overlay filesystem');
  if (signs.length === 0) return ok('container', 'no container detected');
  // overlay alone is also what live-boot media use, so it is a hint rather than a verdict
  if (signs.length === 1 && rootMount?.fsType === 'overlay') {
    return warn('container', '/ is an overlay filesystem (container or live system?)', 'inside a container /proc/kcore is usually masked and /dev/mem absent', 'if this is a container, run memdump on the host');
  }
  return warn(
    'container',
    `inside a container (${engine ?? 'unknown engine'}): ${signs.join('; ')}`,
    'containers mask /proc/kcore, lack /dev/mem and /dev/crash, and drop CAP_SYS_RAWIO; physical memory belongs to the host kernel, so a capture that works here captures every container on the host',
    'run memdump on the host (or in a privileged container with the host\'s /proc and /dev: docker run --privileged --pid=host -v /proc:/host/proc …, then --root)',
  );
}
