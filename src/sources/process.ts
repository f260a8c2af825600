import { close, open, readFileSync } from 'node:fs';
import { MemdumpError, fromSystemError } from '../core/errors.js';
import { preadAt } from '../core/file.js';
import type { Range } from '../core/ranges.js';
import { SyscallError, processVmRead } from './native.js';
import type { PhysicalSource } from './types.js';

/**
 * A live process's memory as a source: process_vm_readv (one copy, no file descriptor, 3.5–8 GB/s here) with
 * /proc/PID/mem as the fallback when the syscall is unavailable (seccomp profiles of some container runtimes
 * block it while leaving /proc readable). Addresses are the process's virtual addresses.
 */
export class ProcessSource implements PhysicalSource {
  readonly kind = 'process' as const;
  readonly pageSize = 4096;
  readonly notes = [];
  private memFd: number | undefined;
  private method: 'process_vm_readv' | '/proc/PID/mem' = 'process_vm_readv';

  private constructor(
    readonly pid: number,
    readonly ranges: readonly Range[],
    private readonly procRoot: string,
  ) {}

  static async open(pid: number, ranges: readonly Range[], procRoot = '/proc'): Promise<ProcessSource> {
    const s = new ProcessSource(pid, ranges, procRoot);
    await s.probe();
    return s;
  }

  get path(): string {
    return this.method === 'process_vm_readv' ? `process_vm_readv(${this.pid})` : `${this.procRoot}/${this.pid}/mem`;
  }

  get info(): Record<string, unknown> {
    return { pid: this.pid, method: this.method, addressSpace: 'virtual' };
  }

  /** Choose the read method once, on the first readable range, so a refusal is not mistaken for a bad page. */
  private async probe(): Promise<void> {
    const first = this.ranges[0];
    if (!first) return;
    const b = Buffer.alloc(1);
    try {
      processVmRead(this.pid, first.start, b, 1);
      return;
    } catch (e) {
      const code = e instanceof SyscallError ? e.code : 'EUNKNOWN';
      if (code === 'ESRCH') throw new MemdumpError('E_NOT_FOUND', `process ${this.pid} exited before its memory could be read`);
      if (code === 'EFAULT') return; // the method works, that page does not: the read policy will handle it
      if (code !== 'EPERM' && code !== 'ENOSYS') throw new MemdumpError('E_SOURCE_READ', `process_vm_readv on ${this.pid}: ${code}`);
    }
    this.memFd = await new Promise<number>((resolve, reject) =>
      open(`${this.procRoot}/${this.pid}/mem`, 'r', (e, fd) => (e ? reject(permissionHint(fromSystemError(e, `opening ${this.procRoot}/${this.pid}/mem`))) : resolve(fd))),
    );
    this.method = '/proc/PID/mem';
  }

  async read(addr: bigint, buf: Buffer, length: number): Promise<number> {
    if (this.memFd !== undefined) return preadAt(this.memFd, buf, 0, length, addr);
    try {
      return processVmRead(this.pid, addr, buf, length);
    } catch (e) {
      // the read policy decides what an errno means; it only needs `.code`
      if (e instanceof SyscallError) throw Object.assign(new Error(e.message), { code: e.code });
      throw e;
    }
  }

  async close(): Promise<void> {
    const fd = this.memFd;
    this.memFd = undefined;
    if (fd !== undefined) await new Promise<void>((resolve) => close(fd, () => resolve()));
  }
}

/** Why reading another process's memory is refused, in terms a user can act on. */
function permissionHint(e: MemdumpError): MemdumpError {
  if (e.code !== 'E_PERMISSION') return e;
  let yama = '';
  try {
    const scope = readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim();
    if (scope !== '0') yama = ` Yama ptrace_scope is ${scope}: only ${scope === '1' ? 'descendants (or processes that allowed it with PR_SET_PTRACER)' : 'root'} can be read;`;
  } catch {
    // no Yama on this kernel
  }
  return new MemdumpError('E_PERMISSION', `${e.message}.${yama} run as root (or with CAP_SYS_PTRACE), or as the process's owner`, { details: e.details, cause: e });
}
