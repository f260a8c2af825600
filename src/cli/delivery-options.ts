import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { MemdumpError, fromSystemError } from '../core/errors.js';
import { type AgeRecipient, parseRecipient } from '../crypto/age.js';
import { loadSigningKey } from '../crypto/sign.js';
import { HttpsPutTarget } from '../delivery/https-target.js';
import type { DeliveryPlan } from '../delivery/plan.js';
import { S3PresignedTarget } from '../delivery/s3-target.js';
import { TlsTarget } from '../delivery/tls-target.js';
import type { RemoteTarget } from '../delivery/types.js';
import type { TransportCompression } from '../sinks/decompress.js';

export interface DeliveryOpts {
  to?: string;
  pin?: string;
  token?: string;
  tokenFile?: string;
  clientCert?: string;
  clientKey?: string;
  ca?: string;
  allowHttp?: boolean;
  recipient: string[];
  recipientsFile?: string;
  compress?: string;
  signKey?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** A destination as it may be printed or logged: a pre-signed URL's query string is a credential. */
export function describeDestination(s: string): string {
  return /^https?:\/\//i.test(s) && s.includes('?') ? s.slice(0, s.indexOf('?')) + '?[signature not shown]' : s;
}

/** A destination that is not a local path: tls://, https:// (http:// with --allow-http), s3-presigned:MANIFEST. */
export function isRemoteSpec(s: string): boolean {
  return /^(tls|https?):\/\//i.test(s) || s.startsWith('s3-presigned:');
}

/**
 * Delivery and protection options shared by acquire, process and convert. `withTo`: convert's --to already names
 * the format, so there the destination is the output argument.
 */
export function addDeliveryOptions(cmd: Command, withTo: boolean): void {
  if (withTo) cmd.option('--to <destination>', 'send instead of writing a file: tls://HOST:PORT (memdump receive), https://PRESIGNED-PUT-URL, s3-presigned:MANIFEST.json');
  cmd
    .option('--pin <sha256/BASE64>', 'tls://: the receiver certificate\'s SPKI pin (printed by memdump receive --init); nothing is sent unless it matches')
    .option('--token <token>', 'tls://: the per-case upload token (prefer --token-file or $MEMDUMP_TOKEN: a command line is visible in ps)')
    .option('--token-file <path>', 'tls://: read the upload token from this file')
    .option('--client-cert <pem>', 'tls://: authenticate with this client certificate (memdump receive --issue-client-cert) instead of a token')
    .option('--client-key <pem>', 'tls://: the client certificate\'s private key')
    .option('--ca <pem>', 'https:// and s3-presigned: also trust this CA certificate (a private object store)')
    .option('--allow-http', 'https:// and s3-presigned: permit plain http:// URLs (the dump would cross the network in the clear)')
    .option('--recipient <age1…>', 'encrypt the evidence to this age X25519 recipient before it leaves memdump (repeatable; memdump decrypt or age -d undo it)', collect, [])
    .option('--recipients-file <path>', 'encrypt to every age1… recipient listed in this file (one per line, # comments)')
    .option('--compress <algo>', 'compress the stream for transport: zstd (recommended: ~4× less CPU than gzip here) or gzip (lime, padded, raw, elf; avml and e01 compress themselves)')
    .option('--sign-key <pem>', 'sign the report with this Ed25519 private key (openssl genpkey -algorithm ed25519): REPORT.json.sig, checked by memdump verify');
}

/** A file named on the command line, with a coded error that names the option. */
export function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw fromSystemError(e, `reading ${what} ${path}`);
  }
}

/** --trusted-key (verify, decrypt): a key id as it is, a PEM file's contents otherwise. */
export function trustedKeyText(v: string): string {
  return /^sha256:[0-9a-f]{64}$/i.test(v) ? v.toLowerCase() : readText(v, '--trusted-key');
}

function recipientsOf(o: DeliveryOpts): AgeRecipient[] {
  const texts = [...o.recipient];
  if (o.recipientsFile) {
    for (const line of readText(o.recipientsFile, '--recipients-file').split('\n')) {
      const t = line.trim();
      if (t && !t.startsWith('#')) texts.push(t);
    }
    if (texts.length === o.recipient.length) throw new MemdumpError('E_USAGE', `--recipients-file ${o.recipientsFile} lists no recipient`);
  }
  return texts.map(parseRecipient);
}

