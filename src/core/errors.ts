/**
 * One error class with a stable code. Codes are part of the CLI contract (exit statuses, --json output),
 * so they are listed here once and never renamed.
 */
export const ERROR_EXIT: Readonly<Record<string, number>> = {
  E_USAGE: 2,
  E_NOT_FOUND: 3,
  E_PERMISSION: 4,
  E_KCORE_LOCKED: 4,
  E_NO_SOURCE: 5,
  E_SOURCE_READ: 5,
  E_IOMEM_HIDDEN: 5,
  /** `image --max-errors N`: more than N unreadable sectors; the .partial image and an INCOMPLETE report are kept. */
  E_TOO_MANY_ERRORS: 5,
  E_DEST_EXISTS: 6,
  E_DEST_SYMLINK: 6,
  E_NO_SPACE: 7,
  E_WRITE: 7,
  E_UNKNOWN_FORMAT: 8,
  E_TRUNCATED: 9,
  E_CORRUPT: 9,
  E_TOO_LARGE: 9,
  E_UNSUPPORTED: 10,
  E_RAW_NEEDS_OPT_IN: 2,
  E_VERIFY_MISMATCH: 11,
  E_REPORT_INVALID: 12,
  /** Delivery: the receiver's certificate does not match --pin; not one payload byte was sent. */
  E_PIN_MISMATCH: 13,
  /** Delivery: the receiver refused the token or client certificate (missing, unknown, expired, revoked). */
  E_AUTH: 13,
  /** Delivery: the peer broke the framing protocol, or the connection ended mid-upload. */
  E_PROTOCOL: 14,
  /** Delivery: the receiver or the object store refused or failed the upload (limit reached, HTTP error, digest disagreement). */
  E_REMOTE: 14,
  /** A configured limit stopped the work (--max-bytes, more parts than the pre-signed manifest holds). */
  E_LIMIT: 14,
  /** age decryption failed: no matching identity, or the ciphertext was altered or truncated. */
  E_DECRYPT: 15,
  /** The report's Ed25519 signature does not verify, or was made by a key other than the trusted one. */
  E_SIGNATURE: 11,
  E_INTERRUPTED: 130,
  E_INTERNAL: 70,
};

export type ErrorCode = keyof typeof ERROR_EXIT & string;

export interface ErrorOptions {
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class MemdumpError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MemdumpError';
    this.code = code;
    this.details = options.details ?? {};
  }

  get exitCode(): number {
    return ERROR_EXIT[this.code] ?? 1;
  }
}

export function isMemdumpError(e: unknown, code?: string): e is MemdumpError {
  return e instanceof MemdumpError && (code === undefined || e.code === code);
}

/** Node system errors carry `code` like 'ENOENT'; keep it as errno text for the report. */
export function errnoOf(e: unknown): string {
  if (e && typeof e === 'object' && 'code' in e && typeof (e as { code: unknown }).code === 'string') {
    return (e as { code: string }).code;
  }
  return 'EUNKNOWN';
}

export function hex(n: bigint | number): string {
  return '0x' + n.toString(16);
}

/** Map an OS error from an open/read to a coded error with context. */
export function fromSystemError(e: unknown, what: string): MemdumpError {
  if (e instanceof MemdumpError) return e;
  const errno = errnoOf(e);
  const code =
    errno === 'ENOENT' || errno === 'ENODEV' || errno === 'ENXIO'
      ? 'E_NOT_FOUND'
      : errno === 'EACCES' || errno === 'EPERM'
        ? 'E_PERMISSION'
        : errno === 'ENOSPC' || errno === 'EDQUOT'
          ? 'E_NO_SPACE'
          : 'E_SOURCE_READ';
  const msg = e instanceof Error ? e.message : String(e);
  return new MemdumpError(code, `${what}: ${msg}`, { details: { errno }, cause: e });
}
