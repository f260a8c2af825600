/**
 * Character tables and host-name rules shared by the network scanners (email, url, domain, ipv4, ipv6, mac,
 * phone). Everything works on char codes so a scanner can validate around its anchor without allocating a
 * substring for every candidate; a table lookup is cheaper than a chain of range comparisons in the hot loops.
 */

export const C_DIGIT = 1;
export const C_HEX = 2;
export const C_ALPHA = 4;
/** A host-name label character: [A-Za-z0-9-]. */
export const C_LABEL = 8;
/** An e-mail local-part character: [A-Za-z0-9._%+-]. */
export const C_LOCAL = 16;
/** A character that may appear unescaped in a URL (RFC 3986 unreserved, reserved and '%'). */
export const C_URL = 32;
/** A word character [A-Za-z0-9_]: a feature that touches one of these is part of a longer token. */
export const C_WORD = 64;

const TABLE = new Uint8Array(128);
for (let c = 48; c <= 57; c++) TABLE[c] = C_DIGIT | C_HEX | C_LABEL | C_LOCAL | C_URL | C_WORD;
for (let c = 65; c <= 90; c++) TABLE[c] = C_ALPHA | C_LABEL | C_LOCAL | C_URL | C_WORD | (c <= 70 ? C_HEX : 0);
for (let c = 97; c <= 122; c++) TABLE[c] = C_ALPHA | C_LABEL | C_LOCAL | C_URL | C_WORD | (c <= 102 ? C_HEX : 0);
for (const ch of "-._~:/?#[]@!$&'()*+,;=%") TABLE[ch.charCodeAt(0)]! |= C_URL;
for (const ch of '._%+-') TABLE[ch.charCodeAt(0)]! |= C_LOCAL;
TABLE[45]! |= C_LABEL;
TABLE[95]! |= C_WORD;

/** Class bits of a char code; NaN (outside the text) and non-ASCII have none. */
export function cls(c: number): number {
  return c < 128 ? (TABLE[c] ?? 0) : 0;
}

const words = (s: string): Set<string> => new Set(s.split(/\s+/).filter((w) => w !== ''));

/**
 * Every delegated two-letter country-code TLD (ISO 3166-1 alpha-2 plus uk, eu, ac, su). A bare "any two letters"
 * rule would let random text through: about a third of all letter pairs are not delegated.
 */
const CC_TLDS = words(`
  ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bm bn bo br bs bt bw by bz
  ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg er es et eu
  fi fj fk fm fo fr ga gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu
  id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly
  ma mc md me mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om
  pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sk sl sm sn so sr ss st
  su sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug uk us uy uz va vc ve vg vi vn vu
  wf ws ye yt za zm zw`);

/**
 * The generic TLDs that carry most real traffic. A compact list rather than all ~1,200 delegated gTLDs: most new
 * gTLDs are English words (".world", ".zip", ".mov") that would turn every "file.word" in a dump into a domain.
 */
const G_TLDS = words(`
  com org net edu gov mil int info biz name pro mobi aero asia coop jobs museum tel travel cat post
  app dev cloud online site xyz top shop store tech club live blog news email ltd group space website page
  link life world today company network systems solutions agency digital media host services support global
  berlin london paris tokyo nyc`);

/**
 * TLDs that are also common file extensions (".sh" Saint Helena, ".py" Paraguay, ".so" Somalia, ".rs" Serbia,
 * ".md" Moldova, ".pl" Poland, "Makefile.in"/".am"/"configure.ac", ".info" manuals, ...). A dump is full of file
 * names and almost never holds a bare two-label host under these, so "name.ext" with one of them is not a domain;
 * "www.example.sh" (three labels or more) still is, and e-mail and URL hosts are not affected.
 */
const FILE_LIKE_TLDS = words(`
  sh py so rs md pl pm cc ps mk ml am ac in ws la mo tk tf sv mm ls gd cr gs st sc do
  info app zip mov`);

/**
 * Labels that end a file name when a file-like TLD follows them ("fonts.conf.in", "config.h.in",
 * "Makefile.in.in", "fontconfig.pc.in"): autoconf templates and their kin have three labels, so the two-label
 * filter alone misses them.
 */
const FILE_EXTENSIONS = words(`
  in am ac h c cc cpp hpp pc spec def sgml mak conf cfg ini txt js json xml html htm tmpl sh py so a o d
  gz bz2 xz tar zip pl pm rb md rst`);

/**
 * TLDs that are also everyday property and method names in code ("node.name", "this.host", "e.target.id",
 * "this.logger.info", "i32.store", "HH.mm.ss", "window.top"): in the memory of any JavaScript, Python or Go
 * process, a stand-alone name under one of these is an expression 80% of the time or more. Such a name is a
 * domain only when it starts with a label hosts are conventionally given (www, mail, api...) or when it is the
 * host of an e-mail address or URL.
 */
const CODE_TLDS = words('name host id info int post link top ne ge ki ss store dev group global page email');

/** First labels that real host names start with (and that code almost never uses as a variable). */
const HOST_LABELS = words(`
  www www1 www2 www3 mail mail2 smtp imap pop pop3 mx mx1 mx2 ns ns1 ns2 ns3 ns4 dns api cdn ftp vpn portal git
  auth web m blog docs download downloads static img images media shop store news forum wiki login sso
  secure remote gw gateway proxy`);

