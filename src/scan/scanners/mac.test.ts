import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { macScanner } from './mac.js';

function found(text: string): string[] {
  const out: string[] = [];
  macScanner.scan(text, (k, s, e) => {
    assert.equal(k, 'mac');
    out.push(text.slice(s, e));
  });
  return out;
}

test('the corpus contexts, both separators', () => {
  for (const m of ['02:1a:2b:3c:4d:5e', '0A-1B-2C-3D-4E-5F'])
    for (const [pre, post] of [['    link/ether ', ''], ['eth0      Link encap:Ethernet  HWaddr ', ''], ['dhcp lease for ', ' renewed']])
      assert.deepEqual(found(pre + m + post), [m]);
});

test('longer colon-hex runs, IPv6 tails, mixed separators and placeholders give nothing', () => {
  for (const t of ['fe80::aa:bb:cc:dd:ee:ff', '2001:db8:0:aa:bb:cc:dd:ee:ff', '50:01:43:80:12:34:56:78', 'aa:bb:cc:dd:ee', 'aa:bb:cc-dd-ee-ff', 'aa:bb:cc:dd:ee:ff:1', 'aa-bb-cc-dd-ee-ff-x', '00:00:00:00:00:00', 'FF-FF-FF-FF-FF-FF', 'ff:ff:ff:ff:ff:ff', 'xaa:bb:cc:dd:ee:f1', 'aa:bb:cc:dd:ee:f1g', 'a.aa:bb:cc:dd:ee:f1', 'aa:bb:cc:dd:ee:f1.x', 'aaa:bb:cc:dd:ee:f1', '2024-01-02', '12:34:56'])
    assert.deepEqual(found(` ${t} `), [], t);
});

test('edges: separators, text start and end, trailing punctuation', () => {
  assert.deepEqual(found('02:1a:2b:3c:4d:5e'), ['02:1a:2b:3c:4d:5e']);
  assert.deepEqual(found('\x0002:1a:2b:3c:4d:5e\x0002-1a-2b-3c-4d-5f\0'), ['02:1a:2b:3c:4d:5e', '02-1a-2b-3c-4d-5f']);
  assert.deepEqual(found('mac 02:1a:2b:3c:4d:5e.'), ['02:1a:2b:3c:4d:5e']);
  assert.deepEqual(found('mac 02:1a:2b:3c:4d:5e: up'), ['02:1a:2b:3c:4d:5e']);
  assert.deepEqual(found('[02:1a:2b:3c:4d:5e]'), ['02:1a:2b:3c:4d:5e']);
});

test('property: a MAC is found at any offset of any padding that does not continue it', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), fc.constantFrom(':', '-'), fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), (b, sep, l, r) => {
      const m = [...b].map((x) => x.toString(16).padStart(2, '0')).join(sep);
      fc.pre(!/^(00[:-]?)+$|^(ff[:-]?)+$/.test(m.replace(/[:-]/g, '')));
      const hits = found(`${l} ${m} ${r}`);
      assert.ok(hits.includes(m), `${l} ${m} ${r}`);
    }),
    { numRuns: 2000 },
  );
});

test('real-data review: the Cisco dotted form', () => {
  assert.deepEqual(found('  10    001a.2b3c.4d5e    DYNAMIC     Gi1/0/1'), ['001a.2b3c.4d5e']);
  assert.deepEqual(found('02:1a:2b:3c:4d:5e 001A.2B3C.4D5F\0'), ['02:1a:2b:3c:4d:5e', '001A.2B3C.4D5F'], 'in text order');
  assert.deepEqual(found('001a.2b3c.4d5e 02:1a:2b:3c:4d:5e'), ['001a.2b3c.4d5e', '02:1a:2b:3c:4d:5e'], 'in text order');
  for (const t of ['1234.5678.9012', 'dead.beef.cafe', 'ffff.ffff.ffff', '0000.0000.0000', 'x001a.2b3c.4d5e', '001a.2b3c.4d5e.1', '1.001a.2b3c.4d5e', '001a.2b3c.4d5e7', '001a.2b3c.4d5'])
    assert.deepEqual(found(` ${t} `), [], t);
});
