import { execFileSync } from 'node:child_process';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { promises as fsp, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';

/**
 * s3rver 3.7.1 on 127.0.0.1 behind a small front server. What the front adds, and why:
 *  - s3rver accepts any SigV4 signature (its V4 check is "unimplemented": it only looks up the access key id and
 *    the X-Amz-Date + X-Amz-Expires window), so the front recomputes every query-string (pre-signed) SigV4
 *    signature from the AWS spec and answers 403 SignatureDoesNotMatch itself;
 *  - s3rver has no AbortMultipartUpload (DELETE ?uploadId answers 405) and no ListMultipartUploads, so the front
 *    implements both over s3rver's own upload directory;
 *  - s3rver completes with whatever parts the request lists without checking ETags or the 5 MiB minimum, so the
 *    front checks both as S3 does (InvalidPart, EntityTooSmall);
 *  - fault injection (fail the next matching request with a status, or cut the connection).
 * The front speaks HTTPS with a throwaway CA when asked.
 */

export const S3_ACCESS_KEY = 'S3RVER';
export const S3_SECRET_KEY = 'S3RVER';
export const S3_REGION = 'us-east-1';
export const MIN_PART = 5 * 1024 * 1024;

export interface Fault {
  method?: string;
  /** Substring of the raw query string (e.g. 'partNumber=2'). */
  query?: string;
  /** HTTP status to answer, 'reset' to destroy the socket after reading the head, 'pass' to serve it normally. */
  action: number | 'reset' | 'pass';
  /** Awaited before the action: holds the request (and its body) until the test lets it through. */
  before?: () => Promise<void>;
  times: number;
}

export interface SeenRequest {
  method: string;
  path: string;
  query: string;
  status: number;
}

export interface S3TestServer {
  endpoint: string;
  /** s3rver itself, without the front's checks (to show what s3rver alone accepts). */
  innerEndpoint: string;
  bucket: string;
  dir: string;
  /** PEM of the test CA when started with https. */
  ca?: string;
  seen: SeenRequest[];
  inject(f: Omit<Fault, 'times'> & { times?: number }): void;
  /** Upload ids still open for the bucket (from s3rver's store). */
  openUploads(): Promise<string[]>;
  close(): Promise<void>;
}

const require = createRequire(import.meta.url);

export async function startS3Server(o: { https?: boolean } = {}): Promise<S3TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'memdump-s3-'));
  const bucket = 'test-bucket';
  const S3rver = require('s3rver') as new (opts: Record<string, unknown>) => { run(): Promise<AddressInfo>; close(): Promise<void> };
  const inner = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: join(dir, 'store'), configureBuckets: [{ name: bucket, configs: [] }] });
  const innerAddr = await inner.run();
  const uploadsDir = join(dir, 'store', bucket, '._S3rver_uploads');
  const faults: Fault[] = [];
  const seen: SeenRequest[] = [];

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    void handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) reply(res, 500, 'InternalError', String(e));
      else res.destroy();
    });
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const qi = rawUrl.indexOf('?');
    const path = qi < 0 ? rawUrl : rawUrl.slice(0, qi);
    const query = qi < 0 ? '' : rawUrl.slice(qi + 1);
    const method = req.method ?? 'GET';
    const record = (status: number) => seen.push({ method, path, query, status });

    const fault = faults.find((f) => f.times > 0 && (f.method === undefined || f.method === method) && (f.query === undefined || query.includes(f.query)));
    if (fault) {
      fault.times--;
      if (fault.before) await fault.before();
      if (fault.action === 'reset') {
        record(0);
        req.socket.destroy();
        return;
      }
      if (fault.action !== 'pass') {
        record(fault.action);
        req.resume();
        return reply(res, fault.action, 'InternalError', 'injected fault');
      }
    }

    const params = new URLSearchParams(query);
    if (params.has('X-Amz-Algorithm')) {
      const bad = checkPresigned(method, path, params, req.headers);
      if (bad) {
        req.resume();
        record(403);
        return reply(res, 403, bad.code, bad.message);
      }
    }

    const [, b, ...keyParts] = path.split('/').filter((x, i) => i < 2 || x !== '');
    if (method === 'DELETE' && params.has('uploadId') && b === bucket) {
      req.resume();
      const id = params.get('uploadId') ?? '';
      const ok = /^[0-9a-f]+$/.test(id) && (await exists(join(uploadsDir, id)));
      if (!ok) {
        record(404);
        return reply(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
      }
      await fsp.rm(join(uploadsDir, id), { recursive: true, force: true });
      record(204);
      res.writeHead(204).end();
      return;
    }
    if (method === 'GET' && params.has('uploads') && b === bucket && keyParts.length === 0) {
      req.resume();
      const ids = await listUploads();
      const items = await Promise.all(ids.map(async (id) => `<Upload><Key>${escapeXml(await fsp.readFile(join(uploadsDir, id, 'key'), 'utf8').catch(() => '(no key file)'))}</Key><UploadId>${id}</UploadId></Upload>`));
      record(200);
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult><Bucket>${bucket}</Bucket><IsTruncated>false</IsTruncated>${items.join('')}</ListMultipartUploadsResult>`);
      return;
    }
    let body: Buffer | undefined;
    if (method === 'PUT') {
      // S3 stores a PUT only once the whole Content-Length arrived; s3rver would store whatever came before a
      // dropped connection, so the front takes the body first and forwards only a complete one
      const want = Number(req.headers['content-length']);
      try {
        body = await readAll(req, 64 << 20);
      } catch {
        record(0);
        return;
      }
      if (!Number.isInteger(want) || body.length !== want) {
        record(400);
        return reply(res, 400, 'IncompleteBody', `got ${body.length} of ${want} bytes`);
      }
    }
    if (method === 'POST' && params.has('uploadId')) {
      body = await readAll(req, 1 << 20);
      const bad = await checkComplete(params.get('uploadId') ?? '', body.toString('utf8'));
      if (bad) {
        record(400);
        return reply(res, 400, bad.code, bad.message);
      }
    }
    await forward(req, res, innerAddr.port, body, record);
  }

  async function checkComplete(id: string, xml: string): Promise<{ code: string; message: string } | undefined> {
    if (!/^[0-9a-f]+$/.test(id) || !(await exists(join(uploadsDir, id)))) return { code: 'NoSuchUpload', message: 'The specified upload does not exist.' };
    const parts = [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((m) => ({
      n: Number(/<PartNumber>(\d+)<\/PartNumber>/.exec(m[1] ?? '')?.[1]),
      etag: (/<ETag>([^<]*)<\/ETag>/.exec(m[1] ?? '')?.[1] ?? '').replace(/&quot;|"/g, ''),
    }));
    if (parts.length === 0) return { code: 'MalformedXML', message: 'no parts' };
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i > 0 && p.n <= parts[i - 1]!.n) return { code: 'InvalidPartOrder', message: 'parts out of order' };
      let md5: string;
      let size: number;
      try {
        md5 = await fsp.readFile(join(uploadsDir, id, `${p.n}.md5`), 'utf8');
        size = (await fsp.stat(join(uploadsDir, id, String(p.n)))).size;
      } catch {
        return { code: 'InvalidPart', message: `part ${p.n} was not uploaded` };
      }
      if (md5 !== p.etag) return { code: 'InvalidPart', message: `part ${p.n}: ETag ${p.etag} does not match ${md5}` };
      if (i < parts.length - 1 && size < MIN_PART) return { code: 'EntityTooSmall', message: `part ${p.n} is ${size} bytes` };
    }
    return undefined;
  }

  async function listUploads(): Promise<string[]> {
    try {
      return (await fsp.readdir(uploadsDir)).filter((n) => /^[0-9a-f]+$/.test(n)).sort();
    } catch {
      return [];
    }
  }

  let ca: string | undefined;
  let server: http.Server | https.Server;
  if (o.https) {
    const pki = makeTestPki(join(dir, 'pki'));
    ca = pki.ca;
    server = https.createServer({ key: pki.key, cert: pki.cert }, handler);
  } else {
    server = http.createServer(handler);
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const endpoint = `${o.https ? 'https' : 'http'}://127.0.0.1:${port}`;

  const result: S3TestServer = {
    endpoint,
    innerEndpoint: `http://127.0.0.1:${innerAddr.port}`,
    bucket,
    dir,
    seen,
    inject: (f) => faults.push({ ...f, times: f.times ?? 1 }),
    openUploads: listUploads,
    close: async () => {
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await inner.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (ca !== undefined) result.ca = ca;
  return result;
}

function reply(res: http.ServerResponse, status: number, code: string, message: string): void {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
  res.end(xml);
}

function forward(req: http.IncomingMessage, res: http.ServerResponse, port: number, body: Buffer | undefined, record: (s: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const headers = { ...req.headers };
    if (body) headers['content-length'] = String(body.length);
    const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers }, (r) => {
      record(r.statusCode ?? 0);
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
      r.on('end', () => resolve());
      r.on('error', reject);
    });
    up.on('error', reject);
    req.on('error', () => up.destroy());
    if (body) up.end(body);
    else req.pipe(up);
  });
}

