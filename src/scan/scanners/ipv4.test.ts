import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ipv4Scanner } from './ipv4.js';

function found(text: string): string[] {
  const out: string[] = [];
  ipv4Scanner.scan(text, (k, s, e) => {
    assert.equal(k, 'ipv4');
    out.push(text.slice(s, e));
  });
  return out;
}

test('the corpus contexts', () => {
  assert.deepEqual(found('sshd[4242]: Accepted publickey for deploy from 203.0.113.7 port 50022 ssh2'), ['203.0.113.7']);
  assert.deepEqual(found('listen 10.20.30.40:8080;'), ['10.20.30.40']);
  assert.deepEqual(found('client_addr=1.2.3.254 status=200'), ['1.2.3.254']);
});

test('decoys, longer dotted numbers and leading zeros give nothing', () => {
  for (const t of ['999.1.2.3', '256.0.0.1', '1.256.3.4', '10.0.19045.1234', 'Microsoft Windows [Version 10.0.19045.1234]', '1.2.3.4.5', '0.1.2.3.4', '1.2.3', '01.2.3.4', '1.2.3.04', '1.2.3.4a', 'v1.2.3.4', '1.2.3.4_x', '12.2.0-14', ].slice(0))
    assert.deepEqual(found(`client_addr=${t} status=400`), [], t);
});

test('punctuation around an address', () => {
  assert.deepEqual(found('from 1.2.3.4.'), ['1.2.3.4']);
  assert.deepEqual(found('(1.2.3.4), [5.6.7.8]'), ['1.2.3.4', '5.6.7.8']);
  assert.deepEqual(found('...1.2.3.4...'), ['1.2.3.4']);
  assert.deepEqual(found('1.2.3.4\x005.6.7.8'), ['1.2.3.4', '5.6.7.8']);
  assert.deepEqual(found('0.0.0.0/0'), ['0.0.0.0']);
});

test('property: every valid quad is found exactly, every out-of-range octet rejects it', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 999 }), { minLength: 4, maxLength: 4 }), (o) => {
      const q = o.join('.');
      // Not the ranges rejected on purpose: 0.x.y.z other than 0.0.0.0, and the OID arcs.
      fc.pre((o[0] !== 0 || q === '0.0.0.0') && !/^(2\.5\.4|2\.5\.29|1\.3\.101|1\.3\.14|1\.2\.840|2\.16\.840)\.|^1\.3\.6\.1$/.test(q));
      assert.deepEqual(found(` ${q} `), o.every((x) => x <= 255) ? [q] : []);
    }),
    { numRuns: 3000 },
  );
});

test('real-data review: versions, OIDs and dotted names around a quad give nothing', () => {
  for (const t of [
    'alsa-ucm-conf (1.2.7.2-1) unstable', 'libpng.so.2.1.0.9', 'rev.1.178.2.223', '\x0011.3.244.8-node.38\0', '1.0.0.0.in-addr.arpa',
    'X25519:1.3.101.110\0', '\x001.3.101.112\0', 'OID 2.5.4.3 commonName', '2.5.29.17', '1.2.840.10045', 'dpkg (1.4.0.30) unstable; urgency=low',
    'binutils (2.10.0.9-2) unstable; urgency=low', 'Git 1.6.6.1\n', 'GIT 1.5.4.4', 'Standards version 2.4.1.0 (no changes)', 'RelNotes 1.5.6.5 updates',
    'For kernels(>=2.4.9.11 [1]', 'rfc7540#section-8.1.2.5', 'Section 21.4.2.1', 'pkg 1.2.3.4~rc1', 'pkg 1.2.3.4+dfsg', 'upgrading from\n    0.93.42.3 or earlier', 'x 0.0.0.1 y',
  ])
    assert.deepEqual(found(t), [], t);
});

test('real-data review: addresses next to the same punctuation are still found', () => {
  assert.deepEqual(found("address = '0.0.0.0';"), ['0.0.0.0']);
  assert.deepEqual(found('host (10.0.0.1) is down'), ['10.0.0.1']);
  assert.deepEqual(found('range 10.0.0.1-10.0.0.9'), ['10.0.0.1', '10.0.0.9']);
  assert.deepEqual(found('127.0.0.1:9229'), ['127.0.0.1']);
  assert.deepEqual(found('"http://169.254.169.254";'), ['169.254.169.254']);
  assert.deepEqual(found('connect to 8.8.8.8 failed'), ['8.8.8.8']);
});

test('real-data review: release notes, RFC sections and comment headings give nothing', () => {
  for (const t of ['      Update release notes to 1.7.5.2\n', '      Prepare for 1.7.6.6\n', '  * Bumped Standards-Version to 3.9.8.0.\n', "'HTTP/2 (RFC7540 8.1.2.4)',", '  // 8.1.5.1 Event handlers', '    // 10.2.4.1 ThrowTypeError\n'])
    assert.deepEqual(found(t), [], t);
  assert.deepEqual(found('release notes\n10.1.2.3 gateway'), ['10.1.2.3'], 'the context is the same line only');
  assert.deepEqual(found('# 10.0.0.1 gw'), ['10.0.0.1']);
});
