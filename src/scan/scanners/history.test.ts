import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { historyScanner } from './history.js';
import { COMMANDS } from '../../../test/fixtures/scan-corpus-kinds.js';

function found(text: string): string[] {
  const out: string[] = [];
  historyScanner.scan(text, (k, s, e) => {
    assert.equal(k, 'bash-history');
    out.push(text.slice(s, e));
  });
  return out;
}

test('bash HISTTIMEFORMAT entries, one per timestamp, "\\n" or "\\r\\n"', () => {
  const h = '#1700000000\nls -la\n#1700000042\ngit status\n';
  assert.deepEqual(found(h), ['#1700000000\nls -la', '#1700000042\ngit status']);
  assert.deepEqual(found('#1700000000\r\nmake -j4\r\n'), ['#1700000000\r\nmake -j4']);
  assert.deepEqual(found('\0#1600000000\ndf -h\0'), ['#1600000000\ndf -h']);
  assert.deepEqual(found('#2208988800\nx'), ['#2208988800\nx'], 'last accepted second');
});

test('bash in memory: "#<epoch>" NUL "<command>" NUL, as a live bash holds its history (review finding)', () => {
  // What the reviewer found in a live bash, as the engine joins runs one NUL byte apart.
  const mem = '#1795340782\0ls -la /tmp\0#1795340782\0for i in 1 2; do echo $i; done\0';
  assert.deepEqual(found(mem), ['#1795340782\0ls -la /tmp', '#1795340782\0for i in 1 2; do echo $i; done']);
  assert.deepEqual(found('\0\0#1700000000\0git status'), ['#1700000000\0git status'], 'at the end of the text');
  assert.deepEqual(found('#1700000000\0\0git status\0'), [], 'a gap of other bytes');
  assert.deepEqual(found('#1700000000\0#1700000001\0git status'), ['#1700000001\0git status'], 'an empty entry is skipped');
  assert.deepEqual(found('x#1700000000\0git status'), []);
  assert.deepEqual(found('#1700000000\0  \0'), []);
  assert.deepEqual(found('#2208988801\0git status'), []);
});

test('zsh extended history lines', () => {
  assert.deepEqual(found(': 1700000000:0;docker ps -a\n: 1700000100:12;cd /srv\n'), [': 1700000000:0;docker ps -a', ': 1700000100:12;cd /srv']);
  assert.deepEqual(found(': 1700000000:0;'), [], 'empty command');
  assert.deepEqual(found('x: 1700000000:0;ls'), [], 'not at a line start');
});

test('timestamps out of range, not at a line start, without a command, and untimed shell lines give nothing', () => {
  assert.deepEqual(found('#2208988801\nls'), []);
  assert.deepEqual(found('#946684800\nls'), [], '9 digits');
  assert.deepEqual(found('#17000000001\nls'), [], '11 digits');
  assert.deepEqual(found('x #1700000000\nls'), []);
  assert.deepEqual(found('#1700000000 ls'), []);
  assert.deepEqual(found('#1700000000\n   \n'), []);
  assert.deepEqual(found('#1700000000\n#1700000001\nls'), ['#1700000001\nls'], 'an empty entry is skipped');
  assert.deepEqual(found('#1700000000\n#42 is a comment'), ['#1700000000\n#42 is a comment'], 'a comment is a command');
  assert.deepEqual(found('#1700000000\0\0ls -la /tmp'), [], 'a gap between runs is never bridged');
  assert.deepEqual(found(COMMANDS.join('\n')), []);
  assert.deepEqual(found('#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)'), []);
  assert.deepEqual(found(`#1700000000\n${'a'.repeat(5000)}`), [], 'not a command line');
});

test('property: any plausible epoch and printable command round-trips exactly', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1_000_000_000, max: 2_208_988_800 }),
      fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,80}$/),
      fc.boolean(),
      (t, cmd, zsh) => {
        const f = zsh ? `: ${t}:0;${cmd}` : `#${t}${t % 2 === 0 ? '\n' : '\0'}${cmd}`;
        assert.deepEqual(found(`ls\n${f}\ncd /\n`), [f]);
      },
    ),
    { numRuns: 2000 },
  );
});

test('a bash entry whose command reads as a zsh line is one entry, not two nested ones', () => {
  const text = '#1700000000\n: 1700000000:0;make -j4';
  const hits: [number, number][] = [];
  historyScanner.scan(text, (_k, a, b) => hits.push([a, b]));
  assert.deepEqual(hits, [[0, text.length]]);
});
