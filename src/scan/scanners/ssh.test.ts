import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { sshScanner } from './ssh.js';
import { pemScanner } from './pem.js';

function found(text: string): [string, string][] {
  const out: [string, string][] = [];
  sshScanner.scan(text, (k, s, e) => out.push([k, text.slice(s, e)]));
  return out;
}

interface Pair {
  priv: string;
  pub: string;
  type: string;
}
/** Key pairs written by the real ssh-keygen; one encrypted with a passphrase. */
function keygen(): Pair[] {
  const dir = mkdtempSync(join(tmpdir(), 'h7sec-ssh-'));
  try {
    const specs: [string, string[], string][] = [
      ['ed', ['-t', 'ed25519', '-N', ''], 'ssh-ed25519'],
      ['rsa', ['-t', 'rsa', '-b', '2048', '-N', ''], 'ssh-rsa'],
      ['ec256', ['-t', 'ecdsa', '-b', '256', '-N', ''], 'ecdsa-sha2-nistp256'],
      ['ec521', ['-t', 'ecdsa', '-b', '521', '-N', ''], 'ecdsa-sha2-nistp521'],
      ['enc', ['-t', 'ed25519', '-N', 'correct horse'], 'ssh-ed25519'],
    ];
    return specs.map(([name, args, type]) => {
      const f = join(dir, name);
      execFileSync('ssh-keygen', ['-q', ...args, '-C', 'alice@host', '-f', f], { stdio: 'ignore' });
      return { priv: readFileSync(f, 'latin1').replace(/\n$/, ''), pub: readFileSync(`${f}.pub`, 'latin1').replace(/\n$/, ''), type };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const pairs = keygen();

test('ssh-keygen private keys (ed25519, rsa, ecdsa, passphrase-protected) are found by ssh and not by pem', () => {
  for (const { priv } of pairs) {
    assert.deepEqual(found(`${priv}\n`), [['ssh-private-key', priv]]);
    assert.deepEqual(found(`\0${priv.replace(/\n/g, '\r\n')}\0`), [['ssh-private-key', priv.replace(/\n/g, '\r\n')]]);
    const p: string[] = [];
    pemScanner.scan(priv, (_k, s, e) => p.push(priv.slice(s, e)));
    assert.deepEqual(p, []);
  }
});

test('ssh-keygen public keys are found as type + blob, in authorized_keys and known_hosts lines', () => {
  for (const { pub, type } of pairs) {
    const feature = pub.split(' ').slice(0, 2).join(' ');
    assert.ok(feature.startsWith(type + ' '));
    assert.deepEqual(found(pub), [['ssh-public-key', feature]]);
    assert.deepEqual(found(`command="backup-only",no-pty ${pub}\n`), [['ssh-public-key', feature]]);
    assert.deepEqual(found(`|1|abc=|def= ${feature}\0`), [['ssh-public-key', feature]]);
    assert.deepEqual(found(feature), [['ssh-public-key', feature]]);
  }
});

test('review findings: a private key in a JSON string, a public key with two spaces before the blob', () => {
  for (const { priv, pub } of pairs) {
    const inJson = JSON.stringify(priv).slice(1, -1);
    assert.deepEqual(found(JSON.stringify({ id_ed25519: `${priv}\n` })), [['ssh-private-key', inJson]]);
    const [type, blob, comment] = pub.split(' ');
    assert.deepEqual(found(`${type}  ${blob} ${comment}`), [['ssh-public-key', `${type}  ${blob}`]]);
    assert.deepEqual(found(`${type}\t${blob}`), [['ssh-public-key', `${type}\t${blob}`]]);
  }
});

test('FIDO sk- public keys are found once', () => {
  const str = (s: string | Buffer): Buffer => {
    const b = Buffer.from(s);
    const l = Buffer.alloc(4);
    l.writeUInt32BE(b.length);
    return Buffer.concat([l, b]);
  };
  const type = 'sk-ssh-ed25519@openssh.com';
  const blob = Buffer.concat([str(type), str(randomBytes(32)), str('ssh:')]).toString('base64');
  assert.deepEqual(found(`${type} ${blob} yubi`), [['ssh-public-key', `${type} ${blob}`]]);
});

test('blobs of another type, random base64, broken private bodies and touching words give nothing', () => {
  const ed = pairs[0]!;
  const rsa = pairs[1]!;
  const edBlob = ed.pub.split(' ')[1]!;
  assert.deepEqual(found(`ssh-rsa ${edBlob}`), [], 'blob says ssh-ed25519');
  assert.deepEqual(found(`ssh-ed25519 AAAA${randomBytes(48).toString('base64')}`), []);
  assert.deepEqual(found(`xssh-ed25519 ${edBlob}`), []);
  assert.deepEqual(found(`ssh-ed25519 ${edBlob}x`), [], 'blob continues');
  assert.deepEqual(found(`ssh-ed25519 ${edBlob.slice(0, -8)}`), [], 'cut blob');
  assert.deepEqual(found(`ssh-ed25519\n${edBlob}`), [], 'a line end between type and blob');
  assert.deepEqual(found('-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----'), []);
  const body = randomBytes(300).toString('base64').replace(/(.{70})/g, '$1\n').replace(/\n$/, '');
  assert.deepEqual(found(`-----BEGIN OPENSSH PRIVATE KEY-----\n${body}\n-----END OPENSSH PRIVATE KEY-----`), []);
  assert.deepEqual(found(rsa.priv.replace('-----END OPENSSH', '-----END RSA')), []);
});

test('property: never throws on mutated keys; hits are whole keys', () => {
  const text0 = `${pairs[0]!.priv}\n${pairs[2]!.pub}`;
  fc.assert(
    fc.property(fc.nat(text0.length), fc.nat(10), fc.string({ maxLength: 3 }), (at, del, ins) => {
      const text = text0.slice(0, at) + ins + text0.slice(at + del);
      for (const [kind, f] of found(text)) {
        if (kind === 'ssh-private-key') assert.ok(f.startsWith('-----BEGIN OPENSSH') && f.endsWith('KEY-----'));
        else assert.match(f, /^ecdsa-sha2-nistp256 AAAA[A-Za-z0-9+/]+=*$/);
      }
    }),
    { numRuns: 2000 },
  );
});
