/**
 * The container finders `memdump scan` recurses into. The engine hands a finder one window (a Buffer, or its latin1
 * string for base64) and the half-open range [from, to) of positions it owns; bytes past `to` are there so a
 * container that starts in range can be decoded in full. A finder reports only containers whose first byte lies in
 * [from, to), so every container is reported by exactly one window.
 */
export type ContainerTag = 'GZIP' | 'ZLIB' | 'ZIP' | 'BASE64';

export interface Decoded {
  tag: ContainerTag;
  /** The container's first byte in the window: gzip magic, zlib CMF byte, zip local file header, first base64 char. */
  start: number;
  /** One past the container's last byte, or buf.length when that is unknown (cut by the window, or by the budget
   * before the end was seen). */
  end: number;
  data: Buffer;
  /** The data is a prefix (cut by the window end, a per-container or window budget, or corruption), or a gzip
   * member's CRC-32/ISIZE trailer disagrees with it. */
  truncated: boolean;
  /** Where `data` stands verbatim in the buffer (a stored zip member): its bytes are plain text there too. */
  verbatimAt?: number;
}

/** `maxOutput` caps one container; `remaining` is what is left for the whole window and finders decrement it. */
export interface DecodeBudget {
  maxOutput: number;
  remaining: number;
}

/** Bytes one container may still produce, or 0 when the window's budget is spent. */
export function capOf(budget: DecodeBudget): number {
  return Math.max(0, Math.min(budget.maxOutput, budget.remaining));
}

/** Charge decoded bytes to the window. */
export function spend(budget: DecodeBudget, n: number): void {
  budget.remaining -= n;
}

/**
 * Containers of one window in start order, without those that start inside a complete binary container found in
 * the same window: base64 text in a stored zip member is plain in the window too, and reporting it there as well
 * as under the member's path would give each of its features twice. Containers cut at the window or the budget
 * have no known end and hide nothing.
 */
export function outermost(found: readonly Decoded[]): Decoded[] {
  const sorted = [...found].sort((a, b) => a.start - b.start || b.end - a.end);
  const out: Decoded[] = [];
  let hideUntil = -1;
  for (const d of sorted) {
    if (d.start < hideUntil) continue;
    out.push(d);
    if (d.tag !== 'BASE64' && !d.truncated) hideUntil = Math.max(hideUntil, d.end);
  }
  return out;
}
