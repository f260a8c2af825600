import type { TLSSocket } from 'node:tls';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { FROM_RECEIVER, FrameDecoder, HEADER_BYTES, MAX_DATA, T, byteCount, encodeFrame, typeName, type Frame } from '../receiver/frame.js';

/** DATA frames are well under the 1 MiB cap so a frame in flight never dominates memory. */
export const CHUNK = Math.min(256 << 10, MAX_DATA);
/** Frame buffers in flight at most (8 MiB): two of the pipeline's 4 MiB chunks. */
const FRAME_BUFFERS = 32;
/** How long the receiver may take to answer HELLO or OPEN, and to confirm a finished file (after its fsync). */
const ANSWER_TIMEOUT_MS = 60_000;

function refusal(j: Record<string, unknown>): MemdumpError {
  const code = j['code'] === 'E_AUTH' || j['code'] === 'E_LIMIT' ? j['code'] : 'E_REMOTE';
  const msg = escapeControl(String(j['message'] ?? 'no reason given')).slice(0, 500);
  return new MemdumpError(code, `receiver refused: ${msg}`, { details: { receiverCode: String(j['code']).slice(0, 40), ...(j['upload'] && typeof j['upload'] === 'object' ? { upload: j['upload'] } : {}) } });
}

/**
 * The framed connection under a TlsTarget: sending with bounded buffers, waiting for answers, keep-alive pings,
 * and the first failure (a refusal, a close, a timeout), which wakes every waiter so no caller hangs on it.
 */
export class TlsChannel {
  private readonly decoder = new FrameDecoder(FROM_RECEIVER);
  protected failure: MemdumpError | undefined;
  private waiter: { types: ReadonlySet<number>; resolve: (f: Frame) => void; reject: (e: MemdumpError) => void } | undefined;
  protected idleTimeoutMs = 120_000;
  private lastSent = Date.now();
  private pinger: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly wakers = new Set<() => void>();
  private acked = 0n;
  protected disarm: () => void = () => undefined;

  protected constructor(
    protected readonly socket: TLSSocket,
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

  throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  protected sendRaw(b: Buffer): void {
    this.throwIfFailed();
    this.socket.write(b);
    this.lastSent = Date.now();
  }

  protected sendFrame(b: Buffer): void {
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

  protected startPinger(): void {
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
  protected answerTimeoutMs = ANSWER_TIMEOUT_MS;

  protected expect(types: number[], deadlineMs = this.answerTimeoutMs): Promise<Frame> {
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
