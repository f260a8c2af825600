/**
 * E-mail addresses. Anchored on '@': the local part is read backward over [A-Za-z0-9._%+-] (at most 64 chars,
 * RFC 5321), the domain forward over labels and dots, and the domain must be a dotted host with a known TLD
 * (net-common.ts) or a lower-case TLD of 3+ letters, so "alice@localhost", "root@buildhost" (a kernel banner) and
 * "user@intranet" are not addresses. Domains are often written in mixed case ("Klaus@Ethgen.de",
 * "John.Ericson@Obsidian.Systems") and are accepted so.
 * Dots at either end are punctuation ("mail me at a@b.com.") and are left out; a local part may not start with
 * one either.
 */
import type { Scanner } from '../types.js';
import { C_LABEL, C_LOCAL, C_WORD, cls, hostLabels, isKnownTld } from './net-common.js';

const MAX_LOCAL = 64;
const MAX_DOMAIN = 253;
/** Names used for private networks and examples, never delegated: "user@acme.corp" is not a mailbox on the Internet. */
/** File extensions that follow an '@' in file names ("en@quot.header", "sr@latin.insert", gettext's locale variants). */
const FILE_TLDS = new Set(['header', 'insert', 'gmo', 'pot', 'sed', 'sin', 'json', 'txt', 'html', 'xml', 'yml', 'yaml', 'conf', 'cfg', 'log', 'tmp', 'bak', 'old', 'orig', 'rej', 'diff', 'patch', 'png', 'jpg', 'gif', 'svg', 'css', 'map', 'lock', 'toml', 'ini', 'desc', 'list', 'exe', 'dll', 'sys', 'bin', 'dat', 'img', 'iso', 'deb', 'rpm', 'tgz', 'bz2', 'zst']);
const PRIVATE_TLDS = new Set(['corp', 'local', 'localdomain', 'lan', 'home', 'internal', 'intranet', 'invalid', 'test', 'example', 'localhost', 'domain']);

export const emailScanner: Scanner = {
  name: 'email',
  kinds: ['email'],
  description: 'E-mail addresses (local@host with a known TLD)',
  scan(text, emit) {
    const n = text.length;
    let pos = 0;
    // End of the last address: a domain is made of local-part characters, so the next local part must not
    // reach back into it ("a@b.com%c@d.org").
    let last = 0;
    for (;;) {
      const at = text.indexOf('@', pos);
      if (at < 0) return;
      pos = at + 1;
      let s = at;
      while (s > last && at - s < MAX_LOCAL + 1 && (cls(text.charCodeAt(s - 1)) & C_LOCAL) !== 0) s--;
      // A longer run than RFC 5321 allows is a blob (base64, hex), not a mailbox.
      if (at - s > MAX_LOCAL) continue;
      while (s < at && text.charCodeAt(s) === 46) s++;
      if (s === at) continue;
      if (text.charCodeAt(at - 1) === 46) continue;
      let e = at + 1;
      while (e < n && e - at <= MAX_DOMAIN + 1) {
        const c = text.charCodeAt(e);
        if ((cls(c) & C_LABEL) === 0 && c !== 46) break;
        e++;
      }
      while (e > at + 1 && text.charCodeAt(e - 1) === 46) e--;
      // '_' or another '@' glued on means an identifier or a path-like token, not an address.
      const after = text.charCodeAt(e);
      if ((cls(after) & C_WORD) !== 0 || after === 64) continue;
      const labels = hostLabels(text, at + 1, e, { knownTld: false, capitalisedTld: true });
      if (labels === 0) continue;
      const tld = text.slice(text.lastIndexOf('.', e - 1) + 1, e);
      // Behind '@' a dotted name is meant as a mail domain, so a TLD outside the built-in list is accepted
      // ("@tycho.pizza", "@git.icu") when it is written in lower case with 3+ letters; two letters and upper
      // case stay with the list, which random bytes rarely hit.
      if (!isKnownTld(tld) && !(tld.length >= 3 && tld === tld.toLowerCase() && !PRIVATE_TLDS.has(tld) && !FILE_TLDS.has(tld))) {
        // A capitalised TLD only in a capitalised name ("Obsidian.Systems"), not "acme.Com".
        if (!isKnownTld(tld.toLowerCase()) || !text.slice(at + 1, e).split('.').every((l) => /^[A-Z][a-z0-9-]*$/.test(l))) continue;
      }
      // "X@v.ve", "E@Kr.gg": random bytes make a short two-label country-code domain every few MiB; real ones
      // have a name of 2+ characters, and 3+ when in mixed case, each label in one case or capitalised
      // ("Klaus@Ethgen.de", "larry@L2G.to"; not "5s@XNn.re").
      if (labels === 2 && tld.length === 2) {
        const d = text.slice(at + 1, e);
        const dot = d.indexOf('.');
        if (dot < 2) continue;
        if (d !== d.toLowerCase() && d !== d.toUpperCase() && (dot < 3 || tld !== tld.toLowerCase() || !/^(?:[A-Z0-9-]+|[A-Z]?[a-z0-9-]+)\./.test(d))) continue;
      }
      pos = e;
      last = e;
      emit('email', s, e);
    }
  },
};
