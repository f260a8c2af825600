import { promises as fsp } from 'node:fs';
import type { Socket } from 'node:net';
import { resolve } from 'node:path';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { MemdumpError, fromSystemError } from '../core/errors.js';
import { encodeFrame, MAGIC, T } from './frame.js';
import type { UploadRecord } from './record.js';
import { Session, type SessionStats } from './session.js';

export interface ReceiverOptions {
  /** Evidence root; created 0700 if absent. Files land in DIR/<case>/. */
  dir: string;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  cert: string | Buffer;
  key: string | Buffer;
  /** PEM of the CA that signs client certificates; without it only tokens authenticate. */
  clientCa?: string | Buffer;
  tokensPath?: string;
  /** Per upload (evidence). Default: unlimited (2^63). */
  maxBytes?: bigint;
  /** Per side file (report, log, map, signature). Default 64 MiB. */
  maxSideBytes?: bigint;
  /** No complete frame for this long → INCOMPLETE and closed. Default 120 s. */
  idleTimeoutMs?: number;
  /** TLS handshake, then HELLO, each within this. Default 10 s. */
  preAuthTimeoutMs?: number;
  /** Authenticated-or-not TLS sessions at once; more are refused with E_LIMIT. Default 64. */
  maxConnections?: number;
  onUpload?: (rec: UploadRecord) => void;
}

export interface ReceiverStats extends SessionStats {
  /** TCP connections accepted. */
  connections: number;
  /** TLS sessions established. */
  sessions: number;
  /** Refused for --max-connections. */
  busy: number;
  /** Failed TLS handshakes (wrong version, no shared cipher, timeouts). */
  tlsErrors: number;
}

/**
 * `memdump receive`: TLS 1.3 only, authentication before any file exists, one Session per connection. Two
 * connection gates: raw TCP sockets beyond twice the limit are dropped before any TLS work (handshake floods),
 * established TLS sessions beyond the limit get a coded E_LIMIT refusal.
 */
export class Receiver {
  readonly stats: ReceiverStats = { connections: 0, sessions: 0, busy: 0, tlsErrors: 0, applicationBytes: 0, uploads: 0 };
  private readonly sessions = new Set<Session>();
  private readonly raw = new Set<Socket>();
  private closing = false;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {}

  static async start(o: ReceiverOptions): Promise<Receiver> {
    const dir = resolve(o.dir);
    try {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw fromSystemError(e, `creating ${dir}`);
    }
    const real = await fsp.realpath(dir);
    const maxConnections = o.maxConnections ?? 64;
    const preAuthTimeoutMs = o.preAuthTimeoutMs ?? 10_000;
    const cfg = {
      dir: real,
      maxBytes: o.maxBytes ?? (1n << 63n),
      maxSideBytes: o.maxSideBytes ?? 64n << 20n,
      idleTimeoutMs: o.idleTimeoutMs ?? 120_000,
      preAuthTimeoutMs,
      tokensPath: o.tokensPath,
      onUpload: o.onUpload,
    };
    let server: Server;
    try {
      server = createServer({
        cert: o.cert,
        key: o.key,
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
        handshakeTimeout: preAuthTimeoutMs,
        // the certificate is checked here against clientCa, but a bad one must still get a coded REFUSE: the
        // session refuses unauthorized certificates itself, before any file exists
        requestCert: o.clientCa !== undefined,
        rejectUnauthorized: false,
        ...(o.clientCa !== undefined ? { ca: o.clientCa } : {}),
      });
    } catch (e) {
      throw new MemdumpError('E_USAGE', `TLS configuration: ${(e as Error).message}`, { cause: e });
    }
    const rcv = await new Promise<Receiver>((res, rej) => {
      server.once('error', (e) => rej(fromSystemError(e, `listening on ${o.host}:${o.port}`)));
      server.listen(o.port, o.host, () => {
        const a = server.address();
        res(new Receiver(server, o.host, typeof a === 'object' && a ? a.port : o.port));
      });
    });
    server.on('error', () => undefined);
    server.on('connection', (s: Socket) => {
      rcv.stats.connections++;
      if (rcv.closing || rcv.raw.size >= maxConnections * 2) {
        rcv.stats.busy++;
        s.destroy();
        return;
      }
      rcv.raw.add(s);
      s.on('close', () => rcv.raw.delete(s));
    });
    // with a listener attached Node leaves the socket open: a handshake that timed out would linger forever
    server.on('tlsClientError', (_e, s: TLSSocket) => {
      rcv.stats.tlsErrors++;
      s.destroy();
    });
    server.on('secureConnection', (s: TLSSocket) => {
      rcv.stats.sessions++;
      if (rcv.closing || rcv.sessions.size >= maxConnections) {
        rcv.stats.busy++;
        s.on('error', () => undefined);
        // discard what the sender already sent, so the close is a FIN that does not destroy the REFUSE in flight
        s.resume();
        s.end(Buffer.concat([MAGIC, encodeFrame(T.REFUSE, { code: 'E_LIMIT', message: rcv.closing ? 'the receiver is shutting down' : `the receiver is busy (${maxConnections} connections); retry later` })]));
        setTimeout(() => s.destroy(), 2000).unref();
        return;
      }
      const session = new Session(s, cfg, rcv.stats);
      rcv.sessions.add(session);
      void session.done.then(() => rcv.sessions.delete(session));
    });
    return rcv;
  }

  /** TCP connections open now, authenticated or not. */
  get openConnections(): number {
    return this.raw.size;
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  /** Stop listening; open uploads end INCOMPLETE (records written, senders told); resolves when all are settled. */
  async close(reason = 'the receiver is shutting down'): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    await Promise.all([...this.sessions].map((s) => s.shutdown(reason)));
    for (const s of this.raw) s.destroy();
    await closed;
  }
}
