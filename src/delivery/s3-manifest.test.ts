import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from '../core/errors.js';
import { expectCode, expectCodeAsync } from '../../test/helpers/expect-code.js';
import { MAX_PARTS, type Manifest, assertNotExpired, manifestCapacity, parseManifest, readManifest, stripQuery } from './s3-manifest.js';

const U = (p: string) => `https://s3.example.org/bucket/key${p}?X-Amz-Signature=abc&X-Amz-Credential=AK%2F20260101`;

function valid(): Manifest {
  return {
    format: 'memdump-s3-presigned',
    version: 1,
    bucket: 'bucket',
    key: 'case/host.lime',
    region: 'us-east-1',
    endpoint: 'https://s3.example.org',
    uploadId: 'abc123',
    partSize: String(64 * 1024 * 1024),
    parts: [1, 2, 3].map((n) => ({ partNumber: n, url: U(`?partNumber=${n}`) })),
    completeUrl: U(''),
    abortUrl: U(''),
    sides: { report: U('.report.json'), log: U('.log') },
    expires: '2026-11-23T00:00:00.000Z',
    created: '2026-11-22T00:00:00.000Z',
  };
}

/** Parse `m` (a mutated manifest) and return the error's field, failing unless it is E_USAGE. */
function fieldOf(m: unknown): string {
  const e = expectCode(() => parseManifest(JSON.stringify(m)), 'E_USAGE');
  return String(e.details['field']);
}

