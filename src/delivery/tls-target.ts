import { createHash, timingSafeEqual } from 'node:crypto';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { toolIdentity } from '../core/host.js';
import { hostname } from 'node:os';
import { FROM_RECEIVER, FrameDecoder, HEADER_BYTES, MAGIC, MAX_DATA, PROTOCOL_VERSION, T, byteCount, encodeFrame, typeName, type Frame } from '../receiver/frame.js';
import type { OutputSink, Receipt } from '../sinks/types.js';
import type { RemoteTarget, SideRole, UploadMeta } from './types.js';

export interface TlsConnectOptions {
  host: string;
  port: number;
  /** sha256/BASE64 of the receiver certificate's SubjectPublicKeyInfo (printed by `memdump receive --init`). */
  pin: string;
  token?: string;
  /** PEM text of a client certificate issued by `memdump receive --issue-client-cert`, and its key. */
  clientCert?: string;
  clientKey?: string;
  servername?: string;
  signal?: AbortSignal;
  /** Case to ask for; the credential decides, a different one is refused. */
  case?: string;
  /** How long the receiver may take to answer HELLO/OPEN (default 60 s; tests shorten it). */
  answerTimeoutMs?: number;
}

const PIN = /^sha256\/([A-Za-z0-9+/]{43}=)$/;
/** DATA frames are well under the 1 MiB cap so a frame in flight never dominates memory. */
const CHUNK = Math.min(256 << 10, MAX_DATA);
/** Frame buffers in flight at most (8 MiB): two of the pipeline's 4 MiB chunks. */
const FRAME_BUFFERS = 32;
const CONNECT_TIMEOUT_MS = 30_000;
/** How long the receiver may take to answer HELLO or OPEN, and to confirm a finished file (after its fsync). */
const ANSWER_TIMEOUT_MS = 60_000;
const RESULT_TIMEOUT_MS = 600_000;

function refusal(j: Record<string, unknown>): MemdumpError {
  const code = j['code'] === 'E_AUTH' || j['code'] === 'E_LIMIT' ? j['code'] : 'E_REMOTE';
  const msg = escapeControl(String(j['message'] ?? 'no reason given')).slice(0, 500);
  return new MemdumpError(code, `receiver refused: ${msg}`, { details: { receiverCode: String(j['code']).slice(0, 40), ...(j['upload'] && typeof j['upload'] === 'object' ? { upload: j['upload'] } : {}) } });
}

/**
 * `--to tls://HOST:PORT --pin sha256/… (--token T | --client-cert C --client-key K)`. Trust comes from the pin
 * alone: receivers use self-signed certificates, so CA validation is off and the SPKI digest is compared as soon
 * as the handshake completes, before the first application byte is written.
 */
export class TlsTarget implements RemoteTarget {
  private readonly decoder = new FrameDecoder(FROM_RECEIVER);
  private failure: MemdumpError | undefined;
  private waiter: { types: ReadonlySet<number>; resolve: (f: Frame) => void; reject: (e: MemdumpError) => void } | undefined;
  private caseLabel = '';
  private idleTimeoutMs = 120_000;
  private lastSent = Date.now();
  private pinger: NodeJS.Timeout | undefined;
  private evidenceName: string | undefined;
  private closed = false;
  private readonly wakers = new Set<() => void>();
  private acked = 0n;
  private disarm: () => void = () => undefined;

