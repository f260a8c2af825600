/**
 * Credentials in clear text:
 *  - password-assignment: a password-like key (password, passwd, passphrase, pwd, pass, secret — alone or as the
 *    last part of an identifier: db_password, MYSQL_PWD, userPassword, client.secret) directly followed by '=',
 *    ' = ', ':' or ': ' and a value of at least 4 non-space characters. Feature = key + separator + value, where
 *    the key starts at the identifier ("--password=x" gives "password=x", "db_password=x" gives itself). A quoted
 *    value is taken through its closing quote; an unquoted one ends at whitespace, a line end or one of `&;,"'`
 *    (URL queries, shell and JSON). Placeholders (***, <redacted>, %s, ${VAR}, $VAR, {{x}}, null, …) are skipped.
 *    JSON's `"password": "x"` form is not reported (the key's closing quote sits between key and separator).
 *  - basic-auth: "Authorization: Basic <base64>" (header name case-insensitive, Proxy-Authorization included)
 *    where the base64 decodes to printable "user:pass". Feature = "Authorization" through the last base64 char.
 */
import type { Scanner } from '../types.js';
import { type Hit, isAlnum, isB64, isDigit, isLower, isUpper, printableAscii, strictBase64 } from './secret-common.js';

/**
 * Keys, longest first so "password" is not cut to "pass". The scan anchors on the separator ('=' and ':' are
 * single-char searches V8 runs at memory speed) and looks back for a key, instead of running a case-insensitive
 * alternation over every position.
 */
const KEYS = ['passphrase', 'password', 'passwd', 'secret', 'pass', 'pwd'];

/** Length of the key (any case) that ends at `end`, or 0. Compares char codes: no slice per separator. */
function keyBefore(text: string, end: number): number {
  next: for (const key of KEYS) {
    const k = end - key.length;
    if (k < 0) continue;
    // c | 0x20 lower-cases ASCII letters and maps no other char onto a lower-case letter.
    for (let i = 0; i < key.length; i++) if ((text.charCodeAt(k + i) | 0x20) !== key.charCodeAt(i)) continue next;
    return key.length;
  }
  return 0;
}
const BASIC = /:[ \t]*basic[ \t]+/iy;
const HEADER = 'authorization';
const B64 = /[A-Za-z0-9+/]{4,1024}={0,2}/y;
const MAX_VALUE = 256;
const PLACEHOLDER = /^(?:\*+|x{3,}|X{3,}|\.{3,}|<[^>]*>|\[[^\]]*\]|%[sdv]|\$\{[^}]*\}|\$\(?[A-Za-z_][A-Za-z0-9_]*\)?|\{\{.*\}\}|null|none|nil|true|false|undefined|redacted|hidden|masked)$/i;

/** Start of the identifier the key ends, or -1 if the key is part of a longer word ("bypass", "compass"). */
function identifierStart(text: string, k: number): number {
  const prev = text.charCodeAt(k - 1);
  const ident = (c: number): boolean => isAlnum(c) || c === 95 || c === 46;
  if (!ident(prev)) return k;
  // After a lower-case letter or digit only a camelCase key continues the identifier ("userPassword", "dbPwd");
  // after an upper-case letter it is one word ("XPASSWORD", "BYPASS").
  if (isUpper(prev) || ((isLower(prev) || isDigit(prev)) && !isUpper(text.charCodeAt(k)))) return -1;
  let j = k - 1;
  const stop = Math.max(0, k - 64);
  while (j > stop && ident(text.charCodeAt(j - 1))) j--;
  // An identifier starts with a letter or underscore; ".password" alone (a file suffix) is no key.
  const c0 = text.charCodeAt(j);
  return isAlnum(c0) || c0 === 95 ? j : -1;
}

function valueEnd(text: string, v: number): number {
  const q = text.charCodeAt(v);
  if (q === 34 || q === 39) {
    for (let j = v + 1; j < text.length && j <= v + MAX_VALUE; j++) {
      const c = text.charCodeAt(j);
      if (c === q) return j + 1;
      if (c === 10 || c === 13 || c === 0) return -1;
    }
    return -1;
  }
  let j = v;
  const stop = Math.min(text.length, v + MAX_VALUE);
  while (j < stop) {
    const c = text.charCodeAt(j);
    if (c <= 32 || c === 38 || c === 59 || c === 44 || c === 34 || c === 39 || c > 126) break;
    j++;
  }
  return j === stop && j < text.length ? -1 : j;
}

/** "Authorization: Basic <base64 of user:pass>" whose ':' is at p; the header name is matched in any case. */
function basicAuth(text: string, p: number): Hit | undefined {
  const start = p - HEADER.length;
  if (start < 0) return undefined;
  for (let i = 0; i < HEADER.length; i++) if ((text.charCodeAt(start + i) | 0x20) !== HEADER.charCodeAt(i)) return undefined;
  BASIC.lastIndex = p;
  const m = BASIC.exec(text);
  if (m === null) return undefined;
  const at = p + m[0].length;
  B64.lastIndex = at;
  const b = B64.exec(text);
  if (b === null) return undefined;
  const end = at + b[0].length;
  if (isB64(text.charCodeAt(end)) || text.charCodeAt(end) === 61) return undefined;
  const cred = strictBase64(b[0]);
  if (cred === undefined) return undefined;
  const s = cred.toString('latin1');
  if (s.indexOf(':') < 1 || !printableAscii(s) || s.includes('\t')) return undefined;
  return { kind: 'basic-auth', start, end };
}

export const passwordScanner: Scanner = {
  name: 'password',
  kinds: ['password-assignment', 'basic-auth'],
  description: 'password-like assignments (password=, passwd:, --pwd=, DB_PASSWORD=, …) and HTTP Basic credentials',
  scan(text, emit) {
    const hits: Hit[] = [];
    for (const sep of ['=', ':']) {
      for (let p = text.indexOf(sep); p >= 0; p = text.indexOf(sep, p + 1)) {
        // Key end: directly before the separator, or before " = " (INI style).
        let keyEnd = p;
        if (sep === '=' && text.charCodeAt(p - 1) === 32 && text.charCodeAt(p + 1) === 32) keyEnd = p - 1;
        const last = text.charCodeAt(keyEnd - 1) | 0x20; // lower-cased last letter of any key: e, d, t, s
        if (last === 110 /* n */ && sep === ':') {
          const h = basicAuth(text, p);
          if (h !== undefined) hits.push(h);
          continue;
        }
        if (last !== 101 && last !== 100 && last !== 116 && last !== 115) continue;
        const keyLen = keyBefore(text, keyEnd);
        if (keyLen === 0) continue;
        const k = keyEnd - keyLen;
        let v = p + 1;
        if (keyEnd !== p) v = p + 2;
        else if (sep === ':' && text.charCodeAt(v) === 32) v++;
        const start = identifierStart(text, k);
        if (start < 0) continue;
        const end = valueEnd(text, v);
        if (end < 0) continue;
        const quoted = text.charCodeAt(v) === 34 || text.charCodeAt(v) === 39;
        const value = quoted ? text.slice(v + 1, end - 1) : text.slice(v, end);
        if (value.length < 4 || PLACEHOLDER.test(value) || /\s/.test(value)) continue;
        hits.push({ kind: 'password-assignment', start, end });
        p = end - 1;
      }
    }
    // One pass per separator can find a second "key:value" inside the value of the first; keep the outer one.
    hits.sort((a, b) => a.start - b.start || b.end - a.end);
    let reached = -1;
    for (const h of hits) {
      if (h.start < reached) continue;
      emit(h.kind, h.start, h.end);
      reached = h.end;
    }
  },
};
