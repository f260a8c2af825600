/**
 * Phone numbers in E.164 form: '+', a country code from ITU-T E.164's assigned list, then the subscriber number,
 * all digits and 8–15 of them. Anchored on '+'. Only the compact international form is reported: national
 * formats ("(030) 1234567") are indistinguishable from every other digit group in a dump.
 *
 * Validation beyond the digit count: the country code must be assigned (about 40% of 1–3 digit prefixes are
 * not), and the North American plan (+1) must have ten digits with area code and exchange not starting with 0 or 1.
 */
import type { Scanner } from '../types.js';
import { C_ALPHA, C_WORD, cls } from './net-common.js';

const ranges = (spec: string): Set<string> => {
  const out = new Set<string>();
  for (const part of spec.split(/\s+/)) {
    if (part === '') continue;
    const [a, b] = part.split('-');
    const lo = Number(a);
    const hi = b === undefined ? lo : Number(b);
    for (let v = lo; v <= hi; v++) out.add(String(v));
  }
  return out;
};

/** ITU-T E.164 assigned country codes (and the international services 800, 808, 870, 878, 881–883, 888, 979, 991). */
const CC2 = ranges('20 27 30-34 36 39 40 41 43-49 51-58 60-66 81 82 84 86 90-95 98');
const CC3 = ranges(`
  211-213 216 218 220-229 230-239 240-249 250-258 260-269 290 291 297-299
  350-359 370-383 385-387 389 420 421 423 500-509 590-599 670 672-683 685-692
  800 808 850 852 853 855 856 870 878 880-883 886 888 960-968 970-977 979 991-996 998`);

/** Length of the country code at the start of `d`, or 0 if no assigned code starts it. */
function countryCode(d: string): number {
  const c = d.charCodeAt(0);
  if (c === 49 || c === 55) return 1; // 1 (NANP), 7 (Russia, Kazakhstan)
  if (CC2.has(d.slice(0, 2))) return 2;
  if (CC3.has(d.slice(0, 3))) return 3;
  return 0;
}

function valid(d: string): boolean {
  const cc = countryCode(d);
  if (cc === 0) return false;
  const rest = d.length - cc;
  if (rest < 7 || rest > 14) return false;
  const first = d.charCodeAt(0);
  if (first === 49) return rest === 10 && d.charCodeAt(1) >= 50 && d.charCodeAt(4) >= 50;
  if (first === 55) return rest === 10;
  // No check of the digit after the code: Italy (+39 06...) and Côte d'Ivoire (+225 07...) keep a leading 0.
  return true;
}

export const phoneScanner: Scanner = {
  name: 'phone',
  kinds: ['phone'],
  description: 'Phone numbers in E.164 form (+ country code and subscriber number, 8-15 digits)',
  scan(text, emit) {
    const n = text.length;
    let pos = 0;
    for (;;) {
      const plus = text.indexOf('+', pos);
      if (plus < 0) return;
      pos = plus + 1;
      const c1 = text.charCodeAt(plus + 1);
      if (c1 < 49 || c1 > 57) continue;
      // Glued to a word or another '+' it is an expression or base64, not a dialled number.
      const before = text.charCodeAt(plus - 1);
      // After '~' it is a Debian version ("1:10~+20191229111838+6991d").
      if ((cls(before) & C_WORD) !== 0 || before === 43 || before === 126) continue;
      let e = plus + 1;
      while (e < n && e - plus <= 16) {
        const c = text.charCodeAt(e);
        if (c < 48 || c > 57) break;
        e++;
      }
      pos = e;
      const digits = e - plus - 1;
      if (digits < 8 || digits > 15) continue;
      const after = text.charCodeAt(e);
      if ((cls(after) & (C_WORD | C_ALPHA)) !== 0 || after === 43) continue;
      // "+4930123456.78" or "+4930123456,5" is an amount, not a number.
      if ((after === 46 || after === 44) && (cls(text.charCodeAt(e + 1)) & C_WORD) !== 0) continue;
      if (valid(text.slice(plus + 1, e))) emit('phone', plus, e);
    }
  },
};
