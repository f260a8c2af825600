import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { MemdumpError, fromSystemError } from '../core/errors.js';
import { sendBuffer } from '../delivery/http-put.js';
import { MAX_EXPIRES_SECONDS, presignPut, presignUpload } from '../delivery/presign.js';
import { manifestCapacity } from '../delivery/s3-manifest.js';
import { assertAbsent, writeFileExclusive } from '../sinks/exclusive.js';
import { type GlobalOptions, parseSize, say } from './common.js';

const HELP = `
Run this on the analyst's machine, where the credentials are (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
or any source the AWS SDK reads). It creates a multipart upload for KEY and writes a manifest of pre-signed URLs:
one per part (--max-size / --part-size parts), Complete and Abort, and PUT URLs for KEY.report.json, KEY.log,
KEY.map.json and KEY.report.json.sig. The examined host gets only the manifest, never a credential; whoever holds
the manifest can upload to KEY until it expires, so it is written 0600 and never over an existing file.

S3's limits apply: 5 MiB ≤ --part-size ≤ 5 GiB, at most 10000 parts, --expires at most 7 days. The sender keeps
two parts in memory, so a smaller --part-size suits a host with little RAM to spare.

Examples:
  memdump presign --bucket cases --key 2026-114/host1.lime --max-size 64G -o host1.manifest.json
  memdump acquire --to s3-presigned:host1.manifest.json            # on the examined host
  memdump presign --put --bucket cases --key 2026-114/small.lime    # one URL, for --to https://… (size known)
  memdump presign --endpoint https://minio.lab:9000 --path-style --ca lab-ca.pem --bucket b --key k -o m.json`;

interface PresignCliOptions {
  bucket: string;
  key: string;
  endpoint?: string;
  pathStyle?: boolean;
  region: string;
  maxSize: string;
  partSize?: string;
  expires: string;
  output?: string;
  put?: boolean;
  ca?: string;
}

/** "90s", "30m", "12h", "7d", "3600" → seconds. */
export function parseDuration(s: string, what: string): number {
  const m = /^(\d{1,7})\s*([smhd]?)$/i.exec(s.trim());
  if (!m) throw new MemdumpError('E_USAGE', `${what}: "${s}" is not a duration (examples: 90s, 30m, 12h, 7d)`);
  const mult = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Number(m[1]) * mult;
}

export function registerPresign(program: Command, globals: () => GlobalOptions, _setExit: (n: number) => void): void {
  program
    .command('presign')
    .description("analyst side: pre-sign an S3 multipart upload (or one PUT) so the examined host can deliver without credentials")
    .requiredOption('--bucket <name>', 'bucket')
    .requiredOption('--key <key>', 'object key of the evidence')
    .option('--endpoint <url>', 'S3-compatible endpoint (MinIO, Ceph, …); default AWS')
    .option('--path-style', 'address the bucket in the path, not the host name (most non-AWS stores)')
    .option('--region <region>', 'region', 'us-east-1')
    .option('--max-size <size>', 'largest evidence the upload must hold', '64G')
    .option('--part-size <size>', 'multipart part size (the sender holds two in memory); default: the smallest of 8M, 16M, 32M, … that fits --max-size in 10000 parts')
    .option('--expires <duration>', 'how long the URLs stay valid (at most 7d)', '12h')
    .option('-o, --output <path>', 'write the manifest here (0600, never overwritten); default stdout')
    .option('--put', 'print one pre-signed PUT URL for KEY instead of a manifest')
    .option('--ca <pem>', "CA certificate (PEM file) for an endpoint with a private CA")
    .addHelpText('after', HELP)
    .action(async (o: PresignCliOptions) => {
      const g = globals();
      const expiresSeconds = parseDuration(o.expires, '--expires');
      if (expiresSeconds > MAX_EXPIRES_SECONDS) throw new MemdumpError('E_USAGE', `--expires ${o.expires}: pre-signed URLs live at most 7 days`);
      let ca: string | undefined;
      if (o.ca !== undefined) {
        try {
          ca = readFileSync(o.ca, 'utf8');
        } catch (e) {
          throw fromSystemError(e, `reading --ca ${o.ca}`);
        }
      }
      const target = {
        bucket: o.bucket,
        key: o.key,
        region: o.region,
        expiresSeconds,
        ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
        ...(o.pathStyle ? { forcePathStyle: true } : {}),
        ...(ca !== undefined ? { ca } : {}),
      };
      if (o.put) {
        const url = await presignPut(target);
        process.stdout.write(g.json ? JSON.stringify({ url, expires: new Date(Date.now() + expiresSeconds * 1000).toISOString() }) + '\n' : url + '\n');
        return;
      }
      const out = o.output === undefined ? undefined : resolve(o.output);
      // refuse before creating the upload, so a typo does not leave an open upload behind
      if (out !== undefined) await assertAbsent(out);
      const m = await presignUpload({ ...target, maxBytes: parseSize(o.maxSize, '--max-size'), partSize: o.partSize !== undefined ? parseSize(o.partSize, '--part-size') : autoPartSize(parseSize(o.maxSize, '--max-size')) });
      const text = JSON.stringify(m, null, 2) + '\n';
      if (out === undefined) {
        process.stdout.write(text);
      } else {
        try {
          await writeFileExclusive(out, text);
        } catch (e) {
          await sendBuffer('DELETE', m.abortUrl, Buffer.alloc(0), { allowHttp: true, ...(ca !== undefined ? { ca } : {}) }, 'aborting the upload').catch(() => undefined);
          throw e;
        }
        if (g.json) process.stdout.write(JSON.stringify({ manifest: out, bucket: m.bucket, key: m.key, uploadId: m.uploadId, parts: m.parts.length, partSize: m.partSize, maxBytes: manifestCapacity(m).toString(), expires: m.expires }) + '\n');
      }
      say(g, `presigned s3://${m.bucket}/${m.key}: ${m.parts.length} parts of ${m.partSize} bytes (up to ${manifestCapacity(m)} bytes), report/log/map/signature side files; expires ${m.expires}` + (out ? `\nsend ${out} to the examined host: memdump acquire --to s3-presigned:${out}` : ''));
    });
}

/**
 * The sender holds two parts in memory, so parts are as small as S3's 10000-part limit allows for the largest
 * evidence expected, but at least 8 MiB (fewer requests): 64G → 8M (16 MiB held), 256G → 32M, 1T → 128M.
 */
export function autoPartSize(maxBytes: bigint): bigint {
  let part = 8n << 20n;
  while (part * 10000n < maxBytes) part *= 2n;
  return part;
}
