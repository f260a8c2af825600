import type http from 'node:http';
import { constants as bufferConstants } from 'node:buffer';
import { MemdumpError } from '../core/errors.js';
import type { OutputSink, Receipt } from '../sinks/types.js';
import { type HttpOptions, checkUrl, escapeXml, makeAgent, remoteError, sendBuffer, withRetries } from './http-put.js';
import { type Manifest, assertNotExpired, manifestCapacity, readManifest, stripQuery } from './s3-manifest.js';
import type { RemoteTarget, SideRole, UploadMeta } from './types.js';

export interface S3TargetOptions {
  ca?: string;
  allowHttp?: boolean;
  signal?: AbortSignal;
  /** Base of the exponential back-off between attempts of one part (tests use 0). */
  retryDelayMs?: number;
}

/**
 * `--to s3-presigned:MANIFEST.json`: a multipart upload through URLs the analyst pre-signed, so the examined host
 * holds no credential. Every URL is checked before the source is opened, so a bad manifest costs no read.
 */
export class S3PresignedTarget implements RemoteTarget {
  private agent: http.Agent | undefined;
  private sink: MultipartSink | undefined;

  private constructor(
    readonly manifest: Manifest,
    private readonly opts: S3TargetOptions,
  ) {}

  static async fromManifest(path: string, opts: S3TargetOptions): Promise<S3PresignedTarget> {
    const m = await readManifest(path);
    assertNotExpired(m);
    const what = `manifest ${path}`;
    const origin = checkUrl(m.completeUrl, opts.allowHttp, `${what} completeUrl`).origin;
    // one object store, one connection pool: a URL elsewhere is a manifest edited by hand or not ours
    const same = (u: string, field: string) => {
      if (checkUrl(u, opts.allowHttp, `${what} ${field}`).origin !== origin) throw new MemdumpError('E_USAGE', `${what}: ${field} points to another server than completeUrl (${origin})`, { details: { field } });
    };
    for (const p of m.parts) same(p.url, `parts[${p.partNumber - 1}]`);
    same(m.abortUrl, 'abortUrl');
    for (const [role, u] of Object.entries(m.sides)) if (u !== undefined) same(u, `sides.${role}`);
    if (BigInt(m.partSize) > BigInt(bufferConstants.MAX_LENGTH)) {
      throw new MemdumpError('E_USAGE', `${what}: partSize ${m.partSize} is larger than one buffer can hold here (${bufferConstants.MAX_LENGTH}); presign with a smaller --part-size`);
    }
    return new S3PresignedTarget(m, opts);
  }

  get describe(): string {
    return stripQuery(this.manifest.completeUrl);
  }

  async openEvidence(_meta: UploadMeta): Promise<OutputSink> {
    if (this.sink) throw new MemdumpError('E_INTERNAL', `${this.describe}: the evidence was already opened`);
    assertNotExpired(this.manifest);
    this.sink = new MultipartSink(this.manifest, this.httpOpts(), this.opts.retryDelayMs ?? 500);
    return this.sink;
  }

  async putSide(role: SideRole, data: Buffer): Promise<string | undefined> {
    const url = this.manifest.sides[role];
    if (url === undefined) return undefined;
    const what = `uploading the ${role} file`;
    await withRetries(what, this.opts.retryDelayMs ?? 500, this.opts.signal, async () => {
      const r = await sendBuffer('PUT', url, data, this.httpOpts(), what);
      if (r.status < 200 || r.status > 299) throw remoteError(r.status, r.body, what, url);
    });
    return stripQuery(url);
  }

  async close(): Promise<void> {
    if (this.sink) await this.sink.abort().catch(() => undefined);
    this.agent?.destroy();
    this.agent = undefined;
  }

  private httpOpts(): HttpOptions & { agent: http.Agent } {
    this.agent ??= makeAgent(new URL(this.manifest.completeUrl), this.opts);
    const o: HttpOptions & { agent: http.Agent } = { agent: this.agent };
    if (this.opts.allowHttp !== undefined) o.allowHttp = this.opts.allowHttp;
    if (this.opts.signal !== undefined) o.signal = this.opts.signal;
    return o;
  }
}

