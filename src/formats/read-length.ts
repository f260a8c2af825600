import { MemdumpError } from '../core/errors.js';

/** Largest single MemoryImage.read (callers read a few MiB at a time; the pipeline's chunks are at most 256 MiB). */
export const MAX_READ = 1 << 30;

/** A read length a reader will allocate for: a whole number in 0..MAX_READ, else E_CORRUPT (a caller bug or a lying map). */
export function checkReadLength(what: string, length: number): void {
  if (!Number.isSafeInteger(length) || length < 0 || length > MAX_READ) {
    throw new MemdumpError('E_CORRUPT', `${what}: bad read length ${length} (0..${MAX_READ})`, { details: { length: String(length) } });
  }
}
