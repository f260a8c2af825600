import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemdumpError } from '../core/errors.js';
import { tempDir } from '../../test/helpers/cli.js';
import { expectCode } from '../../test/helpers/expect-code.js';
import { Prng } from '../../test/helpers/prng.js';
import {
  TAG, bitString, boolean, children, contentOf, decodeInteger, decodeOid, encodeLength, explicit, generalizedTime, ia5String,
  implicit, integer, namedBits, nullValue, octetString, oid, printableString, readTlv, sequence, setOf, tlv, unsignedInteger,
  utcTime, utf8String, x509Time, type Tlv,
} from './der.js';

const h = (b: Buffer): string => b.toString('hex');

test('INTEGER golden encodings: minimal two’s complement', () => {
  const cases: [bigint, string][] = [
    [0n, '020100'],
    [1n, '020101'],
    [127n, '02017f'],
    [128n, '02020080'],
    [255n, '020200ff'],
    [256n, '02020100'],
    [32767n, '02027fff'],
    [32768n, '0203008000'],
    [-1n, '0201ff'],
    [-128n, '020180'],
    [-129n, '0202ff7f'],
    [-256n, '0202ff00'],
    [0x8123456789abcdefn, '0209008123456789abcdef'], // high bit set in a 64-bit value: 9 content octets
    [-0x8000000000000000n, '02088000000000000000'],
  ];
  for (const [v, want] of cases) {
    assert.equal(h(integer(v)), want, `integer(${v})`);
    assert.equal(decodeInteger(integer(v).subarray(2)), v);
  }
});

test('unsigned INTEGER from magnitude bytes: high bit gets a 00, leading zeros go', () => {
  assert.equal(h(unsignedInteger(Buffer.from('ff', 'hex'))), '020200ff');
  assert.equal(h(unsignedInteger(Buffer.from('80000000000000000000000000000001', 'hex'))), '021100' + '80000000000000000000000000000001');
  assert.equal(h(unsignedInteger(Buffer.from('00007f', 'hex'))), '02017f');
  assert.equal(h(unsignedInteger(Buffer.from('000080', 'hex'))), '02020080');
  assert.equal(h(unsignedInteger(Buffer.from('0000', 'hex'))), '020100');
  assert.equal(h(unsignedInteger(Buffer.alloc(0))), '020100');
});

test('lengths: short form to 127, then 81/82/83 long forms', () => {
  assert.equal(h(encodeLength(0)), '00');
  assert.equal(h(encodeLength(127)), '7f');
  assert.equal(h(encodeLength(128)), '8180');
  assert.equal(h(encodeLength(255)), '81ff');
  assert.equal(h(encodeLength(256)), '820100');
  assert.equal(h(encodeLength(65535)), '82ffff');
  assert.equal(h(encodeLength(65536)), '83010000');
  assert.equal(h(encodeLength(16777216)), '8401000000');
  const big = octetString(Buffer.alloc(70000, 0xaa));
  assert.equal(h(big.subarray(0, 5)), '0483011170');
  assert.equal(big.length, 70005);
  const t = readTlv(big, 0);
  assert.deepEqual([t.contentStart, t.end], [5, 70005]);
  assert.equal(h(octetString(Buffer.alloc(128)).subarray(0, 3)), '048180');
});

test('OBJECT IDENTIFIER golden encodings', () => {
  const cases: [string, string][] = [
    ['1.2.840.10045.2.1', '06072a8648ce3d0201'], // id-ecPublicKey
    ['1.2.840.10045.3.1.7', '06082a8648ce3d030107'], // prime256v1
    ['1.2.840.10045.4.3.2', '06082a8648ce3d040302'], // ecdsa-with-SHA256
    ['2.5.29.19', '0603551d13'],
    ['2.5.4.11', '060355040b'],
    ['1.3.6.1.5.5.7.3.1', '06082b06010505070301'],
    ['2.999.3', '0603883703'], // X.690 8.19.5 example: the first subidentifier 1079 needs two octets
    ['0.0', '060100'],
    ['1.3.6.1.4.1.311.21.20', '06092b0601040182371514'],
  ];
  for (const [s, want] of cases) {
    assert.equal(h(oid(s)), want, s);
    assert.equal(decodeOid(oid(s).subarray(2)), s);
  }
  for (const badOid of ['1', '3.1', '1.40', '0.40', '1.2.', '1..2', '1.02', '-1.2', 'a.b']) expectCode(() => oid(badOid), 'E_USAGE');
});

