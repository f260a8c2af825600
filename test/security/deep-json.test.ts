import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { MAGIC, T, dataHeader, encodeFrame } from '../../src/receiver/frame.js';
import { renderUploadRecord, type UploadRecord } from '../../src/receiver/record.js';
import { listTree, rawTls, refusalIn, startRig, untilClosed } from './harness.js';

/**
 * Review finding 3: a 7000-level `sender` object passed the frame checks, the file was published, and then the
 * recursive escaping of the record overflowed the stack: COMPLETE with no .upload.json.
 */
function raw(type: number, text: string): Buffer {
  const body = Buffer.from(text);
  const h = Buffer.from([type, 0, 0, 0, 0]);
  h.writeUInt32BE(body.length, 1);
  return Buffer.concat([h, body]);
}

test('deeply nested HELLO.sender or OPEN.meta is refused (E_PROTOCOL) before any file exists', async (t) => {
  const rig = await startRig(t);
  const data = Buffer.alloc(1000, 9);
  const sha = createHash('sha256').update(data).digest('hex');
  const deep = '['.repeat(7000) + ']'.repeat(7000);
  const tail = [dataHeader(data.length), data, encodeFrame(T.END, { bytes: '1000', sha256: sha })];
  const attempts = [
    [raw(T.HELLO, `{"v":1,"token":"${rig.token}","sender":{"x":${deep}}}`), encodeFrame(T.OPEN, { role: 'evidence', meta: { host: 'deep', format: 'raw' } }), ...tail],
    [encodeFrame(T.HELLO, { v: 1, token: rig.token }), raw(T.OPEN, `{"role":"evidence","meta":{"host":"deep","format":"raw","x":${deep}}}`), ...tail],
  ];
  for (const frames of attempts) {
    const s = await rawTls(rig.port);
    const closed = untilClosed(s);
    s.write(Buffer.concat([MAGIC, ...frames]));
    const r = refusalIn(await closed);
    assert.equal(r?.code, 'E_PROTOCOL', JSON.stringify(r));
    assert.match(r.message, /nested deeper/);
  }
  assert.ok(!listTree(rig.dir).some((p) => p.includes('deep-')), listTree(rig.dir).join(' '));
  assert.equal(rig.records.length, 0);
});

test('the upload record is still written when the sender part cannot be serialised', () => {
  let deep: unknown = 1;
  for (let i = 0; i < 200_000; i++) deep = [deep];
  const rec: UploadRecord = {
    schema: 'memdump.upload/1',
    status: 'COMPLETE',
    reason: null,
    role: 'evidence',
    case: 'C',
    name: 'n.raw',
    path: 'C/n.raw',
    bytes: '1',
    receiverSha256: 'a'.repeat(64),
    senderSha256: 'a'.repeat(64),
    senderBytes: '1',
    peer: { address: '127.0.0.1', port: 1 },
    auth: { kind: 'token', tokenId: '0123456789abcdef' },
    sender: { hello: { x: deep }, meta: {} },
    started: '2026-01-01T00:00:00.000Z',
    ended: '2026-01-01T00:00:01.000Z',
  };
  const out = JSON.parse(renderUploadRecord(rec)) as UploadRecord;
  assert.equal(out.status, 'COMPLETE');
  assert.equal(out.receiverSha256, rec.receiverSha256);
  assert.match(String(out.sender['omitted']), /too deeply nested/);
  const plain = JSON.parse(renderUploadRecord({ ...rec, sender: { hello: { host: 'a\u001bb' }, meta: {} } })) as UploadRecord;
  assert.deepEqual(plain.sender, { hello: { host: 'a\\x1bb' }, meta: {} });
});
