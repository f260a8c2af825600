/**
 * Credentials in clear text (password-assignment): a password-like key (password, passwd, passphrase, pwd,
 *    pass, secret — alone or as the last part of an identifier: db_password, MYSQL_PWD, PGPASSWORD, userPassword,
 *    client.secret) and a value of at least 4 non-space characters, in the forms
 *      key=value, key = value, key:value, key: value           (config, env, URL queries, YAML, command lines)
 *      "key": "value", 'key': 'value', "key" : "value"         (JSON, JS and Python literals; value quoted)
 *      \"key\":\"value\"                                        (JSON inside a JSON or JS string)
 *      'key' => 'value', key => "value"                        (PHP, Perl, Ruby; value quoted)
 *      <key>value</key>                                        (XML config)
 *    Feature = the text as found from the key (or the key's opening quote, or the opening tag) through the value
 *    (its closing quote, or the closing tag). Where the key starts: "--password=x" gives "password=x",
 *    "db_password=x" gives itself. An unquoted value ends at whitespace, a line end or one of `&;,"'`.
 *    Not reported, because real memory is full of them (measured on node heaps, node_modules and changelogs):
 *    placeholders (***, <redacted>, %s, ${VAR}, $VAR, `cmd`, {{x}}, null, …); the shell's PWD/OLDPWD and
 *    pwd=<path>; code — unquoted values that are calls ("toUint8Array(secret)"), member paths
 *    ("request.password", "config.sub"), identifiers built on a key word ("DEFAULT_SECRET"), CONSTANT_NAMES,
 *    type words ("string", "bool"), values starting with '=' ("password==confirm"), keys named by a verb
 *    ("computeSecret", "getPassword"), unquoted values holding brackets ("None)", "<span", "params["),
 *    "x.password = y" and "password = word" (lower-case letters only) as written in source code; templates
 *    and masks ("%s", "{…}", "***"); prose ("Secret: Added support …"). The price: a real unquoted password
 *    with a bracket, or an all-lower-case one written "password = word", is not reported.
 * HTTP Basic credentials are basic-auth.ts.
 */
import type { Scanner } from '../types.js';
import { type Hit, isAlnum, isDigit, isLower, isUpper } from './secret-common.js';

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
const MAX_VALUE = 256;
const PLACEHOLDER = /^(?:\*+|x{3,}|X{3,}|\.{3,}|<[^>]*>|\[[^\]]*\]|%[sdv]|\$\{[^}]*\}|\$\(?[A-Za-z_][A-Za-z0-9_]*\)?|\{\{.*\}\}|null|none|nil|true|false|undefined|redacted|hidden|masked|changeme|\.\.\.)$/i;

/**
 * Start of the identifier the key ends, or -1 if the key is part of a longer word ("bypass", "compass") or of a
 * name that is no credential ("GonePWD" in a Go string table).
 */
function identifierStart(text: string, k: number, keyLen: number): number {
  const prev = text.charCodeAt(k - 1);
  const ident = (c: number): boolean => isAlnum(c) || c === 95 || c === 46;
  if (!ident(prev)) return k;
  const k0 = text.charCodeAt(k);
  const k1 = text.charCodeAt(k + 1);
  if (isUpper(prev)) {
    // One upper-case word: only the long keys may end it, so PGPASSWORD and MYSQLPASSWORD (env names) count
    // while BYPASS, COMPASS and XPWD do not.
    if (keyLen < 6 || !isUpper(k0) || !isUpper(k1)) return -1;
  } else if (isLower(prev) || isDigit(prev)) {
    // After a lower-case letter or digit only a camelCase key continues the identifier ("userPassword", "dbPwd"),
    // not a shouted one ("GonePWD").
    if (!isUpper(k0) || isUpper(k1)) return -1;
  }
  let j = k - 1;
  const stop = Math.max(0, k - 64);
  while (j > stop && ident(text.charCodeAt(j - 1))) j--;
  // An identifier starts with a letter or underscore; ".password" alone (a file suffix) is no key.
  const c0 = text.charCodeAt(j);
  return isAlnum(c0) || c0 === 95 ? j : -1;
}

/**
 * Words before a key that make the identifier a function or flag rather than a stored secret:
 * computeSecret, getPassword, has_password, verifyPasswd, …
 */
