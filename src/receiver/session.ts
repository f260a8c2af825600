import type { TLSSocket } from 'node:tls';
import { MemdumpError } from '../core/errors.js';
import { SIDE_SUFFIX, type SideRole } from '../delivery/types.js';
import { escapeControl } from '../core/escape.js';
import { PROTOCOL_VERSION, T, byteCount, optStr, str, type Frame } from './frame.js';
import { caseDirectory, evidenceName, sanitizeLabel } from './naming.js';
import type { UploadRecord } from './record.js';
import { SessionConnection } from './session-connection.js';
import { type Upload, checkRate, openUpload, settleUpload, writeUpload } from './session-upload.js';
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

const ROLES: ReadonlySet<string> = new Set(['evidence', 'report', 'log', 'map', 'signature']);

/**
 * One sender connection: HELLO, then the evidence file and its side files, one at a time.
 * Every path out of an open upload goes through settle(), which writes the .upload.json record.
 */
export class Session extends SessionConnection {
  private auth: Auth | undefined;
  private caseLabel = '';
  private caseDir = '';
  private evidence: string | undefined;
  private sidesDone = new Set<string>();
  private upload: Upload | undefined;
  private hello: Record<string, unknown> = {};
  private readonly peer: { address: string; port: number | null };

  constructor(
    socket: TLSSocket,
    cfg: SessionConfig,
    stats: SessionStats,
    private readonly hooks: SessionHooks = { admit: () => true },
  ) {
    super(socket, cfg, stats);
    this.peer = { address: socket.remoteAddress ?? 'unknown', port: socket.remotePort ?? null };
  }

  protected async handle(f: Frame): Promise<void> {
    if (f.type === T.PING) return;
    if (this.state === 'hello') {
      if (f.type !== T.HELLO) throw new MemdumpError('E_PROTOCOL', 'authentication required: the first frame must be HELLO');
      return this.onHello(f.json);
    }
    if (this.upload) checkRate(this.upload, this.cfg.minRate, this.cfg.minRateGraceMs);
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
    this.upload = await openUpload(this.caseDir, role as Role, name, limit, meta);
    this.state = 'file';
    this.send(T.ACK, { offset: '0', name, path: `${sanitizeLabel(this.caseLabel, 'nocase')}/${name}` });
  }

  private async onDataFrame(data: Buffer): Promise<void> {
    const u = this.upload;
    if (this.state !== 'file' || !u) throw new MemdumpError('E_PROTOCOL', 'DATA without an open file');
    const ack = await writeUpload(u, data);
    if (ack !== undefined) this.send(T.ACK, { offset: ack });
  }

  private async onEnd(j: Record<string, unknown>): Promise<void> {
    const u = this.upload;
    if (this.state !== 'file' || !u) throw new MemdumpError('E_PROTOCOL', 'END without an open file');
    const bytes = byteCount(j['bytes'], 'END.bytes');
    const sha = str(j['sha256'], 'END.sha256', 64).toLowerCase();
    await this.settle(u, bytes, sha);
  }

  protected async settleOpen(reason: string): Promise<UploadRecord | undefined> {
    const u = this.upload;
    return u ? this.settle(u, null, null, reason) : undefined;
  }

  /** Publish only when the sender's trailer matches what was written; otherwise keep .partial. Always record. */
  private async settle(u: Upload, senderBytes: bigint | null, senderSha: string | null, failReason?: string): Promise<UploadRecord> {
    this.upload = undefined;
    if (this.state === 'file') this.state = 'ready';
    return settleUpload(u, senderBytes, senderSha, failReason, {
      caseLabel: this.caseLabel,
      caseDir: this.caseDir,
      peer: this.peer,
      auth: this.auth!,
      hello: this.hello,
      evidence: this.evidence,
      stats: this.stats,
      onUpload: this.cfg.onUpload,
      result: (json) => {
        // after a failure the REFUSE that follows carries the outcome, so the sender reads one verdict
        if (this.state !== 'closed') this.send(T.RESULT, json);
      },
    });
  }
}
