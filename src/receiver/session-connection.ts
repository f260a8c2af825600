import type { TLSSocket } from 'node:tls';
import { MemdumpError } from '../core/errors.js';
import { FROM_SENDER, FrameDecoder, MAGIC, PRE_AUTH, T, encodeFrame, type Frame, type FrameType } from './frame.js';
import type { UploadRecord } from './record.js';
import type { SessionConfig, SessionStats } from './session.js';

/** Codes whose message is safe and useful to pass to the sender verbatim; others get a generic line. */
const FORWARD = new Set(['E_AUTH', 'E_LIMIT', 'E_PROTOCOL', 'E_UNSUPPORTED', 'E_REMOTE']);

/**
 * The connection under a Session. Bytes are processed strictly in order: the socket is paused while a chunk's frames
 * are handled (disk writes included), so a fast sender on a slow disk is throttled by TCP, not by memory.
 * Timers, the failure path and the answers that must never throw live here; the protocol is the Session's.
 */
export abstract class SessionConnection {
  private readonly decoder = new FrameDecoder(FROM_SENDER, PRE_AUTH);
  private chain: Promise<void> = Promise.resolve();
  protected state: 'hello' | 'ready' | 'file' | 'closed' = 'hello';
  private idleTimer: NodeJS.Timeout | undefined;
  protected preAuthTimer: NodeJS.Timeout | undefined;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  protected constructor(
    protected readonly socket: TLSSocket,
    protected readonly cfg: SessionConfig,
    protected readonly stats: SessionStats,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    this.preAuthTimer = setTimeout(() => this.fail(new MemdumpError('E_AUTH', `no HELLO within ${cfg.preAuthTimeoutMs} ms`)), cfg.preAuthTimeoutMs);
    this.preAuthTimer.unref();
    this.touch();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose());
    socket.write(MAGIC);
  }

  /** Stop: an open upload ends INCOMPLETE with this reason, the sender is told, the connection closes. */
  shutdown(reason: string): Promise<void> {
    this.fail(new MemdumpError('E_REMOTE', reason));
    return this.done;
  }

  /**
   * TLS hands over ~16 KiB records; a DATA frame is 256 KiB. Records that only extend a frame are taken at once
   * (the decoder holds at most one frame); the socket is paused only while complete frames are being handled, in
   * order, on the chain. Pausing for every record cost more than the TLS and the hashing together (262,144
   * pause/resume round trips per 4 GiB).
   */
  private onData(chunk: Buffer): void {
    this.stats.applicationBytes += chunk.length;
    if (this.state === 'closed') return;
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      // the decoder already failed: what arrives after garbage is garbage too
      this.socket.pause();
      this.fail(e);
      return;
    }
    const failure = this.decoder.failure;
    if (frames.length === 0 && !failure) return;
    this.socket.pause();
    this.pending++;
    this.chain = this.chain
      .then(async () => {
        if (this.state === 'closed') return;
        for (const f of frames) {
          this.touch();
          await this.handle(f);
          if (this.isClosed()) return;
        }
        if (failure) throw failure;
        if (--this.pending === 0) this.socket.resume();
      })
      .catch((e: unknown) => this.failNow(e))
      .catch((e: unknown) => this.lastResort(e));
  }

  /** Chained batches of frames not yet handled; the socket reads again when none is left. */
  private pending = 0;

  private onClose(): void {
    this.clearTimers();
    this.chain = this.chain
      .then(() => this.settleOpen('connection closed mid-upload'))
      .catch(() => undefined)
      .then(() => {
        this.state = 'closed';
        // frames still queued when the close arrived may have re-armed the idle timer
        this.clearTimers();
        this.resolveDone();
      })
      .catch((e: unknown) => this.lastResort(e));
  }

  /** A method, so that TypeScript does not carry a narrowing of `state` across awaits. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.fail(new MemdumpError('E_LIMIT', `idle for ${this.cfg.idleTimeoutMs} ms (no complete frame)`)), this.cfg.idleTimeoutMs);
    // the listening server keeps the process alive; a timer must not keep a stopped one alive
    this.idleTimer.unref();
  }

  private clearTimers(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.preAuthTimer) clearTimeout(this.preAuthTimer);
  }

  /** Every promise put on the chain ends in a catch: a rejection there would take the whole receiver down. */
  protected fail(e: unknown): void {
    this.chain = this.chain.then(() => this.failNow(e)).catch((x: unknown) => this.lastResort(x));
  }

  /** Never rejects: whatever goes wrong while failing, the connection is closed. */
  private async failNow(e: unknown): Promise<void> {
    if (this.state === 'closed') return;
    try {
      const err = e instanceof MemdumpError ? e : new MemdumpError('E_INTERNAL', String((e as Error)?.message ?? e));
      if (err.code === 'E_INTERNAL') this.report(e);
      this.state = 'closed';
      this.clearTimers();
      const rec = await this.settleOpen(`${err.code}: ${err.message}`).catch((x: unknown) => (this.report(x), undefined));
      const message = FORWARD.has(err.code) ? err.message : `the receiver could not store the upload (${err.code})`;
      this.send(T.REFUSE, { code: err.code, message, ...(rec ? { upload: { status: rec.status, bytes: rec.bytes, name: rec.name, path: rec.path } } : {}) });
      this.socket.end();
      // keep reading (and discarding) so the sender is not stuck on a full window and the close is a FIN, not a
      // reset that could destroy the REFUSE before the sender reads it
      this.socket.resume();
      // a sender that never reads its side of the close must not hold the descriptor
      setTimeout(() => this.socket.destroy(), 2000).unref();
    } catch (x) {
      this.lastResort(x);
    }
  }

  /** A bug reached the end of the chain: tell the owner, drop this connection, keep the receiver. */
  private lastResort(e: unknown): void {
    this.report(e);
    this.state = 'closed';
    this.clearTimers();
    this.socket.destroy();
  }

  private report(e: unknown): void {
    try {
      this.cfg.onInternalError?.(e);
    } catch {
      // a logger that throws must not turn one bad session into a dead receiver
    }
  }

  /**
   * Cannot throw: a frame over the JSON cap (a long message) is retried with its strings cut, then replaced by a
   * generic one. A REFUSE that cannot be sent would otherwise leave the failure path itself failing.
   */
  protected send(type: FrameType, json: Record<string, unknown>): void {
    if (!this.socket.writable) return;
    let frame: Buffer;
    try {
      frame = encodeFrame(type, json);
    } catch {
      const cut = Object.fromEntries(Object.entries(json).map(([k, v]) => [k, typeof v === 'string' && v.length > 512 ? v.slice(0, 512) + '…' : v]));
      try {
        frame = encodeFrame(type, cut);
      } catch {
        frame = encodeFrame(T.REFUSE, { code: 'E_INTERNAL', message: 'the receiver could not encode its answer' });
      }
    }
    try {
      this.socket.write(frame);
    } catch {
      this.socket.destroy();
    }
  }

  /** Handles one frame, in order; a throw fails the session. */
  protected abstract handle(f: Frame): Promise<void>;

  /** Ends the open upload, if any, INCOMPLETE with this reason, and records it. */
  protected abstract settleOpen(reason: string): Promise<UploadRecord | undefined>;
}
