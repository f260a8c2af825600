import https from 'node:https';
import { MemdumpError } from '../core/errors.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE, type Manifest, ManifestSchema } from './s3-manifest.js';
import { SIDE_SUFFIX, type SideRole } from './types.js';

/**
 * The analyst's side: turns credentials into pre-signed URLs for one upload. The AWS SDK is imported lazily so
 * that the commands run on the examined host never load it.
 */

export interface PresignTarget {
  bucket: string;
  key: string;
  region: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  expiresSeconds: number;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** PEM of a private CA for the endpoint (an in-house S3-compatible store). */
  ca?: string;
}

/** SigV4 pre-signed URLs live at most seven days. */
export const MAX_EXPIRES_SECONDS = 7 * 24 * 3600;

async function client(o: PresignTarget) {
  checkCommon(o);
  const sdk = await import('@aws-sdk/client-s3');
  const { getSignedUrl } = await import('@aws-sdk/s3-request-presigner');
  const s3 = new sdk.S3Client({
    region: o.region,
    ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
    ...(o.forcePathStyle !== undefined ? { forcePathStyle: o.forcePathStyle } : {}),
    ...(o.credentials !== undefined ? { credentials: o.credentials } : {}),
    ...(o.ca !== undefined ? { requestHandler: { httpsAgent: new https.Agent({ ca: o.ca }) } } : {}),
    // checksums chosen now would be baked into the URLs and bind them to content the sender has not read yet
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return { sdk, s3, sign: (cmd: object) => getSignedUrl(s3, cmd as never, { expiresIn: o.expiresSeconds }) };
}

function checkCommon(o: PresignTarget): void {
  if (!o.bucket) throw new MemdumpError('E_USAGE', '--bucket is required');
  if (!o.key || o.key.length > 1000) throw new MemdumpError('E_USAGE', '--key must be 1 to 1000 characters (S3 allows 1024 and the side files add a suffix)');
  if (!Number.isInteger(o.expiresSeconds) || o.expiresSeconds < 60 || o.expiresSeconds > MAX_EXPIRES_SECONDS) {
    throw new MemdumpError('E_USAGE', `--expires must be between 1 minute and 7 days (the SigV4 maximum); got ${o.expiresSeconds} s`);
  }
}

export function planParts(maxBytes: bigint, partSize: bigint): number {
  if (partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
    throw new MemdumpError('E_USAGE', `--part-size must be between 5 MiB and 5 GiB (S3's multipart limits); got ${partSize} bytes`);
  }
  if (maxBytes <= 0n) throw new MemdumpError('E_USAGE', '--max-size must be positive');
  const parts = (maxBytes + partSize - 1n) / partSize;
  if (parts > BigInt(MAX_PARTS)) {
    throw new MemdumpError('E_USAGE', `--max-size ${maxBytes} needs ${parts} parts of ${partSize} bytes; S3 takes at most ${MAX_PARTS}: raise --part-size to at least ${(maxBytes + BigInt(MAX_PARTS) - 1n) / BigInt(MAX_PARTS)}`);
  }
  return Number(parts);
}

/** Create the multipart upload and pre-sign everything the sender needs for it. */
export async function presignUpload(o: PresignTarget & { maxBytes: bigint; partSize: bigint }): Promise<Manifest> {
  const nParts = planParts(o.maxBytes, o.partSize);
  const { sdk, s3, sign } = await client(o);
  try {
    const expires = new Date(Date.now() + o.expiresSeconds * 1000);
    const created = await sdkCall(() => s3.send(new sdk.CreateMultipartUploadCommand({ Bucket: o.bucket, Key: o.key })), 'creating the multipart upload');
    const uploadId = created.UploadId;
    if (!uploadId) throw new MemdumpError('E_REMOTE', 'the object store created no upload id');
    const parts: { partNumber: number; url: string }[] = [];
    for (let n = 1; n <= nParts; n++) {
      parts.push({ partNumber: n, url: await sign(new sdk.UploadPartCommand({ Bucket: o.bucket, Key: o.key, UploadId: uploadId, PartNumber: n })) });
    }
    const sides: Partial<Record<SideRole, string>> = {};
    for (const role of Object.keys(SIDE_SUFFIX) as SideRole[]) {
      sides[role] = await sign(new sdk.PutObjectCommand({ Bucket: o.bucket, Key: o.key + SIDE_SUFFIX[role] }));
    }
    const m: Manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      bucket: o.bucket,
      key: o.key,
      region: o.region,
      ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
      uploadId,
      partSize: o.partSize.toString(),
      parts,
      completeUrl: await sign(new sdk.CompleteMultipartUploadCommand({ Bucket: o.bucket, Key: o.key, UploadId: uploadId })),
      abortUrl: await sign(new sdk.AbortMultipartUploadCommand({ Bucket: o.bucket, Key: o.key, UploadId: uploadId })),
      sides,
      expires: expires.toISOString(),
      created: new Date().toISOString(),
    };
    // what we hand out must be what the sender will accept
    const r = ManifestSchema.safeParse(m);
    if (!r.success) throw new MemdumpError('E_INTERNAL', `the manifest made does not validate: ${r.error.issues[0]?.message ?? ''}`);
    return r.data;
  } finally {
    s3.destroy();
  }
}

/** One pre-signed PUT for `--to https://…` (the sender must know its size in advance). */
export async function presignPut(o: PresignTarget): Promise<string> {
  const { sdk, s3, sign } = await client(o);
  try {
    return await sign(new sdk.PutObjectCommand({ Bucket: o.bucket, Key: o.key }));
  } finally {
    s3.destroy();
  }
}

async function sdkCall<T>(fn: () => Promise<T>, what: string): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const name = (e as { name?: unknown }).name;
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const code = name === 'CredentialsProviderError' ? 'E_AUTH' : 'E_REMOTE';
    throw new MemdumpError(code, `${what}: ${(e as Error).message ?? String(e)}${code === 'E_AUTH' ? ' (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)' : ''}`, {
      details: { sdkError: typeof name === 'string' ? name : null, status: status ?? null },
      cause: e,
    });
  }
}
