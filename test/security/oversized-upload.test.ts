import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { TlsTarget } from '../../src/delivery/tls-target.js';
import { expectCodeAsync } from '../helpers/expect-code.js';
import { Prng } from '../helpers/prng.js';
import { goodUpload, listTree, startRig } from './harness.js';

const LIMIT = 1 << 20;

test('an upload over --max-bytes stops at the limit: .partial of exactly the limit, INCOMPLETE record, sender gets E_LIMIT', async (t) => {
  const rig = await startRig(t, { maxBytes: BigInt(LIMIT) });
  const good = goodUpload(rig, LIMIT - 1, 21);
  const tt = await TlsTarget.connect({ host: '127.0.0.1', port: rig.port, pin: rig.pin, token: rig.token });
  const sink = await tt.openEvidence({ host: 'big', source: 's', format: 'raw', layers: [], expectedBytes: 10n });
  const prng = new Prng(4);
  const e = await expectCodeAsync(
    (async () => {
      for (let i = 0; i < 64; i++) await sink.write(prng.bytes(100_000));
      await sink.finish();
    })(),
    'E_LIMIT',
  );
  assert.match(e.message, /limit/);
  await tt.close();
  await good;
  const big = listTree(rig.dir).filter((p) => p.includes('big-'));
  assert.equal(big.length, 2, big.join());
  const partial = big.find((p) => p.endsWith('.raw.partial') || p.endsWith('.partial'))!;
  assert.ok(partial, 'the bytes are kept as .partial');
  assert.equal(statSync(join(rig.dir, partial)).size, LIMIT);
  const rec = JSON.parse(readFileSync(join(rig.dir, partial.replace(/\.partial$/, '') + '.upload.json'), 'utf8')) as { status: string; reason: string; bytes: string };
  assert.equal(rec.status, 'INCOMPLETE');
  assert.equal(rec.bytes, String(LIMIT));
  assert.match(rec.reason, /E_LIMIT/);
});
