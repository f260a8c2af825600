import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseReport } from '../../src/pipeline/report.js';
import { TWO_RUN_LAYOUT, fakeRoot } from '../fixtures/generate.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { S3_ACCESS_KEY, S3_SECRET_KEY, getObject, startS3Server } from '../helpers/s3-server.js';

// acquire --to https://PRESIGNED and --to s3-presigned:MANIFEST through the real commands, against s3rver (behind
// the test front that checks SigV4) over HTTPS with a test CA: the analyst runs `memdump presign`, the host sends
const LAYOUT = TWO_RUN_LAYOUT;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const analyst = { ...process.env, AWS_ACCESS_KEY_ID: S3_ACCESS_KEY, AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY };

/** An HTTPS object store with a test CA (the CA written to a file for --ca), a small host, and its plain acquisition. */
async function setup(t: { after: (fn: () => void | Promise<void>) => void }) {
  const s = await startS3Server({ https: true });
  t.after(() => s.close());
  const work = tempDir(t);
  const ca = join(work, 'ca.pem');
  writeFileSync(ca, s.ca!);
  const root = fakeRoot(join(work, 'root'), LAYOUT);
  const plain = join(work, 'plain.lime');
  assert.equal((await runCli(['acquire', '--root', root, '-o', plain, '-q', '--no-context'])).code, 0);
  return { s, work, ca, root, plain };
}

test('presign --put + acquire --to https://…: the object is the LiME a local acquisition writes; age fits the declared length', async (t) => {
  const { s, work, ca, root, plain } = await setup(t);
  const presign = async (key: string) => {
    const p = await runCli(['presign', '--put', '--endpoint', s.endpoint, '--path-style', '--ca', ca, '--bucket', s.bucket, '--key', key, '--expires', '1h'], { env: analyst });
    assert.equal(p.code, 0, p.stderr);
    return p.stdout.toString().trim();
  };
  const url = await presign('IR-42/web01.lime');
  assert.match(url, /X-Amz-Signature=/);
  const report = join(work, 'web01.report.json');
  const r = await runCli(['acquire', '--root', root, '--no-context', '-q', '--to', url, '--ca', ca, '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  const obj = await getObject(s, 'IR-42/web01.lime');
  assert.ok(obj?.equals(readFileSync(plain)), 'the object equals a local acquisition');
  const rep = parseReport(readFileSync(report, 'utf8'), 'r');
  assert.equal(rep.outputs[0]?.path, url.slice(0, url.indexOf('?')), 'the report keeps the URL without its signature');
  assert.ok(!readFileSync(report, 'utf8').includes('X-Amz-Signature'));
  assert.equal(rep.hashes?.digests.sha256, sha256(obj!));

  // age: the stored length is computed before the first byte (Content-Length), and the object decrypts
  const identity = join(work, 'k');
  execFileSync('age-keygen', ['-o', identity], { stdio: 'pipe' });
  const recipient = execFileSync('age-keygen', ['-y', identity]).toString().trim();
  const url2 = await presign('IR-42/web01.lime.age');
  const r2 = await runCli(['acquire', '--root', root, '--no-context', '-q', '--to', url2, '--ca', ca, '--recipient', recipient, '--report', join(work, 'r2.json')]);
  assert.equal(r2.code, 0, r2.stderr);
  const enc = join(work, 'got.lime.age');
  writeFileSync(enc, (await getObject(s, 'IR-42/web01.lime.age'))!);
  assert.ok(execFileSync('age', ['-d', '-i', identity, enc], { maxBuffer: 1 << 28 }).equals(readFileSync(plain)));

  // compression makes the size unknowable in advance: refused before anything is read, nothing uploaded
  const url3 = await presign('IR-42/web01.lime.zst');
  const r3 = await runCli(['acquire', '--root', root, '--no-context', '-q', '--to', url3, '--ca', ca, '--compress', 'zstd']);
  assert.equal(r3.code, 2, r3.stderr);
  assert.match(r3.stderr, /s3-presigned/);
  assert.equal(await getObject(s, 'IR-42/web01.lime.zst'), undefined);
  // without --ca the private CA is not trusted
  const r4 = await runCli(['acquire', '--root', root, '--no-context', '-q', '--to', url3]);
  assert.notEqual(r4.code, 0);
});

test('presign manifest + acquire --to s3-presigned: multipart evidence, zstd, and the report, log and signature as their own objects', async (t) => {
  const { s, work, ca, root, plain } = await setup(t);
  const sign = join(work, 'sign.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', sign]);
  const manifest = join(work, 'web01.manifest.json');
  const key = 'IR-42/web01.lime.zst';
  const p = await runCli(['presign', '--endpoint', s.endpoint, '--path-style', '--ca', ca, '--bucket', s.bucket, '--key', key, '--max-size', '64M', '--part-size', '5M', '--expires', '1h', '-o', manifest], { env: analyst });
  assert.equal(p.code, 0, p.stderr);
  const before = readdirSync(work).sort();
  const r = await runCli(['acquire', '--root', root, '--no-context', '-q', '--to', `s3-presigned:${manifest}`, '--ca', ca, '--compress', 'zstd', '--sign-key', sign], { cwd: work });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(work).sort(), before, 'nothing written on the host');
  const obj = (await getObject(s, key))!;
  const local = join(work, 'got.lime.zst');
  writeFileSync(local, obj);
  assert.ok(execFileSync('zstd', ['-dc', local], { maxBuffer: 1 << 28 }).equals(readFileSync(plain)), 'zstd -d gives the LiME');
  // the side objects: put them beside the download, and the standard commands prove it
  for (const suffix of ['.report.json', '.log', '.report.json.sig']) {
    const side = await getObject(s, key + suffix);
    assert.ok(side, `${key + suffix} uploaded`);
    writeFileSync(local + suffix, side);
  }
  const rep = parseReport(readFileSync(local + '.report.json', 'utf8'), 'r');
  assert.deepEqual(rep.delivery?.layers, ['zstd']);
  assert.equal(rep.delivery?.stored.sha256, sha256(obj));
  const v = await runCli(['verify', local, '--json']);
  assert.equal(JSON.parse(v.stdout.toString()).verdict, 'MATCH', v.stdout.toString());
  const d = await runCli(['decrypt', local, join(work, 'back.lime'), '--json']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(JSON.parse(d.stdout.toString()).verdict, 'MATCH');
  assert.equal(await s.openUploads().then((u) => u.length), 0, 'the multipart upload was completed, none left open');
});
