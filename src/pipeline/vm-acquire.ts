import { execFile } from 'node:child_process';
import { constants, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MemdumpError, fromSystemError, isMemdumpError } from '../core/errors.js';
import { rangeToJson } from '../core/ranges.js';
import { openImage } from '../formats/registry.js';
import type { ContainerWriter, FormatSpec } from '../formats/types.js';
import { ImageSource } from '../sources/image.js';
import { QmpClient, type QmpObject } from '../sources/qmp-client.js';
import { FifoReader, QemuDumpSource, STREAM_FATAL, makeFifo, readDumpHeaders } from '../sources/qmp-dump.js';
import type { PhysicalSource, SourceKind } from '../sources/types.js';
import { type JobOptions, type JobResult, runJob } from './job.js';

/** What the caller decides (output, format, digests, …); the VM side fills in source, map and notes. */
export type VmJobOptions = Omit<JobOptions, 'source' | 'attempts' | 'lockdown' | 'ram' | 'notes' | 'context'>;

export interface VmQmpOptions {
  /** unix:/path/to/qmp.sock or the path. */
  qmp: string;
  /** Where QEMU finds the FIFO (QEMU running as another user); default a private 0700 directory. */
  fifoDir?: string;
  signal: AbortSignal;
  job: VmJobOptions;
  log?: (line: string) => void;
  /** Before the guest is paused: refuse early (output exists, no space) while nothing has been touched. */
  precheck?: (memoryBytes: bigint) => Promise<void>;
  /** How long to wait for QEMU to report the end of a dump we cut short, before resuming anyway. */
  settleTimeoutMs?: number;
}

export interface VmResult {
  job: JobResult;
  /** The guest should run and does not: the caller must say so loudly. */
  resumeError: string | null;
}

// the source kind the report shows; 'vm' is not yet in SourceKind (src/sources/types.ts), see the final report
const VM_KIND: SourceKind = 'vm';

/**
 * QEMU/KVM guest over QMP: pause, stream dump-guest-memory through a FIFO into the normal pipeline, resume.
 * The guest's state is restored on every path: success (as soon as QEMU confirms the dump, before the report is
 * written), failure, SIGINT/SIGTERM (at once, without waiting for the copy to unwind); a guest that was paused
 * before we came stays paused. QEMU refuses `cont` while a dump runs, so a dump we abandon is ended first by
 * closing our end of the FIFO (QEMU's next write fails with EPIPE).
 */
