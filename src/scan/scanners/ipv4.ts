/**
 * IPv4 dotted quads. Anchored on '.': each dot opens the maximal run of [0-9.] around it, and only a run that is
 * exactly four valid octets (after dropping dots at its ends that no digit continues) is an address. Judging the
 * whole run, never a window of it, is what keeps "10.0.19045.1234" (a Windows build), "1.2.3.4.5" and
 * "999.1.2.3" from yielding a quad hidden inside them.
 *
 * Four-part version numbers are the main noise in real memory and text, so a quad is also rejected when:
 *  - a dot dropped at an end touches a word ("libpng.so.2.1.0.9", "rev.1.178.2.223", "0.0.0.0.in-addr");
 *  - it is glued by '-' to a word or a number ("1.2.7.2-1", "11.3.244.8-node.38", "section-8.1.2.5"), except
 *    an address range "10.0.0.1-10.0.0.9", or followed by '~' or '+' (Debian "1.2.3.4~rc1", "1.2.3.4+dfsg");
 *  - a version word precedes it ("version 2.4.1.0", "Git 1.6.6.1", "Section 21.4.2.1", ">=2.4.9.11"), or the
 *    same line talks about releases before it ("release notes to 1.7.5.2", "RFC7540 8.1.2.4"), or it is a
 *    Debian changelog header "pkg (1.4.0.30) unstable;" or a section heading in a comment ("// 8.1.5.1 Event");
 *  - it starts with 0 and is not 0.0.0.0 ("dpkg 0.93.42.1": 0.0.0.0/8 is never a host);
 *  - it lies in an OID arc that certificates and crypto libraries spell out ("2.5.4.3" commonName, "2.5.29.x"
 *    extensions, "1.3.101.110" X25519, "1.3.6.1", "1.3.14.x", "1.2.840.x"): those /16s and /24s are publicly
 *    routable but almost never appear as addresses, while every TLS library holds the OIDs.
 */
import type { Scanner } from '../types.js';
import { C_ALPHA, C_WORD, cls, isIPv4, runAround } from './net-common.js';

const isDigitOrDot = (c: number): boolean => (c >= 48 && c <= 57) || c === 46;
const isWord = (c: number): boolean => (cls(c) & C_WORD) !== 0;

const VERSION_WORDS = new Set(['version', 'release', 'git', 'relnotes', 'kernel', 'kernels', 'section', 'rev', 'revision', 'ver', 'v', 'build']);
const OID_PREFIXES = ['2.5.4.', '2.5.29.', '1.3.101.', '1.3.14.', '1.2.840.', '2.16.840.'];

/** The word (letters) that ends at or just before `i`, skipping one space; lower case, or '' if none. */
function wordBefore(text: string, i: number): string {
  let e = i;
  if (text.charCodeAt(e - 1) === 32) e--;
  let s = e;
  while (s > 0 && e - s < 12 && (cls(text.charCodeAt(s - 1)) & C_ALPHA) !== 0) s--;
  return text.slice(s, e).toLowerCase();
}

/** Whether text at `i` is a Debian changelog version tail: ")" or "-N)" then " dist;" ("(1.4.0.30) unstable;"). */
function changelogTail(text: string, i: number): boolean {
  if (text.charCodeAt(i) !== 41 || text.charCodeAt(i + 1) !== 32) return false;
  let j = i + 2;
  while (j < i + 40 && ((text.charCodeAt(j) >= 97 && text.charCodeAt(j) <= 122) || text.charCodeAt(j) === 45 || text.charCodeAt(j) === 32)) j++;
  return j > i + 2 && text.charCodeAt(j) === 59;
}

/**
 * Whether the same line, up to 40 characters before the quad, talks about versions ("release notes to 1.7.5.2",
 * "Prepare for 1.7.6.6", "bumped Standards-Version to 3.9.8.0", "(RFC7540 8.1.2.4)"): changelogs and release notes
 * are full of four-part versions and rarely mention an address in the same breath.
 */
