import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deflateSync } from 'node:zlib';
import { headerDate, parseHeaderText } from './e01-header-text.js';

test('header and header2 text: categories, line ends, UTF-16 either endian', () => {
  const h2 = '3\nmain\na\tc\tn\te\tt\tmd\tsn\tav\tov\tm\tu\tp\tdc\nd\u00e9sc\tCASE-7\tEV\tExam\tnotes\t\t\t20140813\tLinux\t1795310151\t1795310151\t0\t\n\nsrce\n';
  const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(h2, 'utf16le')]);
  const be = Buffer.from(le);
  be.swap16();
  for (const raw of [le, be]) {
    const h = parseHeaderText(deflateSync(raw), true);
    assert.equal(h.categories, 3);
    assert.equal(h.values.get('a'), 'd\u00e9sc');
    assert.equal(h.values.get('c'), 'CASE-7');
    assert.equal(h.values.get('md'), '');
    assert.equal(headerDate(h.values.get('m')), '2026-11-22T01:15:51Z');
  }
  const h = parseHeaderText(deflateSync(Buffer.from('1\r\nmain\r\nc\tn\ta\te\tt\tav\tov\tm\tu\tp\r\nC\tN\tA\tE\tT\t6\tWin\t2026 11 22 1 5 3\t2026 11 22 1 5 3\t0\r\n\r\n', 'latin1')), false);
  assert.equal(h.crlf, true);
  assert.equal(h.values.get('ov'), 'Win');
  assert.equal(headerDate(h.values.get('m')), '2026-11-22T01:05:03', 'EnCase header dates carry no zone');
  assert.equal(headerDate('0'), null);
  assert.equal(headerDate(''), null);
  assert.throws(() => parseHeaderText(deflateSync(Buffer.from('garbage')), false));
  assert.throws(() => parseHeaderText(Buffer.from('not zlib'), false));
});