/**
 * Labels that mark a dotted JavaScript or Java expression ("String.prototype.at", "this.top", "self.name",
 * "window.location.host"), never a host.
 */
const CODE_LABELS = words('this self prototype window document module exports props state globalThis process');

/**
 * Second-level labels that registries sell under (co.uk, com.au, ac.jp...): "co.uk" on its own is a public
 * suffix, not a host anyone can own, so it is never reported alone.
 */
const SECOND_LEVEL = words('co com net org gov edu ac ne or go gob nic ltd plc sch mil');

/** The TLD in lower case if it is all-lower or all-upper ASCII letters, else undefined (mixed case is noise). */
function tldCase(tld: string): string | undefined {
  const low = tld.toLowerCase();
  return tld === low || tld === tld.toUpperCase() ? low : undefined;
}

export function isKnownTld(tld: string): boolean {
  const t = tldCase(tld);
  return t !== undefined && (CC_TLDS.has(t) || G_TLDS.has(t));
}

export function isFileLikeTld(tld: string): boolean {
  return FILE_LIKE_TLDS.has(tld.toLowerCase());
}

export function isFileExtension(label: string): boolean {
  return FILE_EXTENSIONS.has(label.toLowerCase());
}

export function isCodeTld(tld: string): boolean {
  return CODE_TLDS.has(tld.toLowerCase());
}

export function isHostLabel(label: string): boolean {
  return HOST_LABELS.has(label.toLowerCase());
}

/** WebAssembly value types as they prefix opcode names ("i32.store", "f32x4.lt", "v128.load"). */
const WASM_TYPE = /^[fiv](8|16|32|64|128)(x[0-9]+)?$/;

export function isCodeLabel(label: string): boolean {
  return CODE_LABELS.has(label) || WASM_TYPE.test(label);
}

export interface HostCheck {
  /** Require the TLD to be in the built-in list; otherwise any 2–63 letter TLD is accepted (URL hosts). */
  knownTld: boolean;
  /** Also accept a capitalised TLD ("Obsidian.Systems"), as people write the domains of their addresses. */
  capitalisedTld?: boolean;
  /** Allow '_' inside labels other than the TLD: not valid in host names, but used in URLs ("my_svc.acme.com"). */
  underscore?: boolean;
}

function capitalised(w: string): boolean {
  const c = w.charCodeAt(0);
  return c >= 65 && c <= 90 && w.slice(1) === w.slice(1).toLowerCase();
}

/**
 * Number of labels if text[start, end) is a syntactically valid dotted host name with at least two labels, a
 * letters-only TLD and not just a public suffix; 0 otherwise. Labels are 1–63 [A-Za-z0-9-] characters that do not
 * start or end with '-', the whole name at most 253 characters (RFC 1035 limits).
 */
export function hostLabels(text: string, start: number, end: number, opt: HostCheck): number {
  if (end - start > 253 || end - start < 4) return 0;
  let labels = 0;
  let ls = start;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : 46;
    if (c === 46) {
      const n = i - ls;
      if (n < 1 || n > 63) return 0;
      if (text.charCodeAt(ls) === 45 || text.charCodeAt(i - 1) === 45) return 0;
      labels++;
      ls = i + 1;
    } else if ((cls(c) & C_LABEL) === 0 && !(c === 95 && opt.underscore === true)) return 0;
  }
  if (labels < 2) return 0;
  const lastDot = text.lastIndexOf('.', end - 1);
  if (lastDot < start) return 0;
  const tld = text.slice(lastDot + 1, end);
  if (tld.length < 2) return 0;
  for (let i = 0; i < tld.length; i++) if ((cls(tld.charCodeAt(i)) & C_ALPHA) === 0) return 0;
  const t = opt.capitalisedTld === true && capitalised(tld) ? tld.toLowerCase() : tld;
  if (opt.knownTld ? !isKnownTld(t) : tldCase(t) === undefined) return 0;
  if (labels === 2 && SECOND_LEVEL.has(text.slice(start, lastDot).toLowerCase())) return 0;
  return labels;
}

/** True if text[start, end) is exactly a dotted quad, each octet 0–255 without leading zeros. */
export function isIPv4(text: string, start: number, end: number): boolean {
  let parts = 0;
  let value = 0;
  let digits = 0;
  let lead0 = false;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || value > 255 || (lead0 && digits > 1)) return false;
      parts++;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 0) lead0 = c === 48;
      if (++digits > 3) return false;
      value = value * 10 + (c - 48);
    } else return false;
  }
  return parts === 4;
}

/**
 * The maximal run [s, e) of characters satisfying `inRun` around text[at] (which itself is assumed to be in the
 * run: the scanners call it on an anchor such as '.'). Scanners that judge a whole token, never a window of it,
 * start here so "10.0.19045.1234" or "libssl.so.3" is seen in one piece.
 */
export function runAround(text: string, at: number, inRun: (c: number) => boolean): [number, number] {
  let s = at;
  while (s > 0 && inRun(text.charCodeAt(s - 1))) s--;
  let e = at + 1;
  const n = text.length;
  while (e < n && inRun(text.charCodeAt(e))) e++;
  return [s, e];
}
