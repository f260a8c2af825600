import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { MemdumpError } from '../core/errors.js';
import { FileSink } from '../sinks/file.js';
import { sanitizeLabel } from './naming.js';
import { writeUploadRecord, type UploadRecord } from './record.js';

type Role = UploadRecord['role'];

/** One file being received on a session, from OPEN until settleUpload() records it. */
export interface Upload {
  role: Role;
  name: string;
  sink: FileSink;
  hash: Hash;
  bytes: bigint;
  limit: bigint;
  nextAck: bigint;
  meta: Record<string, unknown>;
  started: Date;
  /** Writes run behind the socket (see WRITE_BEHIND); a failed one fails this promise. */
  writing: Promise<void>;
  queued: number;
  /** The first failed write: the upload stops at the next frame instead of reading on into nothing. */
  writeError?: Error;
}

/**
 * Bytes per connection whose file write may still be in flight while the socket is read on: the write (a page
 * allocation and copy in the kernel, ~0.6 ms per 256 KiB frame on tmpfs here) then overlaps the TLS decryption and
 * hashing of the next frames instead of stopping the connection; 20 senders hold at most 80 MiB this way.
 */
const WRITE_BEHIND = 4 << 20;

const ACK_EVERY = 8n << 20n;

/** What settleUpload() needs of the session: who sent the file, where it goes, whom to tell. */
export interface SettleContext {
  caseLabel: string;
  caseDir: string;
  peer: UploadRecord['peer'];
  auth: UploadRecord['auth'];
  hello: Record<string, unknown>;
  evidence: string | undefined;
  stats: { uploads: number };
  onUpload: ((rec: UploadRecord) => void) | undefined;
  /** Answers the sender with RESULT (the session decides whether it still may). */
  result(json: Record<string, unknown>): void;
}

/** Creates NAME.partial in the case directory; the upload starts empty, its first ACK due after ACK_EVERY bytes. */
export async function openUpload(caseDir: string, role: Role, name: string, limit: bigint, meta: Record<string, unknown>): Promise<Upload> {
  const sink = await FileSink.create(join(caseDir, name));
  return { role, name, sink, hash: createHash('sha256'), bytes: 0n, limit, nextAck: ACK_EVERY, meta, started: new Date(), writing: Promise.resolve(), queued: 0 };
}

/**
 * A sender that trickles a frame just inside the idle timeout would hold its slot for ever: after a grace
 * period the upload's average rate must reach the floor. Checked on each frame, and a trickler must send one
 * at least every idle timeout, so it is caught within grace + idle.
 */
export function checkRate(u: Upload, minRate: number, minRateGraceMs: number): void {
  if (minRate <= 0) return;
  const elapsed = Date.now() - u.started.getTime();
  if (elapsed <= minRateGraceMs) return;
  if (Number(u.bytes) * 1000 < minRate * elapsed) {
    throw new MemdumpError('E_LIMIT', `upload slower than the receiver's floor of ${minRate} bytes/s (${u.bytes} bytes in ${Math.round(elapsed / 1000)} s)`);
  }
}

/** Hashes and queues one DATA frame; returns the offset to ACK when one is due. */
export async function writeUpload(u: Upload, data: Buffer): Promise<string | undefined> {
  if (u.writeError) throw u.writeError;
  const room = u.limit - u.bytes;
  const take = BigInt(data.length) > room ? data.subarray(0, Number(room)) : data;
  if (take.length > 0) {
    u.hash.update(take);
    u.bytes += BigInt(take.length);
    // the frame's buffer is ours (the decoder never reuses memory), so it can wait in the queue
    u.queued += take.length;
    const w = u.writing.then(() => u.sink.write(take)).finally(() => (u.queued -= take.length));
    w.catch((e: Error) => (u.writeError ??= e)); // surfaced by the next frame, the await below, or settle()
    u.writing = w;
    if (u.queued > WRITE_BEHIND) await w;
  }
  if (take.length < data.length) throw new MemdumpError('E_LIMIT', `upload exceeds the receiver's limit of ${u.limit} bytes`);
  if (u.bytes >= u.nextAck) {
    u.nextAck += ACK_EVERY;
    // what has reached the file, not what is still queued behind the socket
    return (u.bytes - BigInt(u.queued)).toString();
  }
  return undefined;
}

/** Publish only when the sender's trailer matches what was written; otherwise keep .partial. Always record. */
export async function settleUpload(u: Upload, senderBytes: bigint | null, senderSha: string | null, failReason: string | undefined, ctx: SettleContext): Promise<UploadRecord> {
  const digest = u.hash.digest('hex');
  let reason: string | null = failReason ?? null;
  try {
    await u.writing;
  } catch (e) {
    reason ??= `writing the file failed: ${(e as Error).message}`;
  }
  if (reason === null) {
    if (senderBytes !== u.bytes) reason = `byte count differs: sender sent ${String(senderBytes)}, receiver wrote ${u.bytes}`;
    else if (senderSha !== digest) reason = 'SHA-256 differs between sender and receiver';
  }
  let complete = false;
  if (reason === null) {
    try {
      await u.sink.finish();
      complete = true;
    } catch (e) {
      reason = `could not publish: ${(e as Error).message}`;
      await u.sink.abort().catch(() => undefined);
    }
  } else {
    await u.sink.abort().catch(() => undefined);
  }
  const rel = `${sanitizeLabel(ctx.caseLabel, 'nocase')}/${u.name}`;
  const rec: UploadRecord = {
    schema: 'memdump.upload/1',
    status: complete ? 'COMPLETE' : 'INCOMPLETE',
    reason,
    role: u.role,
    case: ctx.caseLabel,
    name: u.name,
    path: complete ? rel : rel + '.partial',
    bytes: u.bytes.toString(),
    receiverSha256: digest,
    senderSha256: senderSha,
    senderBytes: senderBytes === null ? null : senderBytes.toString(),
    peer: ctx.peer,
    auth: ctx.auth,
    ...(u.role !== 'evidence' && ctx.evidence ? { evidence: ctx.evidence } : {}),
    sender: { hello: ctx.hello, meta: u.meta },
    started: u.started.toISOString(),
    ended: new Date().toISOString(),
  };
  ctx.stats.uploads++;
  try {
    await writeUploadRecord(join(ctx.caseDir, u.name + '.upload.json'), rec);
  } finally {
    ctx.onUpload?.(rec);
    ctx.result({ status: rec.status, bytes: rec.bytes, sha256: digest, name: u.name, path: rec.path, reason });
  }
  return rec;
}