/** Counters the memory test reads: the target's own account of what it holds, not a heap measurement. */
export interface MultipartStats {
  buffersAllocated: number;
  maxBuffersHeld: number;
  partsSent: number;
  attempts: number;
}

/**
 * Two part buffers at most: one filling while the other is on the wire. A part is kept until the store accepts it
 * so it can be sent again; when the next one is full before that, write() waits — the source is slowed to the
 * network's pace instead of memory growing.
 */
export class MultipartSink implements OutputSink {
  readonly stats: MultipartStats = { buffersAllocated: 0, maxBuffersHeld: 0, partsSent: 0, attempts: 0 };
  private readonly partSize: number;
  private readonly capacity: bigint;
  private pos = 0n;
  private free: Buffer[] = [];
  private cur: Buffer | undefined;
  private curLen = 0;
  private nextPart = 1;
  private inflight: Promise<void> | undefined;
  /** The part request itself, settled whatever its outcome: Abort must not overtake it. */
  private lastPart: Promise<void> | undefined;
  private held = 0;
  private readonly etags: { partNumber: number; etag: string }[] = [];
  private state: 'open' | 'done' | 'failed' | 'aborted' = 'open';
  private failure: unknown;
  private abortSent: Promise<void> | undefined;

  constructor(
    private readonly m: Manifest,
    private readonly o: HttpOptions & { agent: http.Agent },
    private readonly retryDelayMs: number,
  ) {
    this.partSize = Number(m.partSize);
    this.capacity = manifestCapacity(m);
  }

  get describe(): string {
    return stripQuery(this.m.completeUrl);
  }
  get position(): bigint {
    return this.pos;
  }

  async write(buf: Buffer): Promise<void> {
    this.check();
    this.assertRoom(BigInt(buf.length));
    let off = 0;
    while (off < buf.length) {
      const dst = await this.room();
      const n = Math.min(this.partSize - this.curLen, buf.length - off);
      buf.copy(dst, this.curLen, off, off + n);
      this.curLen += n;
      off += n;
      this.pos += BigInt(n);
    }
  }

  async writeZeros(n: bigint): Promise<void> {
    this.check();
    this.assertRoom(n);
    while (n > 0n) {
      const dst = await this.room();
      const k = Math.min(this.partSize - this.curLen, n > BigInt(this.partSize) ? this.partSize : Number(n));
      dst.fill(0, this.curLen, this.curLen + k);
      this.curLen += k;
      n -= BigInt(k);
      this.pos += BigInt(k);
    }
  }

  async finish(): Promise<Receipt> {
    this.check();
    try {
      // an empty stream still makes an object: one empty part is valid as the last (only) part
      if (this.curLen > 0 || this.nextPart === 1) {
        if (!this.cur) this.cur = this.take();
        await this.ship();
      }
      await this.inflight;
      await this.complete();
    } catch (e) {
      await this.failWith(e);
      throw e;
    }
    this.state = 'done';
    this.release();
    return { path: this.describe, bytes: this.pos, complete: true };
  }

  async abort(): Promise<Receipt> {
    if (this.state === 'open' || this.state === 'failed') {
      if (this.state === 'open') this.state = 'aborted';
      await this.lastPart;
      await this.sendAbort();
      this.release();
    }
    return { path: this.describe, bytes: this.pos, complete: this.state === 'done' };
  }

  /** More than the manifest's parts can hold is refused before any byte of it is taken. */
  private assertRoom(n: bigint): void {
    if (this.pos + n > this.capacity) {
      const e = new MemdumpError('E_LIMIT', `${this.describe}: the manifest holds ${this.m.parts.length} parts of ${this.m.partSize} bytes (${this.capacity} bytes) and the output is larger; presign with a larger --max-size`, {
        details: { capacity: this.capacity.toString(), position: this.pos.toString() },
      });
      void this.failWith(e);
      throw e;
    }
  }

  /** The buffer to copy into, with at least one free byte: ships the current part when it is full. */
  private async room(): Promise<Buffer> {
    if (this.cur && this.curLen === this.partSize) await this.ship();
    this.check();
    if (!this.cur) this.cur = this.take();
    return this.cur;
  }

