/**
 * Shell history with timestamps, which dates what a user typed:
 *  - bash with HISTTIMEFORMAT set writes "#<epoch>" on its own line before each command. Feature =
 *    "#<epoch>\n<command>" (or "\r\n" as found).
 *  - zsh EXTENDED_HISTORY writes ": <epoch>:<elapsed>;<command>". Feature = the whole line.
 *  - bash's own memory: reading the history file, bash keeps the lines as strings, so a live bash holds
 *    "#<epoch>" NUL "<command>" NUL. The engine joins runs that were separated by exactly one NUL byte with one
 *    '\0' and other gaps with "\0\0", so "#<epoch>\0<command>" followed by '\0' or the end is such an entry
 *    and a "\0\0" gap is never bridged. Feature = the text as found, NUL included (feature files escape it as
 *    \x00). A command shorter than the engine's minimum run length is not seen in this form.
 * The timestamp must start a line (or the text, or follow '\0'), have 10 digits and fall between 2001-09-09
 * (the first 10-digit epoch) and 2040-01-01; the command must be non-empty and contain a non-blank character. A
 * "#<epoch>" followed by another "#<epoch>" line is an empty entry, not a command.
 */
import type { Scanner } from '../types.js';
import { emitInOrder, type Hit, lineEnd } from './secret-common.js';

const LAST_EPOCH = 2208988800; // 2040-01-01T00:00:00Z
const MAX_COMMAND = 4096;
const BASH = /#[12][0-9]{9}/y;
/** A "#<epoch>" line right after a timestamp means the first entry's command is missing. */
const TIMESTAMP_LINE = /#[0-9]{10}(?:[\r\n\0]|$)/y;
const ZSH = /: [12][0-9]{9}:[0-9]{1,10};/y;

const lineStart = (text: string, i: number): boolean => {
  const c = text.charCodeAt(i - 1);
  return i === 0 || c === 10 || c === 13 || c === 0;
};
const plausible = (digits: string): boolean => Number(digits) <= LAST_EPOCH;

/** End of a non-blank command starting at i, or -1. Commands longer than MAX_COMMAND are not history lines. */
function commandEnd(text: string, i: number): number {
  const e = lineEnd(text, i, MAX_COMMAND + 1);
  if (e - i > MAX_COMMAND) return -1;
  for (let j = i; j < e; j++) {
    const c = text.charCodeAt(j);
    if (c !== 32 && c !== 9) return e;
  }
  return -1;
}

export const historyScanner: Scanner = {
  name: 'history',
  kinds: ['bash-history'],
  description: 'bash (#epoch line + command) and zsh extended history (": epoch:elapsed;command") entries',
  scan(text, emit) {
    const hits: Hit[] = [];
    // a bash entry's command that itself reads as a zsh line is part of that entry, not a second one
    const commands = new Set<number>();
    // Two-char literals are searched at memory speed; the sticky patterns then check the anchor.
    for (const anchor of ['#1', '#2']) {
      for (let i = text.indexOf(anchor); i >= 0; i = text.indexOf(anchor, i + 2)) {
        BASH.lastIndex = i;
        const m = BASH.exec(text);
        if (m === null || !lineStart(text, i) || !plausible(m[0].slice(1))) continue;
        let j = i + 11;
        if (text.charCodeAt(j) === 0) {
          // In-memory form: exactly one NUL, and the command must be a run of its own (no second NUL).
          if (text.charCodeAt(j + 1) === 0) continue;
        } else {
          if (text.charCodeAt(j) === 13) j++;
          if (text.charCodeAt(j) !== 10) continue;
        }
        j++;
        TIMESTAMP_LINE.lastIndex = j;
        if (TIMESTAMP_LINE.test(text)) continue;
        const end = commandEnd(text, j);
        if (end < 0) continue;
        hits.push({ kind: 'bash-history', start: i, end });
        commands.add(j);
      }
    }
    for (const anchor of [': 1', ': 2']) {
      for (let i = text.indexOf(anchor); i >= 0; i = text.indexOf(anchor, i + 3)) {
        if (!lineStart(text, i) || commands.has(i)) continue;
        ZSH.lastIndex = i;
        const m = ZSH.exec(text);
        if (m === null || !plausible(m[0].slice(2, 12))) continue;
        const end = commandEnd(text, i + m[0].length);
        if (end < 0) continue;
        hits.push({ kind: 'bash-history', start: i, end });
      }
    }
    emitInOrder(hits, emit);
  },
};
