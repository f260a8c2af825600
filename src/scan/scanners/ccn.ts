/**
 * Payment card numbers: 13–19 digits written plain or grouped by one consistent separator (a single space or a
 * single dash) in the layouts card issuers print, Luhn-valid and inside a known issuer range. bulk_extractor misses
 * the grouped forms; we accept them but only in the layouts printed on cards and receipts (LAYOUTS), so that a
 * chain of small numbers ("2024 0001 7 …") does not become a card number.
 *
 * Boundaries: the number may not touch a letter or digit on either side. A grouped number may be followed by more
 * groups with the same separator — an expiry date or CVV on a receipt ("4556 7375 8689 9855 12/27") — and is then
 * the longest printed layout in the chain (earliest first) that is Luhn-valid in an issuer range; a space-grouped
 * number may also follow other numbers ("order 12 4556 …", "2024 4556 …"), a dash-grouped one may not ("12-4556-…"
 * is one longer number). Hex
 * strings and identifiers that happen to contain 16 digits are thereby ignored.
 *
 * Well-known public test numbers (PSP documentation) are reported as 'ccn-test' so a finding on a developer box is
 * not mistaken for a leaked customer card.
 */
import type { Scanner } from '../types.js';
import { isAlnum, isDigit } from './secret-common.js';

/** Printed group layouts, by group sizes joined with '-'. */
const LAYOUTS: readonly (readonly number[])[] = [[4, 4, 4, 4], [4, 6, 5], [4, 6, 4], [4, 4, 4, 4, 3], [4, 4, 5]];

/** Are sizes[f..n) a printed layout? Compared in place: a string key per candidate cost more than the rest. */
function isLayout(sizes: readonly number[], f: number, n: number): boolean {
  next: for (const l of LAYOUTS) {
    if (l.length !== n - f) continue;
    for (let i = 0; i < l.length; i++) if (sizes[f + i] !== l[i]) continue next;
    return true;
  }
  return false;
}

/** Public test numbers of card networks and PSPs (Stripe, Adyen, Braintree, PayPal, Worldpay, Authorize.net). */
export const KNOWN_TEST_CARDS: ReadonlySet<string> = new Set([
  // the corpus list (test/fixtures/scan-corpus-kinds.ts TEST_CARDS)
  '4111111111111111', '4012888888881881', '4242424242424242', '5555555555554444', '5105105105105100',
  '378282246310005', '371449635398431', '6011111111111117', '6011000990139424', '2223003122003222',
  // Stripe
  '4000056655665556', '5200828282828210', '6011981111111113',
  '3056930009020004', '36227206271667', '3566002020360505', '6200000000000005', '4000002500003155',
  '4000000000003220', '4000000000009995', '4000000000000002', '4000000000000077', '4000000000000341',
  '4000000000000101', '4000000000000069', '4000000000000127', '4000000000000119',
  '4000000760000002', '4000001240000000', '4000004840008001', '2223000048400011',
  // Adyen / Braintree / PayPal / Worldpay / Authorize.net
  '4005519200000004', '4009348888881881', '4012000033330026', '4012000077777777', '4217651111111119',
  '4500600000000061', '4222222222222', '4007000000027', '4012888818888', '4917610000000000',
  '4444333322221111', '4988438843884305', '5454545454545454', '5424000000000015', '5499740000000057',
  '2222400070000005', '2223520443560010', '371111111111114', '370000000000002', '378734493671000',
  '6011000991300009', '6011601160116611', '6445644564456445', '3530111333300000', '3566111111111113',
  '3528000700000000', '30569309025904', '38520000023237', '36006666333344', '36700102000000',
  '6250941006528599', '6759649826438453', '6799990100000000019', '5019717010103742',
]);

function luhn(d: string): boolean {
  let sum = 0;
  let dbl = false;
  for (let i = d.length - 1; i >= 0; i--) {
    let v = d.charCodeAt(i) - 48;
    if (dbl) v = v > 4 ? v * 2 - 9 : v * 2;
    sum += v;
    dbl = !dbl;
  }
  return sum % 10 === 0;
}

/** Issuer identification: does the prefix belong to a network that issues this length? */
export function issuerValid(d: string): boolean {
  const n = d.length;
  const p2 = Number(d.slice(0, 2));
  const p3 = Number(d.slice(0, 3));
  const p4 = Number(d.slice(0, 4));
  const p6 = Number(d.slice(0, 6));
  switch (d.charCodeAt(0) - 48) {
    case 4: // Visa (also Visa Electron, same lengths)
      return n === 13 || n === 16 || n === 19;
    case 5:
      if (p2 >= 51 && p2 <= 55) return n === 16; // Mastercard
      if (p4 === 5018 || p4 === 5020 || p4 === 5038 || p4 === 5893 || p4 === 5019) return n >= 12 && n <= 19; // Maestro, Dankort
      return false;
    case 2:
      if (p4 >= 2221 && p4 <= 2720) return n === 16; // Mastercard 2-series
      if (p4 >= 2200 && p4 <= 2204) return n >= 16 && n <= 19; // Mir
      return false;
    case 3:
      if (p2 === 34 || p2 === 37) return n === 15; // Amex
      if (p4 >= 3528 && p4 <= 3589) return n >= 16 && n <= 19; // JCB
      if ((p3 >= 300 && p3 <= 305) || p4 === 3095 || p2 === 36 || p2 === 38 || p2 === 39) return n >= 14 && n <= 19; // Diners
      return false;
    case 6:
      if (p4 === 6011 || (p3 >= 644 && p3 <= 649) || p2 === 65) return n >= 16 && n <= 19; // Discover
      if (p6 >= 622126 && p6 <= 622925) return n >= 16 && n <= 19; // Discover/UnionPay co-brand
      if (p2 === 62) return n >= 16 && n <= 19; // UnionPay
      if (p4 === 6304 || p4 === 6759 || p4 === 6761 || p4 === 6762 || p4 === 6763 || p4 === 6799) return n >= 12 && n <= 19; // Maestro
      return false;
    default:
      return false;
  }
}