  private take(): Buffer {
    const b = this.free.pop() ?? this.alloc();
    this.held++;
    this.stats.maxBuffersHeld = Math.max(this.stats.maxBuffersHeld, this.held);
    if (this.held > 2) throw new MemdumpError('E_INTERNAL', 'multipart upload holds more than two part buffers');
    return b;
  }

  private alloc(): Buffer {
    this.stats.buffersAllocated++;
    return Buffer.allocUnsafe(this.partSize);
  }

  /** Wait for the part on the wire (its buffer comes back), then put the current one on the wire. */
  private async ship(): Promise<void> {
    await this.inflight;
    this.check();
    const buf = this.cur!;
    const len = this.curLen;
    const partNumber = this.nextPart++;
    this.cur = undefined;
    this.curLen = 0;
    const p = this.sendPart(partNumber, buf.subarray(0, len)).finally(() => {
      this.held--;
      this.free.push(buf);
    });
    this.lastPart = p.catch(() => undefined);
    this.inflight = p.catch(async (e: unknown) => {
      await this.failWith(e);
      throw e;
    });
    this.inflight.catch(() => undefined);
  }

  private async sendPart(partNumber: number, body: Buffer): Promise<void> {
    const part = this.m.parts[partNumber - 1];
    if (!part) throw new MemdumpError('E_LIMIT', `${this.describe}: part ${partNumber} is beyond the manifest's ${this.m.parts.length} parts`);
    const what = `uploading part ${partNumber} of ${this.m.parts.length}`;
    const etag = await withRetries(what, this.retryDelayMs, this.o.signal, async () => {
      this.stats.attempts++;
      const r = await sendBuffer('PUT', part.url, body, this.o, what);
      if (r.status < 200 || r.status > 299) throw remoteError(r.status, r.body, what, part.url);
      const tag = r.headers.etag;
      if (typeof tag !== 'string' || tag.length === 0 || tag.length > 200) {
        throw new MemdumpError('E_REMOTE', `${what}: the object store answered without an ETag`, { details: { retryable: false } });
      }
      return tag;
    });
    this.etags.push({ partNumber, etag });
    this.stats.partsSent++;
  }

  private async complete(): Promise<void> {
    const what = 'completing the multipart upload';
    const parts = [...this.etags].sort((a, b) => a.partNumber - b.partNumber);
    const xml =
      '<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      parts.map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>${escapeXml(p.etag)}</ETag></Part>`).join('') +
      '</CompleteMultipartUpload>';
    await withRetries(what, this.retryDelayMs, this.o.signal, async () => {
      const r = await sendBuffer('POST', this.m.completeUrl, Buffer.from(xml), this.o, what);
      // S3 may answer 200 and still report an error in the body (it failed while assembling the parts)
      if (r.status < 200 || r.status > 299 || /<Error>/.test(r.body.toString('utf8'))) throw remoteError(r.status === 200 ? 500 : r.status, r.body, what, this.m.completeUrl);
    });
  }

  private async failWith(e: unknown): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'failed';
    this.failure = e;
    // a part still on the wire could land after the abort and leave the upload open again
    await this.lastPart;
    await this.sendAbort();
  }

  /** Best effort, once: a later Complete cannot happen, so an upload left open would only cost the analyst storage. */
  private sendAbort(): Promise<void> {
    this.abortSent ??= withRetries('aborting the multipart upload', this.retryDelayMs, undefined, async () => {
      const r = await sendBuffer('DELETE', this.m.abortUrl, Buffer.alloc(0), { ...this.o, signal: AbortSignal.timeout(60_000) }, 'aborting the multipart upload');
      if ((r.status < 200 || r.status > 299) && r.status !== 404) throw remoteError(r.status, r.body, 'aborting the multipart upload', this.m.abortUrl);
    }).catch(() => undefined);
    return this.abortSent;
  }

  private release(): void {
    this.free = [];
    this.cur = undefined;
  }

  private check(): void {
    if (this.state === 'failed') throw this.failure;
    if (this.state === 'aborted') throw new MemdumpError('E_INTERRUPTED', `${this.describe}: the upload was aborted`);
    if (this.state === 'done') throw new MemdumpError('E_INTERNAL', `${this.describe}: already finished`);
  }
}
