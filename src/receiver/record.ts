import { escapeDeep } from '../core/escape.js';
import { writeFileExclusive } from '../sinks/exclusive.js';

export type UploadStatus = 'COMPLETE' | 'INCOMPLETE';

/**
 * NAME.upload.json beside every received file, complete or not: what arrived, from whom, under which
 * credential, and why it is (in)complete. Sender-supplied values are kept as data only, with control
 * characters escaped, under `sender`.
 */
export interface UploadRecord {
  schema: 'memdump.upload/1';
  status: UploadStatus;
  reason: string | null;
  role: 'evidence' | 'report' | 'log' | 'map' | 'signature';
  case: string;
  name: string;
  /** Path relative to the evidence directory: <case>/<name> (or .partial). */
  path: string;
  bytes: string;
  receiverSha256: string;
  senderSha256: string | null;
  senderBytes: string | null;
  peer: { address: string; port: number | null };
  auth: { kind: 'token'; tokenId: string } | { kind: 'client-cert'; fingerprint256: string; subject: string };
  /** The evidence file this side file belongs to. */
  evidence?: string;
  sender: Record<string, unknown>;
  started: string;
  ended: string;
}

/**
 * The sender part is the only one a sender shapes; if it cannot be serialised (too deep for the stack, however
 * it got past the frame checks) the record is still written, without it, saying so.
 */
export function renderUploadRecord(rec: UploadRecord): string {
  try {
    return JSON.stringify({ ...rec, sender: escapeDeep(rec.sender) }, null, 2) + '\n';
  } catch (e) {
    const why = e instanceof RangeError ? 'too deeply nested' : 'not serialisable';
    return JSON.stringify({ ...rec, sender: { omitted: `sender data ${why}` } }, null, 2) + '\n';
  }
}

export async function writeUploadRecord(path: string, rec: UploadRecord): Promise<void> {
  await writeFileExclusive(path, renderUploadRecord(rec));
}
