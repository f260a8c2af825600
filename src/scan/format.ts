/**
 * Feature-file text, in the spirit of bulk_extractor: `path<TAB>feature<TAB>context`, where the context is the
 * feature with up to CONTEXT characters either side. Any byte outside printable ASCII, and the backslash, is
 * written \xHH so a line is always one line and a tab always a separator.
 */

export const CONTEXT = 16;

const HEX = '0123456789ABCDEF';

export function escapeFeature(s: string): string {
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x5c) {
      plain = false;
      break;
    }
  }
  if (plain) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x5c) {
      if (c > 0xff) out += `\\u${c.toString(16).toUpperCase().padStart(4, '0')}`;
      else out += `\\x${HEX[c >> 4]}${HEX[c & 15]}`;
    } else out += s[i];
  }
  return out;
}

export function unescapeFeature(s: string): string {
  return s.replace(/\\x([0-9A-Fa-f]{2})|\\u([0-9A-Fa-f]{4})/g, (_m, x: string | undefined, u: string | undefined) => String.fromCharCode(parseInt((x ?? u) as string, 16)));
}

/** How the first component of a path is written: a file offset in decimal (as bulk_extractor does), an address in hex. */
export type Addressing = 'file' | 'physical' | 'virtual';

export function formatAddress(a: bigint, addressing: Addressing): string {
  return addressing === 'file' ? a.toString(10) : `0x${a.toString(16)}`;
}

/** Parse a path's first component back to a bigint: "1234" or "0x4d2". */
export function parseAddress(p: string): bigint {
  const head = p.split('-', 1)[0] ?? '';
  if (!/^(?:0x[0-9a-fA-F]+|[0-9]+)$/.test(head)) throw new Error(`not a scan path: ${p}`);
  return BigInt(head);
}
