import { closeSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { MemdumpError, errnoOf } from '../core/errors.js';
import { loadLibc } from './libc.js';

/**
 * A QEMU Machine Protocol client: JSON objects, one per line, over a unix socket. After the greeting the
 * monitor is in capabilities-negotiation mode until `qmp_capabilities` succeeds. Replies carry the `id` we sent,
 * so a late reply to a command that timed out is recognised and dropped instead of answering the next one.
 * Asynchronous events (DUMP_COMPLETED, STOP, RESUME, …) may arrive between replies; they are kept in order so
 * an event that arrives before anyone waits for it is not lost.
 */

export type QmpValue = null | boolean | number | string | QmpValue[] | { [k: string]: QmpValue };
export type QmpObject = { [k: string]: QmpValue };

export interface QmpEvent {
  /** Arrival order on this connection, from 1: tells events after a command from those before it. */
  seq: number;
  event: string;
  data: QmpObject;
  timestamp: { seconds: number; microseconds: number } | null;
}

export interface QmpConnectOptions {
  /** For the connection, the greeting and capability negotiation together. */
  timeoutMs?: number;
  /** Default per-command timeout. */
  commandTimeoutMs?: number;
}

/** A monitor line longer than this is not QMP (QEMU's largest replies, query-qmp-schema, are a few hundred KiB). */
const MAX_LINE = 16 << 20;
/** Events nobody waits for are dropped beyond this, oldest first, so a chatty guest cannot grow our memory. */
const MAX_EVENTS = 1024;

interface Pending {
  command: string;
  resolve: (v: QmpValue) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** "unix:/run/qmp.sock" or a plain path → the socket path. */
export function qmpSocketPath(spec: string): string {
  if (spec.startsWith('unix:')) return spec.slice(5).replace(/,.*$/, '');
  if (/^[a-z]+:/i.test(spec)) throw new MemdumpError('E_USAGE', `--qmp: only unix sockets are supported (unix:/path/to/qmp.sock), not "${spec}"`);
  return spec;
}

export class QmpClient {
  /** The greeting's version and capabilities. */
  greeting: QmpObject = {};
  private readonly events: QmpEvent[] = [];
  private readonly pending = new Map<string, Pending>();
  private readonly eventWaiters = new Set<() => void>();
  private buf = '';
  private nextId = 1;
  private eventSeq = 0;
  private closedWith: Error | undefined;

  private constructor(
    private readonly sock: Socket,
    readonly path: string,
    private readonly commandTimeoutMs: number,
  ) {}

  static async connect(spec: string, o: QmpConnectOptions = {}): Promise<QmpClient> {
    const path = qmpSocketPath(spec);
    const timeoutMs = o.timeoutMs ?? 10_000;
    const sock = createConnection(path);
    const c = new QmpClient(sock, path, o.commandTimeoutMs ?? 30_000);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new MemdumpError('E_SOURCE_READ', `QMP ${path}: no greeting within ${timeoutMs} ms (is this a QMP socket, and is another client holding it?)`)), timeoutMs);
      const fail = (e: Error) => {
        clearTimeout(timer);
        sock.destroy();
        reject(e);
      };
      sock.once('error', (e) => fail(connectError(path, e)));
      sock.setEncoding('utf8');
      let greeted = false;
      sock.on('data', (chunk: string) => {
        try {
          c.onData(chunk, (m) => {
            if (greeted) return false;
            if (!m['QMP'] || typeof m['QMP'] !== 'object') throw new MemdumpError('E_SOURCE_READ', `QMP ${path}: expected a greeting, got ${JSON.stringify(m).slice(0, 200)}`);
            greeted = true;
            c.greeting = m['QMP'] as QmpObject;
            c.execute('qmp_capabilities', undefined, timeoutMs).then(() => {
              clearTimeout(timer);
              sock.removeAllListeners('error');
              sock.on('error', (e) => c.shutdown(new MemdumpError('E_SOURCE_READ', `QMP ${path}: ${e.message}`, { cause: e })));
              resolve();
            }, fail);
            return true;
          });
        } catch (e) {
          c.shutdown(e as Error);
          fail(e as Error);
        }
      });
      sock.on('close', () => {
        c.shutdown(new MemdumpError('E_SOURCE_READ', `QMP ${path}: QEMU closed the connection`));
        if (!greeted) fail(new MemdumpError('E_SOURCE_READ', `QMP ${path}: connection closed before the greeting`));
      });
    });
    return c;
  }

  /** Run a command; its `return` value, or E_SOURCE_READ carrying QEMU's error class and description. */
  execute<T = QmpValue>(command: string, args?: QmpObject, timeoutMs = this.commandTimeoutMs): Promise<T> {
    return this.send<T>(command, args, timeoutMs, (line) => {
      this.sock.write(line);
    });
  }

  /**
   * `getfd`: hand QEMU the descriptor `fd` under `name` (SCM_RIGHTS on the monitor socket, sent with the command
   * bytes themselves, as QEMU takes the descriptors that arrived with the command). Nothing else is written
   * meanwhile: the message goes out in one sendmsg on the socket's own descriptor once Node's queue is empty.
   */
  async sendFd(name: string, fd: number, timeoutMs = this.commandTimeoutMs): Promise<void> {
    if (this.closedWith) throw this.closedWith;
    const sockFd = (this.sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof sockFd !== 'number' || sockFd < 0) throw new MemdumpError('E_UNSUPPORTED', `QMP ${this.path}: the monitor socket's descriptor is not reachable; cannot pass a descriptor to QEMU`);
    while (this.sock.writableLength > 0) await new Promise((r) => this.sock.once('drain', r));
    await this.send('getfd', { fdname: name }, timeoutMs, (line) => sendWithFd(sockFd, Buffer.from(line), fd));
  }

  private send<T>(command: string, args: QmpObject | undefined, timeoutMs: number, write: (line: string) => void): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = `memdump-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new MemdumpError('E_SOURCE_READ', `QMP ${this.path}: ${command} got no answer within ${timeoutMs} ms`, { details: { command } }));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: QmpValue) => void, reject, timer });
      try {
        write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(e);
      }
    });
  }

  /** Sequence number of the last event received so far (0: none). */
  get lastEventSeq(): number {
    return this.eventSeq;
  }

  /**
   * The first buffered or future event named `name` (removed from the buffer), or undefined after timeoutMs.
   * `signal` ends the wait early (undefined).
   */
  async waitEvent(name: string, timeoutMs: number, signal?: AbortSignal, afterSeq = 0): Promise<QmpEvent | undefined> {
    const take = () => {
      const i = this.events.findIndex((e) => e.event === name && e.seq > afterSeq);
      return i < 0 ? undefined : this.events.splice(i, 1)[0];
    };
    const now = take();
    if (now || this.closedWith) return now;
    return new Promise((resolve) => {
      const done = (v: QmpEvent | undefined) => {
        clearTimeout(timer);
        this.eventWaiters.delete(check);
        signal?.removeEventListener('abort', aborted);
        resolve(v);
      };
      const check = () => {
        const e = take();
        if (e || this.closedWith) done(e);
      };
      const aborted = () => done(undefined);
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.eventWaiters.add(check);
      signal?.addEventListener('abort', aborted, { once: true });
    });
  }

  /** Events received and not yet taken by waitEvent. */
  bufferedEvents(): readonly QmpEvent[] {
    return this.events;
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  close(): void {
    this.shutdown(new MemdumpError('E_SOURCE_READ', `QMP ${this.path}: connection closed by memdump`));
    this.sock.destroy();
  }

  private onData(chunk: string, greeting: (m: QmpObject) => boolean): void {
    this.buf += chunk;
    if (this.buf.length > MAX_LINE && this.buf.indexOf('\n') < 0) {
      throw new MemdumpError('E_SOURCE_READ', `QMP ${this.path}: a line longer than ${MAX_LINE} bytes; this is not a QMP monitor`);
    }
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        throw new MemdumpError('E_SOURCE_READ', `QMP ${this.path}: not JSON: ${line.slice(0, 200)}`);
      }
      if (!msg || typeof msg !== 'object' || Array.isArray(msg)) throw new MemdumpError('E_SOURCE_READ', `QMP ${this.path}: not a JSON object: ${line.slice(0, 200)}`);
      this.dispatch(msg as QmpObject, greeting);
    }
  }

  private dispatch(m: QmpObject, greeting: (m: QmpObject) => boolean): void {
    if (greeting(m)) return;
    if (typeof m['event'] === 'string') {
      const ts = m['timestamp'] as { seconds?: number; microseconds?: number } | undefined;
      this.events.push({
        seq: ++this.eventSeq,
        event: m['event'],
        data: m['data'] && typeof m['data'] === 'object' && !Array.isArray(m['data']) ? (m['data'] as QmpObject) : {},
        timestamp: ts && typeof ts.seconds === 'number' ? { seconds: ts.seconds, microseconds: ts.microseconds ?? 0 } : null,
      });
      if (this.events.length > MAX_EVENTS) this.events.shift();
      for (const w of [...this.eventWaiters]) w();
      return;
    }
    const id = typeof m['id'] === 'string' ? m['id'] : undefined;
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p) return; // a reply to a command that timed out, or one without our id
    this.pending.delete(id!);
    clearTimeout(p.timer);
    if ('return' in m) p.resolve(m['return'] ?? null);
    else {
      const err = (m['error'] ?? {}) as { class?: unknown; desc?: unknown };
      const cls = typeof err.class === 'string' ? err.class : 'GenericError';
      const desc = typeof err.desc === 'string' ? err.desc : JSON.stringify(m['error']);
      p.reject(new MemdumpError('E_SOURCE_READ', `QMP ${p.command}: ${desc}`, { details: { command: p.command, qmpClass: cls, qmpDesc: desc } }));
    }
  }

  private shutdown(e: Error): void {
    if (this.closedWith) return;
    this.closedWith = e;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new MemdumpError('E_SOURCE_READ', `QMP ${this.path}: connection lost while waiting for ${p.command}: ${e.message}`, { cause: e }));
    }
    for (const w of [...this.eventWaiters]) w();
  }
}

/** The bound libc calls for descriptor passing; loaded on first use so other commands never load koffi. */
interface FdCalls {
  pipe2(fds: Buffer, flags: number): number;
  fcntl(fd: number, cmd: number, arg: number): number;
  sendmsg(fd: number, msg: Buffer, flags: number): number | bigint;
  errno(): number;
  address(b: Buffer): bigint;
}
let fdCalls: FdCalls | undefined;

function calls(): FdCalls {
  if (fdCalls) return fdCalls;
  const { koffi, libc, address } = loadLibc('passing a descriptor to QEMU needs');
  fdCalls = {
    pipe2: libc.func('int pipe2(void *fds, int flags)') as FdCalls['pipe2'],
    fcntl: libc.func('int fcntl(int fd, int cmd, int arg)') as FdCalls['fcntl'],
    sendmsg: libc.func('long sendmsg(int fd, void *msg, int flags)') as FdCalls['sendmsg'],
    errno: () => koffi.errno(),
    address,
  };
  return fdCalls;
}

const O_CLOEXEC = 0o2000000;
const F_SETPIPE_SZ = 1031;
const PIPE_BYTES = 1 << 20;
const EAGAIN = 11;
const EINTR = 4;
const MSG_NOSIGNAL = 0x4000;

/**
 * A pipe whose ends are close-on-exec, so no child we start (virsh, compressors) inherits the write end and keeps
 * the reader from ever seeing end-of-file.
 */
export function openPipe(): { readFd: number; writeFd: number } {
  const b = Buffer.alloc(8);
  if (Number(calls().pipe2(b, O_CLOEXEC)) !== 0) throw new MemdumpError('E_SOURCE_READ', `pipe2 failed: errno ${calls().errno()}`);
  const fds = { readFd: b.readInt32LE(0), writeFd: b.readInt32LE(4) };
  // a 64 KiB pipe makes QEMU and us take turns 16 times per MiB; 1 MiB (the default pipe-max-size) lets both run.
  // Best effort: an unprivileged process over its pipe quota keeps the default.
  calls().fcntl(fds.writeFd, F_SETPIPE_SZ, PIPE_BYTES);
  return fds;
}

export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing held
  }
}

/** One sendmsg of `payload` with `fd` as SCM_RIGHTS ancillary data (x86-64 struct layouts). */
function sendWithFd(sockFd: number, payload: Buffer, fd: number): void {
  const c = calls();
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(c.address(payload), 0);
  iov.writeBigUInt64LE(BigInt(payload.length), 8);
  // cmsghdr {size_t len; int level; int type;} + one int, padded to CMSG_SPACE(4) = 24
  const control = Buffer.alloc(24);
  control.writeBigUInt64LE(20n, 0);
  control.writeInt32LE(1, 8); // SOL_SOCKET
  control.writeInt32LE(1, 12); // SCM_RIGHTS
  control.writeInt32LE(fd, 16);
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(c.address(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(c.address(control), 32);
  msg.writeBigUInt64LE(BigInt(control.length), 40);
  // a non-blocking socket with an empty queue takes a 100-byte message at once; EAGAIN only if the peer stalls
  for (let tries = 0; ; tries++) {
    const n = Number(c.sendmsg(sockFd, msg, MSG_NOSIGNAL));
    if (n === payload.length) return;
    const errno = n < 0 ? c.errno() : 0;
    if (n < 0 && (errno === EAGAIN || errno === EINTR) && tries < 1000) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      continue;
    }
    throw new MemdumpError('E_SOURCE_READ', n < 0 ? `sendmsg on the QMP socket failed: errno ${errno}` : `sendmsg on the QMP socket sent ${n} of ${payload.length} bytes`, { details: { errno } });
  }
}

function connectError(path: string, e: Error): MemdumpError {
  const errno = errnoOf(e);
  if (errno === 'ENOENT' || errno === 'ENOTDIR') return new MemdumpError('E_NOT_FOUND', `no QMP socket at ${path} (start QEMU with -qmp unix:${path},server,nowait)`, { cause: e, details: { errno } });
  if (errno === 'ECONNREFUSED') return new MemdumpError('E_NOT_FOUND', `nothing listens on ${path} (QEMU exited and left the socket file behind?)`, { cause: e, details: { errno } });
  if (errno === 'EACCES' || errno === 'EPERM') return new MemdumpError('E_PERMISSION', `no permission to connect to ${path} (run as QEMU's user or root)`, { cause: e, details: { errno } });
  return new MemdumpError('E_SOURCE_READ', `QMP ${path}: ${e.message}`, { cause: e, details: { errno } });
}
