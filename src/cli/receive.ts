import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { MemdumpError, errnoOf, fromSystemError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { mkdirExclusive, writeFileExclusive } from '../sinks/exclusive.js';
import type { UploadRecord } from '../receiver/record.js';
import { Receiver } from '../receiver/server.js';
import { issueToken, parseDuration, readTokens, revokeToken } from '../receiver/tokens.js';
import { createCertificateAuthority, createClientCertificate, createServerCertificate, spkiPin, type KeyAndCert } from '../receiver/x509.js';
import { parseSize, type GlobalOptions } from './common.js';

/** What `--init DIR` creates; `--state DIR` reads the same names. */
export const STATE_FILES = {
  serverCert: 'server.crt',
  serverKey: 'server.key',
  caCert: 'client-ca.crt',
  caKey: 'client-ca.key',
  tokens: 'tokens.json',
  pin: 'pin.txt',
} as const;

const HELP = `
Modes (one per invocation):
  --init DIR              create a receiver state directory (0700): self-signed server certificate and key, a CA for
                          client certificates, an empty token list; prints the pin senders pass to --pin
  --issue-token           --case X --expires 2h: print a new upload token once (only its SHA-256 is stored)
  --list-tokens           id, case, expiry and state of every token (never the token itself)
  --revoke-token ID       the token stops working at once (running receivers re-read the list on every connection)
  --issue-client-cert NAME  --case X: write NAME.crt and NAME.key (0600) signed by the state's client CA
  (default)               serve: --dir EVIDENCE --listen HOST:PORT

State directory (--init DIR, then --state DIR): ${Object.values(STATE_FILES).join(', ')}.
--cert/--key/--client-ca/--tokens override the files of --state.

Files land in EVIDENCE/<case>/<host>-<UTC time>-<random>.<ext>, never under a name the sender chose; each has a
NAME.upload.json record. An upload is COMPLETE (published) only when the byte count and SHA-256 match the sender's;
otherwise NAME.partial stays and the record says INCOMPLETE and why.

Limits against hostile or broken peers (all refusals are coded; the receiver keeps serving):
  --max-connections N      authenticated sessions at once (default 64); unauthenticated connections are counted
                           apart (at most N of them), so a flood of silent peers cannot take a sender's slot
  --max-preauth-per-ip N   connections from one address that have not authenticated yet (default 32); more are
                           dropped before the TLS handshake
  --handshake-timeout D    the TLS handshake must finish within D (default 5s); then HELLO within --pre-auth-timeout
  --min-rate SIZE          after --min-rate-grace (default 60s) an upload must average SIZE per second (default
                           64K; 0 turns it off), so a trickling sender cannot hold a session for ever
  Before authentication only HELLO and PING frames are accepted; JSON frames are capped at 16 KiB, 8 levels of
  nesting and 256 keys; sender strings echoed in messages are cut to 64 characters and escaped.

Examples:
  memdump receive --init /srv/memdump-rx --hosts collector.lab,10.0.0.5
  memdump receive --state /srv/memdump-rx --issue-token --case IR-2291 --expires 8h
  memdump receive --state /srv/memdump-rx --dir /srv/evidence --listen 0.0.0.0:7443 --max-bytes 512G
  sudo memdump acquire --to tls://collector.lab:7443 --pin sha256/… --token mdt_…`;

interface ReceiveOpts {
  init?: string;
  hosts?: string;
  days: string;
  state?: string;
  issueToken?: boolean;
  case?: string;
  expires: string;
  note?: string;
  listTokens?: boolean;
  revokeToken?: string;
  issueClientCert?: string;
  outDir: string;
  dir?: string;
  listen?: string;
  cert?: string;
  key?: string;
  clientCa?: string;
  tokens?: string;
  maxBytes?: string;
  idleTimeout: string;
  preAuthTimeout: string;
  maxConnections: string;
  maxPreauthPerIp: string;
  handshakeTimeout: string;
  minRate: string;
  minRateGrace: string;
}

function intOption(v: string, name: string, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new MemdumpError('E_USAGE', `${name} "${escapeControl(v)}" must be 1..${max}`);
  return n;
}

function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : -1;
  if (!m || port < 0 || port > 65535) throw new MemdumpError('E_USAGE', `--listen "${escapeControl(s)}" is not HOST:PORT (IPv6: [::]:7443)`);
  return { host: (m[1] ?? m[2])!, port };
}

