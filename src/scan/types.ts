/**
 * The scanner contract of `memdump scan`. A scanner sees text, never bytes: the engine (window.ts) turns every
 * window of the input into one string of its printable runs (ASCII bytes, or UTF-16LE code units decoded), joined
 * by '\0', and maps what a scanner reports back to addresses, forensic paths and chunk ownership. So a scanner
 * never deals with chunk boundaries, encodings, containers or duplicates across windows; it only has to obey the
 * rules below.
 *
 * Rules for a scanner:
 *  - Report each feature once, with [start, end) in `text`. `feature` defaults to text.slice(start, end); give it
 *    only when the reported form differs (it never does for the planted kinds).
 *  - Whether a feature is found, and its extent, may depend only on text within MAX_FEATURE_LENGTH of it: the
 *    engine shows every owned feature with at least LOOK_BEHIND characters before it and MAX_FEATURE_LENGTH after.
 *  - '\0' joins runs that were one NUL character apart in memory (C string lists; bash keeps its history that
 *    way), '\0\0' joins runs with any other gap between them. Both are boundaries like a line end; only a
 *    scanner for a NUL-separated form (bash history in memory) may report a feature containing a single '\0',
 *    and none may bridge '\0\0'.
 *  - Validate: a candidate that fails its checksum, range or structure is not reported. Random bytes must give
 *    (almost) nothing.
 *  - Cost must be linear in text length with a small constant: anchor on rare literals (indexOf, sticky regexes
 *    at the anchor) rather than running a leading character class over every position.
 *  - Never throw.
 */

export const FEATURE_KINDS = [
  'email',
  'url',
  'domain',
  'ipv4',
  'ipv6',
  'mac',
  'ccn',
  'ccn-test',
  'phone',
  'jwt',
  'pem-private-key',
  'pem-certificate',
  'ssh-private-key',
  'ssh-public-key',
  'aws-access-key',
  'gcp-api-key',
  'azure-storage-key',
  'password-assignment',
  'basic-auth',
  'bash-history',
  'version-banner',
] as const;
export type FeatureKind = (typeof FEATURE_KINDS)[number];

/** Longest feature a scanner may report (a PEM certificate chain member, an RSA-8192 key) and its look-ahead. */
export const MAX_FEATURE_LENGTH = 16 * 1024;
/** Characters the engine keeps before the first owned position so left context (a local part, a word boundary) is seen. */
export const LOOK_BEHIND = 4096;

export type Emit = (kind: FeatureKind, start: number, end: number, feature?: string) => void;

export interface Scanner {
  /** Short name used on the command line (--scanners email,ccn) and in scan.json. */
  readonly name: string;
  /** The feature kinds it reports; each kind has its own feature file. */
  readonly kinds: readonly FeatureKind[];
  /** One line for `memdump scan --list`. */
  readonly description: string;
  scan(text: string, emit: Emit): void;
}
