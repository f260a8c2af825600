/**
 * Stand-alone dotted host names with a known TLD (net-common.ts). Anchored on '.': each dot opens the maximal
 * run of label characters and dots around it, judged once as a whole (split only at empty labels such as an
 * ellipsis), so no window of a longer token ("libssl.so.3", "10.0.19045.1234", "6.1.0-18-amd64") is reported.
 *
 * Choices, following what bulk_extractor's domain.txt does where it matters to existing scripts:
 *  - The hosts of e-mail addresses and URLs ARE reported too ("alice@mail.acme.com" gives domain
 *    "mail.acme.com"): a domain feature file answers "which hosts does this dump mention", however mentioned.
 *    The local part of an address is not a host: a name followed by '@' is skipped.
 *  - File names collide with country codes (".sh", ".py", ".so", ".rs", ".md", ".pl", "Makefile.in"...). A
 *    two-label name is reported only if its TLD is not a common file extension, its first label holds a letter,
 *    and it is in one case (lower case, with a first label of 3+ characters led by a letter, under a country
 *    code); three labels or more ("www.example.sh") are always hosts. Random bytes give two-label candidates
 *    every few hundred KiB, names with two dots almost never.
 *  - Names touching '_' are identifiers or base64url (a JWT's segments are dot-joined), not hosts.
 *  - Code and binaries are full of dotted names that are syntactically hosts (a review of real process memory
 *    found 82% of stand-alone hits were property chains): so a stand-alone name is rejected when it follows a
 *    lone '.' (".data.rel.ro", "type:.eq.k8s.io/..."), precedes '(' or '=', has a camelCase label or a label
 *    like "this"/"prototype", ends in a TLD that is also a common property name ("node.name", "e.target.id",
 *    "this.logger.info") unless it starts with a conventional host label ("www.acme.info"), or, under a file-like
 *    TLD, holds a version number or a file extension before it ("libpython3.11.so", "config.h.in"). The hosts of
 *    e-mail addresses and URLs (after '@' or '//') skip these rules.
 *  - A digit glued before "www." is a DER length byte from a certificate ("0www.entrust.net") and is left out.
 */
import type { Scanner } from '../types.js';
import { C_ALPHA, C_LABEL, cls, hostLabels, isCodeLabel, isCodeTld, isFileExtension, isFileLikeTld, isHostLabel, runAround } from './net-common.js';

const inRun = (c: number): boolean => (cls(c) & C_LABEL) !== 0 || c === 46;

/** Whether a two-label name passes the file-name and noise filter described at the top of the file. */
function twoLabelOk(name: string): boolean {
  // The two famous one-letter hosts (Twitter's and Google's link shorteners) escape the 3-character rule below.
  if (name === 't.co' || name === 'g.co') return true;
  const dot = name.indexOf('.');
  const tld = name.slice(dot + 1);
  if (isFileLikeTld(tld)) return false;
  let letter = false;
  for (let i = 0; i < dot; i++) if ((cls(name.charCodeAt(i)) & C_ALPHA) !== 0) letter = true;
  if (!letter) return false;
  // Country codes: a third of all letter pairs are delegated, so random text makes "Xy.DE" every few hundred
  // KiB; real two-label hosts under them are written in lower case, with a name of 3+ characters led by a letter.
  if (tld.length === 2) return dot >= 3 && (cls(name.charCodeAt(0)) & C_ALPHA) !== 0 && name === name.toLowerCase();
  return name === name.toLowerCase() || name === name.toUpperCase();
}

/** Mixed case only under a lower-case TLD ("Mail.Example.com"); "R.3w.GM" is noise. */
function caseOk(name: string): boolean {
  const low = name.toLowerCase();
  return name === low || name === name.toUpperCase() || name.endsWith(low.slice(low.lastIndexOf('.')));
}

/**
 * Whether a stand-alone name (not the host of an e-mail address or URL) reads as code or a file name rather than
 * a host; see the top of the file.
 */
