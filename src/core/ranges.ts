/**
 * Physical address ranges. Internally always half-open [start, end) with bigint bounds; inclusive ends
 * (iomem, LiME) are converted at the parser boundary and nowhere else.
 */
export interface Range {
  readonly start: bigint;
  readonly end: bigint;
}

export function range(start: bigint, end: bigint): Range {
  if (end < start) throw new RangeError(`range end ${end} before start ${start}`);
  return { start, end };
}

/** From an inclusive [first, last] pair, as /proc/iomem and LiME write them. */
export function fromInclusive(first: bigint, last: bigint): Range {
  return range(first, last + 1n);
}

export function totalLength(rs: readonly Range[]): bigint {
  let t = 0n;
  for (const r of rs) t += r.end - r.start;
  return t;
}

/** Sort, drop empties, merge overlapping and touching ranges. */
export function normalize(rs: readonly Range[]): Range[] {
  const sorted = rs.filter((r) => r.end > r.start).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) {
      if (r.end > last.end) out[out.length - 1] = { start: last.start, end: r.end };
    } else out.push({ start: r.start, end: r.end });
  }
  return out;
}

/** Intersection of two sets of ranges (each normalised first). */
export function intersect(a: readonly Range[], b: readonly Range[]): Range[] {
  const x = normalize(a);
  const y = normalize(b);
  const out: Range[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    const p = x[i]!;
    const q = y[j]!;
    const s = p.start > q.start ? p.start : q.start;
    const e = p.end < q.end ? p.end : q.end;
    if (s < e) out.push({ start: s, end: e });
    if (p.end < q.end) i++;
    else j++;
  }
  return out;
}

/** Ranges of `a` not covered by `b`. */
export function subtract(a: readonly Range[], b: readonly Range[]): Range[] {
  const y = normalize(b);
  const out: Range[] = [];
  for (const r of normalize(a)) {
    let cur = r.start;
    for (const q of y) {
      if (q.end <= cur || q.start >= r.end) continue;
      if (q.start > cur) out.push({ start: cur, end: q.start });
      if (q.end > cur) cur = q.end;
      if (cur >= r.end) break;
    }
    if (cur < r.end) out.push({ start: cur, end: r.end });
  }
  return out;
}

/** True when ranges are sorted ascending and pairwise disjoint (touching allowed). */
export function isSortedDisjoint(rs: readonly Range[]): boolean {
  for (let i = 1; i < rs.length; i++) if (rs[i]!.start < rs[i - 1]!.end) return false;
  return rs.every((r) => r.end >= r.start);
}

/** Cut a range into pieces of at most `size` bytes (the last may be shorter). */
export function* chunks(r: Range, size: bigint): Generator<Range> {
  for (let s = r.start; s < r.end; s += size) yield { start: s, end: s + size < r.end ? s + size : r.end };
}

/** JSON-safe form used by reports and sidecar maps: hex strings, inclusive end as analysts read iomem. */
export interface RangeJson {
  start: string;
  end: string;
  length: string;
}
export function rangeToJson(r: Range): RangeJson {
  return { start: '0x' + r.start.toString(16), end: '0x' + r.end.toString(16), length: (r.end - r.start).toString() };
}
