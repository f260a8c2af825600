import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ccnScanner, classifyCard, issuerValid, KNOWN_TEST_CARDS } from './ccn.js';
import { luhnValid, TEST_CARDS } from '../../../test/fixtures/scan-corpus-kinds.js';

function found(text: string): [string, string][] {
  const out: [string, string][] = [];
  ccnScanner.scan(text, (k, s, e) => out.push([k, text.slice(s, e)]));
  return out;
}

/** Complete a prefix to a Luhn-valid number of `len` digits (the corpus's own luhnValid is the oracle). */
function complete(prefix: string, len: number, fill: string): string {
  const body = (prefix + fill.repeat(len)).slice(0, len - 1);
  for (let c = 0; c < 10; c++) if (luhnValid(body + c)) return body + c;
  throw new Error('unreachable');
}
function group(n: string, sizes: number[], sep: string): string {
  const out: string[] = [];
  let i = 0;
  for (const s of sizes) out.push(n.slice(i, (i += s)));
  return out.join(sep);
}

test('every listed test number is a valid card, and the corpus test numbers are reported as ccn-test', () => {
  for (const n of KNOWN_TEST_CARDS) assert.equal(classifyCard(n), 'ccn-test', n);
  for (const n of TEST_CARDS) assert.deepEqual(found(`card=${n};`), [['ccn-test', n]]);
  assert.deepEqual(found('Card number: 4111-1111-1111-1111'), [['ccn-test', '4111-1111-1111-1111']]);
  assert.deepEqual(found('pan 3782 822463 10005'), [['ccn-test', '3782 822463 10005']]);
});

test('issuer ranges and layouts', () => {
  const cases: [string, number, number[]][] = [
    ['4', 16, [4, 4, 4, 4]],
    ['4', 13, [4, 4, 5]],
    ['4', 19, [4, 4, 4, 4, 3]],
    ['53', 16, [4, 4, 4, 4]],
    ['2720', 16, [4, 4, 4, 4]],
    ['34', 15, [4, 6, 5]],
    ['37', 15, [4, 6, 5]],
    ['6011', 16, [4, 4, 4, 4]],
    ['645', 16, [4, 4, 4, 4]],
    ['65', 19, [4, 4, 4, 4, 3]],
    ['3530', 16, [4, 4, 4, 4]],
    ['36', 14, [4, 6, 4]],
    ['302', 14, [4, 6, 4]],
    ['62', 16, [4, 4, 4, 4]],
    ['6304', 16, [4, 4, 4, 4]],
  ];
  for (const [prefix, len, sizes] of cases) {
    const n = complete(prefix, len, '738');
    assert.ok(issuerValid(n), n);
    assert.deepEqual(found(`x ${n} y`), [['ccn', n]], n);
    for (const sep of [' ', '-']) {
      const g = group(n, sizes, sep);
      assert.deepEqual(found(`card: ${g}\n`), [['ccn', g]], g);
    }
  }
});