const VERB = /(?:^|[._])(?:get|set|has|is|compute|derive|verify|check|validate|generate|gen|create|update|reset|change|hash|encrypt|decrypt|read|load|save|store|use|on|handle|require|requires|should|need|needs|show|hide|toggle|forgot|prompt|ask|enter|input|with|skip|allow|enable|disable)_?$/i;
/**
 * Is a key word one of the words of this identifier (camelCase or snake_case parts)? The value then names or
 * reads the secret ("request.password", DEFAULT_SECRET, nativeSecret). Whole parts only: a random password such
 * as "BOAbAfPWDFCG6q" merely contains the letters.
 */
const KEY_PARTS = new Set(KEYS);
function hasKeyPart(ident: string): boolean {
  for (const m of ident.matchAll(/[A-Z]?[a-z]+|[A-Z]+(?![a-z])/g)) if (KEY_PARTS.has(m[0].toLowerCase())) return true;
  return false;
}
const MEMBER_PATH = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$/;
const IDENT = /^[A-Za-z_$][\w$]*$/;
// One alternative per character class: '\*+' beside a class that also matched '*' backtracked exponentially over a
// value of stars ("password=****…*a": 2^n steps).
const TEMPLATE = /^(?:%[sdv]|[^A-Za-z0-9%])+$/;
const CONSTANT = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;
const CODE_WORD = /^(?:function|new|this|await|async|require|return|self|typeof|void|class|const|let|var|string|number|boolean|bool|bytes|str|int|float|any|list|dict|object|optional|required)$/i;

/**
 * Is this value code or prose rather than a secret? `raw` is the value as written (with quotes), `value` its
 * content, `ident` the whole key identifier.
 */
function notASecret(text: string, ident: string, key: string, value: string, quoted: boolean, sepColonSpace: boolean, spacedEquals: boolean, after: number): boolean {
  const c0 = value.charCodeAt(0);
  if (PLACEHOLDER.test(value) || CODE_WORD.test(value) || c0 === 61 /* = */ || c0 === 96 /* ` */ || c0 === 58 /* : */) return true;
  if (value.toLowerCase() === ident.toLowerCase() || value.toLowerCase() === key.toLowerCase()) return true;
  if (quoted && CONSTANT.test(value)) return true; // ENV_SECRET = "AWS_SECRET_ACCESS_KEY": a name
  // Templates and masks: '%s:%s', '{base64(...)}', f"{password!r}", ":****". Only whole-value shapes: "%" and
  // "*" are ordinary password characters ("#b%sNz4i").
  if (value.includes('{') || TEMPLATE.test(value)) return true;
  // Names rather than values, quoted or not: "challengePassword", "consumer.secret", DEFAULT_SECRET.
  if (IDENT.test(value) && hasKeyPart(value) && (value.includes('_') || /[a-z][A-Z]/.test(value))) return true;
  if (MEMBER_PATH.test(value) && hasKeyPart(value.slice(value.lastIndexOf('.') + 1))) return true;
  // "pass" (the short key, alone or camelCased: "anyPass": "overSome" in lodash) with a plain word is a flag,
  // a test runner's field or an alias, not a password.
  if (key.length === 4 && /^[A-Za-z]+$/.test(value)) return true;
  if (quoted) return false;
  // Unquoted: a call, a member path or an identifier built on a key word is code ("toUint8Array(secret)",
  // "request.password", "DEFAULT_SECRET", "nativeSecret"), not a value.
  if (/[()[\]<>{}]/.test(value) || MEMBER_PATH.test(value) || c0 === 47 /* a path */) return true;
  // Node's and V8's constant naming ("password: kEnumerableProperty" in node's own sources).
  // Whole words only: "kGXOZLJqSZt" is a random password.
  if (/^k(?:[A-Z][a-z]{2,}){2,}$/.test(value)) return true;
  // "self.password = user", "password = content": an assignment in source code, not a config line.
  if (spacedEquals && (ident.includes('.') || /^[a-z_]+$/.test(value))) return true;
  // The working directory, not a password: PWD=/tmp/x, pwd: ~/src.
  if (key.toLowerCase() === 'pwd' && (value.charCodeAt(0) === 47 || value.charCodeAt(0) === 126)) return true;
  // Prose: "Secret: Added support for …" (a changelog line), a capitalised word followed by more words.
  if (sepColonSpace && /^[A-Z][a-z]+$/.test(value) && text.charCodeAt(after) === 32 && isAlnum(text.charCodeAt(after + 1))) return true;
  return false;
}

