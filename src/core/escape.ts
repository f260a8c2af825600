/**
 * Strings from the examined host (paths, hostnames, process names, argv) may carry terminal escapes or bidi
 * overrides. They are escaped before they reach a terminal, a log or a report.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]/g;

export function escapeControl(s: string): string {
  return s.replace(UNSAFE, (c) => {
    if (c === '\\') return '\\\\';
    const code = c.charCodeAt(0);
    return code <= 0xff ? '\\x' + code.toString(16).padStart(2, '0') : '\\u' + code.toString(16).padStart(4, '0');
  });
}

/** Deep copy with every string escaped (object keys included). */
export function escapeDeep<T>(v: T): T {
  if (typeof v === 'string') return escapeControl(v) as T;
  if (Array.isArray(v)) return v.map(escapeDeep) as T;
  if (v && typeof v === 'object' && !(v instanceof Buffer)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[escapeControl(k)] = escapeDeep(x);
    return out as T;
  }
  return v;
}
