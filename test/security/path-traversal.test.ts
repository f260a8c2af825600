import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { issueToken } from '../../src/receiver/tokens.js';
import { expectCodeAsync } from '../helpers/expect-code.js';
import { listTree, startRig } from './harness.js';

const EVIL = ['../../etc/passwd', '/etc/passwd', '..', '.', '.hidden', 'a\u0000b', 'x'.repeat(5000), 'C:\\Windows\\x', 'é\u202e\u0007', '', '%2e%2e%2f'];

test('sender-supplied host, format, source and case never steer a path: files stay in DIR/<sanitised case>', async (t) => {
  const rig = await startRig(t);
  const base = dirname(rig.dir);
  for (const [i, evil] of EVIL.entries()) {
    const { token } = await issueToken(rig.tokensPath, { case: evil === '' ? 'empty' : evil, ttlMs: 60_000 });
    const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token });
    try {
      const sink = await tt.openEvidence({ host: evil, source: evil, format: evil, layers: [] });
      await sink.write(Buffer.from(`upload ${i}`));
      const r = await sink.finish();
      assert.equal(r.complete, true);
      for (const role of ['report', 'log', 'map', 'signature'] as const) await tt.putSide(role, Buffer.from(evil));
    } finally {
      await tt.close();
    }
  }
  // an unknown transport layer is refused rather than turned into an extension
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  await expectCodeAsync(tt.openEvidence({ host: 'h', source: 's', format: 'raw', layers: ['../../x'] }), 'E_REMOTE');
  await tt.close();

  assert.deepEqual(readdirSync(base).sort(), ['evidence', 'tokens.json'], 'nothing beside the evidence directory');
  const tree = listTree(rig.dir);
  assert.ok(tree.length >= EVIL.length * 10);
  for (const p of tree) {
    const parts = p.split('/');
    assert.ok(parts.length <= 2, `${p}: at most DIR/<case>/<file>`);
    for (const part of parts) {
      assert.match(part, /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/, p);
      assert.ok(part.length <= 200, p);
    }
    if (parts.length === 2) assert.match(parts[1]!, /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}-\d{8}T\d{6}Z-[0-9a-f]{8}\.bin(\.report\.json(\.sig)?|\.log|\.map\.json)?(\.upload\.json)?$/, p);
  }
});

test('a symlink planted as a case directory is not followed', async (t) => {
  const rig = await startRig(t);
  const outside = join(dirname(rig.dir), 'outside');
  mkdirSync(outside);
  mkdirSync(rig.dir, { recursive: true });
  symlinkSync(outside, join(rig.dir, 'CASE-1'));
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  await expectCodeAsync(tt.openEvidence({ host: 'h', source: 's', format: 'raw', layers: [] }), 'E_REMOTE');
  await tt.close();
  assert.deepEqual(readdirSync(outside), []);
});
