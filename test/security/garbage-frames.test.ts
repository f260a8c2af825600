import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MAGIC, T, encodeFrame } from '../../src/receiver/frame.js';
import { Prng } from '../helpers/prng.js';
import { goodUpload, listTree, rawTls, refusalIn, startRig, untilClosed, type Rig } from './harness.js';

function header(type: number, len: number): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeUInt32BE(len, 1);
  return h;
}

async function attack(rig: Rig, bytes: Buffer): Promise<{ code: string } | undefined> {
  const s = await rawTls(rig.port);
  const closed = untilClosed(s);
  s.write(bytes);
  return refusalIn(await closed);
}

test('garbage before authentication: dropped, nothing written, a good sender meanwhile completes', async (t) => {
  const rig = await startRig(t);
  const good = goodUpload(rig, 4 << 20, 31);
  const prng = new Prng(99);
  const cases: [Buffer, string | undefined][] = [
    [prng.bytes(64 << 10), undefined], // not even the preamble: closed without a frame the peer could parse
    [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), undefined],
    [Buffer.concat([MAGIC, header(0x7f, 4), Buffer.alloc(4)]), 'E_PROTOCOL'],
    [Buffer.concat([MAGIC, header(T.HELLO, 0xffffffff)]), 'E_PROTOCOL'],
    [Buffer.concat([MAGIC, header(T.HELLO, 5), Buffer.from('{{{{{')]), 'E_PROTOCOL'],
    [Buffer.concat([MAGIC, encodeFrame(T.HELLO, { v: 99 })]), 'E_PROTOCOL'],
  ];
  for (const [bytes, code] of cases) {
    const r = await attack(rig, bytes);
    if (code) assert.equal(r?.code, code);
  }
  await good;
  assert.deepEqual(listTree(rig.dir).filter((p) => !p.includes('good-host')), ['CASE-1']);
  assert.equal(rig.rcv.activeSessions, 0);
});

test('garbage after authentication, mid-file: E_PROTOCOL, the bytes so far kept as .partial with an INCOMPLETE record', async (t) => {
  const rig = await startRig(t);
  const hello = Buffer.concat([MAGIC, encodeFrame(T.HELLO, { v: 1, token: rig.token })]);
  const open = encodeFrame(T.OPEN, { role: 'evidence', meta: { host: 'junk', format: 'raw', layers: [] } });
  const data = encodeFrame(T.DATA, Buffer.alloc(1000, 0x41));
  const tails = [
    header(0x99, 0),
    header(T.DATA, (1 << 20) + 1),
    Buffer.concat([header(T.END, 3), Buffer.from('abc')]),
    encodeFrame(T.END, { bytes: '-5', sha256: 'x' }),
    encodeFrame(T.OPEN, { role: 'evidence' }),
    encodeFrame(T.HELLO, { v: 1, token: rig.token }),
    encodeFrame(T.OPEN, { role: '../../x' }),
  ];
  const good = goodUpload(rig, 4 << 20, 32);
  for (const tail of tails) {
    const r = await attack(rig, Buffer.concat([hello, open, data, tail]));
    assert.equal(r?.code, 'E_PROTOCOL');
  }
  await good;
  const junk = listTree(rig.dir).filter((p) => p.includes('junk-'));
  assert.equal(junk.filter((p) => p.endsWith('.partial')).length, tails.length);
  assert.equal(junk.filter((p) => p.endsWith('.upload.json')).length, tails.length);
  assert.equal(junk.length, tails.length * 2, 'no published evidence from a broken stream');
  for (const p of junk.filter((x) => x.endsWith('.upload.json'))) {
    const rec = JSON.parse(readFileSync(join(rig.dir, p), 'utf8')) as { status: string; bytes: string; reason: string };
    assert.equal(rec.status, 'INCOMPLETE');
    assert.equal(rec.bytes, '1000');
    assert.match(rec.reason, /E_PROTOCOL/);
  }
});

test('side files before the evidence, and a side role twice, are protocol errors', async (t) => {
  const rig = await startRig(t);
  const hello = Buffer.concat([MAGIC, encodeFrame(T.HELLO, { v: 1, token: rig.token })]);
  assert.equal((await attack(rig, Buffer.concat([hello, encodeFrame(T.OPEN, { role: 'report' })])))?.code, 'E_PROTOCOL');
  assert.deepEqual(listTree(rig.dir), []);
});
