import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { passwordScanner } from './password.js';

function found(text: string): [string, string][] {
  const out: [string, string][] = [];
  passwordScanner.scan(text, (k, s, e) => out.push([k, text.slice(s, e)]));
  return out;
}
const pa = (f: string): [string, string][] => [['password-assignment', f]];

test('the corpus forms and common real-world assignments', () => {
  assert.deepEqual(found('password=Xk9!#q_+'), pa('password=Xk9!#q_+'));
  assert.deepEqual(found('  passwd: hunter22'), pa('passwd: hunter22'));
  assert.deepEqual(found('pwd:s3cr3t-'), pa('pwd:s3cr3t-'));
  assert.deepEqual(found('mysql -u root --password=Tr0ub4dor appdb'), pa('password=Tr0ub4dor'));
  assert.deepEqual(found('DB_PASSWORD=pg-pass-1'), pa('DB_PASSWORD=pg-pass-1'));
  assert.deepEqual(found('export MYSQL_PWD=abcd1234'), pa('MYSQL_PWD=abcd1234'));
  assert.deepEqual(found('userPassword: letmein99'), pa('userPassword: letmein99'));
  assert.deepEqual(found('spring.datasource.password=jdbcpw42'), pa('spring.datasource.password=jdbcpw42'));
  assert.deepEqual(found('client_secret = 0a1b2c3d4e'), pa('client_secret = 0a1b2c3d4e'));
  assert.deepEqual(found('https://h/login?user=bob&pass=qwerty12&next=/'), pa('pass=qwerty12'));
  assert.deepEqual(found('PASSPHRASE="two words"x'), []);
  assert.deepEqual(found("passphrase='abc-def'"), pa("passphrase='abc-def'"));
  assert.deepEqual(found('\0password=abcd\0'), pa('password=abcd'));
  assert.deepEqual(found('password=pass:word1'), pa('password=pass:word1'), 'one assignment, not two');
  assert.deepEqual(found('a password=abcd; pwd=efgh'), [...pa('password=abcd'), ...pa('pwd=efgh')]);
});

test('placeholders, short values, longer words and other keys give nothing', () => {
  for (const v of ['***', '********', '<redacted>', '[FILTERED]', '%s', '${DB_PASS}', '$PASSWORD', '{{ pw }}', 'null', 'xxxx', 'abc', '']) {
    assert.deepEqual(found(`password=${v}`), [], v);
    assert.deepEqual(found(`password: ${v}`), [], v);
  }
  assert.deepEqual(found('bypass=abcdefgh'), []);
  assert.deepEqual(found('compass: northwest'), []);
  assert.deepEqual(found('BYPASS=abcdefgh'), []);
  assert.deepEqual(found('password_hash=abcdefgh'), []);
  assert.deepEqual(found('passes: 12345'), []);
  assert.deepEqual(found('password : abcdefgh'), []);
  assert.deepEqual(found('enter password to continue'), []);
  assert.deepEqual(found('"password": "abcdefgh"'), [], 'JSON form, documented as not reported');
  assert.deepEqual(found(`password=${'a'.repeat(300)}`), [], 'longer than a password');
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

test('property: arbitrary text never throws; every assignment hit has a key, separator and 4+ char value', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), fc.constantFrom('password', 'pwd', 'secret', 'PASS', 'Authorization: Basic '), fc.string({ maxLength: 60 }), (a, k, b) => {
      for (const [kind, f] of found(a + k + b)) {
        if (kind === 'password-assignment') assert.match(f, /^[\w.]*(pass(phrase|word|wd)?|pwd|secret)( = |: |=|:)\S{4,}$/i);
        else assert.match(f, /^authorization:[ \t]*basic[ \t]+[A-Za-z0-9+/]+=*$/i);
      }
    }),
    { numRuns: 5000 },
  );
});
