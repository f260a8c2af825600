import type { OutputSink } from '../sinks/types.js';

/**
 * What a sender says about one upload. The receiver records it but never builds a path from it: names are the
 * receiver's own (case, host, time), so nothing here can steer where bytes land.
 */
export interface UploadMeta {
  /** The examined host's name, as the sender sees it. */
  host: string;
  /** What was acquired: "kcore /proc/kcore", "process 1234", "convert x.lime". */
  source: string;
  /** Container format of the evidence stream: lime, padded, raw, elf, avml, e01 (before transport layers). */
  format: string;
  /** Transport layers applied after the container, in order ("gzip", "zstd", "age"). Names the receiver's extension. */
  layers: readonly string[];
  /** Stored size when known in advance (HTTP PUT needs it); the receiver treats it as a claim, not a limit. */
  expectedBytes?: bigint;
  /** Case label the sender asks for (a token or client certificate binds the case; a different one is refused). */
  case?: string;
}

/** A side file that travels with the evidence: named by the receiver after the evidence file plus a fixed suffix. */
export type SideRole = 'report' | 'log' | 'map' | 'signature';

/** The suffix each side file gets beside the evidence, as the local file outputs name them. */
export const SIDE_SUFFIX: Readonly<Record<SideRole, string>> = {
  report: '.report.json',
  log: '.log',
  map: '.map.json',
  signature: '.report.json.sig',
};

/**
 * A network destination for one evidence stream and its side files (`--to tls://…`, `--to https://…`,
 * `--to s3-presigned:MANIFEST`). The evidence sink's finish() returns only once the far side has the bytes
 * (the receiver confirmed its digest, the object store accepted the last part); its Receipt.path is where they
 * are, in the target's own terms (tls://host:port/case/name, the object URL without its query string).
 */
export interface RemoteTarget {
  /** For messages and the report; never contains a token or a pre-signed query string. */
  readonly describe: string;
  /** Opened once, before any side file. */
  openEvidence(meta: UploadMeta): Promise<OutputSink>;
  /**
   * After the evidence sink finished (or aborted): a small side file. Returns where it went, or undefined when
   * the target has no place for this role (a single pre-signed PUT URL holds only the evidence).
   */
  putSide(role: SideRole, data: Buffer): Promise<string | undefined>;
  /** Releases the connection; safe to call twice and after a failure. */
  close(): Promise<void>;
}
