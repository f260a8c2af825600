/**
 * Line diff for the dry run. Config files are small, so a plain LCS table is enough; beyond MAX_CELLS the whole
 * old text is shown as removed and the new as added, which is still exact, only less compact.
 */
const MAX_CELLS = 4_000_000;
const CONTEXT = 3;

type Op = { t: ' ' | '-' | '+'; line: string };

/** A last line without its newline is a different line (NOEOL-marked), as in diff(1). */
const NOEOL = '\u0000noeol';

function splitLines(s: string): string[] {
  if (s === '') return [];
  const lines = s.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  else lines[lines.length - 1] += NOEOL;
  return lines;
}

function ops(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) return [...a.map((line) => ({ t: '-' as const, line })), ...b.map((line) => ({ t: '+' as const, line }))];
  const w = m + 1;
  const L = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i * w + j] = a[i] === b[j] ? L[(i + 1) * w + j + 1]! + 1 : Math.max(L[(i + 1) * w + j]!, L[i * w + j + 1]!);
  const out: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      out.push({ t: ' ', line: a[i++]! });
      j++;
    } else if (i < n && (j === m || L[(i + 1) * w + j]! >= L[i * w + j + 1]!)) out.push({ t: '-', line: a[i++]! });
    else out.push({ t: '+', line: b[j++]! });
  }
  return out;
}

/** Unified diff (hunks with 3 lines of context) between two texts; '' when they are equal. */
export function unifiedDiff(oldLabel: string, newLabel: string, oldText: string, newText: string): string {
  if (oldText === newText) return '';
  const a = splitLines(oldText);
  const b = splitLines(newText);
  const all = ops(a, b);
  const out = [`--- ${oldLabel}`, `+++ ${newLabel}`];
  // positions in a and b before each op, to number the hunks
  const posA: number[] = [];
  const posB: number[] = [];
  let pa = 0;
  let pb = 0;
  for (const o of all) {
    posA.push(pa);
    posB.push(pb);
    if (o.t !== '+') pa++;
    if (o.t !== '-') pb++;
  }
  let k = 0;
  while (k < all.length) {
    if (all[k]!.t === ' ') {
      k++;
      continue;
    }
    const start = Math.max(0, k - CONTEXT);
    let end = k;
    let lastChange = k;
    while (end < all.length && (all[end]!.t !== ' ' || end - lastChange <= 2 * CONTEXT)) {
      if (all[end]!.t !== ' ') lastChange = end;
      end++;
    }
    end = Math.min(all.length, lastChange + CONTEXT + 1);
    const slice = all.slice(start, end);
    const na = slice.filter((o) => o.t !== '+').length;
    const nb = slice.filter((o) => o.t !== '-').length;
    const sa = na === 0 ? posA[start]! : posA[start]! + 1;
    const sb = nb === 0 ? posB[start]! : posB[start]! + 1;
    out.push(`@@ -${sa},${na} +${sb},${nb} @@`);
    for (const o of slice) {
      if (o.line.endsWith(NOEOL)) out.push(o.t + o.line.slice(0, -NOEOL.length), '\\ No newline at end of file');
      else out.push(o.t + o.line);
    }
    k = end;
  }
  return out.join('\n') + '\n';
}

export const octal = (mode: number) => mode.toString(8).padStart(4, '0');
