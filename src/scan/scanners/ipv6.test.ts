import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { ipv6Scanner } from './ipv6.js';

function found(text: string): string[] {
  const out: string[] = [];
  ipv6Scanner.scan(text, (k, s, e) => {
    assert.equal(k, 'ipv6');
    out.push(text.slice(s, e));
  });
  return out;
}

test('the corpus forms and contexts', () => {
  for (const a of ['2001:db8:1a2b:0:3c4d::5e', 'fe80::1:22:333:4444', '2a01:4f8:0:1:2:3:4:ffff', 'FE80::ABCD:1:2:3'])
    for (const [pre, post] of [['    inet6 ', '/64 scope global dynamic'], ['connect to [', ']:443 failed'], ['AAAA ', '']])
      assert.deepEqual(found(pre + a + post), [a], pre + a);
});

test('compressed, loopback, IPv4-mapped, zone ids and sentence ends', () => {
  assert.deepEqual(found('::1 is loopback'), ['::1']);
  assert.deepEqual(found('fe80::1%eth0'), ['fe80::1']);
  assert.deepEqual(found('::ffff:192.0.2.1 mapped'), ['::ffff:192.0.2.1']);
  assert.deepEqual(found('via 2001:db8::.'), ['2001:db8::']);
  assert.deepEqual(found('gw 2001:db8::1:'), ['2001:db8::1']);
});

test('times, MACs, PCI ids, C++ scopes and short compressed noise give nothing', () => {
  for (const t of ['12:34:56', 'Jan 02 12:34:56 web01', 'aa:bb:cc:dd:ee:ff', 'e1000e 0000:00:19: eth0', 'std::cout', 'Base::Derived', '::', 'a::b', 'ab::', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::1', 'g2001:db8::1', '2001:db8::1x', '50:01:43:80:12:34:56:78', 'deadbeef', 'cafe:babe'])
    assert.deepEqual(found(` ${t} `), [], t);
});

test('property: any address node formats (full or compressed) is found whole', () => {
  fc.assert(
    fc.property(fc.ipV6(), (a) => {
      fc.pre(isIPv6(a));
      const hits = found(` ${a} `);
      // The shape rules drop only "::" and compressed forms with one or two very short groups.
      // and decimal groups before a trailing "::" ("0:0:0::", what "10:20:30::" and passwd's "1000:1000::" look like).
      const groups = a.split(':').filter((g) => g !== '');
      if (hits.length === 0) assert.ok(a.includes('::') && (groups.length <= 2 || (a.endsWith('::') && groups.every((g) => /^[0-9]+$/.test(g)))), a);
      else assert.deepEqual(hits, [a]);
    }),
    { numRuns: 2000 },
  );
});

test('real-data review: passwd fields and decimal triples are not addresses', () => {
  for (const t of ['messagebus:x:100:102::/nonexistent:/usr/sbin/nologin', 'user:x:1000:1000::/home/user:/bin/bash', 'sys:x:101:104::/x', 'time 10:20:30::'])
    assert.deepEqual(found(t), [], t);
});

test('real-data review: short prefixes and the bracketed any-address are found', () => {
  assert.deepEqual(found('route fe80::/64 dev eth0'), ['fe80::']);
  assert.deepEqual(found('ULA fc00::/7,'), ['fc00::']);
  assert.deepEqual(found('global 2000::/3'), ['2000::']);
  assert.deepEqual(found('listen [::]:80;'), ['::']);
  assert.deepEqual(found('2001:db8::/32'), ['2001:db8::']);
  assert.deepEqual(found('fe80::/64x'), [], 'not a prefix length');
  assert.deepEqual(found('fe80:: alone'), []);
});
