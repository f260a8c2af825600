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
  // Real assignments met in /usr/share/doc and /usr/lib/python3 that must stay found.
  assert.deepEqual(found("conn = connect(password='hunter2')"), pa("password='hunter2'"));
  assert.deepEqual(found('  password: sekrit'), pa('password: sekrit'));
  assert.deepEqual(found('password: "MySekretPa$$word"'), pa('password: "MySekretPa$$word"'));
  assert.deepEqual(found("ftp.login(user, passwd='geheim$parole')"), pa("passwd='geheim$parole'"));
  assert.deepEqual(found('[client]\npassword = Tr0ub4dor&3'), pa('password = Tr0ub4dor'));
  // '%' and '*' are password characters; only whole-value templates and masks are skipped (a corpus value).
  assert.deepEqual(found('password: #b%sNz4i'), pa('password: #b%sNz4i'));
  assert.deepEqual(found('pwd=ab***cd9'), pa('pwd=ab***cd9'));
  assert.deepEqual(found('pwd=AB_CD12X'), pa('pwd=AB_CD12X'), 'an unquoted CONSTANT_CASE value is a value');
  assert.deepEqual(found('pwd=kGXOZLJqSZt'), pa('pwd=kGXOZLJqSZt'), 'a corpus value, not a kConstant');
  assert.deepEqual(found('passwd=BOAbAfPWDFCG6q'), pa('passwd=BOAbAfPWDFCG6q'), 'holds the letters PWD, not the word');
  assert.deepEqual(found('  password=Oms42bpWDW'), pa('password=Oms42bpWDW'));
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
  assert.deepEqual(found(`password=${'a'.repeat(300)}`), [], 'longer than a password');
});

test('real-world forms found by the review: JSON, env names with an upper-case prefix, =>, XML', () => {
  assert.deepEqual(found('{"password":"hunter22"}'), pa('"password":"hunter22"'));
  assert.deepEqual(found('{"user":"bob","password": "hunter22","x":1}'), pa('"password": "hunter22"'));
  assert.deepEqual(found("{'db_password': 's3cr3t!x'}"), pa("'db_password': 's3cr3t!x'"));
  assert.deepEqual(found('"password" : "hunter22"'), pa('"password" : "hunter22"'));
  assert.deepEqual(found('PGPASSWORD=hunter22 psql -h db'), pa('PGPASSWORD=hunter22'));
  assert.deepEqual(found('export MYSQLPASSWORD=Tr0ub4dor'), pa('MYSQLPASSWORD=Tr0ub4dor'));
  assert.deepEqual(found("  'password' => 'x9y8z7w6',"), pa("'password' => 'x9y8z7w6'"));
  assert.deepEqual(found('  password => "x9y8z7w6",'), pa('password => "x9y8z7w6"'));
  assert.deepEqual(found('<password>hunter22</password>'), pa('<password>hunter22</password>'));
  assert.deepEqual(found('<db.password>hunter22</db.password>'), pa('<db.password>hunter22</db.password>'));
  assert.deepEqual(found('<password></password><compass>north</compass>'), []);
  assert.deepEqual(found('{"password":"********"}'), []);
  assert.deepEqual(found('{"password":123456}'), [], 'JSON form requires a quoted value');
  // JSON inside a JS string, as found in a node heap: JSON.parse("{\"user\":\"bob\",\"password\":\"hunter22x\"}")
  const esc = JSON.stringify(JSON.stringify({ user: 'bob', password: 'hunter22x' }));
  assert.deepEqual(found(`JSON.parse(${esc})`), pa('\\"password\\":\\"hunter22x\\"'));
  assert.deepEqual(found('{\\"password\\": \\"hunter22x\\"}'), pa('\\"password\\": \\"hunter22x\\"'));
  assert.deepEqual(found('{\\"password\\":\\"hu\\\\nter\\"}'), [], 'an escape inside the value');
  assert.deepEqual(found('{\\"password\\":\\"****\\"}'), []);
});