describe('s3 manifest', () => {
  it('accepts a valid manifest and computes its capacity', () => {
    const m = parseManifest(JSON.stringify(valid()));
    assert.deepEqual(m, valid());
    assert.equal(manifestCapacity(m), 3n * 64n * 1024n * 1024n);
  });

  it('bad or missing fields are E_USAGE naming the field', () => {
    const cases: [string, (m: Record<string, unknown>) => void][] = [
      ['format', (m) => (m['format'] = 'other')],
      ['version', (m) => (m['version'] = 2)],
      ['bucket', (m) => delete m['bucket']],
      ['uploadId', (m) => (m['uploadId'] = '')],
      ['partSize', (m) => (m['partSize'] = String(1024 * 1024))],
      ['partSize', (m) => (m['partSize'] = String(6n * 1024n ** 3n))],
      ['partSize', (m) => (m['partSize'] = 67108864)],
      ['parts', (m) => (m['parts'] = [])],
      ['parts', (m) => ((m['parts'] as { partNumber: number }[])[1]!.partNumber = 3)],
      ['parts[2].url', (m) => ((m['parts'] as { url: string }[])[2]!.url = 'ftp://x/y')],
      ['parts[0].url', (m) => ((m['parts'] as { url: string }[])[0]!.url = 'https://user:pw@x/y')],
      ['completeUrl', (m) => delete m['completeUrl']],
      ['abortUrl', (m) => (m['abortUrl'] = 'not a url')],
      ['sides.report', (m) => ((m['sides'] as Record<string, unknown>)['report'] = 5)],
      ['sides', (m) => ((m['sides'] as Record<string, unknown>)['other'] = U(''))],
      ['expires', (m) => (m['expires'] = 'tomorrow')],
      ['(root)', (m) => (m['secretAccessKey'] = 'x')],
    ];
    for (const [field, edit] of cases) {
      const m = valid() as unknown as Record<string, unknown>;
      edit(m);
      assert.equal(fieldOf(m), field, `case ${field}`);
    }
    expectCode(() => parseManifest('{not json'), 'E_USAGE');
    expectCode(() => parseManifest('null'), 'E_USAGE');
  });

  it('more than 10000 parts is refused', () => {
    const m = valid();
    m.parts = Array.from({ length: MAX_PARTS + 1 }, (_, i) => ({ partNumber: Math.min(i + 1, MAX_PARTS), url: U('') }));
    assert.equal(fieldOf(m).startsWith('parts'), true);
  });

  it('an expired manifest is E_USAGE', () => {
    const m = parseManifest(JSON.stringify(valid()));
    assertNotExpired(m, new Date('2026-11-22T12:00:00Z'));
    const e = expectCode(() => assertNotExpired(m, new Date('2026-11-23T00:00:00Z')), 'E_USAGE');
    assert.match(e.message, /expired/);
  });

  it('stripQuery removes the credential', () => {
    assert.equal(stripQuery(U('?partNumber=1')), 'https://s3.example.org/bucket/key');
    assert.equal(stripQuery('::'), '(invalid URL)');
  });

  it('readManifest: missing file is coded, a huge or non-regular file is refused', async () => {
    const dir = await fsp.mkdtemp(join(tmpdir(), 'memdump-manifest-'));
    try {
      await expectCodeAsync(readManifest(join(dir, 'none.json')), 'E_NOT_FOUND');
      await expectCodeAsync(readManifest(dir), 'E_USAGE');
      const p = join(dir, 'm.json');
      await fsp.writeFile(p, JSON.stringify(valid()));
      assert.deepEqual(await readManifest(p), valid());
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('property: every valid manifest round-trips through JSON unchanged', () => {
    const url = fc.webUrl({ validSchemes: ['https', 'http'], withQueryParameters: true }).filter((u) => {
      const x = new URL(u);
      return x.username === '' && x.password === '' && u.length <= 8192;
    });
    const manifest = fc.record({
      bucket: fc.string({ minLength: 1, maxLength: 63 }),
      key: fc.string({ minLength: 1, maxLength: 200 }),
      region: fc.constantFrom('us-east-1', 'eu-west-3', 'minio'),
      uploadId: fc.string({ minLength: 1, maxLength: 100 }),
      partSize: fc.bigInt({ min: 5n * 1024n ** 2n, max: 5n * 1024n ** 3n }),
      urls: fc.array(url, { minLength: 1, maxLength: 20 }),
      complete: url,
      abort: url,
      sides: fc.record({ report: url, log: url, map: url, signature: url }, { requiredKeys: [] }),
      expires: fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }),
    });
    fc.assert(
      fc.property(manifest, (r) => {
        const m: Manifest = {
          format: 'memdump-s3-presigned',
          version: 1,
          bucket: r.bucket,
          key: r.key,
          region: r.region,
          uploadId: r.uploadId,
          partSize: r.partSize.toString(),
          parts: r.urls.map((u, i) => ({ partNumber: i + 1, url: u })),
          completeUrl: r.complete,
          abortUrl: r.abort,
          sides: { ...r.sides },
          expires: r.expires.toISOString(),
        };
        const once = parseManifest(JSON.stringify(m));
        assert.deepEqual(once, m);
        assert.deepEqual(parseManifest(JSON.stringify(once)), once);
        assert.equal(manifestCapacity(once), BigInt(r.urls.length) * r.partSize);
      }),
      { seed: 4242, numRuns: 200 },
    );
  });

  it('property: mutated manifests throw only E_USAGE, never anything uncoded', () => {
    const text = JSON.stringify(valid());
    fc.assert(
      fc.property(fc.integer({ min: 0, max: text.length - 1 }), fc.integer({ min: 0, max: 8 }), fc.string({ maxLength: 4 }), (at, del, ins) => {
        const mutated = text.slice(0, at) + ins + text.slice(at + del);
        try {
          parseManifest(mutated);
        } catch (e) {
          assert.ok(e instanceof MemdumpError && e.code === 'E_USAGE', String(e));
        }
      }),
      { seed: 99, numRuns: 2000 },
    );
    // whole values replaced by arbitrary JSON, at the top level and inside parts/sides
    const paths = ['bucket', 'partSize', 'parts', 'expires', 'sides', 'parts.0', 'parts.1.url', 'parts.2.partNumber', 'sides.report'];
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue(), (path, value) => {
        const m = valid() as unknown as Record<string, unknown>;
        const keys = path.split('.');
        let o: Record<string, unknown> = m;
        for (const k of keys.slice(0, -1)) o = o[k] as Record<string, unknown>;
        o[keys.at(-1)!] = value;
        try {
          parseManifest(JSON.stringify(m));
        } catch (e) {
          assert.ok(e instanceof MemdumpError && e.code === 'E_USAGE', String(e));
        }
      }),
      { seed: 7, numRuns: 2000 },
    );
  });
});
