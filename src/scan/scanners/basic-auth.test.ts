import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { basicAuthScanner } from './basic-auth.js';

function found(text: string): [string, string][] {
  const out: [string, string][] = [];
  basicAuthScanner.scan(text, (k, s, e) => out.push([k, text.slice(s, e)]));
  return out;
}

test('Authorization: Basic in JSON and JS objects', () => {
  const b = Buffer.from('alice:S3cr!t').toString('base64');
  assert.deepEqual(found(`{"Authorization":"Basic ${b}"}`), [['basic-auth', `Authorization":"Basic ${b}`]]);
  assert.deepEqual(found(`headers: {'authorization': 'Basic ${b}'}`), [['basic-auth', `authorization': 'Basic ${b}`]]);
  assert.deepEqual(found(`{"Proxy-Authorization":"Basic ${b}"}`), [['basic-auth', `Authorization":"Basic ${b}`]]);
  assert.deepEqual(found(`{"Authorization":"Basic ${b}x"}`), []);
  assert.deepEqual(found(`{"Authorization":"Basic ${b}'}`), [], 'mismatched quote');
});

test('Authorization: Basic with printable user:pass, case-insensitive header', () => {
  const b = Buffer.from('alice:S3cr!t').toString('base64');
  assert.deepEqual(found(`Authorization: Basic ${b}`), [['basic-auth', `Authorization: Basic ${b}`]]);
  assert.deepEqual(found(`authorization: basic ${b}\r\n`), [['basic-auth', `authorization: basic ${b}`]]);
  assert.deepEqual(found(`Proxy-Authorization: Basic ${b}`), [['basic-auth', `Authorization: Basic ${b}`]]);
  assert.deepEqual(found(`\0AUTHORIZATION:Basic ${b}\0`), [['basic-auth', `AUTHORIZATION:Basic ${b}`]]);
  const nocolon = Buffer.from('alicepassword').toString('base64');
  assert.deepEqual(found(`Authorization: Basic ${nocolon}`), []);
  const binary = Buffer.from([0x61, 0x3a, 0x01, 0xff, 0x10, 0x80]).toString('base64');
  assert.deepEqual(found(`Authorization: Basic ${binary}`), []);
  assert.deepEqual(found(`Authorization: Basic ${b.slice(0, -1)}`), [], 'cut');
  assert.deepEqual(found(`Authorization: Bearer ${b}`), []);
});

test('password assignments are not basic-auth', () => {
  assert.deepEqual(found('password=hunter22 secret: "S3cr!tValue"'), []);
});

test('adversarial inputs stay linear and never overflow: colons, headers and padding by the megabyte', () => {
  const b = Buffer.from('alice:S3cr!t').toString('base64');
  for (const unit of [':', 'n:', 'Authorization:', 'Authorization: Basic ', 'Authorization:' + ' '.repeat(100)]) {
    const big = unit.repeat(Math.ceil((4 << 20) / unit.length));
    assert.equal(found(big).length, 0, unit.slice(0, 30));
  }
  // back to back, each header's closing quote is the next one's opening quote
  const unit = `"Authorization":"Basic ${b}`;
  const n = Math.ceil((4 << 20) / unit.length);
  assert.equal(found(unit.repeat(n) + '"').length, n);
  // one header, then megabytes of spaces or base64: the bounded repeats give up instead of overflowing
  assert.deepEqual(found('Authorization:' + ' '.repeat(9 << 20) + `Basic ${b}`), []);
  assert.deepEqual(found('Authorization: Basic ' + 'QUFB'.repeat(3 << 20)), []);
});

test('property: arbitrary text never throws; every hit is a whole Basic header', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), fc.constantFrom('Authorization: Basic ', '"Authorization":"Basic ', "'authorization': 'basic ", 'Proxy-Authorization:Basic\t', ':'), fc.string({ maxLength: 60 }), (a, k, b) => {
      for (const [kind, f] of found(a + k + b)) {
        assert.equal(kind, 'basic-auth');
        assert.match(f, /^authorization["']?:[ \t]*["']?basic[ \t]+[A-Za-z0-9+/]+=*$/i);
      }
    }),
    { numRuns: 5000 },
  );
});
