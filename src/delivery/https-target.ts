import { MemdumpError } from '../core/errors.js';
import type { OutputSink } from '../sinks/types.js';
import { StreamingPutSink, checkUrl } from './http-put.js';
import { stripQuery } from './s3-manifest.js';
import type { RemoteTarget, SideRole, UploadMeta } from './types.js';

/**
 * `--to https://PRESIGNED`: one pre-signed PUT URL, which holds the evidence and nothing else. The size must be
 * known before the first byte (S3 refuses chunked PUTs), so streams of unknown length go to s3-presigned instead.
 */
export class HttpsPutTarget implements RemoteTarget {
  private opened = false;
  private sink: StreamingPutSink | undefined;

  private constructor(
    private readonly url: URL,
    private readonly opts: { ca?: string; allowHttp?: boolean; signal?: AbortSignal },
  ) {}

  static create(url: string, opts: { ca?: string; allowHttp?: boolean; signal?: AbortSignal }): HttpsPutTarget {
    return new HttpsPutTarget(checkUrl(url, opts.allowHttp, '--to'), opts);
  }

  get describe(): string {
    return stripQuery(this.url.href);
  }

  async openEvidence(meta: UploadMeta): Promise<OutputSink> {
    if (this.opened) throw new MemdumpError('E_INTERNAL', `${this.describe}: the evidence was already opened`);
    if (meta.expectedBytes === undefined) {
      throw new MemdumpError(
        'E_USAGE',
        `--to ${this.describe}: a single pre-signed PUT needs the size in advance, and this output's size is not known before it is written (compressed, encrypted or streamed); use --to s3-presigned:MANIFEST.json (multipart, from memdump presign)`,
      );
    }
    if (meta.expectedBytes < 0n || meta.expectedBytes > 5n * 1024n ** 4n) {
      throw new MemdumpError('E_USAGE', `--to ${this.describe}: ${meta.expectedBytes} bytes do not fit one PUT (S3 takes at most 5 TiB, and 5 GiB in one PUT on AWS); use s3-presigned multipart`);
    }
    this.opened = true;
    this.sink = new StreamingPutSink(this.url, meta.expectedBytes, this.opts);
    return this.sink;
  }

  /** A single PUT URL names one object: there is no place for side files. */
  async putSide(_role: SideRole, _data: Buffer): Promise<string | undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    if (this.sink) await this.sink.abort().catch(() => undefined);
  }
}