test('real-world junk found by the review gives nothing', () => {
  for (const t of [
    'PWD=/tmp/r7acc',
    'OLDPWD=/home/user',
    'PWD=`pwd`}',
    'cd $dir; pwd=/var/tmp',
    'const password = request.password;',
    '  password: z.string(),',
    'password = getArrayBufferOrView(password, "password")',
    'ECDH.prototype.computeSecret = function computeSecret(key, inEnc, outEnc) {',
    'if (password==confirm) {',
    '  * Secret: Added support for the keyring backend',
    'GonePWD=PATHPWD=/',
    'secret = this.secret',
    'PASS: config.sub',
    'this.secret = toUint8Array(secret)',
    'this.secret = secret',
    'this.secret = key.byteLength',
    'secret = DEFAULT_SECRET',
    'this.nativeSecret = secret',
    'clientSecret: ssoToken.clientSecret',
    'ENV_SECRET = "AWS_SECRET_ACCESS_KEY"',
    'pass: process',
    '  password: kEnumerableProperty,',
    "'anyPass': 'overSome'",
    // Python and HTML sources (/usr/lib/python3, /usr/share/doc)
    'def login(self, password: typing.Optional[bytes] = None):',
    '    password: bool',
    'def f(user, password=None):',
    '        self.password = credentials',
    '    password = content[:sep]',
    '    password = login',
    "    user_pass = '%s:%s' % (user, password)",
    "secret='{base64.b64encode(self.secret).decode()}'",
    'f"password={password!r}"',
    'password = <span class="s">',
    'Password: <strong>****</strong>',
    'password = ":****"',
    'deploy ALL=(root) NOPASSWD: /bin/systemctl',
    'passphrase: :py:data:`bytes`',
    'AttributeOID.CHALLENGE_PASSWORD: "challengePassword",',
    'consumer_secret="consumer.secret"',
    "'allPass': 'overEvery',",
    'getPassword: function',
    'setPassword=abcdefgh',
  ]) assert.deepEqual(found(t), [], t);
  // The AWS secret stays context of the access key (the corpus truth): no key here ends in a password word.
  assert.deepEqual(found('aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'), []);
});

test('adversarial inputs stay linear: unmatched closing tags, separators and quotes by the megabyte', () => {
  // Each must give nothing; a scan quadratic in these inputs would take hours on 4 MiB, not the ~0.1 s it takes.
  for (const unit of ['</password>', '"password":', 'password= ', 'a'.repeat(300) + '</secret>', 'PASSWORD= ', "'pwd' => "]) {
    const big = unit.repeat(Math.ceil((4 << 20) / unit.length));
    assert.equal(found(big).length, 0, unit.slice(0, 20));
  }
});

test('HTTP Basic credentials are left to the basic-auth scanner', () => {
  const b = Buffer.from('alice:S3cr!t').toString('base64');
  assert.deepEqual(found(`Authorization: Basic ${b}`), []);
  assert.deepEqual(found(`{"Authorization":"Basic ${b}"}`), []);
});

test('property: arbitrary text never throws; every assignment hit has a key, separator and 4+ char value', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), fc.constantFrom('password', 'pwd', 'secret', 'PASS', 'Authorization: Basic ', '"password":"', '"Authorization":"Basic ', '<password>', '</password>', ' => \'', '\\"password\\":\\"'), fc.string({ maxLength: 60 }), (a, k, b) => {
      for (const [kind, f] of found(a + k + b)) {
        assert.equal(kind, 'password-assignment');
        assert.match(f, /^(?:[\w.]*(pass(phrase|word|wd)?|pwd|secret)( = |: |=|:)\S{4,}|(["'])[\w.]*(pass(phrase|word|wd)?|pwd|secret)\4 ?(?::|=>) ?(["'])[^\s]{4,}\7|[\w.]*(pass(phrase|word|wd)?|pwd|secret) ?=> ?(["'])[^\s]{4,}\10|<([\w.-]+)>[^\s<>]{4,}<\/\11>|\\"[\w.]*(pass(phrase|word|wd)?|pwd|secret)\\" ?: ?\\"[^\s\\]{4,}\\")$/i);
      }
    }),
    { numRuns: 5000 },
  );
});
