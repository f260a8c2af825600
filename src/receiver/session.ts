import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { MemdumpError } from '../core/errors.js';
import { SIDE_SUFFIX, type SideRole } from '../delivery/types.js';
import { FileSink } from '../sinks/file.js';
import { FROM_SENDER, FrameDecoder, MAGIC, PROTOCOL_VERSION, T, byteCount, encodeFrame, optStr, str, type Frame, type FrameType } from './frame.js';
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
}

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
  private readonly decoder = new FrameDecoder(FROM_SENDER);
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

  private onData(chunk: Buffer): void {
    this.stats.applicationBytes += chunk.length;
    if (this.state === 'closed') return;
    this.socket.pause();
    this.chain = this.chain
      .then(async () => {
        if (this.state === 'closed') return;
        for (const f of this.decoder.push(chunk)) {
          this.touch();
          await this.handle(f);
          if (this.isClosed()) return;
        }
        if (this.decoder.failure) throw this.decoder.failure;
        this.socket.resume();
      })
      .catch((e: unknown) => this.failNow(e));
  }

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
      });
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

  private fail(e: unknown): void {
    this.chain = this.chain.then(() => this.failNow(e));
  }

  private async failNow(e: unknown): Promise<void> {
    if (this.state === 'closed') return;
    const err = e instanceof MemdumpError ? e : new MemdumpError('E_INTERNAL', String((e as Error)?.message ?? e));
    this.state = 'closed';
    this.clearTimers();
    const rec = await this.settleOpen(`${err.code}: ${err.message}`).catch(() => undefined);
    const message = FORWARD.has(err.code) ? err.message : `the receiver could not store the upload (${err.code})`;
    this.send(T.REFUSE, { code: err.code, message, ...(rec ? { upload: { status: rec.status, bytes: rec.bytes, name: rec.name, path: rec.path } } : {}) });
    this.socket.end();
    // keep reading (and discarding) so the sender is not stuck on a full window and the close is a FIN, not a
    // reset that could destroy the REFUSE before the sender reads it
    this.socket.resume();
    // a sender that never reads its side of the close must not hold the descriptor
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  private send(type: FrameType, json: Record<string, unknown>): void {
    if (!this.socket.writable) return;
    this.socket.write(encodeFrame(type, json));
  }

  private async handle(f: Frame): Promise<void> {
    if (f.type === T.PING) return;
    if (this.state === 'hello') {
      if (f.type !== T.HELLO) throw new MemdumpError('E_AUTH', 'authentication required: the first frame must be HELLO');
      return this.onHello(f.json);
    }
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
    if (j['v'] !== PROTOCOL_VERSION) throw new MemdumpError('E_PROTOCOL', `protocol version ${String(j['v'])} is not supported (this receiver speaks ${PROTOCOL_VERSION})`);
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
    if (asked !== undefined && asked !== bound) throw new MemdumpError('E_AUTH', `this credential is for case "${bound}", not "${asked}"`);
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

  private async onOpen(j: Record<string, unknown>): Promise<void> {
    if (this.state !== 'ready') throw new MemdumpError('E_PROTOCOL', 'OPEN while a file is open');
    const role = str(j['role'], 'OPEN.role', 16);
    if (!ROLES.has(role)) throw new MemdumpError('E_PROTOCOL', `unknown role ${JSON.stringify(role)}`);
    const meta = j['meta'] && typeof j['meta'] === 'object' && !Array.isArray(j['meta']) ? (j['meta'] as Record<string, unknown>) : {};
    let name: string;
    let limit: bigint;
    if (role === 'evidence') {
      if (this.evidence !== undefined) throw new MemdumpError('E_PROTOCOL', 'one evidence file per connection');
      if (meta['case'] !== undefined && meta['case'] !== this.caseLabel) throw new MemdumpError('E_AUTH', `this credential is for case "${this.caseLabel}", not "${String(meta['case']).slice(0, 64)}"`);
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
    this.upload = { role: role as Role, name, sink, hash: createHash('sha256'), bytes: 0n, limit, nextAck: ACK_EVERY, meta, started: new Date() };
    this.state = 'file';
    this.send(T.ACK, { offset: '0', name, path: `${sanitizeLabel(this.caseLabel, 'nocase')}/${name}` });
  }

  private async onDataFrame(data: Buffer): Promise<void> {
    const u = this.upload;
    if (this.state !== 'file' || !u) throw new MemdumpError('E_PROTOCOL', 'DATA without an open file');
    const room = u.limit - u.bytes;
    const take = BigInt(data.length) > room ? data.subarray(0, Number(room)) : data;
    if (take.length > 0) {
      u.hash.update(take);
      await u.sink.write(take);
      u.bytes += BigInt(take.length);
    }
    if (take.length < data.length) throw new MemdumpError('E_LIMIT', `upload exceeds the receiver's limit of ${u.limit} bytes`);
    if (u.bytes >= u.nextAck) {
      u.nextAck += ACK_EVERY;
      this.send(T.ACK, { offset: u.bytes.toString() });
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
