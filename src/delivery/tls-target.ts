import { createHash, timingSafeEqual } from 'node:crypto';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { toolIdentity } from '../core/host.js';
import { hostname } from 'node:os';
import { MAGIC, PROTOCOL_VERSION, T, encodeFrame } from '../receiver/frame.js';
import type { OutputSink } from '../sinks/types.js';
import type { RemoteTarget, SideRole, UploadMeta } from './types.js';
import { CHUNK, TlsChannel } from './tls-channel.js';
import { TlsEvidenceSink } from './tls-evidence-sink.js';

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
const CONNECT_TIMEOUT_MS = 30_000;
const RESULT_TIMEOUT_MS = 600_000;

/**
 * `--to tls://HOST:PORT --pin sha256/… (--token T | --client-cert C --client-key K)`. Trust comes from the pin
 * alone: receivers use self-signed certificates, so CA validation is off and the SPKI digest is compared as soon
 * as the handshake completes, before the first application byte is written.
 */
export class TlsTarget extends TlsChannel implements RemoteTarget {
  private caseLabel = '';
  private evidenceName: string | undefined;

  private constructor(socket: TLSSocket, host: string, port: number) {
    super(socket, host, port);
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

  // --- used by the evidence sink ---

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

  private async open(role: string, meta: Record<string, unknown>): Promise<string> {
    this.sendFrame(encodeFrame(T.OPEN, { role, meta }));
    const ack = await this.expect([T.ACK]);
    const name = ack.type === T.DATA ? undefined : ack.json['name'];
    if (typeof name !== 'string') throw new MemdumpError('E_PROTOCOL', 'the receiver did not name the file');
    return name;
  }
}