/** The case becomes a directory name on the receiver: refuse at issue time what would be rewritten there. */
function checkCase(c: string): void {
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/.test(c)) throw new MemdumpError('E_USAGE', `--case "${escapeControl(c)}": 1-64 of A-Z a-z 0-9 . _ -, not starting with a dot`);
}

function days(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 3650) throw new MemdumpError('E_USAGE', `--days "${s}" must be 1..3650`);
  return n;
}

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await fsp.readFile(path, 'utf8');
  } catch (e) {
    throw fromSystemError(e, `reading ${what} ${path}`);
  }
}

function needState(o: ReceiveOpts, what: string): string {
  if (!o.state) throw new MemdumpError('E_USAGE', `${what} needs --state DIR (made by --init)`);
  return resolve(o.state);
}

async function init(o: ReceiveOpts, g: GlobalOptions): Promise<void> {
  const dir = resolve(o.init!);
  const hosts = (o.hosts ?? 'localhost,127.0.0.1,::1').split(',').map((h) => h.trim()).filter((h) => h !== '');
  const d = days(o.days);
  await mkdirExclusive(dir);
  const server = createServerCertificate({ cn: hosts[0] ?? 'memdump-receiver', hosts, days: d });
  const ca = createCertificateAuthority({ cn: 'memdump receiver client CA', days: d });
  const pin = spkiPin(server.certPem);
  await writeFileExclusive(join(dir, STATE_FILES.serverKey), server.keyPem);
  await writeFileExclusive(join(dir, STATE_FILES.serverCert), server.certPem);
  await writeFileExclusive(join(dir, STATE_FILES.caKey), ca.keyPem);
  await writeFileExclusive(join(dir, STATE_FILES.caCert), ca.certPem);
  await writeFileExclusive(join(dir, STATE_FILES.tokens), JSON.stringify({ version: 1, tokens: [] }, null, 2) + '\n');
  await writeFileExclusive(join(dir, STATE_FILES.pin), pin + '\n');
  if (g.json) process.stdout.write(JSON.stringify({ state: dir, pin, hosts }) + '\n');
  else {
    process.stdout.write(pin + '\n');
    if (!g.quiet) process.stderr.write(`receiver state in ${dir} (certificate for ${hosts.join(', ')}); give senders --pin ${pin}\n`);
  }
}

function printRecord(g: GlobalOptions, r: UploadRecord): void {
  if (g.json) process.stdout.write(JSON.stringify({ event: 'upload', ...r }) + '\n');
  if (!g.quiet) {
    const why = r.reason ? ` (${r.reason})` : '';
    process.stderr.write(escapeControl(`${r.status} case=${r.case} ${r.path} ${r.bytes} bytes from ${r.peer.address}${why}`) + '\n');
  }
}

/** A bug must cost one connection, never the receiver and the uploads running beside it. */
function logInternal(e: unknown): void {
  const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  process.stderr.write(escapeControl(`memdump receive: internal error in one connection (closed; still serving): ${what.slice(0, 500)}`) + '\n');
}

