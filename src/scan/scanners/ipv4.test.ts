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
      assert.deepEqual(found(` ${q} `), o.every((x) => x <= 255) ? [q] : []);
    }),
  );
});
