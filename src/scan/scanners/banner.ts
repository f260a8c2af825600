/**
 * Operating-system version banners, which date and identify a memory image:
 *  - Linux: "Linux version <release> (<builder>) …" as in /proc/version and the first kernel log line. Feature =
 *    from "Linux version" to the end of the line ('\n', '\r', '\0' or the end of the text), at most MAX_LINE
 *    characters (the kernel's own banner is well below that; anything longer is cut there).
 *  - Linux `uname -a`: "Linux <host> <release> #<build> … GNU/Linux" on one line. Feature = "Linux" through
 *    "GNU/Linux".
 *  - Windows: "Microsoft Windows [Version 10.0.19045.3803]" as cmd.exe prints it, also localized ("[versión …]",
 *    "[version …]", "[Versão …]", "[Версия …]": one word of letters before the number). Feature = through the ']'.
 *  - macOS: "Darwin Kernel Version 23.4.0: <date>; root:xnu-…" (the kernel's version string). Feature = to the
 *    line end, capped like Linux.
 * The release must start with digits and dots so prose ("Linux version control") is not a banner.
 */
import type { Scanner } from '../types.js';
import { emitInOrder, type Hit, lineEnd } from './secret-common.js';

const MAX_LINE = 512;
// Every repeat is bounded (a banner line is at most MAX_LINE): irregexp keeps a backtrack entry per repeated
// character, and an open-ended one over a multi-MiB run overflows its stack.
const LINUX = /Linux version [0-9]{1,6}\.[0-9]{1,6}[^\s\0]{0,256} \(/y;
const WINDOWS = /Microsoft Windows \[\p{L}{1,16} [0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,6}(?:\.[0-9]{1,6})?\]/uy;
const DARWIN = /Darwin Kernel Version [0-9]{1,6}\.[0-9]{1,6}(?:\.[0-9]{1,6})?: /y;

/** The `uname -a` line that ends at the "GNU/Linux" found at g. */
const UNAME = /Linux [A-Za-z0-9][A-Za-z0-9._-]{0,63} [0-9]{1,6}\.[0-9]{1,6}[^\s\0]{0,256} #[0-9][^\r\n\0]{0,512} GNU\/Linux/y;

function unameLines(text: string, hits: Hit[]): void {
  for (let g = text.indexOf(' GNU/Linux'); g >= 0; g = text.indexOf(' GNU/Linux', g + 10)) {
    const e = g + 10;
    const c = text.charCodeAt(e);
    if (e < text.length && c !== 10 && c !== 13 && c !== 0) continue;
    // The line start, then "Linux " there (uname -a prints the kernel name first).
    let s = g;
    const stop = Math.max(0, g - MAX_LINE);
    while (s > stop && !isLineEndCode(text.charCodeAt(s - 1))) s--;
    for (let i = text.indexOf('Linux ', s); i >= 0 && i < g; i = text.indexOf('Linux ', i + 6)) {
      UNAME.lastIndex = i;
      const m = UNAME.exec(text);
      if (m !== null && i + m[0].length === e) {
        hits.push({ kind: 'version-banner', start: i, end: e });
        break;
      }
    }
  }
}
const isLineEndCode = (c: number): boolean => c === 10 || c === 13 || c === 0;

function findAll(text: string, literal: string, re: RegExp, toLineEnd: boolean, hits: Hit[]): void {
  for (let i = text.indexOf(literal); i >= 0; i = text.indexOf(literal, i + literal.length)) {
    re.lastIndex = i;
    const m = re.exec(text);
    if (m === null) continue;
    const end = toLineEnd ? lineEnd(text, i, MAX_LINE) : i + m[0].length;
    if (end < i + m[0].length) continue;
    hits.push({ kind: 'version-banner', start: i, end });
    i = end - literal.length;
  }
}

export const bannerScanner: Scanner = {
  name: 'banner',
  kinds: ['version-banner'],
  description: 'OS version banners: Linux kernel ("Linux version …", uname -a), Windows ("Microsoft Windows [Version …]"), Darwin',
  scan(text, emit) {
    const hits: Hit[] = [];
    findAll(text, 'Linux version ', LINUX, true, hits);
    unameLines(text, hits);
    findAll(text, 'Microsoft Windows [', WINDOWS, false, hits);
    findAll(text, 'Darwin Kernel Version ', DARWIN, true, hits);
    emitInOrder(hits, emit);
  },
};
