import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import fc from 'fast-check';
import { jwtScanner } from './jwt.js';

function found(text: string): string[] {
  const out: string[] = [];
  jwtScanner.scan(text, (k, s, e) => {
    assert.equal(k, 'jwt');
    out.push(text.slice(s, e));
  });
  return out;
}
const b64u = (x: string | Buffer): string => Buffer.from(x).toString('base64url');

function hs256(payload: object, header: object = { alg: 'HS256', typ: 'JWT' }): string {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  return `${input}.${createHmac('sha256', 'k3y').update(input).digest('base64url')}`;
}

test('HS256, RS256 and ES256 tokens signed with node:crypto are found whole', () => {
  const t1 = hs256({ sub: 'user42', iat: 1700000000 });
  const { privateKey: rsa } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { privateKey: ec } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const mk = (alg: string, key: Parameters<typeof sign>[2], dsa?: 'ieee-p1363'): string => {
    const input = `${b64u(JSON.stringify({ alg, kid: 'k1' }))}.${b64u(JSON.stringify({ iss: 'https://idp', exp: 1800000000 }))}`;
    const sig = dsa ? sign('sha256', Buffer.from(input), { key: key as never, dsaEncoding: dsa }) : sign('sha256', Buffer.from(input), key);
    return `${input}.${sig.toString('base64url')}`;
  };
  const t2 = mk('RS256', rsa);
  const t3 = mk('ES256', ec, 'ieee-p1363');
  for (const t of [t1, t2, t3]) {
    assert.deepEqual(found(`Authorization: Bearer ${t}`), [t]);
    assert.deepEqual(found(`Cookie: session=${t}; Path=/`), [t]);
    assert.deepEqual(found(`"id_token": "${t}"`), [t]);
    assert.deepEqual(found(t), [t]);
    assert.deepEqual(found(`\0${t}\0`), [t]);
  }
  assert.deepEqual(found(`${t1} ${t3}`), [t1, t3]);
});

test('the corpus decoy (header cut before its closing brace) and other malformed tokens give nothing', () => {
  const sig = b64u(Buffer.alloc(32, 7));
  assert.deepEqual(found(`Authorization: Bearer ${b64u('{"alg":"HS256","typ":"JWT"')}.${b64u('{"sub":"x"}')}.${sig}`), []);
  const good = hs256({ sub: 'x' });
  const [h, p] = good.split('.') as [string, string, string];
  assert.deepEqual(found(`${h}.${p}.`), [], 'empty signature');
  assert.deepEqual(found(`${h}.${p}`), [], 'no signature');
  assert.deepEqual(found(`${b64u('{"alg":"none"}')}.${p}.${sig}`), [], 'alg none');
  assert.deepEqual(found(`${b64u('{"typ":"JWT"}')}.${p}.${sig}`), [], 'no alg');
  assert.deepEqual(found(`${b64u('{"alg":5}')}.${p}.${sig}`), [], 'alg not a string');
  assert.deepEqual(found(`${h}.${b64u('not json')}.${sig}`), [], 'payload not JSON');
  assert.deepEqual(found(`${h}.${b64u('[1,2]')}.${sig}`), [], 'payload not an object');
  assert.deepEqual(found(`${good}.${sig}.${sig}`), [], 'five segments: JWE, not JWS');
  assert.deepEqual(found(`x${good}`), [], 'inside a longer base64url word');
  assert.deepEqual(found(`${good}=`), [], 'base64 padding glued on');
  assert.deepEqual(found('eyJhbGciOiJIUzI1NiJ9'), []);
});

test('property: never throws on arbitrary text and every hit is a whole, valid-looking token', () => {
  const good = hs256({ sub: 'x', n: 1 });
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), fc.nat(good.length), fc.string({ maxLength: 3 }), (noise, cut, ins) => {
      const text = noise + good.slice(0, cut) + ins + good.slice(cut) + noise;
      for (const t of found(text)) {
        assert.equal(t.split('.').length, 3);
        assert.ok(t.startsWith('eyJ') && !t.includes('\0'));
      }
    }),
    { numRuns: 2000 },
  );
});
