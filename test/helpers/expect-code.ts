import assert from 'node:assert/strict';
import { MemdumpError } from '../../src/core/errors.js';

function check(e: unknown, code: string, offset?: bigint): MemdumpError {
  assert.ok(e instanceof MemdumpError, `expected MemdumpError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (offset !== undefined) assert.equal(e.details['offset'], '0x' + offset.toString(16), e.message);
  return e;
}

/** `fn` must throw a MemdumpError with this code (and, if given, this file offset in details.offset). */
export function expectCode(fn: () => unknown, code: string, offset?: bigint): MemdumpError {
  try {
    fn();
  } catch (e) {
    return check(e, code, offset);
  }
  assert.fail(`expected ${code}`);
}

/** The same for a promise. */
export async function expectCodeAsync(p: Promise<unknown>, code: string, offset?: bigint): Promise<MemdumpError> {
  try {
    await p;
  } catch (e) {
    return check(e, code, offset);
  }
  assert.fail(`expected ${code}`);
}
