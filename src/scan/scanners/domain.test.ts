import { test } from 'node:test';
import assert from 'node:assert/strict';
import { domainScanner } from './domain.js';

function found(text: string): string[] {
  const out: string[] = [];
  domainScanner.scan(text, (k, s, e) => {
    assert.equal(k, 'domain');
    out.push(text.slice(s, e));
  });
  return out;
}

test('the corpus contexts', () => {
  assert.deepEqual(found('Host: www.acme.com'), ['www.acme.com']);
  assert.deepEqual(found('    server_name mail.globex-hooli.co.uk;'), ['mail.globex-hooli.co.uk']);
  assert.deepEqual(found('resolving vpn.stark.io failed, retrying'), ['vpn.stark.io']);
});

test('hosts of e-mail addresses and URLs are reported; local parts are not', () => {
  assert.deepEqual(found('From: <alice.smith@mail.acme.de>'), ['mail.acme.de']);
  assert.deepEqual(found('https://api.hooli.net:8443/x/y?id=1'), ['api.hooli.net']);
});

test('two-label names: hosts yes, file names and noise no', () => {
  for (const d of ['acme.com', 'hooli.de', 'ACME.COM', 'wayne.org', 't.co'.replace('t.co', 'tco.fr')]) assert.deepEqual(found(`x ${d} y`), [d], d);
  for (const f of ['syslog.1', 'app.js', 'run.sh', 'setup.py', 'libc.so', 'main.rs', 'README.md', 'Makefile.in', 'configure.ac', 'Makefile.am', 'make.info', 'backup.zip', 'co.uk', 'Xy.de', 'ab.de', 'Acme.De', '12.de', '7eu.dk', '69s.lb'])
    assert.deepEqual(found(`x ${f} y`), [], f);
  assert.deepEqual(found('get www.example.sh now'), ['www.example.sh'], 'three labels under a file-like TLD');
});

test('versions, IPs, dotted numbers and identifiers give nothing', () => {
  for (const t of ['Linux version 6.1.0-18-amd64 (root@buildhost) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld 2.40)', 'Microsoft Windows [Version 10.0.19045.1234]', '192.168.1.1', 'libssl.so.3', 'python3.11', 'a.b.c', 'x_www.acme.com', 'www.acme.com_x', 'R.3w.GM', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.de_x'])
    assert.deepEqual(found(t), [], t);
});

test('edges: trailing dot, ellipsis, separators, label limits', () => {
  assert.deepEqual(found('see www.acme.com.'), ['www.acme.com']);
  assert.deepEqual(found('see...www.acme.com...'), ['www.acme.com']);
  assert.deepEqual(found('www.acme.com...2024'), ['www.acme.com']);
  assert.deepEqual(found('a.acme.com..b.hooli.de'), ['a.acme.com', 'b.hooli.de']);
  assert.deepEqual(found('\0www.acme.com\0'), ['www.acme.com']);
  assert.deepEqual(found(`${'a'.repeat(63)}.acme.com`), [`${'a'.repeat(63)}.acme.com`]);
  assert.deepEqual(found(`${'a'.repeat(64)}.acme.com`), []);
  assert.deepEqual(found('-www.acme.com-'), ['www.acme.com']);
});

test('real-data review: code expressions, ELF sections and library names are not hosts', () => {
  for (const t of [
    'if (node.name !== name)', 'return this.props.name;', 'e.target.id', 'req.body.email', 'this.logger.info("x")', 'opts2.host = h', 'binding.link)',
    'os.name', 'user.name', 'evolvingArrayType.elementType.id,', 'this.projectService.host', 'String.prototype.at', 'window.top', 'i32.store',
    'HH.mm.ss', 'f64x2.ge', 'i32x4.ne', 'f32x4.lt', 'v128.load.de', '\0.data.rel.ro\0', 'section .gnu.linkonce.td', 'type:.eq.k8s.io/api', 'go.shape.int', 'libtcl8.6.so',
    'libopcodes-2.40-system.so', 'libpython3.11.so', 'T.61.so', 'fonts.conf.in', 'config.h.in', 'Makefile.in.in', 'fontconfig.pc.in',
    'foo.bar.com(', 'user.name=alice',
  ])
    assert.deepEqual(found(t), [], t);
});

test('real-data review: hosts under property-like TLDs, in addresses and URLs, and short or new TLDs are found', () => {
  assert.deepEqual(found('Host: www.acme.info'), ['www.acme.info']);
  assert.deepEqual(found('relay mail.example.name ok'), ['mail.example.name']);
  assert.deepEqual(found('To: bob@state.host'), ['state.host'], 'the host of an address');
  assert.deepEqual(found('GET https://node.id/x'), ['node.id'], 'the host of a URL');
  for (const d of ['google.ai', 't.co', 'example.berlin', 'aka.ms', 'tc39.es', 'www.accv.es']) assert.deepEqual(found(` ${d} `), [d], d);
});

test('real-data review: a DER length byte glued before www is left out', () => {
  assert.deepEqual(found('\f0www.entrust.net'.slice(1)), ['www.entrust.net']);
  assert.deepEqual(found('\x007www.entrust.net/CPS'), ['www.entrust.net']);
});
