/**
 * HTTP Basic credentials (basic-auth): "Authorization: Basic <base64>" (header name case-insensitive,
 * Proxy-Authorization included), also quoted as in JSON and JS objects ("Authorization":"Basic <base64>",
 * 'authorization': 'Basic …'), where the base64 decodes to printable "user:pass". Feature = "Authorization"
 * through the last base64 char (quotes between them as found). A Bearer token or a blob that does not decode to
 * user:pass is not reported.
 */
import type { Scanner } from '../types.js';
import { type Hit, isB64, printableAscii, strictBase64 } from './secret-common.js';

const HEADER = 'authorization';
// Every repeat is bounded: irregexp keeps a backtrack entry per repeated character.
const BASIC = /:[ \t]{0,16}basic[ \t]{1,16}/iy;
const BASIC_VALUE = /basic[ \t]{1,16}/iy;
const B64 = /[A-Za-z0-9+/]{4,1024}={0,2}/y;

/** The header whose ':' is at p, or undefined. */
function basicAuth(text: string, p: number): Hit | undefined {
  const q = text.charCodeAt(p - 1);
  const quote = q === 34 || q === 39 ? q : 0;
  const start = p - HEADER.length - (quote === 0 ? 0 : 1);
  if (start < 0) return undefined;
  for (let i = 0; i < HEADER.length; i++) if ((text.charCodeAt(start + i) | 0x20) !== HEADER.charCodeAt(i)) return undefined;
  let at = p;
  if (quote !== 0) {
    if (text.charCodeAt(start - 1) !== quote && text.charCodeAt(start - 1) !== 45 /* Proxy- */) return undefined;
    at = p + 1;
    if (text.charCodeAt(at) === 32) at++;
    if (text.charCodeAt(at) !== quote) return undefined;
    at++;
    BASIC_VALUE.lastIndex = at;
    const v = BASIC_VALUE.exec(text);
    if (v === null) return undefined;
    at += v[0].length;
  } else {
    BASIC.lastIndex = p;
    const m = BASIC.exec(text);
    if (m === null) return undefined;
    at = p + m[0].length;
  }
  B64.lastIndex = at;
  const b = B64.exec(text);
  if (b === null) return undefined;
  const end = at + b[0].length;
  if (isB64(text.charCodeAt(end)) || text.charCodeAt(end) === 61) return undefined;
  if (quote !== 0 && text.charCodeAt(end) !== quote) return undefined;
  const cred = strictBase64(b[0]);
  if (cred === undefined) return undefined;
  const s = cred.toString('latin1');
  if (s.indexOf(':') < 1 || !printableAscii(s) || s.includes('\t')) return undefined;
  return { kind: 'basic-auth', start, end };
}

export const basicAuthScanner: Scanner = {
  name: 'basic-auth',
  kinds: ['basic-auth'],
  description: 'HTTP Basic credentials ("Authorization: Basic <base64 of user:pass>", also quoted in JSON)',
  scan(text, emit) {
    // Anchored on ':' (a memory-speed search) with the header's last letter 'n' before it, behind an optional
    // quote: a case-insensitive search for the header name would have to run over every position.
    for (let p = text.indexOf(':'); p >= 0; p = text.indexOf(':', p + 1)) {
      let b = p - 1;
      const q = text.charCodeAt(b);
      if (q === 34 || q === 39) b--;
      if ((text.charCodeAt(b) | 0x20) !== 110 /* n */) continue;
      const h = basicAuth(text, p);
      if (h !== undefined) emit(h.kind, h.start, h.end);
    }
  },
};
