/**
 * E-mail addresses. Anchored on '@': the local part is read backward over [A-Za-z0-9._%+-] (at most 64 chars,
 * RFC 5321), the domain forward over labels and dots, and the domain must be a dotted host with a known TLD
 * (net-common.ts), so "alice@localhost", "root@buildhost" (a kernel banner) and "user@intranet" are not addresses.
 * Dots at either end are punctuation ("mail me at a@b.com.") and are left out; a local part may not start with
 * one either.
 */
import type { Scanner } from '../types.js';
import { C_LABEL, C_LOCAL, C_WORD, cls, hostLabels } from './net-common.js';

const MAX_LOCAL = 64;
const MAX_DOMAIN = 253;

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
      const labels = hostLabels(text, at + 1, e, { knownTld: true });
      if (labels === 0) continue;
      // "X@v.ve", "E@Kr.gg": random bytes make a short two-label country-code domain every few MiB; real ones
      // have a name of 2+ characters and are not in mixed case.
      if (labels === 2 && e - text.lastIndexOf('.', e - 1) === 3) {
        const d = text.slice(at + 1, e);
        if (d.indexOf('.') < 2 || (d !== d.toLowerCase() && d !== d.toUpperCase())) continue;
      }
      pos = e;
      last = e;
      emit('email', s, e);
    }
  },
};
