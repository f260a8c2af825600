/**
 * Hostile input for every registered scanner: long runs of the characters each one anchors on or loops over. A
 * scanner must not throw (irregexp backtracking overflowing the stack) and must stay linear (no rewalking the same
 * bytes per anchor). The cost is judged against the same scanner on ordinary corpus filler of the same size in the
 * same run, so a slow machine does not fail it and a quadratic scanner cannot pass it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SCANNERS as REGISTERED } from './index.js';
import { basicAuthScanner } from './basic-auth.js';
import type { Scanner } from '../types.js';
import { Rng } from '../../../test/fixtures/scan-corpus-rng.js';
import { textBlock } from '../../../test/fixtures/scan-corpus-text.js';

// basic-auth left the password scanner; cover it whether or not the registry lists it yet.
const SCANNERS: readonly Scanner[] = REGISTERED.some((s) => s.name === 'basic-auth') ? REGISTERED : [...REGISTERED, basicAuthScanner];
const SIZE = 4 * 1024 * 1024;
const RATIO = 50;
const FLOOR_MS = 400;

function repeatTo(unit: string, size: number): string {
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const UNITS: readonly [string, string][] = [
  ['@', '@'],
  ['a@', 'a@'],
  ['digits', '7'],
  ['1.1.1.1.', '1.1.1.1.'],
  [':', ':'],
  ['a:', 'a:'],
  ['ff:', 'ff:'],
  ['-', '-'],
  ['-----BEGIN ', '-----BEGIN '],
  ['eyJ', 'eyJ'],
  ['AKIA', 'AKIA'],
  ['ssh-rsa AAAA', 'ssh-rsa AAAA'],
  ['#1700000000\\n', '#1700000000\n'],
  ['#1700000000\\0', '#1700000000\0'],
  ['password=', 'password='],
  ['Authorization: Basic ', 'Authorization: Basic '],
  ['base64 alphabet', B64],
  ['Linux version ', 'Linux version '],
  ['+1', '+1'],
  ['http://', 'http://'],
  ['http://a.com/ + 4070 )', 'http://a.com/' + ')'.repeat(4070) + ' '],
  ['a.b@example.com\\n', 'a.b@example.com\n'],
  ['4111 1111 1111 1111 ', '4111 1111 1111 1111 '],
  ['x run', 'x'],
  ['x\\0 alternating', 'x\0'],
  ['\\0', '\0'],
  // beyond the review's list: what other loops and regexes anchor on
  ['ab.com.', 'ab.com.'],
  ['uname line', 'Linux h 1.1 #1 '.repeat(30) + 'GNU/Linux\n'],
  ['Darwin + digits', 'Darwin Kernel Version ' + '7'.repeat(4000)],
  ['password=**…*a', 'password=' + '*'.repeat(14) + 'a\n'],
  ['pwd=', 'pwd='],
  ['::ffff:', '::ffff:'],
  ['</password>', 'a</password>'],
  ['PEM without END', '-----BEGIN CERTIFICATE-----\n' + ('QUFB'.repeat(16) + '\n').repeat(300)],
  ['escaped PEM lines', '-----BEGIN PRIVATE KEY-----\\n' + 'QUFB'.repeat(16) + '\\n'],
  ['long JWT segments', 'eyJ' + 'a'.repeat(2047) + '.' + 'b'.repeat(8191) + '.' + 'c'.repeat(4095) + '.'],
  ['long ssh blob', 'ssh-ed25519 AAAA' + 'B'.repeat(9000) + '\n'],
  ['AccountKey=', 'AccountKey=' + 'QUFB'.repeat(22)],
  ['Basic + long base64', 'Authorization: Basic ' + 'QUFB'.repeat(300) + '\n'],
  ['escaped JSON password', '{\\"password\\":\\"' + 'a'.repeat(300)],
];

function cpuMs(scanner: Scanner, text: string): { ms: number; hits: number } {
  let hits = 0;
  const t0 = process.cpuUsage();
  scanner.scan(text, () => {
    hits++;
  });
  const d = process.cpuUsage(t0);
  return { ms: (d.user + d.system) / 1000, hits };
}

function filler(): string {
  return textBlock(new Rng(7, 'pathological'), SIZE, []).text.slice(0, SIZE);
}

test('every scanner stays linear and never throws on hostile repetitions', () => {
  const base = filler();
  const rows: string[] = [];
  const failures: string[] = [];
  for (const scanner of SCANNERS) {
    // warm up the JIT so the reference cost is not inflated by compilation
    cpuMs(scanner, base.slice(0, 256 * 1024));
    // median of three: a single short reference run is the noisiest number in the ratio
    const refs = [0, 1, 2].map(() => cpuMs(scanner, base).ms).sort((a, b) => a - b);
    const ref = Math.max(refs[1] ?? 0, 1);
    for (const [label, unit] of UNITS) {
      const text = repeatTo(unit, SIZE);
      let r: { ms: number; hits: number };
      try {
        cpuMs(scanner, text.slice(0, 64 * 1024)); // compile this input's paths first, as for the filler
        r = cpuMs(scanner, text);
      } catch (err) {
        failures.push(`${scanner.name} on ${label}: threw ${String(err)}`);
        continue;
      }
      const ratio = r.ms / ref;
      rows.push(`${scanner.name.padEnd(9)} ${label.padEnd(24)} ${r.ms.toFixed(0).padStart(6)} ms  ${ratio.toFixed(1).padStart(6)}x filler (${ref.toFixed(0)} ms)  ${r.hits} hits`);
      if (ratio > RATIO && r.ms > FLOOR_MS) failures.push(`${scanner.name} on ${label}: ${r.ms.toFixed(0)} ms = ${ratio.toFixed(1)}x its filler cost`);
    }
  }
  console.log(rows.join('\n'));
  assert.deepEqual(failures, []);
});

test('a value of stars does not backtrack exponentially in the password scanner', () => {
  const password = SCANNERS.find((s) => s.name === 'password');
  assert.ok(password);
  // Each extra star doubled the cost of a nested-repeat regex; 22 stars against 6 made it ~65000 times dearer.
  const lines = (stars: number): string => ('password=' + '*'.repeat(stars) + 'a\n').repeat(100);
  cpuMs(password, lines(6));
  const short = Math.max(cpuMs(password, lines(6)).ms, 1);
  const long = cpuMs(password, lines(22)).ms;
  assert.ok(long / short <= RATIO || long <= FLOOR_MS, `22 stars: ${long.toFixed(0)} ms, 6 stars: ${short.toFixed(0)} ms`);
});

test('a 16 MiB digit run does not overflow the stack of the number scanners', () => {
  const text = '7'.repeat(16 * 1024 * 1024);
  for (const scanner of SCANNERS.filter((s) => ['ccn', 'phone', 'ipv4'].includes(s.name))) {
    assert.doesNotThrow(() => scanner.scan(text, () => {}), scanner.name);
  }
  // digits around a real card in the same huge run must not hide the card either
  const ccn = SCANNERS.find((s) => s.name === 'ccn');
  assert.ok(ccn);
  const t2 = '7'.repeat(1 << 20) + ' 4556737586899855 ' + '7'.repeat(1 << 20);
  const got: string[] = [];
  ccn.scan(t2, (_k, s, e) => got.push(t2.slice(s, e)));
  assert.deepEqual(got, ['4556737586899855']);
});
