import { MemdumpError } from '../core/errors.js';
import { type Range, fromInclusive, normalize } from '../core/ranges.js';

export interface IomemEntry {
  depth: number;
  range: Range;
  name: string;
}

const LINE = /^( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$/;
/** A cap so that a hostile or runaway file cannot make the parser hold unbounded entries. */
export const MAX_IOMEM_LINES = 1 << 16;

/** Parse /proc/iomem. Ends are inclusive in the file and exclusive here (AVML's off-by-one is not repeated). */
export function parseIomem(text: string): IomemEntry[] {
  const out: IomemEntry[] = [];
  // captures copied through other systems may carry CRLF line ends
  const lines = text.split(/\r?\n/);
  if (lines.length > MAX_IOMEM_LINES) throw new MemdumpError('E_TOO_LARGE', `/proc/iomem has more than ${MAX_IOMEM_LINES} lines`);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const m = LINE.exec(line);
    if (!m) throw new MemdumpError('E_CORRUPT', `iomem line ${i + 1} is not "start-end : name": ${JSON.stringify(line.slice(0, 80))}`, { details: { line: i + 1 } });
    const first = BigInt('0x' + m[2]!);
    const last = BigInt('0x' + m[3]!);
    if (last < first) throw new MemdumpError('E_CORRUPT', `iomem line ${i + 1}: end before start`, { details: { line: i + 1 } });
    out.push({ depth: Math.floor(m[1]!.length / 2), range: fromInclusive(first, last), name: m[4]!.trim() });
  });
  return out;
}

/**
 * RAM = every "System RAM" entry at any depth (nested "System RAM (virtio_mem)" / "(kmem)" included),
 * merged. Throws E_IOMEM_HIDDEN when the kernel zeroed the addresses (non-root reader).
 */
export function ramRanges(entries: readonly IomemEntry[]): Range[] {
  if (entries.length > 0 && entries.every((e) => e.range.start === 0n && e.range.end === 1n)) {
    throw new MemdumpError('E_IOMEM_HIDDEN', '/proc/iomem shows only zero addresses: the kernel hides them from non-root readers; run as root', {});
  }
  const ram = normalize(entries.filter((e) => /^System RAM\b/.test(e.name)).map((e) => e.range));
  if (ram.length === 0) throw new MemdumpError('E_NO_SOURCE', '/proc/iomem lists no "System RAM" ranges');
  return ram;
}

/** Kernel image ranges ("Kernel code", "Kernel rodata", ...) for the report and for checking acquisitions. */
export function kernelRanges(entries: readonly IomemEntry[]): { name: string; range: Range }[] {
  return entries.filter((e) => /^Kernel /.test(e.name)).map((e) => ({ name: e.name, range: e.range }));
}
