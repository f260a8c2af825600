import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { MemdumpError } from '../core/errors.js';
import { SIDE_SUFFIX, type SideRole } from '../delivery/types.js';
import { FileSink } from '../sinks/file.js';
import { escapeControl } from '../core/escape.js';
import { FROM_SENDER, FrameDecoder, MAGIC, PRE_AUTH, PROTOCOL_VERSION, T, byteCount, encodeFrame, optStr, str, type Frame, type FrameType } from './frame.js';
import { caseDirectory, evidenceName, sanitizeLabel } from './naming.js';
import { writeUploadRecord, type UploadRecord } from './record.js';
import { checkToken, readTokens } from './tokens.js';
import { caseOfClientCertificate } from './x509.js';

export interface SessionConfig {
  /** Absolute, resolved evidence root. */
  dir: string;
  maxBytes: bigint;
  maxSideBytes: bigint;
  idleTimeoutMs: number;
  preAuthTimeoutMs: number;
  tokensPath: string | undefined;
  onUpload: ((rec: UploadRecord) => void) | undefined;
  /** An upload slower than minRate bytes/s on average after minRateGraceMs ends INCOMPLETE (0: no floor). */
  minRate: number;
  minRateGraceMs: number;
  /** A failure no handler expected (a bug): logged by the owner; the session is closed, the receiver serves on. */
  onInternalError: ((e: unknown) => void) | undefined;
}

/** What the server decides for a session: whether an authenticated sender gets a slot. */
export interface SessionHooks {
  /** Called once the credential checks out; false refuses the sender as busy (E_LIMIT). */
  admit(): boolean;
}

/** Longest sender-supplied string echoed back in a message. */
const ECHO_MAX = 64;

/** A sender's value for a message: bounded, control characters escaped, never throws (no toString calls). */
export function echo(v: unknown): string {
  let s: string;
  if (typeof v === 'string') s = v.length > ECHO_MAX ? v.slice(0, ECHO_MAX) + '…' : v;
  else if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) s = String(v);
  else s = `(${Array.isArray(v) ? 'array' : typeof v})`;
  return JSON.stringify(escapeControl(s));
}

export interface SessionStats {
  /** Application bytes received after TLS handshakes, all sessions. */
  applicationBytes: number;
  uploads: number;
}

type Auth = UploadRecord['auth'];
type Role = UploadRecord['role'];

interface Upload {
  role: Role;
  name: string;
  sink: FileSink;
  hash: Hash;
  bytes: bigint;
  limit: bigint;
  nextAck: bigint;
  meta: Record<string, unknown>;
  started: Date;
  /** Writes run behind the socket (see WRITE_BEHIND); a failed one fails this promise. */
  writing: Promise<void>;
  queued: number;
  /** The first failed write: the upload stops at the next frame instead of reading on into nothing. */
  writeError?: Error;
}

/**
 * Bytes per connection whose file write may still be in flight while the socket is read on: the write (a page
 * allocation and copy in the kernel, ~0.6 ms per 256 KiB frame on tmpfs here) then overlaps the TLS decryption and
 * hashing of the next frames instead of stopping the connection; 20 senders hold at most 80 MiB this way.
 */
const WRITE_BEHIND = 4 << 20;

const ROLES: ReadonlySet<string> = new Set(['evidence', 'report', 'log', 'map', 'signature']);
const ACK_EVERY = 8n << 20n;
/** Codes whose message is safe and useful to pass to the sender verbatim; others get a generic line. */
const FORWARD = new Set(['E_AUTH', 'E_LIMIT', 'E_PROTOCOL', 'E_UNSUPPORTED', 'E_REMOTE']);

/**
 * One sender connection. Bytes are processed strictly in order: the socket is paused while a chunk's frames
 * are handled (disk writes included), so a fast sender on a slow disk is throttled by TCP, not by memory.
 * Every path out of an open upload goes through settle(), which writes the .upload.json record.
 */
