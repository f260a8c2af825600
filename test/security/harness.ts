/** Shared set-up for the security tests: a real TLS receiver on 127.0.0.1, real credentials, raw attackers. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { Receiver, type ReceiverOptions } from '../../src/receiver/server.js';
import { issueToken } from '../../src/receiver/tokens.js';
import { createCertificateAuthority, createClientCertificate, createServerCertificate, spkiPin, type KeyAndCert } from '../../src/receiver/x509.js';
import { tempDir } from '../helpers/cli.js';
import { Prng } from '../helpers/prng.js';

export interface Pki {
  server: KeyAndCert;
  pin: string;
  ca: KeyAndCert;
}

let cached: Pki | undefined;
export function pki(): Pki {
  if (!cached) {
    const server = createServerCertificate({ cn: '127.0.0.1', hosts: ['127.0.0.1', 'localhost'], days: 2 });
    cached = { server, pin: spkiPin(server.certPem), ca: createCertificateAuthority({ cn: 'test client CA', days: 2 }) };
  }
  return cached;
}

export interface Rig {
  rcv: Receiver;
  dir: string;
  tokensPath: string;
  token: string;
  pin: string;
  port: number;
  records: import('../../src/receiver/record.js').UploadRecord[];
}

type Hooks = { after: (fn: () => void | Promise<void>) => void };

export async function startRig(t: Hooks, opts: Partial<ReceiverOptions> & { noClientCa?: boolean } = {}): Promise<Rig> {
  const base = tempDir(t as { after: (fn: () => void) => void }, 'memdump-rx-');
  const tokensPath = join(base, 'tokens.json');
  const { token } = await issueToken(tokensPath, { case: 'CASE-1', ttlMs: 3_600_000 });
  const p = pki();
  const records: Rig['records'] = [];
  const rcv = await Receiver.start({
    dir: join(base, 'evidence'),
    host: '127.0.0.1',
    port: 0,
    cert: p.server.certPem,
    key: p.server.keyPem,
    tokensPath,
    onUpload: (r) => records.push(r),
    ...(opts.noClientCa ? {} : { clientCa: p.ca.certPem }),
    ...Object.fromEntries(Object.entries(opts).filter(([k]) => k !== 'noClientCa')),
  });
  t.after(() => rcv.close());
  return { rcv, dir: join(base, 'evidence'), tokensPath, token, pin: p.pin, port: rcv.port, records };
}

/** Every path under dir (relative), following nothing. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names.sort()) {
      const p = join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      out.push(r);
      if (lstatSync(p).isDirectory()) walk(p, r);
    }
  };
  walk(dir, '');
  return out;
}

/** A well-behaved sender: seeded bytes, checked against the file the receiver published. */
export async function goodUpload(rig: Rig, bytes: number, seed = 1): Promise<void> {
  const t = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  try {
    const sink = await t.openEvidence({ host: 'good-host', source: 'test', format: 'raw', layers: [] });
    const prng = new Prng(seed);
    const h = createHash('sha256');
    for (let left = bytes; left > 0; ) {
      const b = prng.bytes(Math.min(left, 100_003));
      h.update(b);
      await sink.write(b);
      left -= b.length;
    }
    const receipt = await sink.finish();
    assert.equal(receipt.complete, true);
    const rel = receipt.path.replace(/^tls:\/\/[^/]+\//, '');
    const data = readFileSync(join(rig.dir, rel));
    assert.equal(createHash('sha256').update(data).digest('hex'), h.digest('hex'));
  } finally {
    await t.close();
  }
}

/** TLS 1.3 client with no pin and no framing: the attacker's view. */
export function rawTls(port: number, extra: ConnectionOptions = {}): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3', ...extra });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the receiver sends until it closes the connection. */
export function untilClosed(s: TLSSocket): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('error', () => undefined);
    s.on('close', () => resolve(Buffer.concat(parts)));
  });
}

/** The REFUSE frame's JSON in what the receiver sent (after its 8-byte preamble), if any. */
export function refusalIn(buf: Buffer): { code: string; message: string } | undefined {
  let off = 8;
  while (off + 5 <= buf.length) {
    const type = buf[off]!;
    const len = buf.readUInt32BE(off + 1);
    if (type === 0x82) return JSON.parse(buf.subarray(off + 5, off + 5 + len).toString('utf8')) as { code: string; message: string };
    off += 5 + len;
  }
  return undefined;
}

export { createClientCertificate, createCertificateAuthority };
