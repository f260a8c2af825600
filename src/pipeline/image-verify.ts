import { MemdumpError, isMemdumpError } from '../core/errors.js';
import { type Digest, Hasher, zeroPieces } from '../core/hasher.js';
import type { ImageReport } from '../core/report-schema.js';
import type { CopyResult } from './copy.js';
import type { ImageJobOptions } from './image-job.js';
import { type PolicyOptions, newAccount, readRange } from './read-policy.js';

/** `--verify` of `memdump image` / `memdump swap`: a second full read of the source, hashed as the image was. */

export type Digests = { [K in Digest]?: string | undefined };

/** What the second read needs from the job. */
export type VerifyOptions = Pick<ImageJobOptions, 'source' | 'format' | 'digests' | 'retries' | 'chunkSize' | 'signal' | 'beforeVerify'>;

/** The E01 writer's media digests and padding from its summary; undefined when it has none. */
function e01Media(copy: CopyResult): { digests: Digests; pad: bigint } | undefined {
  const s = copy.writerSummary as { mediaDigests?: Digests; storedBytes?: unknown; mediaBytes?: unknown } | undefined;
  if (!s?.mediaDigests) return undefined;
  const big = (v: unknown) => (typeof v === 'bigint' ? v : typeof v === 'string' || typeof v === 'number' ? BigInt(v) : 0n);
  const pad = big(s.storedBytes) - big(s.mediaBytes);
  return { digests: s.mediaDigests, pad: pad > 0n ? pad : 0n };
}

/** Read the whole source a second time and hash it exactly as the image was hashed. */
async function hashSource(o: VerifyOptions, pad: bigint): Promise<{ digests: Digests; bad: number }> {
  const hasher = new Hasher({ digests: o.digests, windowSize: 0n });
  let bad = 0;
  try {
    const policy: PolicyOptions = { errorRetries: o.retries, ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}), ...(o.signal ? { signal: o.signal } : {}) };
    for (const r of o.source.ranges) {
      for await (const chunk of readRange(o.source, r, newAccount(r), () => bad++, policy)) await hasher.update(chunk);
    }
    for (const z of zeroPieces(pad)) await hasher.update(z);
    return { digests: (await hasher.digest()).digests, bad };
  } catch (e) {
    await hasher.close();
    throw e;
  }
}

export type VerifyResult = NonNullable<ImageReport['verify']> & { errorCode?: string };

/** Compare a second read of the source with the image's digests; never throws (a failed read is NOT VERIFIED, with its code). */
export async function verifySource(o: VerifyOptions, copy: CopyResult): Promise<VerifyResult> {
  const e01 = o.format.name === 'e01' ? e01Media(copy) : undefined;
  const imageDigests: Digests = o.format.name === 'e01' ? (e01?.digests ?? {}) : { ...(copy.hash?.digests ?? {}) };
  try {
    await o.beforeVerify?.();
    const { digests: sourceDigests, bad } = await hashSource(o, e01?.pad ?? 0n);
    const common = o.digests.filter((d) => imageDigests[d] && sourceDigests[d]);
    if (common.length === 0) {
      return { sourceDigests, imageDigests, sourceChanged: false, message: `NOT VERIFIED: the image has no ${o.digests.join('/')} digest to compare with` };
    }
    const differ = common.filter((d) => imageDigests[d] !== sourceDigests[d]);
    const pad = e01?.pad ? ` (source padded with ${e01.pad} zero bytes to whole sectors, as E01 stores it)` : '';
    const badNote = bad ? `; the second read zero-filled ${bad} unreadable sector(s) as the first did` : '';
    if (differ.length === 0) return { sourceDigests, imageDigests, sourceChanged: false, message: `source unchanged: ${common.join(', ')} of a second full read equal the image's${pad}${badNote}` };
    return {
      sourceDigests,
      imageDigests,
      sourceChanged: true,
      message: `SOURCE CHANGED during or after imaging: ${differ.join(', ')} of a second full read differ from the image's${pad}${bad ? `; the second read found ${bad} unreadable sector(s)` : ''}`,
    };
  } catch (e) {
    const err = isMemdumpError(e) ? e : new MemdumpError('E_SOURCE_READ', (e as Error).message);
    return { sourceDigests: {}, imageDigests, sourceChanged: false, message: `NOT VERIFIED: the second read failed (${err.code}: ${err.message})`, errorCode: err.code };
  }
}
