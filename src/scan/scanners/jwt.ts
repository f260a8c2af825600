/**
 * JSON Web Tokens in compact JWS form: header.payload.signature, three base64url segments. Every real header starts
 * with '{"', which base64url-encodes to "eyJ", so that literal is the anchor; the header must decode to a JSON
 * object with a string "alg" and the payload to a JSON object, which rules out random base64url that happens to
 * start with "eyJ" and headers cut mid-object.
 *
 * Unsecured tokens (alg "none", RFC 7519 §6) have an empty third segment; they are not reported, because without a
 * signature there is no delimiter that tells where the token ends and nothing secret in it. A fourth '.' segment
 * (JWE has five) means it is not a JWS: nothing is reported.
 */
import type { Scanner } from '../types.js';
import { isB64Url } from './secret-common.js';

/** Segment caps: a header is small; payloads and RSA-8192 signatures fit with room. */
const SEGMENT = /eyJ[A-Za-z0-9_-]{1,2048}\.[A-Za-z0-9_-]{2,8192}\.[A-Za-z0-9_-]{1,4096}/y;

function jsonObject(seg: string): Record<string, unknown> | undefined {
  if (seg.length % 4 === 1) return undefined; // no base64 encoding has this length
  const s = Buffer.from(seg, 'base64url').toString('utf8');
  if (s.charCodeAt(0) !== 123 /* { */) return undefined;
  try {
    const v: unknown = JSON.parse(s);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export const jwtScanner: Scanner = {
  name: 'jwt',
  kinds: ['jwt'],
  description: 'JSON Web Tokens (signed, three base64url segments; header with "alg" and payload decode to JSON objects)',
  scan(text, emit) {
    for (let i = text.indexOf('eyJ'); i >= 0; i = text.indexOf('eyJ', i + 3)) {
      if (isB64Url(text.charCodeAt(i - 1)) || text.charCodeAt(i - 1) === 46 /* . */) continue;
      SEGMENT.lastIndex = i;
      const m = SEGMENT.exec(text);
      if (m === null) continue;
      const end = i + m[0].length;
      const after = text.charCodeAt(end);
      if (isB64Url(after) || after === 46 || after === 61 /* = */) continue;
      const d1 = m[0].indexOf('.');
      const d2 = m[0].indexOf('.', d1 + 1);
      const header = jsonObject(m[0].slice(0, d1));
      if (header === undefined || typeof header['alg'] !== 'string' || header['alg'] === 'none') continue;
      if (jsonObject(m[0].slice(d1 + 1, d2)) === undefined) continue;
      emit('jwt', i, end);
      i = end - 3;
    }
  },
};