  private constructor(
    private readonly socket: TLSSocket,
    readonly host: string,
    readonly port: number,
  ) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.setFailure(e instanceof MemdumpError ? e : new MemdumpError('E_PROTOCOL', `connection to ${this.describe} failed: ${e.message}`, { cause: e })));
    socket.on('close', () => this.setFailure(new MemdumpError('E_PROTOCOL', `the receiver ${this.describe} closed the connection`)));
  }

  /** The last offset the receiver confirmed having written for the open file (ACK, every 8 MiB). */
  get lastAcked(): bigint {
    return this.acked;
  }

  get describe(): string {
    return `tls://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  static parseUrl(to: string): { host: string; port: number } {
    const m = /^tls:\/\/(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})?)):(\d{1,5})\/?$/.exec(to);
    const port = m ? Number(m[3]) : 0;
    if (!m || port < 1 || port > 65535) throw new MemdumpError('E_USAGE', `--to "${escapeControl(to)}" is not tls://HOST:PORT (IPv6: tls://[::1]:PORT)`);
    return { host: (m[1] ?? m[2])!, port };
  }

  /**
   * connectOnce with retries for what a busy collector does before authentication: a connection dropped by its
   * per-address cap (many hosts behind one NAT starting together), refused, or answered "busy". Nothing has
   * been sent in those cases, so trying again is safe; a pin mismatch or a refused credential is never retried.
   */
  static async connect(opts: TlsConnectOptions & { attempts?: number; backoffMs?: number }): Promise<TlsTarget> {
    const attempts = opts.attempts ?? 6;
    let delay = opts.backoffMs ?? 500;
    for (let i = 1; ; i++) {
      try {
        return await TlsTarget.connectOnce(opts);
      } catch (e) {
        const retryable = e instanceof MemdumpError && ((e.code === 'E_PROTOCOL' && /ECONNRESET|ECONNREFUSED|EPIPE|socket hang up|disconnected|closed/i.test(e.message)) || (e.code === 'E_LIMIT' && /busy/.test(e.message)));
        if (!retryable || i >= attempts || opts.signal?.aborted) throw e;
        await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
        delay = Math.min(delay * 2, 8000);
      }
    }
  }

  private static async connectOnce(opts: TlsConnectOptions): Promise<TlsTarget> {
    const pm = PIN.exec(opts.pin ?? '');
    if (!pm) throw new MemdumpError('E_USAGE', '--pin must be sha256/BASE64 (44 characters), as printed by `memdump receive --init`');
    const want = Buffer.from(pm[1]!, 'base64');
    if (opts.token === undefined && opts.clientCert === undefined) throw new MemdumpError('E_USAGE', 'a TLS destination needs --token or --client-cert');
    if ((opts.clientCert === undefined) !== (opts.clientKey === undefined)) throw new MemdumpError('E_USAGE', '--client-cert and --client-key go together');
    if (opts.signal?.aborted) throw new MemdumpError('E_INTERRUPTED', 'delivery interrupted before connecting');
    const socket = tlsConnect({
      host: opts.host,
      port: opts.port,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      rejectUnauthorized: false,
      ...(opts.servername !== undefined ? { servername: opts.servername } : /^[\d.:]+$/.test(opts.host) ? {} : { servername: opts.host }),
      ...(opts.clientCert !== undefined ? { cert: opts.clientCert, key: opts.clientKey } : {}),
    });
    const t = new TlsTarget(socket, opts.host, opts.port);
    if (opts.answerTimeoutMs !== undefined) t.answerTimeoutMs = opts.answerTimeoutMs;
    const onAbort = () => socket.destroy(new MemdumpError('E_INTERRUPTED', 'delivery interrupted'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => socket.destroy(new MemdumpError('E_PROTOCOL', `TLS handshake with ${t.describe} timed out`)), CONNECT_TIMEOUT_MS);
        socket.once('secureConnect', () => {
          clearTimeout(timer);
          const cert = socket.getPeerX509Certificate();
          const got = cert ? createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest() : Buffer.alloc(32);
          if (!timingSafeEqual(got, want) || socket.isSessionReused()) {
            const err = new MemdumpError('E_PIN_MISMATCH', `the receiver at ${t.describe} presented key sha256/${got.toString('base64')}, not the pinned ${opts.pin}; nothing was sent`, {
              details: { expected: opts.pin, presented: `sha256/${got.toString('base64')}` },
            });
            socket.destroy(err);
            reject(err);
            return;
          }
          resolve();
        });
        socket.once('error', (e) => {
          clearTimeout(timer);
          reject(t.failure ?? e);
        });
      });
      t.sendRaw(MAGIC);
      t.sendFrame(encodeFrame(T.HELLO, {
        v: PROTOCOL_VERSION,
        ...(opts.token !== undefined ? { token: opts.token } : {}),
        ...(opts.case !== undefined ? { case: opts.case } : {}),
        sender: { tool: 'memdump', version: toolIdentity().version, host: hostname() },
      }));
      const acc = await t.expect([T.ACCEPT]);
      if (acc.type !== T.DATA) {
        t.caseLabel = String(acc.json['case'] ?? '');
        const idle = Number(acc.json['idleTimeoutMs']);
        if (Number.isFinite(idle) && idle > 0) t.idleTimeoutMs = idle;
      }
      t.startPinger();
      // the signal stays armed for the whole upload; close() disarms it
      t.disarm = () => opts.signal?.removeEventListener('abort', onAbort);
      return t;
    } catch (e) {
      opts.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (e instanceof MemdumpError) throw e;
      throw new MemdumpError('E_PROTOCOL', `connecting to ${t.describe}: ${(e as Error).message}`, { cause: e });
    }
  }

  async openEvidence(meta: UploadMeta): Promise<OutputSink> {
    if (this.evidenceName !== undefined) throw new MemdumpError('E_USAGE', 'one evidence stream per TLS connection');
    const name = await this.open('evidence', {
      host: meta.host,
      source: meta.source,
      format: meta.format,
      layers: [...meta.layers],
      ...(meta.expectedBytes !== undefined ? { expectedBytes: meta.expectedBytes.toString() } : {}),
      ...(meta.case !== undefined ? { case: meta.case } : {}),
    });
    this.evidenceName = name;
    return new TlsEvidenceSink(this, `${this.describe}/${this.caseLabel}/${name}`);
  }

  async putSide(role: SideRole, data: Buffer): Promise<string | undefined> {
    if (this.evidenceName === undefined) throw new MemdumpError('E_USAGE', 'side files follow the evidence file');
    const name = await this.open(role, { bytes: data.length });
    const hash = createHash('sha256');
    for (let off = 0; off < data.length; off += CHUNK) {
      const part = data.subarray(off, Math.min(data.length, off + CHUNK));
      hash.update(part);
      await this.sendData(part);
    }
    const res = await this.end(BigInt(data.length), hash.digest('hex'));
    if (res['status'] !== 'COMPLETE') throw new MemdumpError('E_REMOTE', `the receiver kept ${role} as INCOMPLETE: ${escapeControl(String(res['reason']))}`);
    return `${this.describe}/${this.caseLabel}/${name}`;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.disarm();
    if (this.pinger) clearInterval(this.pinger);
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 5000);
      timer.unref();
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end();
    });
  }

  // --- used by the evidence sink ---

  /**
   * The caller may reuse `buf` as soon as this resolves, so each frame is copied into one of a fixed set of frame
   * buffers (header + payload), which returns to the set when the socket's write callback says it is done with it.
   * A fresh buffer per frame (Buffer.concat) cost a third of the sender's main thread at loopback speed in
   * allocation, page faults and GC; waiting for each write instead stalled the pipeline.
   */
  async sendData(buf: Buffer): Promise<void> {
    for (let off = 0; off < buf.length; off += CHUNK) {
      const n = Math.min(CHUNK, buf.length - off);
      this.throwIfFailed();
      const frame = await this.frameBuffer();
      frame[0] = T.DATA;
      frame.writeUInt32BE(n, 1);
      buf.copy(frame, HEADER_BYTES, off, off + n);
      const ok = this.socket.write(frame.subarray(0, HEADER_BYTES + n), () => this.releaseFrame(frame));
      this.lastSent = Date.now();
      if (!ok) await this.drain();
    }
  }

  private readonly idleFrames: Buffer[] = [];
  private framesMade = 0;
  private frameWaiter: (() => void) | undefined;

  private async frameBuffer(): Promise<Buffer> {
    for (;;) {
      const f = this.idleFrames.pop();
      if (f) return f;
      if (this.framesMade < FRAME_BUFFERS) {
        this.framesMade++;
        return Buffer.allocUnsafeSlow(HEADER_BYTES + CHUNK);
      }
      await new Promise<void>((res) => {
        this.frameWaiter = res;
        this.wakers.add(res);
      });
      this.throwIfFailed();
    }
  }

  private releaseFrame(frame: Buffer): void {
    this.idleFrames.push(frame);
    const w = this.frameWaiter;
    this.frameWaiter = undefined;
    if (w) {
      this.wakers.delete(w);
      w();
    }
  }

  async end(bytes: bigint, sha256: string): Promise<Record<string, unknown>> {
    this.sendFrame(encodeFrame(T.END, { bytes: bytes.toString(), sha256 }));
    // the receiver fsyncs and publishes before it answers: a big file on a slow disk takes a while
    const r = await this.expect([T.RESULT], RESULT_TIMEOUT_MS);
    return r.type === T.DATA ? {} : r.json;
  }

  async abortUpload(reason: string): Promise<Record<string, unknown> | undefined> {
    if (this.failure) return undefined;
    try {
      this.sendFrame(encodeFrame(T.ABORT, { reason: reason.slice(0, 400) }));
      const r = await Promise.race([this.expect([T.RESULT]), new Promise<undefined>((res) => setTimeout(() => res(undefined), 10_000).unref())]);
      return r && r.type !== T.DATA ? r.json : undefined;
    } catch {
      return undefined;
    }
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private async open(role: string, meta: Record<string, unknown>): Promise<string> {
    this.sendFrame(encodeFrame(T.OPEN, { role, meta }));
    const ack = await this.expect([T.ACK]);
    const name = ack.type === T.DATA ? undefined : ack.json['name'];
    if (typeof name !== 'string') throw new MemdumpError('E_PROTOCOL', 'the receiver did not name the file');
    return name;
  }

  private sendRaw(b: Buffer): void {
    this.throwIfFailed();
    this.socket.write(b);
    this.lastSent = Date.now();
  }

  private sendFrame(b: Buffer): void {
    this.sendRaw(b);
  }

  /** Resolves on 'drain'; a refusal or a close wakes it too, so a refused sender does not wait on a full window. */
  private drain(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        this.wakers.delete(done);
        if (this.failure) reject(this.failure);
        else resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
      this.wakers.add(done);
    });
  }

  private startPinger(): void {
    const every = Math.max(250, Math.floor(this.idleTimeoutMs / 3));
    this.pinger = setInterval(() => {
      if (this.failure || this.closed || this.socket.writableLength > 0) return;
      if (Date.now() - this.lastSent >= every) {
        this.socket.write(encodeFrame(T.PING));
        this.lastSent = Date.now();
      }
    }, Math.max(100, Math.floor(every / 2)));
    this.pinger.unref();
  }

  /**
   * The next frame of one of these types. A receiver that holds the right key but stops answering (hung, or a
   * deliberate tarpit) must not hang a fleet job forever: past the deadline the connection fails with E_REMOTE.
   */
  private answerTimeoutMs = ANSWER_TIMEOUT_MS;

  private expect(types: number[], deadlineMs = this.answerTimeoutMs): Promise<Frame> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.setFailure(new MemdumpError('E_REMOTE', `${this.describe} did not answer within ${Math.round(deadlineMs / 1000)} s (waiting for ${types.map(typeName).join('/')})`));
        this.socket.destroy();
      }, deadlineMs);
      timer.unref();
      const done = <T,>(f: (v: T) => void) => (v: T) => {
        clearTimeout(timer);
        f(v);
      };
      this.waiter = { types: new Set(types), resolve: done(resolve), reject: done(reject) };
    });
  }

  private onData(d: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(d);
    } catch (e) {
      this.setFailure(e as MemdumpError);
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      if (f.type === T.REFUSE) {
        this.setFailure(refusal(f.json));
        continue;
      }
      if (f.type === T.ACK) {
        try {
          this.acked = byteCount(f.json['offset'], 'ACK.offset');
        } catch {
          // an unreadable offset is only a progress hint; the END/RESULT exchange is what counts
        }
      }
      const w = this.waiter;
      if (w && w.types.has(f.type)) {
        this.waiter = undefined;
        w.resolve(f);
      }
    }
    if (this.decoder.failure) {
      this.setFailure(this.decoder.failure);
      this.socket.destroy();
    }
  }

  private setFailure(e: MemdumpError): void {
    this.failure ??= e;
    if (this.pinger) clearInterval(this.pinger);
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
    for (const wake of [...this.wakers]) wake();
  }
}