function looksLikeCodeOrFile(labels: string[]): boolean {
  const tld = labels[labels.length - 1]!;
  if (isCodeTld(tld) && !isHostLabel(labels[0]!)) return true;
  for (let k = 0; k < labels.length; k++) {
    const l = labels[k]!;
    if (isCodeLabel(l)) return true;
    // camelCase ("elementType", "projectService") is an identifier; host labels are lower case, upper case or
    // capitalised ("Mail.Example.com").
    for (let i = 1; i < l.length; i++) {
      const a = l.charCodeAt(i - 1);
      const b = l.charCodeAt(i);
      if (a >= 97 && a <= 122 && b >= 65 && b <= 90) return true;
    }
  }
  if (labels.length >= 3 && isFileLikeTld(tld)) {
    // "libpython3.11.so", "libtcl8.6.so", "T.61.so": a version number between the name and the extension.
    for (let k = 1; k < labels.length - 1; k++) {
      const c = labels[k]!.charCodeAt(0);
      if (c >= 48 && c <= 57) return true;
    }
    if (isFileExtension(labels[labels.length - 2]!)) return true;
  }
  return false;
}

/** Whether text[s, e) holds ".." (an ellipsis before a host: only then can a piece before the end be one). */
function hasEmptyLabel(text: string, s: number, e: number): boolean {
  for (let i = s + 1; i < e; i++) if (text.charCodeAt(i) === 46 && text.charCodeAt(i - 1) === 46) return true;
  return false;
}

export const domainScanner: Scanner = {
  name: 'domain',
  kinds: ['domain'],
  description: 'Domain names with a known TLD (including the hosts of e-mail addresses and URLs)',
  scan(text, emit) {
    let pos = 0;
    for (;;) {
      const dot = text.indexOf('.', pos);
      if (dot < 0) return;
      const [s, e] = runAround(text, dot, inRun);
      pos = e;
      // Fast rejection of most dots (numbers, file versions, random bytes): the run must end in 2+ letters
      // after its last dot, give or take dots and hyphens trailing it.
      let t = e;
      while (t > s && (text.charCodeAt(t - 1) === 46 || text.charCodeAt(t - 1) === 45)) t--;
      let letters = 0;
      while (t > s && (cls(text.charCodeAt(t - 1)) & C_ALPHA) !== 0) {
        t--;
        letters++;
      }
      if ((letters < 2 || text.charCodeAt(t - 1) !== 46) && !hasEmptyLabel(text, s, e)) continue;
      if (e - s < 4 || text.charCodeAt(s - 1) === 95 || text.charCodeAt(e) === 95 || text.charCodeAt(e) === 64) continue;
      // Split at empty labels ("see...www.acme.com", "a..b"); each piece loses dots and hyphens at its ends.
      let ps = s;
      for (let i = s; i <= e; i++) {
        if (i < e && !(text.charCodeAt(i) === 46 && text.charCodeAt(i + 1) === 46)) continue;
        let a = ps;
        let b = i;
        while (a < b && (text.charCodeAt(a) === 46 || text.charCodeAt(a) === 45)) a++;
        while (b > a && (text.charCodeAt(b - 1) === 46 || text.charCodeAt(b - 1) === 45)) b--;
        ps = i + 1;
        if (b - a < 4) continue;
        const labels = hostLabels(text, a, b, { knownTld: true });
        if (labels === 0) continue;
        // A DER length byte glued on by a certificate ("0www.entrust.net", "7www.entrust.net"): no host label is
        // a digit followed by "www".
        if (text.charCodeAt(a) >= 48 && text.charCodeAt(a) <= 57 && text.startsWith('www.', a + 1)) a++;
        const name = text.slice(a, b);
        if (labels === 2 ? !twoLabelOk(name) : !caseOk(name)) continue;
        // The name after a lone '.' is the tail of a section or member name (".data.rel.ro", "type:.eq.k8s.io");
        // one before '(' or '=' is a call or an assignment ("this.logger.info(", "user.name=").
        const pre = text.charCodeAt(a - 1);
        if (pre === 46 && text.charCodeAt(a - 2) !== 46) continue;
        const post = text.charCodeAt(b);
        if (post === 40 || post === 61) continue;
        // The hosts of e-mail addresses and URLs are hosts whatever they look like; stand-alone names are not.
        const hostOf = pre === 64 || (pre === 47 && text.charCodeAt(a - 2) === 47);
        if (!hostOf && looksLikeCodeOrFile(name.split('.'))) continue;
        emit('domain', a, b);
      }
    }
  },
};