const VERSION_CONTEXT = /version|release|relnotes|prepar|standards|policy|\bgit\b|\bnmu\b|upgrad|\bbump|fixed in|broken in|\brfc ?[0-9]|\bsection\b/;
function versionContext(text: string, i: number): boolean {
  let s = i;
  while (s > 0 && i - s < 40) {
    const c = text.charCodeAt(s - 1);
    if (c === 10 || c === 0 || c === 13) break;
    s--;
  }
  return s < i && VERSION_CONTEXT.test(text.slice(s, i).toLowerCase());
}

function versionLike(text: string, s: number, e: number): boolean {
  const before = text.charCodeAt(s - 1);
  const after = text.charCodeAt(e);
  if (after === 126 || after === 43) return true;
  if (after === 45) {
    const c = text.charCodeAt(e + 1);
    if (c >= 48 && c <= 57) {
      let j = e + 1;
      while (j < e + 17 && isDigitOrDot(text.charCodeAt(j))) j++;
      if (!isIPv4(text, e + 1, j)) return true;
    } else if (isWord(c)) return true;
  }
  if (before === 45 && isWord(text.charCodeAt(s - 2))) {
    let j = s - 1;
    while (j > 0 && s - j < 17 && isDigitOrDot(text.charCodeAt(j - 1))) j--;
    if (!isIPv4(text, j, s - 1)) return true;
  }
  if (before === 61 && (text.charCodeAt(s - 2) === 62 || text.charCodeAt(s - 2) === 60)) return true;
  if (before === 32 && VERSION_WORDS.has(wordBefore(text, s - 1))) return true;
  // A section heading in a comment ("// 8.1.5.1 Event handlers", "* 10.2.4.1 ThrowTypeError").
  const a2 = text.charCodeAt(e + 1);
  if (before === 32 && after === 32 && a2 >= 65 && a2 <= 90) {
    const c = text.charCodeAt(s - 2);
    if (c === 47 || c === 42 || c === 35) return true;
  }
  if (before === 32 && versionContext(text, s - 1)) return true;
  if (before === 40 && changelogTail(text, e)) return true;
  // 0.0.0.0/8 is "this network": only 0.0.0.0 itself is written as an address; "0.93.42.1" is a version.
  if (text.charCodeAt(s) === 48 && !(e - s === 7 && text.startsWith('0.0.0.0', s))) return true;
  for (const p of OID_PREFIXES) if (text.startsWith(p, s)) return true;
  return text.startsWith('1.3.6.1', s) && e - s === 7;
}

export const ipv4Scanner: Scanner = {
  name: 'ipv4',
  kinds: ['ipv4'],
  description: 'IPv4 addresses (dotted quads, octets 0-255, not part of a longer dotted number or a version)',
  scan(text, emit) {
    let pos = 0;
    for (;;) {
      const dot = text.indexOf('.', pos);
      if (dot < 0) return;
      let [s, e] = runAround(text, dot, isDigitOrDot);
      pos = e;
      // The shortest quad is 7 chars; a run this short or without a digit next to the dot is nothing.
      if (e - s < 7) continue;
      // A word glued on, directly or through dots at the ends of the run, makes it part of an identifier, a
      // file name or a version ("v1.2.3.4", "1.2.3.4a", "libpng.so.2.1.0.9", "0.0.0.0.in-addr").
      if (isWord(text.charCodeAt(s - 1)) || isWord(text.charCodeAt(e))) continue;
      // Otherwise leading or trailing dots are punctuation (end of a sentence, an ellipsis).
      while (s < e && text.charCodeAt(s) === 46) s++;
      while (e > s && text.charCodeAt(e - 1) === 46) e--;
      if (e - s < 7 || e - s > 15) continue;
      if (isIPv4(text, s, e) && !versionLike(text, s, e)) emit('ipv4', s, e);
    }
  },
};
