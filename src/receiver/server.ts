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
  /**
   * Authenticated sessions at once; more are refused with E_LIMIT. Connections that have not authenticated yet
   * are capped separately (as many again in all, maxPreauthPerIp per source address), so unauthenticated peers
   * cannot take the slots of senders with credentials. Default 64.
   */
  maxConnections?: number;
  /** Connections from one source address that have not authenticated yet; more are dropped. Default 8. */
  maxPreauthPerIp?: number;
  /** The TLS handshake must finish within this. Default 5 s (or preAuthTimeoutMs if shorter). */
  handshakeTimeoutMs?: number;
  /** Uploads averaging fewer bytes/s than this after minRateGraceMs end INCOMPLETE. Default 64 KiB/s; 0: none. */
  minRate?: number;
  /** Default 60 s. */
  minRateGraceMs?: number;
  /** A bug in one session (logged; that session is closed, the receiver serves on). */
  onInternalError?: (e: unknown) => void;
  onUpload?: (rec: UploadRecord) => void;
}

export interface ReceiverStats extends SessionStats {
  /** TCP connections accepted. */
  connections: number;
  /** TLS sessions established. */
  sessions: number;
  /** Refused for --max-connections, or dropped for --max-preauth-per-ip. */
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
  /** Raw connections not yet authenticated, in all and per source address; keyed by address and port. */
  private readonly preauth = new Map<string, Socket>();
  private readonly preauthPerIp = new Map<string, number>();
  private authenticated = 0;
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
    const maxPreauthPerIp = o.maxPreauthPerIp ?? 32;
    const handshakeTimeoutMs = o.handshakeTimeoutMs ?? Math.min(5_000, preAuthTimeoutMs);
    const cfg = {
      dir: real,
      maxBytes: o.maxBytes ?? (1n << 63n),
      maxSideBytes: o.maxSideBytes ?? 64n << 20n,
      idleTimeoutMs: o.idleTimeoutMs ?? 120_000,
      preAuthTimeoutMs,
      tokensPath: o.tokensPath,
      onUpload: o.onUpload,
      minRate: o.minRate ?? 64 << 10,
      minRateGraceMs: o.minRateGraceMs ?? 60_000,
      onInternalError: o.onInternalError,
    };
    let server: Server;
    try {
      server = createServer({
        cert: o.cert,
        key: o.key,
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
        handshakeTimeout: handshakeTimeoutMs,
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
      const ip = s.remoteAddress ?? '?';
      const key = `${ip}|${s.remotePort ?? ''}`;
      // authenticated connections do not count here: a flood of silent peers cannot push them out or keep their
      // owners from reconnecting, and one address cannot take all the pre-authentication room
      if (rcv.closing || rcv.preauth.size >= maxConnections || (rcv.preauthPerIp.get(ip) ?? 0) >= maxPreauthPerIp) {
        rcv.stats.busy++;
        s.destroy();
        return;
      }
      rcv.raw.add(s);
      rcv.preauth.set(key, s);
      rcv.preauthPerIp.set(ip, (rcv.preauthPerIp.get(ip) ?? 0) + 1);
      s.on('close', () => {
        rcv.raw.delete(s);
        rcv.leavePreauth(key, ip);
      });
    });
    // with a listener attached Node leaves the socket open: a handshake that timed out would linger forever
    server.on('tlsClientError', (_e, s: TLSSocket) => {
      rcv.stats.tlsErrors++;
      s.destroy();
    });
    server.on('secureConnection', (s: TLSSocket) => {
      rcv.stats.sessions++;
      if (rcv.closing) {
        rcv.stats.busy++;
        s.on('error', () => undefined);
        // discard what the sender already sent, so the close is a FIN that does not destroy the REFUSE in flight
        s.resume();
        s.end(Buffer.concat([MAGIC, encodeFrame(T.REFUSE, { code: 'E_LIMIT', message: 'the receiver is shutting down' })]));
        setTimeout(() => s.destroy(), 2000).unref();
        return;
      }
      const ip = s.remoteAddress ?? '?';
      const key = `${ip}|${s.remotePort ?? ''}`;
      let admitted = false;
      const session = new Session(s, cfg, rcv.stats, {
        admit: () => {
          if (rcv.authenticated >= maxConnections) {
            rcv.stats.busy++;
            return false;
          }
          admitted = true;
          rcv.authenticated++;
          rcv.leavePreauth(key, ip);
          return true;
        },
      });
      rcv.sessions.add(session);
      void session.done.then(() => {
        rcv.sessions.delete(session);
        if (admitted) rcv.authenticated--;
      });
    });
    return rcv;
  }

  private leavePreauth(key: string, ip: string): void {
    if (!this.preauth.delete(key)) return;
    const n = (this.preauthPerIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.preauthPerIp.delete(ip);
    else this.preauthPerIp.set(ip, n);
  }

  /** Connections that have not authenticated (yet). */
  get preauthConnections(): number {
    return this.preauth.size;
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
