import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Prng } from '../../test/helpers/prng.js';
import { unifiedDiff } from './diff.js';

function randomText(r: Prng, base: string[] | undefined): string[] {
  if (!base) return Array.from({ length: r.int(30) }, () => `line ${r.int(8)}`);
  const out: string[] = [];
  for (const l of base) {
    const k = r.int(6);
    if (k === 0) continue; // delete
    if (k === 1) out.push(`new ${r.int(1000)}`); // insert before
    out.push(k === 2 ? `changed ${r.int(1000)}` : l);
  }
  if (r.int(3) === 0) out.push('tail');
  return out;
}

test('GNU patch turns the old text into the new one with our diff (200 seeded pairs)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'memdump-diff-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = new Prng(8);
  for (let i = 0; i < 200; i++) {
    const a = randomText(r, undefined);
    const b = randomText(r, a);
    const oldText = a.length ? a.join('\n') + (r.int(4) ? '\n' : '') : '';
    const newText = b.length ? b.join('\n') + (r.int(4) ? '\n' : '') : '';
    const d = unifiedDiff('a/f', 'b/f', oldText, newText);
    if (oldText === newText) {
      assert.equal(d, '');
      continue;
    }
    const f = join(dir, 'f');
    writeFileSync(f, oldText);
    writeFileSync(join(dir, 'p'), d);
    const p = spawnSync('patch', ['-s', '--no-backup-if-mismatch', '-F0', f, join(dir, 'p')], { encoding: 'utf8' });
    assert.equal(p.status, 0, `case ${i}: ${p.stdout}${p.stderr}\n${d}`);
    assert.equal(readFileSync(f, 'utf8'), newText, `case ${i}`);
  }
});

test('a new file is one all-added hunk', () => {
  assert.equal(unifiedDiff('/dev/null', 'x', '', 'a\nb\n'), '--- /dev/null\n+++ x\n@@ -0,0 +1,2 @@\n+a\n+b\n');
});