test('wrong issuer, wrong length, Luhn failure, repeated digits and touching characters give nothing', () => {
  for (const p of ['0', '1', '9', '7', '8', '50', '56', '2100', '2721', '33', '31']) {
    const n = complete(p, 16, '4291');
    assert.deepEqual(found(`order ${n} shipped`), [], n);
  }
  assert.deepEqual(found('5'.repeat(16)), []);
  assert.deepEqual(found('0000000000000000'), []);
  const visa = complete('4', 16, '8301');
  const bad = visa.slice(0, 15) + String((Number(visa[15]) + 3) % 10);
  assert.deepEqual(found(`card=${bad};exp=01/30`), []);
  assert.deepEqual(found(complete('4', 15, '8301')), [], 'Visa has no 15-digit numbers');
  assert.deepEqual(found(complete('34', 16, '8301')), [], 'Amex is 15 digits');
  // digits or letters glued on, as in hex digests and identifiers
  assert.deepEqual(found(`a${visa}`), []);
  assert.deepEqual(found(`${visa}f`), []);
  assert.deepEqual(found(`7${visa}`), []);
  assert.deepEqual(found(`12-${visa}`), []);
  // grouped: mixed separators, double separators, an extra group, a foreign layout
  const g = group(visa, [4, 4, 4, 4], ' ');
  assert.deepEqual(found(group(visa, [4, 4, 4, 4], ' ').replace(/ /, '-')), []);
  assert.deepEqual(found(group(visa, [4, 4, 4, 4], '  ')), []);
  assert.deepEqual(found(`99-${group(visa, [4, 4, 4, 4], '-')}`), []);
  assert.deepEqual(found(group(visa, [4, 2, 2, 4, 4], ' ')), []);
  assert.deepEqual(found(group(visa, [4, 4, 4, 4], '.')), []);
  // but prose numbers around a plain number and an expiry after a grouped one are fine
  assert.deepEqual(found(`order 12 ${visa} 12/29`), [['ccn', visa]]);
  assert.deepEqual(found(`${g}, exp 12/29`), [['ccn', g]]);
});

test('a grouped card next to other numbers (receipts, order lines) is still found', () => {
  const g = '4556 7375 8689 9855';
  assert.ok(classifyCard(g.replaceAll(' ', '')) === 'ccn');
  assert.deepEqual(found(`${g} 12/27`), [['ccn', g]]);
  assert.deepEqual(found(`${g} 123`), [['ccn', g]], 'the CVV looks like a fifth group');
  assert.deepEqual(found(`order 12 ${g}`), [['ccn', g]]);
  assert.deepEqual(found(`paid 2024 ${g} ok`), [['ccn', g]]);
  assert.deepEqual(found(`${g} 2024`), [['ccn', g]]);
  assert.deepEqual(found(`Card: ${g} 12 27 123`), [['ccn', g]]);
  const visa19 = complete('4', 19, '5171');
  const g19 = group(visa19, [4, 4, 4, 4, 3], ' ');
  assert.deepEqual(found(`${g19} 1227`), [['ccn', g19]], 'the longest layout wins');
  // A dash chain is one number, and a chain with no valid card in it gives nothing.
  assert.deepEqual(found(`12-${g.replaceAll(' ', '-')}`), []);
  assert.deepEqual(found('1234 5678 9012 3456 7890 1234'), []);
});

test('at text start, end and next to the run separator', () => {
  const n = complete('51', 16, '62');
  for (const t of [n, `\0${n}\0`, `abc\0${n}`, `${n}\0abc`]) assert.deepEqual(found(t), [['ccn', n]]);
});

test('property: Luhn agrees with the corpus oracle, and generated cards in any printed form are found exactly', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9]{13,19}$/), (d) => {
      const k = classifyCard(d);
      if (k !== undefined) assert.ok(luhnValid(d) && issuerValid(d));
      else if (issuerValid(d) && luhnValid(d)) assert.ok(/^(\d)\1+$/.test(d));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(
      fc.constantFrom<[string, number, number[]]>(['4', 16, [4, 4, 4, 4]], ['55', 16, [4, 4, 4, 4]], ['2221', 16, [4, 4, 4, 4]], ['37', 15, [4, 6, 5]], ['6011', 16, [4, 4, 4, 4]]),
      fc.stringMatching(/^[0-9]{20}$/),
      fc.constantFrom('', ' ', '-'),
      fc.constantFrom(['card=', ';exp=12/29'], ['"pan": "', '",'], ['Card number: ', '\n']),
      ([prefix, len, sizes], fill, sep, [pre, post]) => {
        const n = complete(prefix, len, fill);
        if (/^(\d)\1+$/.test(n)) return;
        const f = sep === '' ? n : group(n, sizes, sep);
        const kind = KNOWN_TEST_CARDS.has(n) ? 'ccn-test' : 'ccn';
        assert.deepEqual(found(`${pre}${f}${post}`), [[kind, f]]);
      },
    ),
    { numRuns: 1000 },
  );
});