async function serve(o: ReceiveOpts, g: GlobalOptions): Promise<void> {
  // the last line of defence: sessions catch their own failures, but a rejection that escapes one must not end
  // the process (Node's default) while other senders are mid-upload
  process.on('unhandledRejection', (e) => logInternal(e));
  if (!o.dir || !o.listen) throw new MemdumpError('E_USAGE', 'serving needs --dir EVIDENCE and --listen HOST:PORT (or use --init / --issue-token …)');
  const { host, port } = parseListen(o.listen);
  const st = o.state ? resolve(o.state) : undefined;
  const certPath = o.cert ?? (st && join(st, STATE_FILES.serverCert));
  const keyPath = o.key ?? (st && join(st, STATE_FILES.serverKey));
  if (!certPath || !keyPath) throw new MemdumpError('E_USAGE', 'serving needs --cert and --key, or --state DIR');
  let clientCa = o.clientCa ?? (st && join(st, STATE_FILES.caCert));
  if (o.clientCa === undefined && clientCa !== undefined) {
    clientCa = await fsp.access(clientCa).then(() => clientCa, () => undefined);
  }
  const tokensPath = o.tokens ? resolve(o.tokens) : st && join(st, STATE_FILES.tokens);
  if (!clientCa && !tokensPath) throw new MemdumpError('E_USAGE', 'no way to authenticate senders: give --tokens FILE, --client-ca CA.pem or --state DIR');
  const cert = await readPem(certPath, 'certificate');
  const rcv = await Receiver.start({
    dir: o.dir,
    host,
    port,
    cert,
    key: await readPem(keyPath, 'key'),
    ...(clientCa ? { clientCa: await readPem(clientCa, 'client CA') } : {}),
    ...(tokensPath ? { tokensPath } : {}),
    ...(o.maxBytes !== undefined ? { maxBytes: parseSize(o.maxBytes, '--max-bytes') } : {}),
    idleTimeoutMs: parseDuration(o.idleTimeout, '--idle-timeout'),
    preAuthTimeoutMs: parseDuration(o.preAuthTimeout, '--pre-auth-timeout'),
    maxConnections: intOption(o.maxConnections, '--max-connections', 65535),
    maxPreauthPerIp: intOption(o.maxPreauthPerIp, '--max-preauth-per-ip', 65535),
    handshakeTimeoutMs: parseDuration(o.handshakeTimeout, '--handshake-timeout'),
    minRate: o.minRate === '0' ? 0 : Number(parseSize(o.minRate, '--min-rate')),
    minRateGraceMs: parseDuration(o.minRateGrace, '--min-rate-grace'),
    onUpload: (r) => printRecord(g, r),
    onInternalError: (e) => logInternal(e),
  });
  const pin = spkiPin(cert);
  const where = `${rcv.host.includes(':') ? `[${rcv.host}]` : rcv.host}:${rcv.port}`;
  if (g.json) process.stdout.write(JSON.stringify({ event: 'listening', host: rcv.host, port: rcv.port, pin, dir: resolve(o.dir) }) + '\n');
  if (!g.quiet) process.stderr.write(`memdump receive: listening on ${where} (TLS 1.3), pin ${pin}, evidence in ${resolve(o.dir)}\n`);
  await new Promise<void>((done) => {
    let stopping = false;
    const stop = (sig: NodeJS.Signals) => {
      if (stopping) process.exit(sig === 'SIGINT' ? 130 : 143);
      stopping = true;
      if (!g.quiet) process.stderr.write(`memdump receive: ${sig}: no new connections; open uploads end INCOMPLETE\n`);
      void rcv.close().then(done, done);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  if (g.json) process.stdout.write(JSON.stringify({ event: 'stopped', uploads: rcv.stats.uploads, connections: rcv.stats.connections }) + '\n');
}

async function writeExclusiveOrExplain(path: string, data: string): Promise<void> {
  try {
    await writeFileExclusive(path, data);
  } catch (e) {
    if (errnoOf(e) === 'EEXIST') throw new MemdumpError('E_DEST_EXISTS', `${path} already exists`);
    throw e;
  }
}

export function registerReceive(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  void setExit;
  program
    .command('receive')
    .description('TLS collection server for `--to tls://…`: authenticated senders, receiver-chosen names, verified digests')
    .option('--init <dir>', 'create a receiver state directory and print the certificate pin')
    .option('--hosts <list>', 'with --init: names and addresses for the server certificate', 'localhost,127.0.0.1,::1')
    .option('--days <n>', 'with --init / --issue-client-cert: certificate lifetime in days', '825')
    .option('--state <dir>', 'receiver state directory made by --init')
    .option('--issue-token', 'print a new upload token (needs --case, --expires)')
    .option('--case <label>', 'case the token or client certificate is bound to')
    .option('--expires <duration>', 'token lifetime (30m, 8h, 7d)', '24h')
    .option('--note <text>', 'free text stored with the token (who it was given to)')
    .option('--list-tokens', 'list tokens (ids, cases, expiry, revoked)')
    .option('--revoke-token <id>', 'revoke a token by id')
    .option('--issue-client-cert <name>', 'write NAME.crt and NAME.key signed by the client CA (needs --case)')
    .option('--out-dir <dir>', 'with --issue-client-cert: where to write them', '.')
    .option('--dir <dir>', 'evidence directory (files go to DIR/<case>/)')
    .option('--listen <host:port>', 'address to listen on, e.g. 0.0.0.0:7443')
    .option('--cert <file>', 'server certificate (PEM)')
    .option('--key <file>', 'server private key (PEM)')
    .option('--client-ca <file>', 'accept client certificates issued by this CA (their OU is the case)')
    .option('--tokens <file>', 'token list (written by --issue-token)')
    .option('--max-bytes <size>', 'largest evidence upload accepted (e.g. 512G); larger ones stop INCOMPLETE')
    .option('--idle-timeout <duration>', 'drop a connection with no complete frame for this long', '120s')
    .option('--pre-auth-timeout <duration>', 'TLS handshake, and then authentication, each within this', '10s')
    .option('--max-connections <n>', 'concurrent authenticated sessions; more are refused', '64')
    .option('--max-preauth-per-ip <n>', 'connections per source address not yet authenticated; more are dropped (senders retry)', '32')
    .option('--handshake-timeout <duration>', 'TLS handshake within this', '5s')
    .option('--min-rate <size>', 'after --min-rate-grace an upload must average this per second (0: no floor)', '64K')
    .option('--min-rate-grace <duration>', 'how long an upload may run before --min-rate applies', '60s')
    .addHelpText('after', HELP)
    .action(async (o: ReceiveOpts) => {
      const g = globals();
      if (o.init !== undefined) return init(o, g);
      if (o.issueToken) {
        const st = needState(o, '--issue-token');
        if (!o.case) throw new MemdumpError('E_USAGE', '--issue-token needs --case');
        checkCase(o.case);
        const { token, entry } = await issueToken(o.tokens ? resolve(o.tokens) : join(st, STATE_FILES.tokens), {
          case: o.case,
          ttlMs: parseDuration(o.expires, '--expires'),
          ...(o.note !== undefined ? { note: o.note } : {}),
        });
        process.stdout.write(g.json ? JSON.stringify({ token, id: entry.id, case: entry.case, expires: entry.expires }) + '\n' : token + '\n');
        if (!g.quiet && !g.json) process.stderr.write(`token ${entry.id} for case ${escapeControl(entry.case)}, expires ${entry.expires}; it is not stored and cannot be shown again\n`);
        return;
      }
      if (o.listTokens) {
        const tokens = await readTokens(o.tokens ? resolve(o.tokens) : join(needState(o, '--list-tokens'), STATE_FILES.tokens));
        const now = Date.now();
        const rows = tokens.map((t) => ({ id: t.id, case: t.case, created: t.created, expires: t.expires, state: t.revoked ? 'revoked' : Date.parse(t.expires) <= now ? 'expired' : 'valid', ...(t.note ? { note: t.note } : {}) }));
        if (g.json) process.stdout.write(JSON.stringify(rows) + '\n');
        else for (const r of rows) process.stdout.write(escapeControl(`${r.id}  ${r.state.padEnd(7)}  ${r.expires}  ${r.case}${r.note ? '  ' + r.note : ''}`) + '\n');
        return;
      }
      if (o.revokeToken !== undefined) {
        const e = await revokeToken(o.tokens ? resolve(o.tokens) : join(needState(o, '--revoke-token'), STATE_FILES.tokens), o.revokeToken);
        process.stdout.write(g.json ? JSON.stringify({ id: e.id, revoked: e.revoked }) + '\n' : `revoked ${e.id}\n`);
        return;
      }
      if (o.issueClientCert !== undefined) {
        const st = needState(o, '--issue-client-cert');
        if (!o.case) throw new MemdumpError('E_USAGE', '--issue-client-cert needs --case');
        checkCase(o.case);
        if (!/^[A-Za-z0-9._-]{1,64}$/.test(o.issueClientCert) || o.issueClientCert.startsWith('.')) throw new MemdumpError('E_USAGE', '--issue-client-cert NAME: letters, digits, . _ - only');
        const issuer: KeyAndCert = { keyPem: await readPem(join(st, STATE_FILES.caKey), 'CA key'), certPem: await readPem(join(st, STATE_FILES.caCert), 'CA certificate') };
        const kc = createClientCertificate({ cn: o.issueClientCert, caseLabel: o.case, days: days(o.days), issuer });
        const base = join(resolve(o.outDir), o.issueClientCert);
        await writeExclusiveOrExplain(base + '.key', kc.keyPem);
        await writeExclusiveOrExplain(base + '.crt', kc.certPem);
        process.stdout.write(g.json ? JSON.stringify({ cert: base + '.crt', key: base + '.key', case: o.case }) + '\n' : `${base}.crt\n${base}.key\n`);
        return;
      }
      return serve(o, g);
    });
}