/**
 * A stretch [from, to) of the text known to hold nothing that ends an unquoted value. Without it every anchor of
 * "pwd=pwd=pwd=…" walked the same MAX_VALUE characters again.
 */
interface Clear {
  from: number;
  to: number;
}

function valueEnd(text: string, v: number, clear: Clear): number {
  const q = text.charCodeAt(v);
  if (q === 34 || q === 39) {
    for (let j = v + 1; j < text.length && j <= v + MAX_VALUE; j++) {
      const c = text.charCodeAt(j);
      if (c === q) return j + 1;
      if (c === 10 || c === 13 || c === 0) return -1;
    }
    return -1;
  }
  const stop = Math.min(text.length, v + MAX_VALUE);
  let j = v >= clear.from && v < clear.to ? Math.min(clear.to, stop) : v;
  while (j < stop) {
    const c = text.charCodeAt(j);
    if (c <= 32 || c === 38 || c === 59 || c === 44 || c === 34 || c === 39 || c > 126) break;
    j++;
  }
  clear.from = v;
  clear.to = j;
  return j === stop && j < text.length ? -1 : j;
}

/**
 * A key/value assignment whose separator (':' or '=') is at p, or undefined. Forms: key=value, key = value,
 * key:value, key: value (unquoted key), "key": "value", 'key' => 'value', key => 'value' (quoted value).
 */
function assignment(text: string, p: number, sep: number, clear: Clear): Hit | undefined {
  const arrow = sep === 61 && text.charCodeAt(p + 1) === 62; // =>
  let keyEnd = p;
  let quote = 0;
  let spaced = false;
  if (text.charCodeAt(keyEnd - 1) === 32) {
    keyEnd--;
    spaced = true;
  }
  const q = text.charCodeAt(keyEnd - 1);
  let esc = false;
  if (q === 34 || q === 39) {
    quote = q;
    keyEnd--;
    // JSON inside a JSON or JS string (logs, configs passed as strings): {\"password\":\"x\"}.
    if (q === 34 && text.charCodeAt(keyEnd - 1) === 92) {
      esc = true;
      keyEnd--;
    }
  }
  // Unquoted keys: "=" directly or " = " (INI), ":" directly; "=>" with or without spaces.
  if (quote === 0 && spaced && !arrow && (sep === 58 || text.charCodeAt(p + 1) !== 32)) return undefined;
  if (quote !== 0 && sep === 61 && !arrow) return undefined; // "key"="x" is no common form; keeps noise down
  const last = text.charCodeAt(keyEnd - 1) | 0x20; // lower-cased last letter of any key: e, d, t, s
  if (last !== 101 && last !== 100 && last !== 116 && last !== 115) return undefined;
  const keyLen = keyBefore(text, keyEnd);
  if (keyLen === 0) return undefined;
  const k = keyEnd - keyLen;
  let v = p + (arrow ? 2 : 1);
  if (text.charCodeAt(v) === 32 && (sep === 58 || spaced || arrow || quote !== 0)) v++;
  const istart = identifierStart(text, k, keyLen);
  if (istart < 0) return undefined;
  let start = istart;
  if (quote !== 0) {
    if (text.charCodeAt(istart - 1) !== quote || (esc && text.charCodeAt(istart - 2) !== 92)) return undefined;
    start = istart - (esc ? 2 : 1);
  }
  const ident = text.slice(istart, keyEnd);
  // The shell's working directory (in every process's environment) and the sudoers tag.
  if (ident === 'PWD' || ident === 'OLDPWD' || ident === 'NOPASSWD') return undefined;
  if (VERB.test(ident.slice(0, ident.length - keyLen))) return undefined;
  if (esc) return escapedValue(text, start, ident, keyLen, v);
  const vq = text.charCodeAt(v);
  const quoted = vq === 34 || vq === 39;
  if ((quote !== 0 || arrow) && !quoted) return undefined;
  const end = valueEnd(text, v, clear);
  if (end < 0) return undefined;
  const value = quoted ? text.slice(v + 1, end - 1) : text.slice(v, end);
  if (value.length < 4 || /\s/.test(value)) return undefined;
  const key = text.slice(k, keyEnd);
  const colonSpace = sep === 58 && v === p + 2 && !spaced && quote === 0 && text.charCodeAt(k - 2) !== 45;
  if (notASecret(text, ident, key, value, quoted, colonSpace, sep === 61 && spaced && !arrow && quote === 0, end)) return undefined;
  return { kind: 'password-assignment', start, end };
}

