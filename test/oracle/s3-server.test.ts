import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { Command } from 'commander';
import { registerPresign } from '../../src/cli/presign.js';
import { MemdumpError } from '../../src/core/errors.js';
import { HttpsPutTarget } from '../../src/delivery/https-target.js';
import { presignPut, presignUpload } from '../../src/delivery/presign.js';
import type { Manifest } from '../../src/delivery/s3-manifest.js';
import { MultipartSink, S3PresignedTarget } from '../../src/delivery/s3-target.js';
import { SIDE_SUFFIX, type SideRole } from '../../src/delivery/types.js';
import { expectCodeAsync } from '../helpers/expect-code.js';
import { Prng } from '../helpers/prng.js';
import { S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, type S3TestServer, startS3Server, getObject, sdk } from '../helpers/s3-server.js';

/**
 * Oracle: s3rver 3.7.1 (a real S3 implementation, read back with the AWS SDK) behind the helper's front, which
 * adds SigV4 pre-signed signature checks, AbortMultipartUpload and ListMultipartUploads that s3rver lacks.
 */

const MiB = 1024 * 1024;
const PART = 5 * MiB;
const credentials = { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY };
const meta = { host: 'examined', source: 'test', format: 'raw', layers: [] as string[] };

async function listUploads(s: S3TestServer): Promise<{ key: string; id: string }[]> {
  const c = sdk(s);
  try {
    const r = await c.send(new ListMultipartUploadsCommand({ Bucket: s.bucket }));
    return (r.Uploads ?? []).map((u) => ({ key: u.Key ?? '', id: u.UploadId ?? '' }));
  } finally {
    c.destroy();
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function manifestFile(dir: string, s: S3TestServer, key: string, maxBytes: bigint, edit?: (m: Manifest) => void): Promise<string> {
  const m = await presignUpload({ bucket: s.bucket, key, region: S3_REGION, endpoint: s.endpoint, forcePathStyle: true, maxBytes, partSize: BigInt(PART), expiresSeconds: 3600, credentials, ...(s.ca !== undefined ? { ca: s.ca } : {}) });
  edit?.(m);
  const p = join(dir, `${key.replace(/\W/g, '_')}.manifest.json`);
  await fsp.writeFile(p, JSON.stringify(m));
  return p;
}

/** Seeded data written in seeded chunk sizes through ONE scratch buffer that is overwritten after each write: a sink that keeps a reference instead of copying corrupts the object. */
async function feed(sink: { write(b: Buffer): Promise<void> }, data: Buffer, seed: number): Promise<void> {
  const rng = new Prng(seed);
  const scratch = Buffer.alloc(2 * MiB);
  for (let off = 0; off < data.length; ) {
    const n = Math.min(1 + rng.int(2 * MiB), data.length - off);
    data.copy(scratch, 0, off, off + n);
    await sink.write(scratch.subarray(0, n));
    scratch.fill(0xee, 0, n);
    off += n;
  }
}

function tamperSignature(url: string): string {
  const u = new URL(url);
  const sig = u.searchParams.get('X-Amz-Signature')!;
  u.searchParams.set('X-Amz-Signature', (sig[0] === '0' ? '1' : '0') + sig.slice(1));
  return u.href;
}

describe('S3 delivery against s3rver (127.0.0.1)', () => {
  let s: S3TestServer;
  let dir: string;
  before(async () => {
    s = await startS3Server();
    dir = await fsp.mkdtemp(join(s.dir, 'work-'));
  });
  after(async () => s.close());

  it('multipart: 3.5 parts arrive byte-exact, side files too, never more than two part buffers', async () => {
    const data = new Prng(1).bytes(3 * PART + PART / 2);
    const target = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'case/host.lime', BigInt(4 * PART)), { allowHttp: true, retryDelayMs: 0 });
    assert.ok(!target.describe.includes('?'));
    const sink = (await target.openEvidence(meta)) as MultipartSink;
    await feed(sink, data, 11);
    const receipt = await sink.finish();
    assert.equal(receipt.complete, true);
    assert.equal(receipt.bytes, BigInt(data.length));
    assert.equal(receipt.path, `${s.endpoint}/${s.bucket}/case/host.lime`);
    const sides: Record<SideRole, Buffer> = { report: Buffer.from('{"r":1}'), log: Buffer.from('log\n'), map: Buffer.from('{"m":[]}'), signature: new Prng(2).bytes(64) };
    for (const role of Object.keys(sides) as SideRole[]) {
      const where = await target.putSide(role, sides[role]);
      assert.equal(where, `${s.endpoint}/${s.bucket}/case/host.lime${SIDE_SUFFIX[role]}`);
    }
    await target.close();
    assert.equal(sha((await getObject(s, 'case/host.lime'))!), sha(data));
    for (const role of Object.keys(sides) as SideRole[]) assert.deepEqual(await getObject(s, 'case/host.lime' + SIDE_SUFFIX[role]), sides[role]);
    assert.equal(sink.stats.partsSent, 4);
    assert.ok(sink.stats.maxBuffersHeld <= 2, `held ${sink.stats.maxBuffersHeld}`);
    assert.ok(sink.stats.buffersAllocated <= 2, `allocated ${sink.stats.buffersAllocated}`);
    assert.deepEqual(await s.openUploads(), []);
  });

  it('a third part buffer is never taken: write() waits while one part is on the wire and the next is full', async () => {
    let release!: () => void;
    let arrived!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const seenPart1 = new Promise<void>((r) => (arrived = r));
    s.inject({ method: 'PUT', query: 'partNumber=1&', action: 'pass', before: () => (arrived(), gate) });
    const target = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'gate.raw', BigInt(4 * PART)), { allowHttp: true, retryDelayMs: 0 });
    const sink = (await target.openEvidence(meta)) as MultipartSink;
    const data = new Prng(3).bytes(3 * PART);
    await sink.write(data.subarray(0, 2 * PART)); // part 1 on the wire (held by the server), part 2 full in memory
    await seenPart1;
    let done = false;
    const third = sink.write(data.subarray(2 * PART)).then(() => (done = true));
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    assert.equal(done, false, 'write() must wait for part 1 before taking a third buffer');
    assert.equal(sink.stats.maxBuffersHeld, 2);
    release();
    await third;
    await sink.finish();
    assert.equal(sink.stats.buffersAllocated, 2);
    assert.equal(sha((await getObject(s, 'gate.raw'))!), sha(data));
    await target.close();
  });

  it('a part that fails (HTTP 500, then a reset connection) is retried and the object is still exact', async () => {
    s.inject({ method: 'PUT', query: 'partNumber=2&', action: 500 });
    s.inject({ method: 'PUT', query: 'partNumber=3&', action: 'reset' });
    const data = new Prng(4).bytes(3 * PART + 1234);
    const target = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'flaky.raw', BigInt(4 * PART)), { allowHttp: true, retryDelayMs: 0 });
    const sink = (await target.openEvidence(meta)) as MultipartSink;
    await feed(sink, data, 5);
    await sink.finish();
    await target.close();
    assert.equal(sink.stats.partsSent, 4);
    assert.equal(sink.stats.attempts, 6);
    assert.equal(sha((await getObject(s, 'flaky.raw'))!), sha(data));
  });

  it('a part that keeps failing ends in E_REMOTE with the status, and the upload is aborted (no object, no open upload)', async () => {
    s.inject({ method: 'PUT', query: 'partNumber=2&', action: 503, times: 4 });
    const target = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'fails.raw', BigInt(4 * PART)), { allowHttp: true, retryDelayMs: 0 });
    const sink = (await target.openEvidence(meta)) as MultipartSink;
    const e = await expectCodeAsync(
      (async () => {
        await feed(sink, new Prng(6).bytes(3 * PART), 7);
        await sink.finish();
      })(),
      'E_REMOTE',
    );
    assert.equal(e.details['status'], 503);
    assert.equal(e.details['attempts'], 4);
    assert.ok(!e.message.includes('X-Amz'), e.message);
    assert.equal((await sink.abort()).complete, false);
    await target.close();
    assert.equal(await getObject(s, 'fails.raw'), undefined);
    assert.deepEqual(await listUploads(s), []);
  });

  it('abort() mid-upload leaves no object and no open multipart upload (ListMultipartUploads)', async () => {
    const target = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'aborted.raw', BigInt(4 * PART)), { allowHttp: true, retryDelayMs: 0 });
    const sink = await target.openEvidence(meta);
    await sink.write(new Prng(8).bytes(PART + PART / 2));
    const open = await listUploads(s);
    assert.deepEqual(open.map((u) => u.key), ['aborted.raw']);
    const r = await sink.abort();
    assert.equal(r.complete, false);
    assert.equal(r.bytes, BigInt(PART + PART / 2));
    await target.close();
    assert.deepEqual(await listUploads(s), []);
    assert.equal(await getObject(s, 'aborted.raw'), undefined);
    assert.ok(s.seen.some((q) => q.method === 'DELETE' && q.query.includes(open[0]!.id) && q.status === 204));
  });

  it('more data than parts × partSize: E_LIMIT before a byte past the limit is taken; no object', async () => {
    const target = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'limit.raw', BigInt(2 * PART)), { allowHttp: true, retryDelayMs: 0 });
    assert.equal(target.manifest.parts.length, 2);
    const sink = await target.openEvidence(meta);
    await sink.write(new Prng(9).bytes(2 * PART - 10));
    await expectCodeAsync(sink.write(Buffer.alloc(20)), 'E_LIMIT');
    assert.equal(sink.position, BigInt(2 * PART - 10));
    await sink.abort();
    await target.close();
    assert.equal(await getObject(s, 'limit.raw'), undefined);
    assert.deepEqual(await listUploads(s), []);
    const mine = s.seen.filter((q) => q.path === `/${s.bucket}/limit.raw` && q.method === 'PUT');
    assert.deepEqual(mine.map((q) => /partNumber=(\d+)/.exec(q.query)?.[1]), ['1'], 'only part 1 (full) was sent; the partial part 2 never left');
  });

  it('the abort signal (SIGINT) stops the upload: E_INTERRUPTED, and the upload is aborted', async () => {
    const ac = new AbortController();
    let arrived!: () => void;
    const seenPart1 = new Promise<void>((r) => (arrived = r));
    s.inject({ method: 'PUT', query: 'partNumber=1&', action: 'pass', before: () => (arrived(), ac.signal.aborted ? Promise.resolve() : new Promise<void>((r) => ac.signal.addEventListener('abort', () => r()))) });
    const target = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'sigint.raw', BigInt(3 * PART)), { allowHttp: true, retryDelayMs: 0, signal: ac.signal });
    const sink = await target.openEvidence(meta);
    const writing = sink.write(new Prng(16).bytes(2 * PART + 1));
    await seenPart1;
    ac.abort();
    await expectCodeAsync(
      (async () => {
        await writing;
        await sink.finish();
      })(),
      'E_INTERRUPTED',
    );
    await sink.abort();
    await target.close();
    assert.deepEqual(await listUploads(s), []);
    assert.equal(await getObject(s, 'sigint.raw'), undefined);
  });

  it('writeZeros past the limit is E_LIMIT too', async () => {
    const target = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'zlimit.raw', BigInt(PART)), { allowHttp: true, retryDelayMs: 0 });
    const sink = await target.openEvidence(meta);
    await expectCodeAsync(sink.writeZeros(BigInt(PART) + 1n), 'E_LIMIT');
    assert.equal(sink.position, 0n);
    await target.close();
    assert.deepEqual(await listUploads(s), []);
  });

  it('an empty stream still produces a valid, empty object', async () => {
    const target = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'empty.raw', BigInt(PART)), { allowHttp: true, retryDelayMs: 0 });
    const sink = await target.openEvidence(meta);
    const r = await sink.finish();
    await target.close();
    assert.equal(r.bytes, 0n);
    assert.deepEqual(await getObject(s, 'empty.raw'), Buffer.alloc(0));
  });

  it('writeZeros across part boundaries', async () => {
    const target = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'zeros.raw', BigInt(3 * PART)), { allowHttp: true, retryDelayMs: 0 });
    const sink = await target.openEvidence(meta);
    const head = new Prng(10).bytes(PART - 3);
    await sink.write(head);
    await sink.writeZeros(BigInt(PART + 7));
    await sink.write(Buffer.from('tail'));
    await sink.finish();
    await target.close();
    assert.equal(sha((await getObject(s, 'zeros.raw'))!), sha(Buffer.concat([head, Buffer.alloc(PART + 7), Buffer.from('tail')])));
  });

  it('tampered part signature: refused with 403 SignatureDoesNotMatch → E_REMOTE (the front checks it; s3rver alone would accept it)', async () => {
    const p = await manifestFile(dir, s, 'tampered.raw', BigInt(2 * PART), (m) => {
      m.parts[0]!.url = tamperSignature(m.parts[0]!.url);
    });
    const target = await S3PresignedTarget.fromManifest(p, { allowHttp: true, retryDelayMs: 0 });
    const sink = await target.openEvidence(meta);
    const e = await expectCodeAsync(
      (async () => {
        await sink.write(new Prng(12).bytes(PART + 1));
        await sink.finish();
      })(),
      'E_REMOTE',
    );
    assert.equal(e.details['status'], 403);
    assert.equal(e.details['s3Code'], 'SignatureDoesNotMatch');
    assert.equal(e.details['attempts'], undefined, '403 is not retried');
    await target.close();
    assert.equal(await getObject(s, 'tampered.raw'), undefined);
    // what s3rver 3.7.1 does by itself with the same tampered URL: accepted (it does not verify SigV4)
    const m = JSON.parse(await fsp.readFile(p, 'utf8')) as Manifest;
    const inner = new URL(m.parts[0]!.url);
    const direct = await fetch(s.innerEndpoint + inner.pathname + inner.search, { method: 'PUT', body: 'x' });
    assert.equal(direct.status, 200);
  });

  it('an expired pre-signed URL is refused with 403 (s3rver checks X-Amz-Date + X-Amz-Expires itself)', async () => {
    const url = await presignPut({ bucket: s.bucket, key: 'expired.raw', region: S3_REGION, endpoint: s.endpoint, forcePathStyle: true, expiresSeconds: 3600, credentials });
    const u = new URL(url);
    u.searchParams.set('X-Amz-Date', '20200101T000000Z');
    const direct = await fetch(s.innerEndpoint + u.pathname + u.search, { method: 'PUT', body: 'x' });
    assert.equal(direct.status, 403);
    const t = HttpsPutTarget.create(u.href, { allowHttp: true });
    const sink = await t.openEvidence({ ...meta, expectedBytes: 1n });
    const e = await expectCodeAsync(
      (async () => {
        await sink.write(Buffer.from('x'));
        await sink.finish();
      })(),
      'E_REMOTE',
    );
    assert.equal(e.details['status'], 403);
    await t.close();
  });

  it('single pre-signed PUT round trip; sizes that disagree are refused and leave no object', async () => {
    const put = (key: string) => presignPut({ bucket: s.bucket, key, region: S3_REGION, endpoint: s.endpoint, forcePathStyle: true, expiresSeconds: 600, credentials });
    const data = new Prng(13).bytes(3 * MiB + 17);
    const t = HttpsPutTarget.create(await put('single.raw'), { allowHttp: true });
    assert.equal(t.describe, `${s.endpoint}/${s.bucket}/single.raw`);
    await expectCodeAsync(t.openEvidence(meta), 'E_USAGE');
    const sink = await t.openEvidence({ ...meta, expectedBytes: BigInt(data.length) });
    await feed(sink, data, 14);
    const r = await sink.finish();
    assert.equal(r.path, t.describe);
    assert.equal(await t.putSide('report', Buffer.from('{}')), undefined);
    await t.close();
    assert.equal(sha((await getObject(s, 'single.raw'))!), sha(data));

    const long = HttpsPutTarget.create(await put('long.raw'), { allowHttp: true });
    const ls = await long.openEvidence({ ...meta, expectedBytes: 10n });
    await ls.write(Buffer.alloc(6));
    await expectCodeAsync(ls.write(Buffer.alloc(6)), 'E_USAGE');
    await long.close();
    const short = HttpsPutTarget.create(await put('short.raw'), { allowHttp: true });
    const ss = await short.openEvidence({ ...meta, expectedBytes: 10n });
    await ss.write(Buffer.alloc(6));
    await expectCodeAsync(ss.finish(), 'E_USAGE');
    await short.close();
    // the server has seen the dropped connections by the time a later request is answered on a new one
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await getObject(s, 'long.raw'), undefined);
    assert.equal(await getObject(s, 'short.raw'), undefined);
  });

  it('plain http is refused without allowHttp, for a PUT URL and for a manifest', async () => {
    const url = await presignPut({ bucket: s.bucket, key: 'x', region: S3_REGION, endpoint: s.endpoint, forcePathStyle: true, expiresSeconds: 600, credentials });
    assert.throws(() => HttpsPutTarget.create(url, {}), (e: unknown) => e instanceof MemdumpError && e.code === 'E_USAGE' && /in clear/.test(e.message) && !e.message.includes('X-Amz'));
    await expectCodeAsync(S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'plain.raw', BigInt(PART)), {}), 'E_USAGE');
  });

  it('a manifest whose URLs point at different servers is refused', async () => {
    const p = await manifestFile(dir, s, 'mixed.raw', BigInt(PART), (m) => {
      m.sides.log = 'https://elsewhere.example/b/k.log?X-Amz-Signature=00';
    });
    const e = await expectCodeAsync(S3PresignedTarget.fromManifest(p, { allowHttp: true }), 'E_USAGE');
    assert.equal(e.details['field'], 'sides.log');
    assert.ok(!e.message.includes('X-Amz'));
  });

  it('an expired manifest is refused before anything is opened', async () => {
    const p = await manifestFile(dir, s, 'old.raw', BigInt(PART), (m) => {
      m.expires = new Date(Date.now() - 1000).toISOString();
    });
    const e = await expectCodeAsync(S3PresignedTarget.fromManifest(p, { allowHttp: true }), 'E_USAGE');
    assert.match(e.message, /expired/);
  });

  it('memdump presign: manifest 0600, never overwritten (and no upload created then); --put prints a URL; bad part size is E_USAGE', async () => {
    const run = async (args: string[]): Promise<string> => {
      const program = new Command().exitOverride().option('--json').option('-q, --quiet');
      registerPresign(program, () => ({ quiet: true }), () => undefined);
      const out: string[] = [];
      const orig = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((c: string) => (out.push(String(c)), true)) as typeof process.stdout.write;
      try {
        await program.parseAsync(['node', 'memdump', 'presign', '--endpoint', s.endpoint, '--path-style', '--bucket', s.bucket, ...args]);
      } finally {
        process.stdout.write = orig;
      }
      return out.join('');
    };
    const env = { ...process.env };
    process.env['AWS_ACCESS_KEY_ID'] = S3_ACCESS_KEY;
    process.env['AWS_SECRET_ACCESS_KEY'] = S3_SECRET_KEY;
    try {
      const out = join(dir, 'cli.manifest.json');
      await run(['--key', 'cli.raw', '--max-size', '12M', '--part-size', '5M', '--expires', '1h', '-o', out]);
      const st = await fsp.stat(out);
      assert.equal(st.mode & 0o777, 0o600);
      const m = JSON.parse(await fsp.readFile(out, 'utf8')) as Manifest;
      assert.equal(m.parts.length, 3);
      assert.ok(!JSON.stringify(m).includes(S3_SECRET_KEY + '"'), 'no secret in the manifest');
      const before = (await s.openUploads()).length;
      await expectCodeAsync(run(['--key', 'cli2.raw', '-o', out]), 'E_DEST_EXISTS');
      assert.equal((await s.openUploads()).length, before);
      await expectCodeAsync(run(['--key', 'k', '--part-size', '1M']), 'E_USAGE');
      await expectCodeAsync(run(['--key', 'k', '--max-size', '100G', '--part-size', '5M']), 'E_USAGE');
      await expectCodeAsync(run(['--key', 'k', '--expires', '8d']), 'E_USAGE');
      const url = (await run(['--put', '--key', 'cli-put.raw'])).trim();
      const t = HttpsPutTarget.create(url, { allowHttp: true });
      const sink = await t.openEvidence({ ...meta, expectedBytes: 3n });
      await sink.write(Buffer.from('abc'));
      await sink.finish();
      assert.deepEqual(await getObject(s, 'cli-put.raw'), Buffer.from('abc'));
      // and the manifest the CLI wrote drives a real upload
      const target = await S3PresignedTarget.fromManifest(out, { allowHttp: true, retryDelayMs: 0 });
      const data = new Prng(15).bytes(PART + 99);
      const ms = await target.openEvidence(meta);
      await ms.write(data);
      await ms.finish();
      await target.close();
      assert.equal(sha((await getObject(s, 'cli.raw'))!), sha(data));
    } finally {
      process.env = env;
    }
  });
});

