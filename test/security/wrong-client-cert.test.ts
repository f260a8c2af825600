import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { createServerCertificate } from '../../src/receiver/x509.js';
import { expectCodeAsync } from '../helpers/expect-code.js';
import { createCertificateAuthority, createClientCertificate, goodUpload, listTree, pki, startRig } from './harness.js';

test('a client certificate from another CA is refused with E_AUTH and no file; one from the receiver CA works', async (t) => {
  const rig = await startRig(t);
  const rogueCa = createCertificateAuthority({ cn: 'test client CA', days: 1 }); // same name, different key
  const rogue = createClientCertificate({ cn: 'mallory', caseLabel: 'CASE-1', days: 1, issuer: rogueCa });
  const selfSigned = createServerCertificate({ cn: 'mallory', hosts: ['127.0.0.1'], days: 1 });
  const good = goodUpload(rig, 2 << 20, 11);
  for (const c of [rogue, selfSigned]) {
    const e = await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, clientCert: c.certPem, clientKey: c.keyPem }), 'E_AUTH');
    assert.match(e.message, /client certificate/);
  }
  await good;
  assert.deepEqual(listTree(rig.dir).filter((p) => !p.includes('good-host')), ['CASE-1']);

  // control: the receiver's own CA, case from the OU
  const legit = createClientCertificate({ cn: 'alice', caseLabel: 'CASE-CERT', days: 1, issuer: pki().ca });
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, clientCert: legit.certPem, clientKey: legit.keyPem });
  const sink = await tt.openEvidence({ host: 'alice-host', source: 't', format: 'lime', layers: [] });
  await sink.write(Buffer.from('evidence'));
  const r = await sink.finish();
  assert.match(r.path, /\/CASE-CERT\/alice-host-/);
  await tt.close();
  const rec = JSON.parse(readFileSync(join(rig.dir, r.path.replace(/^tls:\/\/[^/]+\//, '') + '.upload.json'), 'utf8')) as { auth: { kind: string; fingerprint256: string } };
  assert.equal(rec.auth.kind, 'client-cert');
  assert.match(rec.auth.fingerprint256, /^[0-9A-F:]{95}$/);

  // a good certificate asking for another case than its OU
  await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, clientCert: legit.certPem, clientKey: legit.keyPem, case: 'CASE-1' }), 'E_AUTH');
});

test('a receiver without --client-ca does not accept certificates as credentials', async (t) => {
  const rig = await startRig(t, { noClientCa: true });
  const legit = createClientCertificate({ cn: 'alice', caseLabel: 'CASE-1', days: 1, issuer: pki().ca });
  await expectCodeAsync(TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, clientCert: legit.certPem, clientKey: legit.keyPem }), 'E_AUTH');
  assert.deepEqual(listTree(rig.dir), []);
});
