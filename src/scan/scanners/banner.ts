/**
 * Operating-system version banners, which date and identify a memory image:
 *  - Linux: "Linux version <release> (<builder>) …" as in /proc/version and the first kernel log line. Feature =
 *    from "Linux version" to the end of the line ('\n', '\r', '\0' or the end of the text), at most MAX_LINE
 *    characters (the kernel's own banner is well below that; anything longer is cut there).
 *  - Windows: "Microsoft Windows [Version 10.0.19045.3803]" as cmd.exe prints it. Feature = through the ']'.
 *  - macOS: "Darwin Kernel Version 23.4.0: <date>; root:xnu-…" (the kernel's version string). Feature = to the
 *    line end, capped like Linux.
 * The release must start with digits and dots so prose ("Linux version control") is not a banner.
 */
import type { Scanner } from '../types.js';
import { emitInOrder, type Hit, lineEnd } from './secret-common.js';

const MAX_LINE = 512;
const LINUX = /Linux version [0-9]+\.[0-9]+[^\s\0]* \(/y;
const WINDOWS = /Microsoft Windows \[Version [0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,6}(?:\.[0-9]{1,6})?\]/y;
const DARWIN = /Darwin Kernel Version [0-9]+\.[0-9]+(?:\.[0-9]+)?: /y;

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
  description: 'OS version banners: Linux kernel ("Linux version …"), Windows ("Microsoft Windows [Version …]"), Darwin',
  scan(text, emit) {
    const hits: Hit[] = [];
    findAll(text, 'Linux version ', LINUX, true, hits);
    findAll(text, 'Microsoft Windows [Version ', WINDOWS, false, hits);
    findAll(text, 'Darwin Kernel Version ', DARWIN, true, hits);
    emitInOrder(hits, emit);
  },
};