describe('S3 delivery over HTTPS with a test CA (127.0.0.1)', () => {
  let s: S3TestServer;
  let dir: string;
  before(async () => {
    s = await startS3Server({ https: true });
    dir = await fsp.mkdtemp(join(s.dir, 'work-'));
  });
  after(async () => s.close());

  it('multipart and single PUT work with `ca`; without it the certificate is rejected (E_REMOTE, tls)', async () => {
    const data = new Prng(20).bytes(PART + 5);
    const p = await manifestFile(dir, s, 'tls.raw', BigInt(2 * PART));
    const target = await S3PresignedTarget.fromManifest(p, { ca: s.ca!, retryDelayMs: 0 });
    const sink = await target.openEvidence(meta);
    await sink.write(data);
    await sink.finish();
    assert.equal(await target.putSide('log', Buffer.from('log')), `${s.endpoint}/${s.bucket}/tls.raw.log`);
    await target.close();
    assert.equal(sha((await getObject(s, 'tls.raw'))!), sha(data));

    const untrusted = await S3PresignedTarget.fromManifest(await manifestFile(dir, s, 'tls2.raw', BigInt(2 * PART)), { retryDelayMs: 0 });
    const us = await untrusted.openEvidence(meta);
    const e = await expectCodeAsync(
      (async () => {
        await us.write(data);
        await us.finish();
      })(),
      'E_REMOTE',
    );
    assert.equal(e.details['tls'], true, e.message);
    await untrusted.close();
    assert.equal(await getObject(s, 'tls2.raw'), undefined);

    const url = await presignPut({ bucket: s.bucket, key: 'tls-put.raw', region: S3_REGION, endpoint: s.endpoint, forcePathStyle: true, expiresSeconds: 600, credentials, ca: s.ca! });
    const ok = HttpsPutTarget.create(url, { ca: s.ca! });
    const okSink = await ok.openEvidence({ ...meta, expectedBytes: 4n });
    await okSink.write(Buffer.from('abcd'));
    await okSink.finish();
    assert.deepEqual(await getObject(s, 'tls-put.raw'), Buffer.from('abcd'));
    const bad = HttpsPutTarget.create(url, {});
    const badSink = await bad.openEvidence({ ...meta, expectedBytes: 4n });
    const e2 = await expectCodeAsync(
      (async () => {
        await badSink.write(Buffer.from('abcd'));
        await badSink.finish();
      })(),
      'E_REMOTE',
    );
    assert.equal(e2.details['tls'], true);
  });
});
