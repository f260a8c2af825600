import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emailScanner } from './email.js';

function found(text: string): string[] {
  const out: string[] = [];
  emailScanner.scan(text, (k, s, e) => {
    assert.equal(k, 'email');
    out.push(text.slice(s, e));
  });
  return out;
}

test('addresses in headers, config and prose', () => {
  assert.deepEqual(found('From: Alice Example <alice.smith12@mail.acme.co.uk>'), ['alice.smith12@mail.acme.co.uk']);
  assert.deepEqual(found('user_email = bob.jones@hooli.io'), ['bob.jones@hooli.io']);
  assert.deepEqual(found('please contact carol.rossi7@globex-hooli.de for access'), ['carol.rossi7@globex-hooli.de']);
  assert.deepEqual(found('odd+tag_%x-y@EXAMPLE.COM'), ['odd+tag_%x-y@EXAMPLE.COM']);
  assert.deepEqual(found('a@b.com,c@d.org'), ['a@b.com', 'c@d.org']);
});

test('dots at either end are punctuation', () => {
  assert.deepEqual(found('mail me at dave@acme.com.'), ['dave@acme.com']);
  assert.deepEqual(found('...erin@acme.net...'), ['erin@acme.net']);
  assert.deepEqual(found('x.@acme.com'), [], 'local part ending in a dot');
});

test('corpus decoys and hosts without a real TLD are not addresses', () => {
  for (const d of ['alice@localhost', 'bob@intranet', 'carol@buildhost', 'root@buildhost) (gcc', 'a@b.c', 'a@acme.corp', 'a@acme.123', 'a@acme.Com', 'a@-acme.com', '@acme.com', 'user@'])
    assert.deepEqual(found(`mail from ${d} rejected`), [], d);
});

test('glued to identifiers or other addresses', () => {
  assert.deepEqual(found('x@acme.com_backup'), []);
  assert.deepEqual(found('x@acme.com@y'), []);
  assert.deepEqual(found(`${'a'.repeat(65)}@acme.com`), [], 'local part over 64');
  assert.deepEqual(found(`${'a'.repeat(64)}@acme.com`), [`${'a'.repeat(64)}@acme.com`]);
});

test('the run separator ends an address', () => {
  assert.deepEqual(found('abc\0frank@acme.com\0def'), ['frank@acme.com']);
  assert.deepEqual(found('frank\0@acme.com'), []);
});

test('short or mixed-case two-label country-code domains (random-byte noise) are not addresses', () => {
  assert.deepEqual(found(' X@v.ve '), []);
  assert.deepEqual(found(' E@Kr.gg '), []);
  assert.deepEqual(found(' e@kr.gg. '), ['e@kr.gg']);
  assert.deepEqual(found(' John.Doe@Example.com '), ['John.Doe@Example.com']);
});

test('real-data review: mixed-case domains and TLDs outside the list', () => {
  for (const a of ['Klaus@Ethgen.de', 'Info@Firma.de', 'larry@L2G.to', 'John.Ericson@Obsidian.Systems', 'x@mengyan1223.wang', 'y@git.icu', 'z@tycho.pizza', 'k@shop.berlin'])
    assert.deepEqual(found(`<${a}>`), [a], a);
  for (const t of ['en@quot.header', 'en@boldquot.header', 'sr@latin.insert', 'E@Kr.gg', '5s@XNn.re', 'a@acme.Com', 'root@host.localdomain', 'u@acme.internal', 'a@b.CORP'])
    assert.deepEqual(found(` ${t} `), [], t);
});