function allSame(d: string): boolean {
  for (let i = 1; i < d.length; i++) if (d.charCodeAt(i) !== d.charCodeAt(0)) return false;
  return true;
}

/** Why a digit string is or is not a card: undefined = not a card, else the kind to report. */
export function classifyCard(d: string): 'ccn' | 'ccn-test' | undefined {
  if (d.length < 13 || d.length > 19 || allSame(d) || !issuerValid(d) || !luhn(d)) return undefined;
  return KNOWN_TEST_CARDS.has(d) ? 'ccn-test' : 'ccn';
}

const MAX_GROUPS = 6;

export const ccnScanner: Scanner = {
  name: 'ccn',
  kinds: ['ccn', 'ccn-test'],
  description: 'payment card numbers (Luhn, issuer ranges; plain or grouped by spaces/dashes); public test numbers as ccn-test',
  scan(text, emit) {
    // Native pre-scan for what every card starts with: 13 digits, or 4 digits and a separator before a digit.
    // Most digit runs in text (times, pids, counters) fail it without a round trip to JS.
    // No open-ended repeat: irregexp keeps one backtrack entry per character it repeats, so "[0-9]{9,}" over a
    // multi-MiB digit run overflows its stack. The rest of a plain run is walked below instead.
    const re = /[0-9]{4}(?:[0-9]{9}|[ -][0-9])/g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      const start = m.index;
      const grouped = m[0].length === 6;
      let end = start + 4;
      if (!grouped) {
        end = start + 13;
        while (isDigit(text.charCodeAt(end))) end++;
        // Skip the whole run at once, so a long run costs one match, not one per 13 digits.
        re.lastIndex = end;
      }
      const prev = text.charCodeAt(start - 1);
      // A match inside a longer run (its tail group before a separator) is not where a number starts.
      if (isAlnum(prev)) continue;
      re.lastIndex = end;
      const sep = text.charCodeAt(end);
      if (grouped) {
        let digits = m[0].slice(0, 4);
        // Dash-grouped numbers glued to a digit group before them read as one longer number; with spaces the
        // number before is ordinary prose ("order 12 4556 7375 8689 9855").
        if (prev === 45 && sep === 45 && isDigit(text.charCodeAt(start - 2))) continue;
        const sizes = [4];
        const ends = [end];
        let j = end;
        while (text.charCodeAt(j) === sep && isDigit(text.charCodeAt(j + 1)) && sizes.length <= MAX_GROUPS) {
          let k = j + 1;
          while (isDigit(text.charCodeAt(k)) && k - j <= 8) k++;
          sizes.push(k - j - 1);
          ends.push(k);
          digits += text.slice(j + 1, k);
          j = k;
        }
        re.lastIndex = j;
        let kind = isLayout(sizes, 0, sizes.length) && !isAlnum(text.charCodeAt(j)) ? classifyCard(digits) : undefined;
        let from = start;
        if (kind === undefined) {
          // An expiry date or CVV written after the card ("4556 7375 8689 9855 12/27", "… 9855 123") or a number
          // before it ("order 2024 4556 …") extends the chain; the card is the longest printed layout inside it
          // that is a valid card, earliest first. Only spaces separate prose numbers; a dash chain is one number.
          const lastFirst = sep === 32 ? sizes.length - 3 : 0;
          search: for (let f = 0; f <= lastFirst; f++) {
            for (let n = sizes.length - (f === 0 ? 1 : 0); n >= f + 3; n--) {
              if (!isLayout(sizes, f, n)) continue;
              const s0 = f === 0 ? start : (ends[f - 1] ?? 0) + 1;
              const e = ends[n - 1] ?? 0;
              kind = classifyCard(text.slice(s0, e).replaceAll(String.fromCharCode(sep), ''));
              if (kind !== undefined) {
                from = s0;
                j = e;
                break search;
              }
            }
          }
        }
        if (kind !== undefined) emit(kind, from, j);
        continue;
      }
      if (end - start > 19 || isAlnum(text.charCodeAt(end))) continue;
      // Plain digits glued by a dash to more digits ("1234-4111111111111111") read as one longer number.
      // A space before is ordinary prose ("order 12 4111…"), a dash is not.
      if (prev === 45 && isDigit(text.charCodeAt(start - 2))) continue;
      const digits = text.slice(start, end);
      const kind = classifyCard(digits);
      if (kind !== undefined) emit(kind, start, end);
    }
  },
};
