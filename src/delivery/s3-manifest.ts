import { promises as fsp } from 'node:fs';
import { z } from 'zod';
import { MemdumpError, fromSystemError } from '../core/errors.js';

/**
 * The file `memdump presign` writes for the examined host: pre-signed URLs only, never a credential. Whoever holds
 * it can upload until `expires`, so it is written 0600 and the sender prints none of its query strings.
 */

export const MANIFEST_FORMAT = 'memdump-s3-presigned';
export const MANIFEST_VERSION = 1;
/** S3's own multipart limits: every part but the last is at least 5 MiB, at most 5 GiB, and at most 10000 parts. */
export const MIN_PART_SIZE = 5n * 1024n * 1024n;
export const MAX_PART_SIZE = 5n * 1024n * 1024n * 1024n;
export const MAX_PARTS = 10000;
/** A manifest is a few MiB at most (10000 URLs of ~1 KiB); anything larger is not ours. */
const MAX_MANIFEST_BYTES = 32 * 1024 * 1024;

const url = z
  .string()
  .max(8192)
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'https:' || u.protocol === 'http:') && u.username === '' && u.password === '';
    } catch {
      return false;
    }
  }, 'must be an http(s) URL without user:password');

const decimal = z.string().regex(/^(0|[1-9]\d{0,19})$/, 'must be a decimal integer string');

export const ManifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    version: z.literal(MANIFEST_VERSION),
    bucket: z.string().min(1).max(255),
    key: z.string().min(1).max(1024),
    region: z.string().min(1).max(64),
    endpoint: z.string().max(2048).optional(),
    uploadId: z.string().min(1).max(1024),
    // zod runs every check even after the regex failed: BigInt() must only see digits
    partSize: decimal.refine((s) => /^\d{1,20}$/.test(s) && BigInt(s) >= MIN_PART_SIZE && BigInt(s) <= MAX_PART_SIZE, 'must be between 5 MiB and 5 GiB'),
    parts: z
      .array(z.object({ partNumber: z.number().int().min(1).max(MAX_PARTS), url }).strict())
      .min(1)
      .max(MAX_PARTS)
      .refine((ps) => ps.every((p, i) => (p as { partNumber?: unknown } | undefined)?.partNumber === i + 1), 'part numbers must be 1, 2, 3, … in order'),
    completeUrl: url,
    abortUrl: url,
    sides: z.object({ report: url.optional(), log: url.optional(), map: url.optional(), signature: url.optional() }).strict(),
    expires: z.iso.datetime({ offset: true }),
    created: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();

export type Manifest = z.infer<typeof ManifestSchema>;

/** Bytes the manifest can take: parts × partSize. */
export function manifestCapacity(m: Manifest): bigint {
  return BigInt(m.parts.length) * BigInt(m.partSize);
}

/** The object's address without any query string: safe to print and to record in a report. */
export function stripQuery(u: string): string {
  try {
    const x = new URL(u);
    return `${x.protocol}//${x.host}${x.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

/** Parse and validate; every problem is E_USAGE naming the field (parts[3].url, expires, …). */
export function parseManifest(text: string, source = 'manifest'): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new MemdumpError('E_USAGE', `${source} is not JSON: ${(e as Error).message}`);
  }
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue ? fieldName(issue.path) : '(root)';
    throw new MemdumpError('E_USAGE', `${source}: field ${field}: ${issue?.message ?? 'invalid'}`, {
      details: { field, issues: r.error.issues.slice(0, 10).map((i) => ({ field: fieldName(i.path), message: i.message })) },
    });
  }
  return r.data;
}

function fieldName(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : (s ? '.' : '') + String(p);
  return s || '(root)';
}

/** Refuse a manifest whose URLs have expired: before any byte is read from the source, not after the first part. */
export function assertNotExpired(m: Manifest, now: Date = new Date()): void {
  if (Date.parse(m.expires) <= now.getTime()) {
    throw new MemdumpError('E_USAGE', `the pre-signed manifest expired at ${m.expires}; ask the analyst for a new one (memdump presign)`, { details: { expires: m.expires } });
  }
}

export async function readManifest(path: string): Promise<Manifest> {
  let text: string;
  try {
    const fh = await fsp.open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size > MAX_MANIFEST_BYTES) throw new MemdumpError('E_USAGE', `${path} is not a manifest file (not a regular file, or larger than ${MAX_MANIFEST_BYTES} bytes)`);
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof MemdumpError) throw e;
    throw fromSystemError(e, `reading manifest ${path}`);
  }
  return parseManifest(text, path);
}
