import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { MemdumpError, fromSystemError } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { type Digest, type HashResult, Hasher } from '../core/hasher.js';
import type { Report } from '../core/report-schema.js';
import type { AgeIdentity } from '../crypto/age.js';
import { decryptAge } from '../crypto/age-decrypt.js';
import { type Layer, layerExtension } from '../delivery/plan.js';
import { type TransportCompression, decompressStream, detectLayer } from '../sinks/decompress.js';
import { FileSink } from '../sinks/file.js';
import { StdoutSink } from '../sinks/stdout.js';
import type { OutputSink } from '../sinks/types.js';
import { type DigestCheck, type SignatureCheck, compareHashes, findReport, hashPlanOf, signatureOf } from './verify.js';

const READ = 1 << 20;

export interface UnpackResult {
  input: string;
  output: string;
  layers: string[];
  report: string | null;
  /** MATCH: the container's hashes equal the report's; NO_REPORT: nothing to compare with (hashes shown). */
  verdict: 'MATCH' | 'MISMATCH' | 'NO_REPORT';
  stored: { expected: string | null; actual: string; ok: boolean } | null;
  container: { bytes: string; digests: Partial<Record<Digest, string>>; checks: Record<string, DigestCheck>; badWindows: number[] };
  signature: SignatureCheck | null;
}

/** Without a report: the outermost layer from the file's own magic. */
async function sniffLayers(input: string): Promise<Layer[]> {
  const file = await RandomAccessFile.open(input);
  try {
    const layer = detectLayer(await file.readAt(0n, 64));
    return layer ? [layer] : [];
  } finally {
    await file.close();
  }
}

/** host.lime.gz.age → host.lime: the container's name once the layers are undone. */
export function containerName(input: string, layers: readonly Layer[]): string {
  let name = input;
  for (const l of [...layers].reverse()) {
    const ext = layerExtension(l);
    if (name.endsWith(ext)) name = name.slice(0, -ext.length);
  }
  return name === input ? input + '.out' : name;
}

/**
 * Undo the transport layers of IN (age, then gzip/zstd) into the container, streaming with bounded memory, and
 * prove it: the stored bytes' SHA-256 and the container's digests and window hashes against the report.
 */
export async function unpack(o: { input: string; output?: string; identities: readonly AgeIdentity[]; report?: string; trustedKeys?: readonly string[]; onProgress?: (done: bigint) => void }): Promise<UnpackResult> {
  const found = await findReport(o.input, o.report);
  const r: Report | undefined = found?.report;
  let layers = (r?.delivery?.layers ?? []) as Layer[];
  if (!r?.delivery) {
    layers = await sniffLayers(o.input);
  }
  if (layers.length === 0) throw new MemdumpError('E_USAGE', `${o.input} is neither age-encrypted nor compressed (nothing to undo)`);
  if (layers.includes('age') && o.identities.length === 0) throw new MemdumpError('E_USAGE', `${o.input} is age-encrypted: give the identity file with -i (age-keygen output)`);
  const output = o.output ?? containerName(o.input, layers);
  const signature = await signatureOf(o.input, found, o.trustedKeys);

  const expected = r?.hashes ?? null;
  const { digests, windowSize, windowDigest } = hashPlanOf(expected, { digests: ['md5', 'sha1', 'sha256'], windowSize: 0n });
  // the sink first: a refused output name must not leave hasher threads holding the process open
  const sink: OutputSink = output === '-' ? new StdoutSink() : await FileSink.create(output);
  const hasher = new Hasher({ digests, windowSize, ...(windowDigest ? { windowDigest } : {}) });
  const storedHash = createHash('sha256');
  let hash: HashResult;
  try {
    // stored bytes → [age] → [decompress] → hasher → sink
    let read = 0n;
    async function* stored(): AsyncGenerator<Buffer> {
      const stream = createReadStream(o.input, { highWaterMark: READ });
      try {
        for await (const b of stream as AsyncIterable<Buffer>) {
          storedHash.update(b);
          read += BigInt(b.length);
          o.onProgress?.(read);
          yield b;
        }
      } catch (e) {
        throw fromSystemError(e, `reading ${o.input}`);
      }
    }
    let stream: AsyncIterable<Buffer> = stored();
    let decrypting: Promise<unknown> = Promise.resolve();
    let pipe: PassThrough | undefined;
    if (layers[layers.length - 1] === 'age') {
      const p = (pipe = new PassThrough({ highWaterMark: 4 * READ }));
      const input = stream;
      const put = (plain: Buffer): Promise<void> => {
        if (p.destroyed) return Promise.reject(new MemdumpError('E_WRITE', 'the output stopped taking data'));
        if (p.write(plain)) return Promise.resolve();
        return new Promise((res, rej) => {
          p.once('drain', res);
          p.once('close', () => rej(new MemdumpError('E_WRITE', 'the output stopped taking data')));
        });
      };
      decrypting = decryptAge(input, o.identities, put).then(
        () => p.end(),
        (e) => {
          p.destroy(e);
          throw e;
        },
      );
      stream = p;
    }
    const compression = layers.find((l) => l !== 'age') as TransportCompression | undefined;
    if (compression) stream = decompressStream(compression, stream);
    const consuming = (async () => {
      try {
        for await (const b of stream) {
          await hasher.update(b);
          await sink.write(b);
        }
      } catch (e) {
        // the decryptor waits on this side's demand: release it
        pipe?.destroy();
        throw e;
      }
    })();
    await Promise.all([decrypting, consuming]);
    hash = await hasher.digest();
  } catch (e) {
    await hasher.close().catch(() => undefined);
    // derived data, and the input is still there: a .partial would only block the retry with the right identity
    const receipt = await sink.abort();
    if (receipt.partialPath) await unlink(receipt.partialPath).catch(() => undefined);
    throw e;
  }
  const storedHex = storedHash.digest('hex');
  const want = r?.delivery?.stored ?? null;
  const { checks, badWindows, ok: hashesOk } = compareHashes(expected, hash, digests);
  const storedOk = !want || want.sha256 === storedHex;
  const ok = hashesOk && storedOk && (!signature || signature.ok);
  // the plaintext is authenticated by age either way; a disagreement with the report is kept for the analyst to see
  const receipt = await sink.finish();
  return {
    input: o.input,
    output: receipt.path,
    layers,
    report: found?.path ?? null,
    verdict: expected ? (ok ? 'MATCH' : 'MISMATCH') : signature && !signature.ok ? 'MISMATCH' : 'NO_REPORT',
    stored: want ? { expected: want.sha256, actual: storedHex, ok: storedOk } : null,
    container: { bytes: hash.length.toString(), digests: hash.digests, checks, badWindows },
    signature,
  };
}
