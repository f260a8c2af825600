import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { bannerScanner } from './banner.js';

function found(text: string): string[] {
  const out: string[] = [];
  bannerScanner.scan(text, (k, s, e) => {
    assert.equal(k, 'version-banner');
    out.push(text.slice(s, e));
  });
  return out;
}

test('this machine\'s /proc/version is a banner, also behind a dmesg timestamp', { skip: !existsSync('/proc/version') }, () => {
  const v = readFileSync('/proc/version', 'latin1').replace(/\n$/, '');
  assert.deepEqual(found(v + '\n'), [v]);
  assert.deepEqual(found(`[    0.000000] ${v}\n[    0.000000] Command line: ro quiet`), [v]);
});

test('Linux, Windows and Darwin banners; a banner ends at a line end, \\0 or the cap', () => {
  const linux = 'Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)';
  assert.deepEqual(found(`${linux}\r\nnext`), [linux]);
  assert.deepEqual(found(`\0${linux}\0rest`), [linux]);
  const win = 'Microsoft Windows [Version 10.0.19045.3803]';
  assert.deepEqual(found(`${win}\r\n(c) Microsoft Corporation. All rights reserved.`), [win]);
  assert.deepEqual(found(`C:\\>ver\n\n${win}`), [win]);
  assert.deepEqual(found('Microsoft Windows [Version 6.1.7601]'), ['Microsoft Windows [Version 6.1.7601]']);
  const darwin = 'Darwin Kernel Version 23.4.0: Fri Mar 15 00:10:42 PDT 2024; root:xnu-10063.101.17~1/RELEASE_ARM64_T6000';
  assert.deepEqual(found(`${darwin}\n`), [darwin]);
  const long = `Linux version 6.1.0 (${'x'.repeat(1000)})`;
  assert.deepEqual(found(long), [long.slice(0, 512)]);
  assert.deepEqual(found(`${win} and ${linux}`), [win, `${linux}`]);
});

test('uname -a lines and localized Windows banners (review findings)', () => {
  const uname = 'Linux vm 6.18.44-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.18.44-1 (2026-01-10) x86_64 GNU/Linux';
  assert.deepEqual(found(`$ uname -a\n${uname}\n$ `), [uname]);
  assert.deepEqual(found(`\0${uname}\0`), [uname]);
  assert.deepEqual(found(`${uname}\r\n`), [uname]);
  for (const w of ['versión', 'version', 'Versão', 'Versione', 'Версия', 'Wersja']) {
    const b = `Microsoft Windows [${w} 10.0.19045.3803]`;
    assert.deepEqual(found(`${b}\r\n(c) Microsoft Corporation.`), [b], w);
  }
  assert.deepEqual(found('Linux is a kernel, not GNU/Linux'), []);
  assert.deepEqual(found('Linux vm 6.1 GNU/Linux'), [], 'no build number');
  assert.deepEqual(found('Linux vm 6.1.0 #1 SMP GNU/Linuxes'), []);
  assert.deepEqual(found('Microsoft Windows [version 10]'), []);
  assert.deepEqual(found('Microsoft Windows [two words 10.0.19045]'), []);
});

test('this machine\'s uname -a is a banner', () => {
  let u = '';
  try {
    u = execFileSync('uname', ['-a']).toString('latin1').replace(/\n$/, '');
  } catch {
    return;
  }
  if (!u.endsWith(' GNU/Linux')) return;
  assert.deepEqual(found(`${u}\n`), [u]);
});

test('prose and malformed versions give nothing', () => {
  assert.deepEqual(found('Linux version control systems are many'), []);
  assert.deepEqual(found('Linux version 6 (root)'), []);
  assert.deepEqual(found('Linux version 6.1.0-18-amd64'), [], 'no builder: not the banner');
  assert.deepEqual(found('Microsoft Windows [Version 10.0]'), []);
  assert.deepEqual(found('Microsoft Windows [Version 10.0.19045.3803'), []);
  assert.deepEqual(found('Darwin Kernel Version 23'), []);
});

test('property: arbitrary text never throws; hits start at a banner literal and hold no line end', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), fc.constantFrom('Linux version 6.1', 'Microsoft Windows [Version 10.0.1', 'Darwin Kernel Version 2'), fc.string({ maxLength: 80 }), (a, lit, b) => {
      for (const f of found(a + lit + b)) {
        assert.match(f, /^(Linux version|Microsoft Windows \[Version|Darwin Kernel Version) /);
        assert.ok(!/[\r\n\0]/.test(f) && f.length <= 512);
      }
    }),
    { numRuns: 3000 },
  );
});
