import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemdumpError } from '../core/errors.js';
import type { OutputSink, Receipt } from '../sinks/types.js';
import { stripQuery } from './s3-manifest.js';

/**
 * HTTP(S) requests to pre-signed URLs. A pre-signed query string is a bearer credential: no message, error or
 * receipt made here contains one (stripQuery everywhere).
 */

export interface HttpOptions {
  /** PEM of the CA to trust instead of the system store (a private object store, tests). */
  ca?: string;
  /** Permit http:// (loopback tests only): in clear, the URL can be replayed and the evidence read by anyone on the path. */
  allowHttp?: boolean;
  signal?: AbortSignal;
  /** Idle socket time before the request counts as failed. */
  idleTimeoutMs?: number;
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Responses we read: ETag headers and small XML documents. A larger body is cut, not buffered. */
const MAX_RESPONSE = 64 * 1024;
const DEFAULT_IDLE_MS = 120_000;

export function checkUrl(raw: string, allowHttp: boolean | undefined, what: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new MemdumpError('E_USAGE', `${what}: not a URL`);
  }
  if (u.protocol === 'http:' && !allowHttp) {
    throw new MemdumpError(
      'E_USAGE',
      `${what}: ${stripQuery(raw)} is plain http: the pre-signed URL is a credential and the evidence would cross the network in clear, where anyone on the path can read or replay them; use https://`,
      { details: { url: stripQuery(raw) } },
    );
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new MemdumpError('E_USAGE', `${what}: ${u.protocol} URLs are not supported; use https://`);
  if (u.username || u.password) throw new MemdumpError('E_USAGE', `${what}: user:password in the URL is not supported`);
  return u;
}

export function makeAgent(u: URL, o: HttpOptions): http.Agent {
  return u.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: 2, ...(o.ca !== undefined ? { ca: o.ca } : {}) }) : new http.Agent({ keepAlive: true, maxSockets: 2 });
}

/** 5xx, 408 and 429 are worth another attempt; any other 4xx (expired, bad signature, no such upload) is not. */
export function retryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/** E_REMOTE for an HTTP status, with S3's <Code> when the body has one. */
export function remoteError(status: number, body: Buffer, what: string, url: string): MemdumpError {
  const text = body.toString('utf8');
  const code = /<Code>([^<]{1,100})<\/Code>/.exec(text)?.[1];
  const hint = status === 403 ? ' (expired or altered pre-signed URL? ask the analyst for a new one)' : '';
  return new MemdumpError('E_REMOTE', `${what}: ${stripQuery(url)} answered HTTP ${status}${code ? ` ${code}` : ''}${hint}`, {
    details: { status, s3Code: code ?? null, url: stripQuery(url), retryable: retryableStatus(status) },
  });
}

/** A connection-level failure: TLS refusal, reset, timeout. Certificate problems are not worth retrying. */
export function networkError(e: unknown, what: string, url: string, signal?: AbortSignal): MemdumpError {
  if (e instanceof MemdumpError) return e;
  if (signal?.aborted) return new MemdumpError('E_INTERRUPTED', `${what}: interrupted`, { cause: e });
  const errno = (e as { code?: unknown }).code;
  const code = typeof errno === 'string' ? errno : 'EUNKNOWN';
  const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME/.test(code);
  const msg = (e as Error).message ?? String(e);
  return new MemdumpError('E_REMOTE', `${what}: ${stripQuery(url)}: ${tls ? `the server's certificate is not trusted (${msg}); pass the object store's CA if it is private` : msg}`, {
    details: { errno: code, url: stripQuery(url), tls, retryable: !tls },
    cause: e,
  });
}

/**
 * Start a request; the caller writes the body. `response` settles once with the status and a bounded body, or
 * rejects with a coded error (never with the URL's query string in it).
 */