/** The \"value\" of an escaped JSON pair whose key starts at `start`; the value is taken up to the next \". */
function escapedValue(text: string, start: number, ident: string, keyLen: number, v: number): Hit | undefined {
  if (text.charCodeAt(v) !== 92 || text.charCodeAt(v + 1) !== 34) return undefined;
  const stop = Math.min(text.length - 1, v + 2 + MAX_VALUE);
  for (let j = v + 2; j < stop; j++) {
    const c = text.charCodeAt(j);
    if (c <= 32 || c > 126) return undefined;
    if (c !== 92) continue;
    if (text.charCodeAt(j + 1) !== 34) return undefined; // another escape: leave such values alone
    const value = text.slice(v + 2, j);
    if (value.length < 4 || notASecret(text, ident, ident.slice(ident.length - keyLen), value, true, false, false, j + 2)) return undefined;
    return { kind: 'password-assignment', start, end: j + 2 };
  }
  return undefined;
}

const CLOSE_TAG = /<\/([A-Za-z_][\w.-]{0,63})>/y;

/** <password>value</password> and <db.secret>…</db.secret>, anchored on the closing tag. */
function xmlElements(text: string, hits: Hit[]): void {
  for (let c = text.indexOf('</'); c >= 0; c = text.indexOf('</', c + 2)) {
    CLOSE_TAG.lastIndex = c;
    const m = CLOSE_TAG.exec(text);
    if (m === null) continue;
    const name = m[1] ?? '';
    const keyLen = keyBefore(name, name.length);
    if (keyLen === 0) continue;
    if (identifierStart(name, name.length - keyLen, keyLen) < 0) continue;
    // The value holds no '>', so the opening tag ends at the nearest '>' before the closing one; looking back
    // at most MAX_VALUE chars keeps a text full of unmatched closing tags linear.
    const open = `<${name}>`;
    let g = c - 1;
    const stop = Math.max(0, c - MAX_VALUE - 1);
    while (g >= stop && text.charCodeAt(g) !== 62) g--;
    const o = g + 1 - open.length;
    if (g < stop || o < 0 || !text.startsWith(open, o)) continue;
    const value = text.slice(o + open.length, c);
    if (value.length < 4 || /[\s<>\0]/.test(value) || notASecret(text, name, name.slice(name.length - keyLen), value, true, false, false, c)) continue;
    hits.push({ kind: 'password-assignment', start: o, end: c + m[0].length });
  }
}

export const passwordScanner: Scanner = {
  name: 'password',
  kinds: ['password-assignment'],
  description: 'password-like assignments (password=, passwd:, --pwd=, DB_PASSWORD=, …)',
  scan(text, emit) {
    const hits: Hit[] = [];
    const clear: Clear = { from: 0, to: 0 };
    for (const sep of [61, 58]) {
      const ch = String.fromCharCode(sep);
      for (let p = text.indexOf(ch); p >= 0; p = text.indexOf(ch, p + 1)) {
        // The key's last letter, behind an optional space, quote and backslash ({\"password\" : …).
        let b = p - 1;
        if (text.charCodeAt(b) === 32) b--;
        const qc = text.charCodeAt(b);
        if (qc === 34 || qc === 39) {
          b--;
          if (text.charCodeAt(b) === 92) b--;
        }
        const last = text.charCodeAt(b) | 0x20;
        if (last !== 101 && last !== 100 && last !== 116 && last !== 115) continue;
        const h = assignment(text, p, sep, clear);
        if (h === undefined) continue;
        hits.push(h);
        p = h.end - 1;
      }
    }
    xmlElements(text, hits);
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