export async function acquireVmQmp(o: VmQmpOptions): Promise<VmResult> {
  const log = o.log ?? (() => undefined);
  const settleMs = o.settleTimeoutMs ?? 60_000;
  const qmp = await QmpClient.connect(o.qmp);
  const vm: Record<string, unknown> = { hypervisor: 'qemu', via: 'qmp', socket: qmp.path };
  let reader: FifoReader | undefined;
  let removeFifo: (() => Promise<void>) | undefined;
  let dumpStarted = false;
  let pausedAt: number | undefined;
  let wasRunning = false;
  let resumeError: string | null = null;
  let dumpEnd: Promise<void> | undefined;
  let resuming: Promise<void> = Promise.resolve();

  /** Once a dump runs: end it (unless `complete`: it ended by itself) and record QEMU's verdict. Idempotent. */
  const endDump = (complete: boolean): Promise<void> => {
    if (!dumpStarted) return Promise.resolve();
    return (dumpEnd ??= (async () => {
      if (!complete) reader?.destroy(new MemdumpError('E_INTERRUPTED', 'the VM dump was abandoned'));
      vm['dump'] = await dumpOutcome(qmp, settleMs);
    })());
  };
  /** `cont` if we paused a running guest and have not resumed it yet; safe to call from every path, any number of times. */
  const restore = (): Promise<void> =>
    (resuming = resuming.then(async () => {
      if (!wasRunning || pausedAt === undefined || vm['resumed'] === true || resumeError) return;
      try {
        await resume(qmp, settleMs);
        vm['resumed'] = true;
        vm['pausedMs'] = Math.round(performance.now() - pausedAt);
      } catch (e) {
        resumeError = (e as Error).message;
        vm['resumeError'] = resumeError;
      }
    }));
  const settle = async (complete: boolean): Promise<void> => {
    try {
      await endDump(complete);
    } finally {
      await restore();
    }
  };
  /** The stream's last byte is in: QEMU's verdict and the resume come before the container is finished. */
  const atEnd = (): Promise<void> => settle(true);
  /** Checked as the container is finished: thrown there, the copy ends INCOMPLETE with this very message. */
  const verdict = (): void => {
    const d = vm['dump'] as { status: string; error: string | null } | undefined;
    if (d?.status !== 'completed') throw new MemdumpError('E_SOURCE_READ', `QEMU reports the dump ${d?.status ?? 'unknown'}${d?.error ? `: ${d.error}` : ''}`, { details: { dump: d ?? null } });
  };

  const onAbort = () => {
    log('stopping the VM dump and restoring the guest');
    settle(false).catch(() => undefined);
  };
  o.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const status = await qmp.execute<QmpObject>('query-status');
    wasRunning = status['running'] === true;
    const name = await qmp.execute<QmpObject>('query-name').catch(() => ({}) as QmpObject);
    const uuid = await qmp.execute<QmpObject>('query-uuid').catch(() => ({}) as QmpObject);
    const version = await qmp.execute<QmpObject>('query-version');
    const mem = await qmp.execute<QmpObject>('query-memory-size-summary');
    const cap = await qmp.execute<QmpObject>('query-dump-guest-memory-capability');
    const prior = await qmp.execute<QmpObject>('query-dump').catch(() => ({}) as QmpObject);
    const q = (version['qemu'] ?? {}) as { major?: number; minor?: number; micro?: number };
    const bytes = (v: unknown): bigint => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : 0n);
    const memoryBytes = bytes(mem['base-memory']) + bytes(mem['plugged-memory']);
    Object.assign(vm, {
      name: typeof name['name'] === 'string' ? name['name'] : null,
      uuid: typeof uuid['UUID'] === 'string' ? uuid['UUID'] : null,
      qemuVersion: `${q.major ?? '?'}.${q.minor ?? '?'}.${q.micro ?? '?'}${version['package'] ? ` ${String(version['package']).trim()}` : ''}`,
      memoryBytes: memoryBytes.toString(),
      statusBefore: String(status['status'] ?? 'unknown'),
      runningBefore: wasRunning,
      resumed: false,
      pausedMs: null,
    });
    const formats = Array.isArray(cap['formats']) ? cap['formats'] : [];
    if (!formats.includes('elf')) throw new MemdumpError('E_UNSUPPORTED', `this QEMU cannot write ELF memory dumps (it offers: ${formats.join(', ') || 'none'})`);
    if (prior['status'] === 'active') throw new MemdumpError('E_SOURCE_READ', 'QEMU is already writing a memory dump; wait for it to finish');
    await o.precheck?.(memoryBytes);

    const fifo = await makeFifo(o.fifoDir).catch((e: unknown) => {
      throw isMemdumpError(e) ? e : fromSystemError(e, `creating a FIFO in ${o.fifoDir ?? 'the temporary directory'}`);
    });
    removeFifo = fifo.remove;
    try {
      reader = FifoReader.open(fifo.path);
    } catch (e) {
      throw fromSystemError(e, `opening the FIFO ${fifo.path}`);
    }
    if (o.signal.aborted) throw new MemdumpError('E_INTERRUPTED', 'interrupted before the guest was paused');
    if (wasRunning) {
      await qmp.execute('stop');
      pausedAt = performance.now();
      if (o.signal.aborted) throw new MemdumpError('E_INTERRUPTED', 'interrupted as the guest was paused');
      log(vm['name'] ? `guest ${String(vm['name'])} paused` : 'guest paused');
    }
    try {
      await qmp.execute('dump-guest-memory', { paging: false, detach: true, protocol: `file:${fifo.path}` });
    } catch (e) {
      const desc = isMemdumpError(e) ? String(e.details['qmpDesc'] ?? e.message) : String(e);
      const hint = /open|permission|denied|access/i.test(desc) ? ` QEMU could not open the FIFO ${fifo.path}: if QEMU runs as another user, give --fifo-dir DIR with DIR writable by QEMU's group (e.g. install -d -m 2770 -g kvm DIR).` : '';
      throw new MemdumpError('E_SOURCE_READ', `dump-guest-memory failed: ${desc}.${hint}`, { cause: e });
    }
    dumpStarted = true;
    reader.writerAttached();
    if (o.signal.aborted) throw new MemdumpError('E_INTERRUPTED', 'interrupted as the dump started');
    const headers = await readDumpHeaders(reader);
    vm['memoryMap'] = headers.loads.map((l) => ({ ...rangeToJson(l), streamOffset: `0x${l.offset.toString(16)}` }));
    vm['elfMachine'] = headers.machine;
    vm['notes'] = headers.notes.length;
    if (headers.shortLoads > 0) vm['shortLoads'] = headers.shortLoads;

    const source = new QemuDumpSource({ path: `qmp:${qmp.path}`, kind: VM_KIND, reader, headers, info: { vm }, atEnd });
    const job = await runJob({
      ...o.job,
      source,
      attempts: [{ source: VM_KIND, path: `qmp:${qmp.path}`, ok: true }],
      lockdown: undefined,
      ram: source.ranges,
      notes: source.notes,
      context: undefined,
      format: holdUntilSettled(o.job.format, () => settle(false), verdict),
      policy: { ...o.job.policy, fatal: STREAM_FATAL, signal: o.signal },
    });
    await settle(false).catch(() => undefined);
    return { job, resumeError };
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    await settle(false).catch(() => undefined);
    reader?.destroy(new MemdumpError('E_INTERRUPTED', 'closed'));
    await removeFifo?.().catch(() => undefined);
    qmp.close();
    if (resumeError) log(`WARNING: the guest was running and could not be resumed: ${resumeError}; resume it by hand (QMP "cont" / virsh resume)`);
  }
}

