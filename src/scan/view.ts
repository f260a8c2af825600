/**
 * What scanners see of a buffer: its printable runs, ASCII and UTF-16LE, each joined into one string with '\0'
 * between runs. Joining lets every scanner make one pass over a window with V8's string search and regexes
 * instead of one call per run, and drops the bytes of random and zero pages (most of a memory image) before any
 * scanner runs. A run is at least MIN_RUN characters: nothing a scanner reports is shorter.
 */

export const MIN_RUN = 6;
/*
 * Irregexp keeps a backtrack entry per iteration of a greedy loop and overflows the stack on a multi-megabyte run
 * of text, so runs are matched in pieces of at most PIECE characters and pieces that touch are joined again.
 */
const PIECE = 4096;
const ASCII_RUN = new RegExp(`[\\x20-\\x7e\\t\\n\\r]{${MIN_RUN},${PIECE}}`, 'g');
const UTF16_RUN = new RegExp(`(?:[\\x20-\\x7e\\t\\n\\r]\\x00){${MIN_RUN},${PIECE}}`, 'g');

export interface TextView {
  /** Runs joined by '\0'. */
  readonly text: string;
  /** Per run: index in `text` where it starts (ascending), and byte offset in the buffer. */
  readonly textStarts: Int32Array;
  readonly rawStarts: Int32Array;
  readonly runs: number;
  /** Bytes per character: 1 for ASCII, 2 for UTF-16LE. */
  readonly width: 1 | 2;
}

/** Start and end (byte offsets) of maximal runs, found in PIECE-sized matches and re-joined. */
function findRuns(latin1: string, re: RegExp): number[] {
  const spans: number[] = [];
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(latin1)) !== null) {
    const start = m.index;
    const end = re.lastIndex;
    if (spans.length > 0 && spans[spans.length - 1] === start) spans[spans.length - 1] = end;
    else spans.push(start, end);
  }
  return spans;
}

function build(spans: readonly number[], width: 1 | 2, piece: (start: number, end: number) => string): TextView {
  const runs = spans.length >> 1;
  const textStarts = new Int32Array(runs);
  const rawStarts = new Int32Array(runs);
  const parts: string[] = new Array<string>(runs);
  let at = 0;
  for (let i = 0; i < runs; i++) {
    const s = spans[2 * i] as number;
    const e = spans[2 * i + 1] as number;
    const p = piece(s, e);
    textStarts[i] = at;
    rawStarts[i] = s;
    parts[i] = p;
    at += p.length + 1;
  }
  return { text: parts.join('\0'), textStarts, rawStarts, runs, width };
}

/** `latin1` must be buf.latin1Slice() of the same buffer (computed once, shared by both views). */
export function asciiView(latin1: string): TextView {
  return build(findRuns(latin1, ASCII_RUN), 1, (s, e) => latin1.slice(s, e));
}

export function utf16View(buf: Buffer, latin1: string): TextView {
  return build(findRuns(latin1, UTF16_RUN), 2, (s, e) => buf.toString('utf16le', s, e));
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
