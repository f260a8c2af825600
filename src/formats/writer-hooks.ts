import type { ContainerWriter, FormatSpec } from './types.js';

export interface WriterHooks {
  /** Runs before the container's end(); if it throws, the container is not finished and the copy is INCOMPLETE. */
  beforeEnd?: () => Promise<void>;
  /** Runs after end() resolved. */
  afterEnd?: () => void;
  /** Runs before abort(); errors are ignored (the copy is failing already). */
  beforeAbort?: () => Promise<void>;
}

/**
 * The same format whose writers wait for something outside the container before finishing or abandoning it (the
 * guest's state settled, a spool's read-back check passed); every other call and optional facet passes through.
 */
export function withWriterHooks(format: FormatSpec, hooks: WriterHooks): FormatSpec {
  return {
    ...format,
    createWriter(out, plan) {
      const w = format.createWriter(out, plan);
      const wrapped: ContainerWriter = {
        begin: () => w.begin(),
        beginRange: (r) => w.beginRange(r),
        data: (c) => w.data(c),
        endRange: () => w.endRange(),
        end: async () => {
          await hooks.beforeEnd?.();
          await w.end();
          hooks.afterEnd?.();
        },
        abort: async () => {
          await hooks.beforeAbort?.().catch(() => undefined);
          await w.abort?.();
        },
      };
      if (w.badBytes) wrapped.badBytes = (a, l) => w.badBytes!(a, l);
      if (w.mediaWritten) wrapped.mediaWritten = () => w.mediaWritten!();
      if (w.summary) wrapped.summary = () => w.summary!();
      return wrapped;
    },
  };
}
