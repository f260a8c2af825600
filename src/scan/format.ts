/**
 * Feature-file text, in the spirit of bulk_extractor: `path<TAB>feature<TAB>context`, where the context is the
 * feature with up to CONTEXT characters either side. Any byte outside printable ASCII, and the backslash, is
 * written \xHH so a line is always one line and a tab always a separator.
 */

export const CONTEXT = 16;

const HEX = '0123456789ABCDEF';

// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[^\x20-\x5b\x5d-\x7e]/g;

/*
 * One replace, not `out += c` per character: appending builds a rope of one node per character, and with 65,000
 * contexts in a dense window that rope cost 1 KB per line of live memory until it was written.
 */
export function escapeFeature(s: string): string {
  UNPRINTABLE.lastIndex = 0;
  if (!UNPRINTABLE.test(s)) return s;
  return s.replace(UNPRINTABLE, (ch) => {
    const c = ch.charCodeAt(0);
    return c > 0xff ? `\\u${c.toString(16).toUpperCase().padStart(4, '0')}` : `\\x${HEX[c >> 4]}${HEX[c & 15]}`;
  });
}

/** How the first component of a path is written: a file offset in decimal (as bulk_extractor does), an address in hex. */
export type Addressing = 'file' | 'physical' | 'virtual';

export function formatAddress(a: bigint, addressing: Addressing): string {
  return addressing === 'file' ? a.toString(10) : `0x${a.toString(16)}`;
}
