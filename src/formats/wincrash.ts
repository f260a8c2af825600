import { MemdumpError } from '../core/errors.js';
import type { FormatReader } from './types.js';

/** Placeholder until the reader lands: detects nothing. */
export const wincrash: FormatReader = {
  name: 'wincrash',
  description: 'Windows crash dump (PAGEDUMP 32-bit / PAGEDU64 64-bit; full and bitmap)',
  detect: () => false,
  open: async () => {
    throw new MemdumpError('E_UNSUPPORTED', 'wincrash reader not built yet');
  },
};
