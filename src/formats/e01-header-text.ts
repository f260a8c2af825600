/**
 * EWF-E01 header and header2 sections: zlib-compressed tab-separated text (the case fields and acquisition dates),
 * and what the reader reports from them. Layout: libewf's "Expert Witness Compression Format (EWF)" document.
 */
import { inflateSync } from 'node:zlib';

/** Header text: compressed and inflated size limits (EnCase itself caps fields at a few KiB). */
export const MAX_HEADER_BYTES = 16 << 20;

export interface HeaderText {
  readonly categories: number;
  readonly crlf: boolean;
  /** The main category: identifier → value. */
  readonly values: ReadonlyMap<string, string>;
}

/** Inflate and split a header (latin1, CRLF or LF) or header2 (UTF-16 with BOM, LF) section body. */
export function parseHeaderText(b: Buffer, utf16: boolean): HeaderText {
  const raw = inflateSync(b, { maxOutputLength: MAX_HEADER_BYTES });
  let text: string;
  if (utf16) {
    if (raw.length >= 2 && raw[0] === 0xfe && raw[1] === 0xff) {
      const le = Buffer.from(raw.subarray(2, raw.length & ~1));
      le.swap16();
      text = le.toString('utf16le');
    } else text = raw.subarray(raw[0] === 0xff && raw[1] === 0xfe ? 2 : 0, raw.length & ~1).toString('utf16le');
  } else text = raw.toString('latin1');
  const lines = text.split('\n');
  const crlf = (lines[0] ?? '').endsWith('\r');
  const clean = lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (!/^\d+$/.test(clean[0] ?? '') || clean[1] !== 'main' || clean.length < 4) throw new Error('no main category');
  const keys = clean[2]!.split('\t');
  const vals = clean[3]!.split('\t');
  const values = new Map<string, string>();
  keys.forEach((k, i) => values.set(k, vals[i] ?? ''));
  return { categories: Number(clean[0]), crlf, values };
}

/** header2 and linen dates are POSIX seconds; EnCase/FTK header dates are "Y M D h m s" in the acquirer's local time. */
export function headerDate(v: string | undefined): string | null {
  if (!v) return null;
  if (/^\d{1,12}$/.test(v)) return Number(v) === 0 ? null : new Date(Number(v) * 1000).toISOString().replace('.000Z', 'Z');
  const m = /^(\d{4}) (\d{1,2}) (\d{1,2}) (\d{1,2}) (\d{1,2}) (\d{1,2})$/.exec(v);
  if (!m) return v;
  const p = (i: number) => m[i]!.padStart(2, '0');
  return `${m[1]}-${p(2)}-${p(3)}T${p(4)}:${p(5)}:${p(6)}`; // no zone: the file does not say which
}

/** The case fields an image's details report: header2's values, each falling back to header's. */
export function headerFields(ix: { readonly header: HeaderText | null; readonly header2: HeaderText | null }): Record<string, string | null> {
  const v = (ix.header2 ?? ix.header)?.values;
  const get = (k: string) => {
    const s = v?.get(k) ?? ix.header?.values.get(k);
    return s === undefined || s === '' ? null : s;
  };
  return {
    caseNumber: get('c'),
    description: get('a'),
    examiner: get('e'),
    evidenceNumber: get('n'),
    notes: get('t'),
    acquiredAt: headerDate(get('m') ?? undefined),
    systemDate: headerDate(get('u') ?? undefined),
    software: get('av'),
    os: get('ov'),
    model: get('md'),
    serialNumber: get('sn'),
  };
}