test('BIT STRING, named bits (KeyUsage), BOOLEAN, NULL, strings', () => {
  assert.equal(h(namedBits([0])), '03020780'); // digitalSignature
  assert.equal(h(namedBits([5, 6])), '03020106'); // keyCertSign + cRLSign
  assert.equal(h(namedBits([0, 8])), '0303078080'); // decipherOnly crosses into a second octet
  assert.equal(h(namedBits([])), '030100');
  assert.equal(h(bitString(Buffer.from('0a3b', 'hex'))), '0303000a3b');
  expectCode(() => bitString(Buffer.alloc(0), 3), 'E_USAGE');
  assert.equal(h(boolean(true)), '0101ff');
  assert.equal(h(boolean(false)), '010100');
  assert.equal(h(nullValue()), '0500');
  assert.equal(h(utf8String('Ærø')), '0c05c38672c3b8');
  assert.equal(h(printableString('Case 7')), '1306436173652037');
  expectCode(() => printableString('a_b'), 'E_USAGE');
  assert.equal(h(ia5String('a.b')), '1603612e62');
  expectCode(() => ia5String('é'), 'E_USAGE');
  expectCode(() => utf8String('x\ud800'), 'E_USAGE');
});

test('times: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)', () => {
  const d = new Date(Date.UTC(2026, 10, 22, 3, 44, 55, 999));
  assert.equal(utcTime(d).toString('latin1', 2), '261122034455Z');
  assert.equal(h(utcTime(d).subarray(0, 2)), '170d');
  assert.equal(x509Time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))).toString('latin1'), '\x17\x0d491231235959Z');
  assert.equal(x509Time(new Date(Date.UTC(2050, 0, 1))).toString('latin1'), '\x18\x0f20500101000000Z');
  assert.equal(x509Time(new Date(Date.UTC(1950, 0, 1))).toString('latin1'), '\x17\x0d500101000000Z');
  assert.equal(generalizedTime(new Date(Date.UTC(1949, 11, 31))).toString('latin1', 2), '19491231000000Z');
  expectCode(() => utcTime(new Date(Date.UTC(2050, 0, 1))), 'E_USAGE');
  expectCode(() => x509Time(new Date(NaN)), 'E_USAGE');
});

test('SET OF is sorted by encoding; context tags; SEQUENCE nesting', () => {
  assert.equal(h(setOf(integer(2n), integer(1n), octetString(Buffer.from([0])))), '3109' + '020101' + '020102' + '040100');
  assert.equal(h(setOf(integer(1n), integer(2n))), h(setOf(integer(2n), integer(1n))));
  assert.equal(h(explicit(0, integer(2n))), 'a003020102');
  assert.equal(h(implicit(2, Buffer.from('ab', 'latin1'))), '82026162');
  assert.equal(h(implicit(0, Buffer.from([1]), true)), 'a00101');
  assert.equal(h(sequence()), '3000');
  assert.equal(h(sequence(sequence(nullValue()))), '3004' + '3002' + '0500');
  expectCode(() => tlv(0x1f, Buffer.alloc(0)), 'E_USAGE');
  expectCode(() => explicit(31, Buffer.alloc(0)), 'E_USAGE');
});

test('reader refuses non-DER and out-of-bounds headers with coded errors', () => {
  const cases: [string, string][] = [
    ['', 'E_TRUNCATED'],
    ['30', 'E_TRUNCATED'],
    ['3080', 'E_CORRUPT'], // indefinite length is BER, not DER
    ['30817f' + '00'.repeat(127), 'E_CORRUPT'], // long form for a short length
    ['3082007f' + '00'.repeat(127), 'E_CORRUPT'], // leading zero length octet
    ['3085' + '0000000001', 'E_CORRUPT'], // five length octets
    ['3084ffffffff', 'E_CORRUPT'], // 4 GiB claimed: refused before slicing
    ['3005020101', 'E_TRUNCATED'],
    ['3f00', 'E_CORRUPT'], // high-tag-number form
  ];
  for (const [hexIn, code] of cases) {
    const buf = Buffer.from(hexIn, 'hex');
    const walk = (): void => {
      const t = readTlv(buf, 0);
      if (t.tag & 0x20) children(buf, t);
    };
    expectCode(walk, code);
  }
  expectCode(() => decodeInteger(Buffer.from('007f', 'hex')), 'E_CORRUPT');
  expectCode(() => decodeInteger(Buffer.from('ff80', 'hex')), 'E_CORRUPT');
  expectCode(() => decodeInteger(Buffer.alloc(0)), 'E_CORRUPT');
  expectCode(() => decodeOid(Buffer.from('2a81', 'hex')), 'E_TRUNCATED');
  expectCode(() => decodeOid(Buffer.from('2a8001', 'hex')), 'E_CORRUPT');
  expectCode(() => decodeOid(Buffer.alloc(200, 1)), 'E_CORRUPT');
});

// ---- random trees: encode → read back, and mutated encodings fail only with coded errors

type Node = { k: 'int'; v: bigint } | { k: 'oid'; v: string } | { k: 'oct'; v: Uint8Array } | { k: 'seq'; v: Node[] } | { k: 'ctx'; n: number; v: Node };

const oidArb = fc
  .tuple(fc.constantFrom('0', '1', '2'), fc.nat({ max: 39 }), fc.array(fc.bigInt({ min: 0n, max: (1n << 70n) - 1n }), { maxLength: 6 }))
  .map(([a, b, rest]) => [a, a === '2' ? String(b * 1000) : String(b), ...rest.map(String)].join('.'));