export class Session {
  private readonly decoder = new FrameDecoder(FROM_SENDER, PRE_AUTH);
  private chain: Promise<void> = Promise.resolve();
  private state: 'hello' | 'ready' | 'file' | 'closed' = 'hello';
  private auth: Auth | undefined;
  private caseLabel = '';
  private caseDir = '';
  private evidence: string | undefined;
  private sidesDone = new Set<string>();
  private upload: Upload | undefined;
  private hello: Record<string, unknown> = {};
  private idleTimer: NodeJS.Timeout | undefined;
  private preAuthTimer: NodeJS.Timeout | undefined;
  private readonly peer: { address: string; port: number | null };
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly socket: TLSSocket,
    private readonly cfg: SessionConfig,
    private readonly stats: SessionStats,
    private readonly hooks: SessionHooks = { admit: () => true },
  ) {
    this.peer = { address: socket.remoteAddress ?? 'unknown', port: socket.remotePort ?? null };
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
  private fail(e: unknown): void {
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
  private send(type: FrameType, json: Record<string, unknown>): void {
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

  private async handle(f: Frame): Promise<void> {
    if (f.type === T.PING) return;
    if (this.state === 'hello') {
      if (f.type !== T.HELLO) throw new MemdumpError('E_PROTOCOL', 'authentication required: the first frame must be HELLO');
      return this.onHello(f.json);
    }
    if (this.upload) this.checkRate(this.upload);
    switch (f.type) {
      case T.OPEN:
        return this.onOpen(f.json);
      case T.DATA:
        return this.onDataFrame(f.data);
      case T.END:
        return this.onEnd(f.json);
      case T.ABORT:
        if (this.state !== 'file') throw new MemdumpError('E_PROTOCOL', 'ABORT without an open file');
        await this.settleOpen(`sender aborted: ${optStr(f.json['reason'], 'ABORT.reason', 512) ?? 'no reason given'}`);
        return;
      default:
        throw new MemdumpError('E_PROTOCOL', 'HELLO sent twice');
    }
  }

  private async onHello(j: Record<string, unknown>): Promise<void> {
    if (j['v'] !== PROTOCOL_VERSION) throw new MemdumpError('E_PROTOCOL', `protocol version ${echo(j['v'])} is not supported (this receiver speaks ${PROTOCOL_VERSION})`);
    const rawToken = j['token'];
    if (rawToken !== undefined && (typeof rawToken !== 'string' || rawToken.length > 256)) throw new MemdumpError('E_AUTH', 'token refused: malformed');
    const token = rawToken as string | undefined;
    const asked = optStr(j['case'], 'HELLO.case', 256);
    let bound: string;
    if (token !== undefined) {
      if (!this.cfg.tokensPath) throw new MemdumpError('E_AUTH', 'this receiver accepts no tokens');
      const r = checkToken(await readTokens(this.cfg.tokensPath), token);
      if (!r.ok) throw new MemdumpError('E_AUTH', `token refused: ${r.reason}`);
      bound = r.entry.case;
      this.auth = { kind: 'token', tokenId: r.entry.id };
    } else {
      const cert = this.socket.getPeerX509Certificate();
      if (!cert) throw new MemdumpError('E_AUTH', 'authentication required: send a token or a client certificate');
      if (!this.socket.authorized) throw new MemdumpError('E_AUTH', `client certificate refused: ${String(this.socket.authorizationError ?? 'not issued by the receiver CA')}`);
      const c = caseOfClientCertificate(cert);
      if (!c) throw new MemdumpError('E_AUTH', 'client certificate names no case (subject OU)');
      bound = c;
      this.auth = { kind: 'client-cert', fingerprint256: cert.fingerprint256, subject: cert.subject };
    }
    if (asked !== undefined && asked !== bound) throw new MemdumpError('E_AUTH', `this credential is for case ${echo(bound)}, not ${echo(asked)}`);
    if (!this.hooks.admit()) throw new MemdumpError('E_LIMIT', 'the receiver is busy (all connection slots are taken); retry later');
    this.caseLabel = bound;
    this.hello = j['sender'] && typeof j['sender'] === 'object' ? (j['sender'] as Record<string, unknown>) : {};
    if (this.preAuthTimer) clearTimeout(this.preAuthTimer);
    this.state = 'ready';
    this.send(T.ACCEPT, {
      case: sanitizeLabel(bound, 'nocase'),
      authKind: this.auth.kind,
      maxBytes: this.cfg.maxBytes.toString(),
      idleTimeoutMs: this.cfg.idleTimeoutMs,
    });
  }

  /**
   * A sender that trickles a frame just inside the idle timeout would hold its slot for ever: after a grace
   * period the upload's average rate must reach the floor. Checked on each frame, and a trickler must send one
   * at least every idle timeout, so it is caught within grace + idle.
   */
  private checkRate(u: Upload): void {
    if (this.cfg.minRate <= 0) return;
    const elapsed = Date.now() - u.started.getTime();
    if (elapsed <= this.cfg.minRateGraceMs) return;
    if (Number(u.bytes) * 1000 < this.cfg.minRate * elapsed) {
      throw new MemdumpError('E_LIMIT', `upload slower than the receiver's floor of ${this.cfg.minRate} bytes/s (${u.bytes} bytes in ${Math.round(elapsed / 1000)} s)`);
    }
  }

  private async onOpen(j: Record<string, unknown>): Promise<void> {
    if (this.state !== 'ready') throw new MemdumpError('E_PROTOCOL', 'OPEN while a file is open');
    const role = str(j['role'], 'OPEN.role', 16);
    if (!ROLES.has(role)) throw new MemdumpError('E_PROTOCOL', `unknown role ${echo(role)}`);
    const meta = j['meta'] && typeof j['meta'] === 'object' && !Array.isArray(j['meta']) ? (j['meta'] as Record<string, unknown>) : {};
    let name: string;
    let limit: bigint;
    if (role === 'evidence') {
      if (this.evidence !== undefined) throw new MemdumpError('E_PROTOCOL', 'one evidence file per connection');
      if (meta['case'] !== undefined && meta['case'] !== this.caseLabel) throw new MemdumpError('E_AUTH', `this credential is for case ${echo(this.caseLabel)}, not ${echo(meta['case'])}`);
      name = evidenceName(meta['host'], meta['format'], meta['layers']);
      this.caseDir = await caseDirectory(this.cfg.dir, this.caseLabel);
      limit = this.cfg.maxBytes;
      this.evidence = name;
    } else {
      if (this.evidence === undefined) throw new MemdumpError('E_PROTOCOL', `a ${role} file must follow the evidence file`);
      if (this.sidesDone.has(role)) throw new MemdumpError('E_PROTOCOL', `${role} sent twice`);
      this.sidesDone.add(role);
      name = this.evidence + SIDE_SUFFIX[role as SideRole];
      limit = this.cfg.maxSideBytes < this.cfg.maxBytes ? this.cfg.maxSideBytes : this.cfg.maxBytes;
    }
    const sink = await FileSink.create(join(this.caseDir, name));
    this.upload = { role: role as Role, name, sink, hash: createHash('sha256'), bytes: 0n, limit, nextAck: ACK_EVERY, meta, started: new Date(), writing: Promise.resolve(), queued: 0 };
    this.state = 'file';
    this.send(T.ACK, { offset: '0', name, path: `${sanitizeLabel(this.caseLabel, 'nocase')}/${name}` });
  }

  private async onDataFrame(data: Buffer): Promise<void> {
    const u = this.upload;
    if (this.state !== 'file' || !u) throw new MemdumpError('E_PROTOCOL', 'DATA without an open file');
    if (u.writeError) throw u.writeError;
    const room = u.limit - u.bytes;
    const take = BigInt(data.length) > room ? data.subarray(0, Number(room)) : data;
    if (take.length > 0) {
      u.hash.update(take);
      u.bytes += BigInt(take.length);
      // the frame's buffer is ours (the decoder never reuses memory), so it can wait in the queue
      u.queued += take.length;
      const w = u.writing.then(() => u.sink.write(take)).finally(() => (u.queued -= take.length));
      w.catch((e: Error) => (u.writeError ??= e)); // surfaced by the next frame, the await below, or settle()
      u.writing = w;
      if (u.queued > WRITE_BEHIND) await w;
    }
    if (take.length < data.length) throw new MemdumpError('E_LIMIT', `upload exceeds the receiver's limit of ${u.limit} bytes`);
    if (u.bytes >= u.nextAck) {
      u.nextAck += ACK_EVERY;
      // what has reached the file, not what is still queued behind the socket
      this.send(T.ACK, { offset: (u.bytes - BigInt(u.queued)).toString() });
    }
  }

  private async onEnd(j: Record<string, unknown>): Promise<void> {
    const u = this.upload;
    if (this.state !== 'file' || !u) throw new MemdumpError('E_PROTOCOL', 'END without an open file');
    const bytes = byteCount(j['bytes'], 'END.bytes');
    const sha = str(j['sha256'], 'END.sha256', 64).toLowerCase();
    await this.settle(u, bytes, sha);
  }

  private async settleOpen(reason: string): Promise<UploadRecord | undefined> {
    const u = this.upload;
    return u ? this.settle(u, null, null, reason) : undefined;
  }

  /** Publish only when the sender's trailer matches what was written; otherwise keep .partial. Always record. */
  private async settle(u: Upload, senderBytes: bigint | null, senderSha: string | null, failReason?: string): Promise<UploadRecord> {
    this.upload = undefined;
    if (this.state === 'file') this.state = 'ready';
    const digest = u.hash.digest('hex');
    let reason: string | null = failReason ?? null;
    try {
      await u.writing;
    } catch (e) {
      reason ??= `writing the file failed: ${(e as Error).message}`;
    }
    if (reason === null) {
      if (senderBytes !== u.bytes) reason = `byte count differs: sender sent ${String(senderBytes)}, receiver wrote ${u.bytes}`;
      else if (senderSha !== digest) reason = 'SHA-256 differs between sender and receiver';
    }
    let complete = false;
    if (reason === null) {
      try {
        await u.sink.finish();
        complete = true;
      } catch (e) {
        reason = `could not publish: ${(e as Error).message}`;
        await u.sink.abort().catch(() => undefined);
      }
    } else {
      await u.sink.abort().catch(() => undefined);
    }
    const rel = `${sanitizeLabel(this.caseLabel, 'nocase')}/${u.name}`;
    const rec: UploadRecord = {
      schema: 'memdump.upload/1',
      status: complete ? 'COMPLETE' : 'INCOMPLETE',
      reason,
      role: u.role,
      case: this.caseLabel,
      name: u.name,
      path: complete ? rel : rel + '.partial',
      bytes: u.bytes.toString(),
      receiverSha256: digest,
      senderSha256: senderSha,
      senderBytes: senderBytes === null ? null : senderBytes.toString(),
      peer: this.peer,
      auth: this.auth!,
      ...(u.role !== 'evidence' && this.evidence ? { evidence: this.evidence } : {}),
      sender: { hello: this.hello, meta: u.meta },
      started: u.started.toISOString(),
      ended: new Date().toISOString(),
    };
    this.stats.uploads++;
    try {
      await writeUploadRecord(join(this.caseDir, u.name + '.upload.json'), rec);
    } finally {
      this.cfg.onUpload?.(rec);
      // after a failure the REFUSE that follows carries the outcome, so the sender reads one verdict
      if (this.state !== 'closed') this.send(T.RESULT, { status: rec.status, bytes: rec.bytes, sha256: digest, name: u.name, path: rec.path, reason });
    }
    return rec;
  }
}
