/**
 * What scanners see of a buffer: its printable runs, ASCII and UTF-16LE, each joined into one string with '\0'
 * between runs that were separated by exactly one NUL character (a C string list, bash's in-memory history) and
 * '\0\0' between runs separated by anything else. Joining lets every scanner make one pass over a window with V8's string search and regexes
 * instead of one call per run, and drops the bytes of random and zero pages (most of a memory image) before any
 * scanner runs. A run is at least MIN_RUN characters: nothing a scanner reports is shorter.
 */

export const MIN_RUN = 6;
/*
 * Irregexp keeps a backtrack entry per iteration of a greedy loop and overflows the stack on a multi-megabyte run
 * of text, so a run is matched PIECE characters at a time: the first piece by the run regex, the rest by a sticky
 * continuation that needs one character, so a run of any length ends where its bytes end.
 */
const PIECE = 4096;
const ASCII = '[\\x20-\\x7e\\t\\n\\r]';
const UTF16 = '(?:[\\x20-\\x7e\\t\\n\\r]\\x00)';
const ASCII_RUN = new RegExp(`${ASCII}{${MIN_RUN},${PIECE}}`, 'g');
const ASCII_MORE = new RegExp(`${ASCII}{1,${PIECE}}`, 'y');
const UTF16_RUN = new RegExp(`${UTF16}{${MIN_RUN},${PIECE}}`, 'g');
const UTF16_MORE = new RegExp(`${UTF16}{1,${PIECE}}`, 'y');

export interface TextView {
  /** Runs joined by '\0'. */
  readonly text: string;
  /** Per run: index in `text` where it starts and ends (ascending), and byte offset in the buffer. */
  readonly textStarts: Int32Array;
  readonly textEnds: Int32Array;
  readonly rawStarts: Int32Array;
  readonly runs: number;
  /** Bytes per character: 1 for ASCII, 2 for UTF-16LE. */
  readonly width: 1 | 2;
}

/*
 * The regexes run over latin1 strings of SLICE bytes, not of the whole window: Node turns a latin1 string of more
 * than about 1 MB into an external string malloc'd outside V8's heap, and glibc keeps such freed blocks in each
 * thread's arena once its mmap threshold has grown past them, so one 17 MB string per window cost each worker
 * about 100 MB of resident memory. Slices stay on V8's heap, where the scavenger reclaims them.
 */
const SLICE = 512 * 1024;

/**
 * Start and end (byte offsets) of maximal runs, found within SLICE-sized strings and re-joined where they touch or
 * overlap.
 */
function findRuns(buf: Buffer): { ascii: number[]; utf16: number[] } {
  const ascii: number[] = [];
  const utf16: number[] = [];
  // A run that crosses a slice end is matched into this slice's tail and again from the next slice's start; the
  // tail is long enough that a run with fewer than MIN_RUN characters on either side is still seen whole once.
  const extra = 4 * MIN_RUN;
  for (let off = 0; off < buf.length; off += SLICE) {
    const s = buf.toString('latin1', off, Math.min(buf.length, off + SLICE + extra));
    matchRuns(s, off, ASCII_RUN, ASCII_MORE, ascii);
    matchRuns(s, off, UTF16_RUN, UTF16_MORE, utf16);
  }
  return { ascii, utf16 };
}

function matchRuns(s: string, off: number, re: RegExp, more: RegExp, spans: number[]): void {
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    let stop = re.lastIndex;
    if (m[0].length >= PIECE) {
      more.lastIndex = stop;
      while (more.exec(s) !== null) stop = more.lastIndex;
      re.lastIndex = stop;
    }
    const start = off + m.index;
    const end = off + stop;
    const last = spans.length - 1;
    if (last > 0 && (spans[last] as number) >= start) {
      if (end > (spans[last] as number)) spans[last] = end;
    } else spans.push(start, end);
  }
}

function build(buf: Buffer, spans: readonly number[], width: 1 | 2, piece: (start: number, end: number) => string): TextView {
  const runs = spans.length >> 1;
  const textStarts = new Int32Array(runs);
  const textEnds = new Int32Array(runs);
  const rawStarts = new Int32Array(runs);
  const parts: string[] = new Array<string>(2 * runs);
  let at = 0;
  let prevEnd = -1;
  for (let i = 0; i < runs; i++) {
    const s = spans[2 * i] as number;
    const e = spans[2 * i + 1] as number;
    if (i > 0) {
      const oneNul = s - prevEnd === width && buf[prevEnd] === 0 && buf[s - 1] === 0;
      parts[2 * i - 1] = oneNul ? '\0' : '\0\0';
      at += oneNul ? 1 : 2;
    }
    const p = piece(s, e);
    textStarts[i] = at;
    rawStarts[i] = s;
    parts[2 * i] = p;
    at += p.length;
    textEnds[i] = at;
    prevEnd = e;
  }
  if (runs > 0) parts.length = 2 * runs - 1;
  return { text: parts.join(''), textStarts, textEnds, rawStarts, runs, width };
}

/** Both views of a buffer, from one latin1 pass over it. */
export function textViews(buf: Buffer): { ascii: TextView; utf16: TextView } {
  const runs = findRuns(buf);
  return {
    ascii: build(buf, runs.ascii, 1, (s, e) => buf.toString('latin1', s, e)),
    utf16: build(buf, runs.utf16, 2, (s, e) => buf.toString('utf16le', s, e)),
  };
}

/** Text index of byte offset `raw`: inside a run, its character; between runs, the start of the next run. */
export function textIndexOf(v: TextView, raw: number): number {
  let lo = 0;
  let hi = v.runs;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((v.rawStarts[mid] as number) <= raw) lo = mid + 1;
    else hi = mid;
  }
  const r = lo - 1;
  if (r < 0) return 0;
  const len = (v.textEnds[r] as number) - (v.textStarts[r] as number);
  const off = raw - (v.rawStarts[r] as number);
  if (off < len * v.width) return (v.textStarts[r] as number) + Math.ceil(off / v.width);
  return r + 1 < v.runs ? (v.textStarts[r + 1] as number) : v.text.length;
}

/** Index of the run holding text index `i` (binary search). */
export function runOf(v: TextView, i: number): number {
  let lo = 0;
  let hi = v.runs - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((v.textStarts[mid] as number) <= i) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