export function startRequest(
  method: string,
  u: URL,
  headers: Record<string, string>,
  o: HttpOptions & { agent?: http.Agent },
  what: string,
): { req: http.ClientRequest; response: Promise<HttpResult> } {
  const mod = u.protocol === 'https:' ? https : http;
  const opts: https.RequestOptions = { method, headers, timeout: o.idleTimeoutMs ?? DEFAULT_IDLE_MS };
  if (o.agent) opts.agent = o.agent;
  else if (o.ca !== undefined) opts.ca = o.ca;
  if (o.signal) opts.signal = o.signal;
  const req = mod.request(u, opts);
  const response = new Promise<HttpResult>((resolve, reject) => {
    req.on('timeout', () => req.destroy(Object.assign(new Error('no progress for the idle timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (e) => reject(networkError(e, what, u.href, o.signal)));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        if (n < MAX_RESPONSE) chunks.push(c.subarray(0, MAX_RESPONSE - n));
        n += c.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (e) => reject(networkError(e, what, u.href, o.signal)));
    });
  });
  // a rejection nobody awaits yet (the body is still being written) must not crash the process
  response.catch(() => undefined);
  return { req, response };
}

/** One request with the whole body in memory (a part, a side file, the Complete XML). */
export async function sendBuffer(method: string, url: string, body: Buffer, o: HttpOptions & { agent?: http.Agent }, what: string): Promise<HttpResult> {
  const u = checkUrl(url, o.allowHttp, what);
  const { req, response } = startRequest(method, u, { 'content-length': String(body.length) }, o, what);
  req.end(body);
  return response;
}

/**
 * A streaming PUT whose length is announced up front: S3 does not take chunked uploads, and a body that ends
 * short of Content-Length never becomes an object, so a wrong size is refused here and the connection dropped.
 */
export class StreamingPutSink implements OutputSink {
  private pos = 0n;
  private state: 'open' | 'done' | 'failed' = 'open';
  private failure: MemdumpError | undefined;
  private readonly req: http.ClientRequest;
  private readonly response: Promise<HttpResult>;
  private readonly what: string;

  constructor(
    private readonly url: URL,
    private readonly expected: bigint,
    private readonly o: HttpOptions,
  ) {
    this.what = `uploading to ${stripQuery(url.href)}`;
    ({ req: this.req, response: this.response } = startRequest('PUT', url, { 'content-length': expected.toString() }, o, this.what));
    // the store may answer (403, 400) before the body is sent: stop writing at once
    this.response.then(
      (r) => {
        if (this.state === 'open' && (r.status < 200 || r.status > 299)) this.fail(remoteError(r.status, r.body, this.what, url.href));
      },
      (e: MemdumpError) => this.fail(e),
    );
  }

  get describe(): string {
    return stripQuery(this.url.href);
  }
  get position(): bigint {
    return this.pos;
  }

  async write(buf: Buffer): Promise<void> {
    this.check();
    if (buf.length === 0) return;
    if (this.pos + BigInt(buf.length) > this.expected) {
      const e = new MemdumpError('E_USAGE', `${this.what}: more bytes than the ${this.expected} announced; a pre-signed PUT cannot grow (use s3-presigned multipart for streams of unknown size)`, {
        details: { expectedBytes: this.expected.toString(), position: this.pos.toString() },
      });
      this.fail(e);
      throw e;
    }
    this.pos += BigInt(buf.length);
    // wait for the socket to take the chunk: the caller may reuse `buf` once we resolve
    await new Promise<void>((resolve, reject) => {
      const onFail = () => reject(this.failure);
      this.req.once('close', onFail);
      this.req.write(buf, (err) => {
        this.req.off('close', onFail);
        if (err) reject(this.failure ?? networkError(err, this.what, this.url.href, this.o.signal));
        else resolve();
      });
    });
    this.check();
  }

  async writeZeros(n: bigint): Promise<void> {
    const zero = Buffer.alloc(Number(n < 1n << 20n ? n : 1n << 20n));
    while (n > 0n) {
      const k = n < BigInt(zero.length) ? Number(n) : zero.length;
      await this.write(zero.subarray(0, k));
      n -= BigInt(k);
    }
  }

  async finish(): Promise<Receipt> {
    this.check();
    if (this.pos !== this.expected) {
      const e = new MemdumpError('E_USAGE', `${this.what}: ${this.pos} bytes written but ${this.expected} announced; the upload was dropped so no short object exists`, {
        details: { expectedBytes: this.expected.toString(), bytes: this.pos.toString() },
      });
      this.fail(e);
      throw e;
    }
    this.req.end();
    const r = await this.response.catch((e: unknown) => {
      this.state = 'failed';
      throw e;
    });
    if (r.status < 200 || r.status > 299) {
      this.state = 'failed';
      throw remoteError(r.status, r.body, this.what, this.url.href);
    }
    this.state = 'done';
    return { path: this.describe, bytes: this.pos, complete: true };
  }

  async abort(): Promise<Receipt> {
    if (this.state === 'open') this.fail(new MemdumpError('E_INTERRUPTED', `${this.what}: aborted`));
    return { path: this.describe, bytes: this.pos, complete: this.state === 'done' };
  }

  private check(): void {
    if (this.state === 'failed') throw this.failure ?? new MemdumpError('E_REMOTE', `${this.what}: failed`);
    if (this.state === 'done') throw new MemdumpError('E_INTERNAL', `${this.what}: already finished`);
  }

  /** Dropping the connection before Content-Length bytes leaves no object behind. */
  private fail(e: MemdumpError): void {
    if (this.state !== 'open') return;
    this.state = 'failed';
    this.failure = e;
    this.req.destroy();
  }
}

/** A request is tried once and then retried this many times: the fourth failure ends the upload. */
export const PART_RETRIES = 3;

/** One attempt and up to PART_RETRIES more, for errors that say another attempt may succeed. */
export async function withRetries<T>(what: string, delayMs: number, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const retryable = e instanceof MemdumpError && e.details['retryable'] === true;
      if (!retryable || attempt >= PART_RETRIES || signal?.aborted) {
        if (e instanceof MemdumpError && attempt > 0) e.details['attempts'] = attempt + 1;
        throw e instanceof MemdumpError ? e : new MemdumpError('E_REMOTE', `${what}: ${String(e)}`, { cause: e });
      }
      if (delayMs > 0) {
        await sleep(delayMs * 2 ** attempt, undefined, signal ? { signal } : {}).catch((abort: unknown) => {
          throw new MemdumpError('E_INTERRUPTED', `${what}: interrupted`, { cause: abort });
        });
      }
    }
  }
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
