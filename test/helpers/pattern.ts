/**
 * Host-side twin of test/helpers/pattern.c: generates and finds the pages the
 * in-guest `pattern` helper writes, so a dump can be checked page by page.
 *
 * Page layout (4096 bytes):
 *   0..15   "MEMDUMP-PATTERN\0"
 *   16..23  seed, u64 LE
 *   24..31  page index, u64 LE
 *   32..    508 u64 LE words of splitmix64, state starting at (seed ^ index)
 */

export const PATTERN_PAGE_SIZE = 4096;
export const PATTERN_MAGIC: Buffer = Buffer.from('MEMDUMP-PATTERN\0', 'latin1');

const MASK64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;
const MUL1 = 0xbf58476d1ce4e5b9n;
const MUL2 = 0x94d049bb133111ebn;

/** The exact 4096 bytes the guest helper writes for (seed, index). */
export function patternPage(seed: bigint, index: bigint): Buffer {
  const s = BigInt.asUintN(64, seed);
  const i = BigInt.asUintN(64, index);
  const page = Buffer.alloc(PATTERN_PAGE_SIZE);
  PATTERN_MAGIC.copy(page, 0);
  page.writeBigUInt64LE(s, 16);
  page.writeBigUInt64LE(i, 24);
  let state = s ^ i;
  for (let off = 32; off < PATTERN_PAGE_SIZE; off += 8) {
    state = (state + GOLDEN) & MASK64;
    let z = state;
    z = ((z ^ (z >> 30n)) * MUL1) & MASK64;
    z = ((z ^ (z >> 27n)) * MUL2) & MASK64;
    z ^= z >> 31n;
    page.writeBigUInt64LE(z, off);
  }
  return page;
}

/**
 * Offsets (multiples of 4096 from the start of `buf`) holding a page header
 * with the magic and `seed`. Only the 32-byte header is checked; compare the
 * whole page with patternPage() to confirm a hit. A partial trailing page is
 * matched when its header is present.
 */
export function findPatternPages(buf: Buffer, seed: bigint): Array<{ offset: number; index: bigint }> {
  const s = BigInt.asUintN(64, seed);
  const hits: Array<{ offset: number; index: bigint }> = [];
  for (let off = 0; off + 32 <= buf.length; off += PATTERN_PAGE_SIZE) {
    // Cheap first-byte filter before the full comparison.
    if (buf[off] !== 0x4d) continue;
    if (buf.compare(PATTERN_MAGIC, 0, 16, off, off + 16) !== 0) continue;
    if (buf.readBigUInt64LE(off + 16) !== s) continue;
    hits.push({ offset: off, index: buf.readBigUInt64LE(off + 24) });
  }
  return hits;
}

/**
 * Guest shell lines that start the `pattern` helper in the background and wait (up to 60 s) until it has
 * planted its pages and written READYFILE (and READYFILE.pfns).
 */
export function startPatternScript(seed: bigint, pages: number, readyFile: string): string {
  return `/bin/pattern ${seed} ${pages} ${readyFile} &
i=0
while [ ! -f ${readyFile} ]; do
  i=$((i + 1))
  if [ $i -gt 600 ]; then echo "pattern helper not ready after 60 s"; exit 3; fi
  usleep 100000
done
`;
}