/** DUMP_COMPLETED (or query-dump once the event window passes): QEMU's own verdict on the dump. */
async function dumpOutcome(qmp: QmpClient, timeoutMs: number): Promise<{ status: string; error: string | null; completed: string | null; total: string | null }> {
  const ev = await qmp.waitEvent('DUMP_COMPLETED', timeoutMs);
  if (ev) {
    const r = (ev.data['result'] ?? {}) as QmpObject;
    return { status: String(r['status'] ?? 'unknown'), error: typeof ev.data['error'] === 'string' ? ev.data['error'] : null, completed: r['completed'] == null ? null : String(r['completed']), total: r['total'] == null ? null : String(r['total']) };
  }
  const q = await qmp.execute<QmpObject>('query-dump').catch(() => ({}) as QmpObject);
  return { status: String(q['status'] ?? 'unknown'), error: 'no DUMP_COMPLETED event', completed: q['completed'] == null ? null : String(q['completed']), total: q['total'] == null ? null : String(q['total']) };
}

/** `cont`, retried while QEMU still winds the dump down ("There is a dump in process"). */
async function resume(qmp: QmpClient, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await qmp.execute('cont');
      return;
    } catch (e) {
      if (!/dump in process/i.test((e as Error).message) || performance.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * The container is neither finished nor abandoned before the guest's state is settled, so the report (built
 * right after) records whether and when the guest was resumed; and it is not finished at all unless QEMU
 * confirmed the dump.
 */
function holdUntilSettled(format: FormatSpec, settle: () => Promise<void>, verdict: () => void): FormatSpec {
  return {
    ...format,
    createWriter(out, plan) {
      const w = format.createWriter(out, plan);
      const wrapped: ContainerWriter = {
        begin: () => w.begin(),
        beginRange: (r) => w.beginRange(r),
        data: (c) => w.data(c),
        endRange: () => w.endRange(),
        end: async () => {
          await settle().catch(() => undefined);
          verdict();
          await w.end();
        },
        abort: async () => {
          await settle().catch(() => undefined);
          await w.abort?.();
        },
      };
      if (w.badBytes) wrapped.badBytes = (a, l) => w.badBytes!(a, l);
      if (w.mediaWritten) wrapped.mediaWritten = () => w.mediaWritten!();
      if (w.summary) wrapped.summary = () => w.summary!();
      return wrapped;
    },
  };
}

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
    await new Promise<void>((res, rej) =>
      execFile(virsh, args, { maxBuffer: 1 << 20, ...(o.job.policy.signal ? { signal: o.job.policy.signal } : {}) }, (e, _out, stderr) => {
        if (!e) return res();
        const errno = (e as NodeJS.ErrnoException).code;
        if (o.job.policy.signal?.aborted) return rej(new MemdumpError('E_INTERRUPTED', `interrupted while virsh dumped ${o.domain}`));
        if (errno === 'ENOENT') return rej(new MemdumpError('E_NOT_FOUND', `${virsh} not found (install libvirt-clients)`, { cause: e }));
        const msg = String(stderr).trim().split('\n').pop() || e.message;
        rej(new MemdumpError(/not found|no domain|failed to get domain/i.test(msg) ? 'E_NOT_FOUND' : /denied|permission/i.test(msg) ? 'E_PERMISSION' : 'E_SOURCE_READ', `virsh dump of ${o.domain} failed: ${msg}`, { cause: e, details: { stderr: String(stderr).slice(-2000) } }));
      }),
    );
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
    return { job, resumeError: null };
  } finally {
    await source?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
  }
}

export function outputDirOf(out: string): string {
  return out === '-' ? '.' : dirname(out);
}