class TlsEvidenceSink implements OutputSink {
  private pos = 0n;
  private readonly hash = createHash('sha256');
  private done = false;
  private static readonly ZEROS = Buffer.alloc(CHUNK);

  constructor(
    private readonly t: TlsTarget,
    readonly describe: string,
  ) {}

  get position(): bigint {
    return this.pos;
  }

  async write(buf: Buffer): Promise<void> {
    if (this.done) throw new MemdumpError('E_INTERNAL', `${this.describe}: write after finish/abort`);
    this.hash.update(buf);
    this.pos += BigInt(buf.length);
    await this.t.sendData(buf);
  }

  async writeZeros(n: bigint): Promise<void> {
    while (n > 0n) {
      const k = n > BigInt(CHUNK) ? CHUNK : Number(n);
      await this.write(TlsEvidenceSink.ZEROS.subarray(0, k));
      n -= BigInt(k);
    }
  }

  async finish(): Promise<Receipt> {
    this.done = true;
    this.t.throwIfFailed();
    const sha256 = this.hash.digest('hex');
    const res = await this.t.end(this.pos, sha256);
    if (res['status'] !== 'COMPLETE') {
      throw new MemdumpError('E_REMOTE', `the receiver kept the upload as INCOMPLETE: ${escapeControl(String(res['reason'] ?? 'no reason given'))}`, { details: { result: res } });
    }
    // the receiver's own count and digest of what it wrote must be ours: a COMPLETE alone is only its word
    if (res['sha256'] !== sha256 || res['bytes'] !== this.pos.toString()) {
      throw new MemdumpError('E_REMOTE', `the receiver says COMPLETE but reports ${escapeControl(String(res['bytes']))} bytes / SHA-256 ${escapeControl(String(res['sha256']))}, not the ${this.pos} bytes / ${sha256} sent`, { details: { result: res } });
    }
    return { path: this.describe, bytes: this.pos, complete: true };
  }

  async abort(): Promise<Receipt> {
    if (!this.done) {
      this.done = true;
      await this.t.abortUpload('sender aborted the acquisition');
    }
    return { path: this.describe, partialPath: this.describe + '.partial', bytes: this.pos, complete: false };
  }
}
