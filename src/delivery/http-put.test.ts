import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { expectCode, expectCodeAsync } from '../../test/helpers/expect-code.js';
import { Prng } from '../../test/helpers/prng.js';
import { StreamingPutSink, checkUrl, remoteError, retryableStatus, sendBuffer } from './http-put.js';

/** What a small local server saw of each request: the raw head and a digest of the body it received. */
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  bytes: number;
  sha256: string;
  complete: boolean;
}

describe('http-put', () => {
  let server: http.Server;
  let base: string;
  const seen: Seen[] = [];
  let mode: 'ok' | 'deny-early' = 'ok';
  let waitFor: ((s: Seen) => void) | undefined;

  before(async () => {
    server = http.createServer((req, res) => {
      if (mode === 'deny-early') {
        // answer before reading the body, as S3 does for a bad signature
        res.writeHead(403, { 'content-type': 'application/xml', connection: 'close' });
        res.end('<Error><Code>AccessDenied</Code><Message>no</Message></Error>');
        req.resume();
        return;
      }
      const h = createHash('sha256');
      let n = 0;
      const done = (complete: boolean) => {
        const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bytes: n, sha256: h.digest('hex'), complete };
        seen.push(s);
        waitFor?.(s);
      };
      req.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      req.on('end', () => {
        done(true);
        res.writeHead(200, { etag: '"e"' });
        res.end();
      });
      req.on('aborted', () => done(false));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('checkUrl refuses http unless allowed, other schemes, user:password; messages carry no query string', () => {
    const e = expectCode(() => checkUrl(`${base}/b/k?X-Amz-Signature=SECRET`, false, '--to'), 'E_USAGE');
    assert.ok(!e.message.includes('SECRET'));
    assert.match(e.message, /in clear/);
    assert.equal(checkUrl(`${base}/b/k`, true, '--to').pathname, '/b/k');
    expectCode(() => checkUrl('ftp://x/y', true, '--to'), 'E_USAGE');
    expectCode(() => checkUrl('https://u:p@x/y', true, '--to'), 'E_USAGE');
    expectCode(() => checkUrl('nonsense', true, '--to'), 'E_USAGE');
  });

  it('remoteError: status, S3 code, no query; retryable only for 5xx/408/429', () => {
    const e = remoteError(403, Buffer.from('<Error><Code>SignatureDoesNotMatch</Code></Error>'), 'x', 'https://h/b/k?X-Amz-Signature=SECRET');
    assert.equal(e.code, 'E_REMOTE');
    assert.equal(e.details['status'], 403);
    assert.equal(e.details['s3Code'], 'SignatureDoesNotMatch');
    assert.ok(!e.message.includes('SECRET'));
    assert.deepEqual([500, 503, 408, 429, 400, 403, 404].map(retryableStatus), [true, true, true, true, false, false, false]);
  });

  it('streams exactly the announced length with Content-Length (no chunked encoding); the buffer may be reused at once', async () => {
    const data = new Prng(7).bytes(3 * 1024 * 1024 + 5);
    const sink = new StreamingPutSink(new URL(`${base}/b/obj?sig=1`), BigInt(data.length), { allowHttp: true });
    const scratch = Buffer.alloc(256 * 1024);
    for (let off = 0; off < data.length; off += scratch.length) {
      const n = Math.min(scratch.length, data.length - off);
      data.copy(scratch, 0, off, off + n);
      await sink.write(scratch.subarray(0, n));
      scratch.fill(0xaa);
    }
    const r = await sink.finish();
    assert.equal(r.path, `${base}/b/obj`);
    const s = seen.at(-1)!;
    assert.equal(s.headers['content-length'], String(data.length));
    assert.equal(s.headers['transfer-encoding'], undefined);
    assert.equal(s.sha256, createHash('sha256').update(data).digest('hex'));
    assert.equal(s.complete, true);
  });

  it('writeZeros sends zeros', async () => {
    const sink = new StreamingPutSink(new URL(`${base}/b/z`), 3_000_000n, { allowHttp: true });
    await sink.writeZeros(3_000_000n);
    await sink.finish();
    assert.equal(seen.at(-1)!.sha256, createHash('sha256').update(Buffer.alloc(3_000_000)).digest('hex'));
  });

  it('a short or long stream is refused and the server never sees a complete body', async () => {
    const got = new Promise<Seen>((r) => (waitFor = r));
    const sink = new StreamingPutSink(new URL(`${base}/b/short`), 100n, { allowHttp: true });
    await sink.write(Buffer.alloc(40));
    await expectCodeAsync(sink.finish(), 'E_USAGE');
    const s = await got;
    waitFor = undefined;
    assert.equal(s.complete, false);
    assert.ok(s.bytes < 100);
    const long = new StreamingPutSink(new URL(`${base}/b/long`), 10n, { allowHttp: true });
    await expectCodeAsync(long.write(Buffer.alloc(11)), 'E_USAGE');
    assert.equal(long.position, 0n);
    assert.equal((await long.abort()).complete, false);
  });

  it('an early 403 stops the upload: the next write or finish is E_REMOTE with the status', async () => {
    mode = 'deny-early';
    try {
      const sink = new StreamingPutSink(new URL(`${base}/b/denied?X-Amz-Signature=SECRET`), 64n * 1024n * 1024n, { allowHttp: true });
      const chunk = Buffer.alloc(1024 * 1024);
      const e = await expectCodeAsync(
        (async () => {
          for (let i = 0; i < 64; i++) await sink.write(chunk);
          await sink.finish();
        })(),
        'E_REMOTE',
      );
      assert.equal(e.details['status'], 403);
      assert.equal(e.details['s3Code'], 'AccessDenied');
      assert.ok(!e.message.includes('SECRET'));
      assert.ok(sink.position < 64n * 1024n * 1024n, 'stopped before sending everything');
    } finally {
      mode = 'ok';
    }
  });

  it('sendBuffer returns status, headers, body; a refused connection is E_REMOTE and retryable', async () => {
    const r = await sendBuffer('PUT', `${base}/b/x`, Buffer.from('hello'), { allowHttp: true }, 'test');
    assert.equal(r.status, 200);
    assert.equal(r.headers.etag, '"e"');
    const closed = http.createServer();
    await new Promise<void>((res) => closed.listen(0, '127.0.0.1', res));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((res) => closed.close(res));
    const e = await expectCodeAsync(sendBuffer('PUT', `http://127.0.0.1:${port}/b/x?sig=SECRET`, Buffer.alloc(1), { allowHttp: true }, 'test'), 'E_REMOTE');
    assert.equal(e.details['retryable'], true);
    assert.ok(!e.message.includes('SECRET'));
  });
});
