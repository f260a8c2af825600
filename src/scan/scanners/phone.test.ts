import { test } from 'node:test';
import assert from 'node:assert/strict';
import { phoneScanner } from './phone.js';

function found(text: string): string[] {
  const out: string[] = [];
  phoneScanner.scan(text, (k, s, e) => {
    assert.equal(k, 'phone');
    out.push(text.slice(s, e));
  });
  return out;
}

test('the corpus forms and contexts', () => {
  for (const p of ['+14155552671', '+447911123456', '+49301234567', '+33612345678'])
    for (const [pre, post] of [['Tel: ', ''], ['"phone": "', '",'], ['sms sent to ', ' ok']]) assert.deepEqual(found(pre + p + post), [p]);
});

test('country codes: assigned 1-, 2- and 3-digit codes only', () => {
  for (const p of ['+79161234567', '+201001234567', '+3905512345', '+2250712345678', '+35312345678', '+8613812345678', '+97150123456', '+998901234567'])
    assert.deepEqual(found(` ${p} `), [p], p);
  for (const p of ['+28123456789', '+42212345678', '+69912345678', '+80123456789', '+99912345678', '+0123456789'])
    assert.deepEqual(found(` ${p} `), [], p);
});

test('lengths and the North American plan', () => {
  assert.deepEqual(found(' +4930123 '), [], '7 digits');
  assert.deepEqual(found(' +49301234 '), [], 'only 6 after the country code');
  assert.deepEqual(found(' +493012345 '), ['+493012345'], '7 after the country code');
  assert.deepEqual(found(' +71234567 '), [], '8 digits but +7 needs ten after the code');
  assert.deepEqual(found(' +493012345678901 '), ['+493012345678901'], '15 digits');
  assert.deepEqual(found(' +4930123456789012 '), [], '16 digits');
  assert.deepEqual(found(' +1415555267 '), [], 'NANP needs ten digits');
  assert.deepEqual(found(' +11155552671 '), [], 'area code starting with 1');
  assert.deepEqual(found(' +14151552671 '), [], 'exchange starting with 1');
});

test('glued to words, expressions or amounts gives nothing', () => {
  for (const t of ['a+4930123456', '1+4930123456', '++4930123456', '+4930123456x', '+4930123456_', '+4930123456.78', 'x=+ 4930123456'])
    assert.deepEqual(found(t), [], t);
  assert.deepEqual(found('=+4930123456;'), ['+4930123456']);
  assert.deepEqual(found('+4930123456.'), ['+4930123456']);
  assert.deepEqual(found('\0+4930123456\0'), ['+4930123456']);
});

test('real-data review: Debian version tails are not numbers', () => {
  assert.deepEqual(found('llvm 1:10~+20191229111838+6991d-1'), []);
  assert.deepEqual(found(' +4930123456+1 '), []);
  assert.deepEqual(found(' ~+4930123456 '), []);
});