const { node: nodeArb } = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.bigInt({ min: -(1n << 200n), max: 1n << 200n }).map((v): Node => ({ k: 'int', v })),
    oidArb.map((v): Node => ({ k: 'oid', v })),
    fc.uint8Array({ maxLength: 300 }).map((v): Node => ({ k: 'oct', v })),
    fc.array(tie('node'), { maxLength: 5 }).map((v): Node => ({ k: 'seq', v })),
    fc.tuple(fc.nat({ max: 30 }), tie('node')).map(([n, v]): Node => ({ k: 'ctx', n, v })),
  ),
}));

function enc(n: Node): Buffer {
  switch (n.k) {
    case 'int': return integer(n.v);
    case 'oid': return oid(n.v);
    case 'oct': return octetString(Buffer.from(n.v));
    case 'seq': return sequence(...n.v.map(enc));
    case 'ctx': return explicit(n.n, enc(n.v));
  }
}

function dec(buf: Buffer, t: Tlv, depth = 0): Node {
  if (depth > 64) throw new Error('too deep');
  const c = contentOf(buf, t);
  if (t.tag === TAG.INTEGER) return { k: 'int', v: decodeInteger(c) };
  if (t.tag === TAG.OID) return { k: 'oid', v: decodeOid(c) };
  if (t.tag === TAG.OCTET_STRING) return { k: 'oct', v: new Uint8Array(c) };
  if (t.tag === TAG.SEQUENCE) return { k: 'seq', v: children(buf, t).map((x) => dec(buf, x, depth + 1)) };
  if ((t.tag & 0xe0) === 0xa0) {
    const kids = children(buf, t);
    if (kids.length !== 1) throw new MemdumpError('E_CORRUPT', 'explicit tag with other than one element');
    return { k: 'ctx', n: t.tag & 0x1f, v: dec(buf, kids[0]!, depth + 1) };
  }
  throw new MemdumpError('E_CORRUPT', 'unknown tag');
}

test('property: every encoded tree reads back identically', () => {
  fc.assert(
    fc.property(nodeArb, (n) => {
      const b = enc(n);
      const t = readTlv(b, 0);
      assert.equal(t.end, b.length);
      assert.deepEqual(dec(b, t), n);
    }),
    { numRuns: 400, seed: 0x5eed },
  );
});

test('property: mutated encodings are read or refused with E_CORRUPT/E_TRUNCATED, nothing else', () => {
  fc.assert(
    fc.property(nodeArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), (n, edits, cut) => {
      const b = Buffer.from(enc(n));
      for (const [pos, x] of edits) b[pos % b.length] = (b[pos % b.length] ?? 0) ^ x;
      const m = b.subarray(0, b.length - (cut % 3));
      try {
        dec(m, readTlv(m, 0));
      } catch (e) {
        assert.ok(e instanceof MemdumpError, `uncoded ${String(e)}`);
        assert.ok(['E_CORRUPT', 'E_TRUNCATED'].includes(e.code), e.code);
      }
    }),
    { numRuns: 1000, seed: 0xbad },
  );
});

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

test('oracle: openssl asn1parse reads our INTEGERs and OIDs as we meant them', { skip: hasOpenssl ? false : 'openssl not installed' }, (t) => {
  const rng = new Prng(20261122);
  const ints: bigint[] = [0n, 127n, 128n, 256n, -1n, -128n, -129n, 65535n, 65536n];
  for (let i = 0; i < 150; i++) {
    const width = BigInt(1 + rng.int(160));
    const v = BigInt('0x' + rng.bytes(24).toString('hex')) & ((1n << width) - 1n);
    ints.push(rng.int(2) ? v : -v);
  }
  // Under 2.999 and an unregistered enterprise arc, so openssl prints numbers rather than names it knows.
  const oids: string[] = ['2.999.3'];
  for (let i = 0; i < 150; i++) {
    const arcs = Array.from({ length: 1 + rng.int(5) }, () => (rng.next64() >> BigInt(rng.int(64))).toString());
    oids.push((rng.int(2) ? '2.999.' : '1.3.6.1.4.1.4294967295.') + arcs.join('.'));
  }
  const der = sequence(...ints.map(integer), ...oids.map(oid));
  assert.equal(der[1], 0x82, 'the outer SEQUENCE needs a two-octet long-form length');
  const dir = tempDir(t, 'memdump-der-');
  const path = join(dir, 'x.der');
  writeFileSync(path, der);
  const r = spawnSync('openssl', ['asn1parse', '-inform', 'DER', '-in', path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const values = r.stdout.trim().split('\n').slice(1).map((l) => l.slice(l.lastIndexOf(':') + 1));
  const hexOf = (v: bigint): string => {
    const m = (v < 0n ? -v : v).toString(16).toUpperCase();
    return (v < 0n ? '-' : '') + (m.length % 2 ? '0' + m : m);
  };
  assert.deepEqual(values, [...ints.map(hexOf), ...oids]);
});
