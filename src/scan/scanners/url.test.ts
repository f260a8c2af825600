import { test } from 'node:test';
import assert from 'node:assert/strict';
import { urlScanner } from './url.js';

function found(text: string): string[] {
  const out: string[] = [];
  urlScanner.scan(text, (k, s, e) => {
    assert.equal(k, 'url');
    out.push(text.slice(s, e));
  });
  return out;
}

test('the corpus contexts', () => {
  const u = 'https://www.acme.com:8443/abc/x1?id=42&lang=en';
  assert.deepEqual(found(`Referer: ${u}`), [u]);
  assert.deepEqual(found(`<a href="${u}">login</a>`), [u]);
  assert.deepEqual(found(`curl -s ${u} -o out`), [u]);
  assert.deepEqual(found(`<a href='${u}'>`), [u]);
});

test('schemes, hosts, ports, user-info', () => {
  for (const u of ['http://api.hooli.co.uk/v1/x', 'ftp://files.acme.org/pub/', 'ftps://x.acme.de', 'ws://10.0.0.1:8080/socket', 'wss://[2001:db8::1]:443/live', 'HTTPS://WWW.ACME.COM/', 'http://localhost:3000/x', 'https://user:pw@git.acme.io/r.git', 'http://intranet.corp/wiki#top'])
    assert.deepEqual(found(`see ${u} now`), [u], u);
});

test('trailing punctuation and unbalanced brackets stay outside', () => {
  assert.deepEqual(found('go to https://acme.com/a/b.'), ['https://acme.com/a/b']);
  assert.deepEqual(found('(see https://acme.com/wiki/X_(y)), then'), ['https://acme.com/wiki/X_(y)']);
  assert.deepEqual(found('(https://acme.com/a)'), ['https://acme.com/a']);
  assert.deepEqual(found('"https://acme.com/a?q=1",'), ['https://acme.com/a?q=1']);
  assert.deepEqual(found('at http://acme.com: it works'), ['http://acme.com']);
  assert.deepEqual(found('http://acme.com:99999/x'), ['http://acme.com']);
  assert.deepEqual(found('http://acme.com:123456/x'), ['http://acme.com']);
  assert.deepEqual(found('http://acme.com:0/x'), ['http://acme.com']);
  assert.deepEqual(found('http://acme.com:65535/x'), ['http://acme.com:65535/x']);
});

test('invalid hosts and glued schemes give nothing', () => {
  for (const t of ['http://buildhost/x', 'http://999.1.2.3/', 'http://[zz::1]/', 'http:///x', 'gopher://acme.com/', 'xhttp://acme.com/', 'git+https://acme.com/r', 'http://acme.c0m/', 'http://-a.com/', 'http://'])
    assert.deepEqual(found(t), [], t);
});

test('the run separator ends a URL', () => {
  assert.deepEqual(found('\0https://acme.com/a\0b'), ['https://acme.com/a']);
  assert.deepEqual(found('https://acme.com/a\0https://b.acme.com/'), ['https://acme.com/a', 'https://b.acme.com/']);
});

test('real-data review: DER bytes glued on by certificates are cut at the string length', () => {
  const a = 'http://crl.securetrust.com/STCA.crl';
  assert.deepEqual(found(`\0${String.fromCharCode(a.length)}${a}0\0\x01`), [a]);
  const b = 'http://www.accv.es/legislacion_c.htm';
  assert.deepEqual(found(`\0${String.fromCharCode(b.length)}${b}0U\0`), [b]);
  const c = 'https://wwww.certigna.fr/autorites/';
  assert.deepEqual(found(`${String.fromCharCode(c.length)}${c}0m`), [c], 'at the start of the text');
  const d = `http://crl.acme.com/${'x'.repeat(47)}`; // length 67: the length byte is the letter 'C'
  assert.deepEqual(found(`\0C${d}0\x01`), [d]);
  assert.deepEqual(found(`\0C${d}zz`), [], 'a glued letter that is not a matching length');
  assert.deepEqual(found(`\0#${a}/more`), [`${a}/more`], 'no DER element after the length: the URL is not cut');
});

test('real-data review: URI templates keep their braces', () => {
  const u = 'https://api.github.com/repos/{owner}/{repo}/issues';
  assert.deepEqual(found(`GET ${u} HTTP/1.1`), [u]);
  assert.deepEqual(found('{"u":"https://acme.com/a"}'), ['https://acme.com/a']);
  assert.deepEqual(found('{see https://acme.com/a}'), ['https://acme.com/a']);
});

test('real-data review: a host with an underscore', () => {
  assert.deepEqual(found('GET http://my_svc.acme.com/x ok'), ['http://my_svc.acme.com/x']);
  assert.deepEqual(found('http://acme.c_m/'), [], 'not in the TLD');
});
