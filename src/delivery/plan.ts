import type { KeyObject } from 'node:crypto';
import { MemdumpError } from '../core/errors.js';
import type { AgeRecipient } from '../crypto/age.js';
import { AgeEncryptSink, ageCiphertextSize } from '../sinks/age.js';
import { CompressSink } from '../sinks/compress.js';
import { type TransportCompression, compressionExtension } from '../sinks/decompress.js';
import { StoredDigestSink } from '../sinks/digest.js';
import type { OutputSink } from '../sinks/types.js';
import type { RemoteTarget } from './types.js';

/** Everything between the container writer and the bytes' destination, as the command line chose it. */
export interface DeliveryPlan {
  /** `--to tls://…`, `--to https://…`, `--to s3-presigned:…`; absent = a local file or standard output. */
  remote?: { spec: string; open: () => Promise<RemoteTarget> };
  /** `--compress`: for containers without compression of their own. */
  compression?: TransportCompression;
  /** `--recipient`: age X25519 recipients; empty = no encryption. */
  recipients: readonly AgeRecipient[];
  /** `--sign-key`: Ed25519 key that signs the report. */
  signKey?: KeyObject;
}

export type Layer = TransportCompression | 'age';

/** Transport layers in the order they are applied (compression before encryption: ciphertext does not compress). */
export function layersOf(p: DeliveryPlan | undefined): Layer[] {
  if (!p) return [];
  return [...(p.compression ? [p.compression] : []), ...(p.recipients.length ? (['age'] as const) : [])];
}

/** What a file with these layers is called after its container name: host.lime → host.lime.gz.age. */
export function layerSuffix(layers: readonly Layer[]): string {
  return layers.map(layerExtension).join('');
}

/** The file-name extension one layer adds: .age, .gz, .zst. */
export function layerExtension(layer: Layer): string {
  return '.' + (layer === 'age' ? 'age' : compressionExtension(layer));
}

/** The stored size when it can be known before the first byte (a single pre-signed PUT needs it). */
export function storedSize(containerBytes: bigint | undefined, p: DeliveryPlan | undefined): bigint | undefined {
  if (containerBytes === undefined || p?.compression) return undefined;
  return p && p.recipients.length ? ageCiphertextSize(containerBytes, p.recipients.length) : containerBytes;
}

/** Checked before anything is opened: a refused combination must not leave even an empty .partial behind. */
export function assertLayersFit(p: DeliveryPlan | undefined, container: string): void {
  if (p?.compression && (container === 'avml' || container === 'e01')) {
    throw new MemdumpError('E_USAGE', `--compress: ${container} output is compressed already (a second pass would only cost time)`);
  }
}

/**
 * Wrap the destination in the transport layers. The returned sink takes container bytes; `stored` sees what the
 * destination gets (after compression and encryption) and hashes it for the report and the receiver's check.
 */
export async function wrapLayers(base: OutputSink, p: DeliveryPlan | undefined, container: string, containerHasSha256: boolean): Promise<{ sink: OutputSink; stored: StoredDigestSink | undefined }> {
  assertLayersFit(p, container);
  // without layers the stored bytes are the container: its SHA-256 (computed anyway, off-thread) says it all, and a
  // plain local file must keep the sink's newSegment() (E01 segment sets, --split)
  if (layersOf(p).length === 0 && (!p?.remote || containerHasSha256)) return { sink: base, stored: undefined };
  const stored = new StoredDigestSink(base);
  let sink: OutputSink = stored;
  if (p && p.recipients.length) sink = await AgeEncryptSink.create(sink, p.recipients);
  if (p?.compression) sink = CompressSink.create(sink, p.compression);
  return { sink, stored };
}