function tokenOf(o: DeliveryOpts): string | undefined {
  if (o.token && o.tokenFile) throw new MemdumpError('E_USAGE', 'give the token once: --token or --token-file');
  const t = o.token ?? (o.tokenFile ? readText(o.tokenFile, '--token-file') : process.env.MEMDUMP_TOKEN);
  return t?.trim() || undefined;
}

/** The command line's delivery choices; undefined when the output is a plain local file or stdout. */
export function parseDeliveryOptions(o: DeliveryOpts, destination: string | undefined, signal?: AbortSignal): DeliveryPlan | undefined {
  const recipients = recipientsOf(o);
  let compression: TransportCompression | undefined;
  if (o.compress !== undefined) {
    if (o.compress !== 'gzip' && o.compress !== 'zstd') throw new MemdumpError('E_USAGE', `--compress: "${o.compress}" is not gzip or zstd`);
    compression = o.compress;
  }
  const signKey = o.signKey ? loadSigningKey(readText(o.signKey, '--sign-key')) : undefined;
  let remote: DeliveryPlan['remote'];
  if (destination !== undefined) {
    if (!isRemoteSpec(destination)) throw new MemdumpError('E_USAGE', `--to: "${destination}" is not tls://HOST:PORT, https://URL or s3-presigned:MANIFEST.json (for a local file use -o)`);
    remote = { spec: destination, open: targetOpener(destination, o, signal) };
  } else {
    for (const [v, flag] of [[o.pin, '--pin'], [o.token ?? o.tokenFile, '--token'], [o.clientCert, '--client-cert'], [o.clientKey, '--client-key'], [o.ca, '--ca'], [o.allowHttp, '--allow-http']] as const) {
      if (v) throw new MemdumpError('E_USAGE', `${flag} applies to network delivery only (--to)`);
    }
  }
  if (!remote && !compression && recipients.length === 0 && !signKey) return undefined;
  return { ...(remote ? { remote } : {}), ...(compression ? { compression } : {}), recipients, ...(signKey ? { signKey } : {}) };
}

function targetOpener(spec: string, o: DeliveryOpts, signal: AbortSignal | undefined): () => Promise<RemoteTarget> {
  const ca = o.ca ? readText(o.ca, '--ca') : undefined;
  const web = { ...(ca ? { ca } : {}), ...(o.allowHttp ? { allowHttp: true } : {}), ...(signal ? { signal } : {}) };
  if (/^tls:\/\//i.test(spec)) {
    if (!o.pin) throw new MemdumpError('E_USAGE', 'tls:// needs --pin sha256/BASE64 (memdump receive --init prints it): without it anyone on the path could pose as the receiver');
    const { host, port } = TlsTarget.parseUrl(spec);
    for (const [v, flag] of [[o.ca, '--ca'], [o.allowHttp, '--allow-http']] as const) {
      if (v) throw new MemdumpError('E_USAGE', `${flag} applies to https:// and s3-presigned: only; tls:// trusts the receiver by --pin`);
    }
    if (o.clientCert && (o.token || o.tokenFile)) throw new MemdumpError('E_USAGE', 'give one credential: a token or a client certificate');
    // a token in the environment must not silently replace the client certificate the command line names
    const token = o.clientCert ? undefined : tokenOf(o);
    if (!token && !o.clientCert) throw new MemdumpError('E_USAGE', 'tls:// needs --token-file FILE (or --token, $MEMDUMP_TOKEN) or --client-cert/--client-key: the receiver accepts no anonymous uploads');
    if (!!o.clientCert !== !!o.clientKey) throw new MemdumpError('E_USAGE', '--client-cert and --client-key go together');
    const clientCert = o.clientCert ? readText(o.clientCert, '--client-cert') : undefined;
    const clientKey = o.clientKey ? readText(o.clientKey, '--client-key') : undefined;
    const pin = o.pin;
    return () =>
      TlsTarget.connect({
        host,
        port,
        pin,
        ...(token ? { token } : {}),
        ...(clientCert ? { clientCert } : {}),
        ...(clientKey ? { clientKey } : {}),
        ...(signal ? { signal } : {}),
      });
  }
  for (const [v, flag] of [[o.pin, '--pin'], [o.token ?? o.tokenFile, '--token'], [o.clientCert, '--client-cert'], [o.clientKey, '--client-key']] as const) {
    if (v) throw new MemdumpError('E_USAGE', `${flag} applies to tls:// delivery only`);
  }
  if (spec.startsWith('s3-presigned:')) return () => S3PresignedTarget.fromManifest(spec.slice('s3-presigned:'.length), web);
  return async () => HttpsPutTarget.create(spec, web);
}
