import { execFile } from 'node:child_process';
import { constants, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MemdumpError } from '../core/errors.js';
import { rangeToJson } from '../core/ranges.js';
import { openImage } from '../formats/registry.js';
import { ImageSource } from '../sources/image.js';
import type { PhysicalSource, SourceKind } from '../sources/types.js';
import { runJob } from './job.js';
import type { VmJobOptions, VmResult } from './vm-acquire.js';

const VM_KIND: SourceKind = 'vm';

export interface VmLibvirtOptions {
  domain: string;
  /** The evidence path the job writes (the temporary ELF goes beside it); '-' = the current directory. */
  outputDir: string;
  virsh?: string;
  connect?: string;
  job: VmJobOptions;
  log?: (line: string) => void;
}

/**
 * libvirt: `virsh dump --memory-only --format elf` into a temporary file beside the output (written by the libvirt
 * daemon, so it needs that daemon's access to the directory and the space of one extra copy), then the same
 * pipeline as `convert`; the temporary file is removed whatever happens.
 */
export async function acquireVmLibvirt(o: VmLibvirtOptions): Promise<VmResult> {
  const tmp = join(o.outputDir, `.memdump-libvirt-${process.pid}-${Math.random().toString(36).slice(2, 10)}.elf`);
  // reserve the name (O_EXCL, 0600, no symlink) so nobody else can plant a file or link there first
  const fh = await fsp.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  await fh.close();
  let source: PhysicalSource | undefined;
  try {
    const virsh = o.virsh ?? 'virsh';
    const args = [...(o.connect ? ['--connect', o.connect] : []), 'dump', '--memory-only', '--format', 'elf', o.domain, tmp];
    o.log?.(`${virsh} ${args.join(' ')}`);
    const started = performance.now();
    const signal = o.job.policy.signal;
    if (signal?.aborted) throw new MemdumpError('E_INTERRUPTED', `interrupted before virsh dumped ${o.domain}`);
    await new Promise<void>((res, rej) => {
      const child = execFile(virsh, args, { maxBuffer: 1 << 20 }, (e, _out, stderr) => {
        signal?.removeEventListener('abort', cancel);
        if (!e) return res();
        const errno = (e as NodeJS.ErrnoException).code;
        if (signal?.aborted) return rej(new MemdumpError('E_INTERRUPTED', `interrupted while virsh dumped ${o.domain}`));
        if (errno === 'ENOENT') return rej(new MemdumpError('E_NOT_FOUND', `${virsh} not found (install libvirt-clients)`, { cause: e }));
        const msg = String(stderr).trim().split('\n').pop() || e.message;
        rej(new MemdumpError(/not found|no domain|failed to get domain/i.test(msg) ? 'E_NOT_FOUND' : /denied|permission/i.test(msg) ? 'E_PERMISSION' : 'E_SOURCE_READ', `virsh dump of ${o.domain} failed: ${msg}`, { cause: e, details: { stderr: String(stderr).slice(-2000) } }));
      });
      // virsh cancels the libvirt dump job on SIGINT (its Ctrl-C handler); SIGTERM would end virsh and leave the
      // job running in libvirtd, still writing (and the domain still paused). execFile's own `signal` sends SIGTERM.
      const cancel = () => child.kill('SIGINT');
      signal?.addEventListener('abort', cancel, { once: true });
    });
    const dumpMs = Math.round(performance.now() - started);
    await fsp.chmod(tmp, 0o600).catch(() => undefined);
    const img = await openImage(tmp);
    if (img.format !== 'elf') {
      await img.close();
      throw new MemdumpError('E_UNSUPPORTED', `virsh wrote a ${img.format} file, expected ELF`);
    }
    const vm = {
      hypervisor: 'qemu',
      via: 'libvirt',
      name: o.domain,
      uuid: null,
      memoryMap: img.runs.map(rangeToJson),
      notes: img.notes.length,
      dumpMs,
      temporaryFile: basename(tmp),
      pausedMs: null,
      note: 'virsh dump --memory-only pauses the domain for the dump and resumes it unless it was paused',
    };
    const inner = new ImageSource(img, tmp);
    const src: PhysicalSource = {
      kind: VM_KIND,
      path: `libvirt:${o.domain}`,
      ranges: inner.ranges,
      pageSize: inner.pageSize,
      notes: inner.notes,
      info: { vm, inputFormat: 'elf' },
      read: (a, b, l) => inner.read(a, b, l),
      close: () => inner.close(),
    };
    source = src;
    const job = await runJob({
      ...o.job,
      source,
      attempts: [{ source: VM_KIND, path: `libvirt:${o.domain}`, ok: true }],
      lockdown: undefined,
      ram: source.ranges,
      notes: source.notes,
      context: undefined,
    });
    return { job, guestWarning: null };
  } finally {
    await source?.close().catch(() => undefined);
    await fsp.unlink(tmp).catch(() => undefined);
  }
}

export function outputDirOf(out: string): string {
  return out === '-' ? '.' : dirname(out);
}