async function readAll(req: http.IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > max) throw new Error('body too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.stat(p);
    return true;
  } catch {
    return false;
  }
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** RFC 3986 unreserved characters stay; everything else is %XX, as SigV4 canonicalisation requires. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** SigV4 query-string authentication, recomputed from the spec (AWS "Authenticating Requests: Using Query Parameters"). */
function checkPresigned(method: string, path: string, q: URLSearchParams, headers: http.IncomingHttpHeaders): { code: string; message: string } | undefined {
  const cred = q.get('X-Amz-Credential') ?? '';
  const [ak, date, region, service, term] = cred.split('/');
  if (ak !== S3_ACCESS_KEY) return { code: 'InvalidAccessKeyId', message: 'The AWS Access Key Id you provided does not exist in our records.' };
  if (!date || !region || !service || term !== 'aws4_request') return { code: 'AuthorizationQueryParametersError', message: 'bad X-Amz-Credential' };
  const amzDate = q.get('X-Amz-Date') ?? '';
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  const expires = Number(q.get('X-Amz-Expires'));
  if (!m || !Number.isInteger(expires) || expires < 1 || expires > 604800) return { code: 'AuthorizationQueryParametersError', message: 'bad X-Amz-Date or X-Amz-Expires' };
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (Date.now() > t + expires * 1000) return { code: 'AccessDenied', message: 'Request has expired' };
  const signed = (q.get('X-Amz-SignedHeaders') ?? '').split(';').filter(Boolean);
  const canonicalQuery = [...q.entries()]
    .filter(([k]) => k !== 'X-Amz-Signature')
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalHeaders = signed.map((h) => `${h}:${String(headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [method, path, canonicalQuery, canonicalHeaders, signed.join(';'), q.get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD'].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let key = createHmac('sha256', 'AWS4' + S3_SECRET_KEY).update(date).digest();
  for (const part of [region, service, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const expected = createHmac('sha256', key).update(toSign).digest();
  const given = Buffer.from(q.get('X-Amz-Signature') ?? '', 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match the signature you provided.' };
  }
  return undefined;
}

/** A throwaway CA and a server certificate for 127.0.0.1, made with the openssl command line. */
export function makeTestPki(dir: string): { ca: string; key: string; cert: string } {
  execFileSync('mkdir', ['-p', dir]);
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=memdump test CA']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n" > ext.cnf'], { cwd: dir });
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return { ca: readFileSync(join(dir, 'ca.pem'), 'utf8'), key: readFileSync(join(dir, 'server.key'), 'utf8'), cert: readFileSync(join(dir, 'server.pem'), 'utf8') };
}

/** An SDK client for the test server (the analyst's side of a test). */
export function sdk(s: S3TestServer): S3Client {
  return new S3Client({
    region: S3_REGION,
    endpoint: s.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(s.ca !== undefined ? { requestHandler: { httpsAgent: new https.Agent({ ca: s.ca }) } } : {}),
  });
}

export async function getObject(s: S3TestServer, key: string): Promise<Buffer | undefined> {
  const c = sdk(s);
  try {
    const r = await c.send(new GetObjectCommand({ Bucket: s.bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } catch (e) {
    if ((e as { name?: string }).name === 'NoSuchKey') return undefined;
    throw e;
  } finally {
    c.destroy();
  }
}

