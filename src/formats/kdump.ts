import { MemdumpError } from '../core/errors.js';
import type { FormatReader } from './types.js';

/** Placeholder until the reader lands: detects nothing. */
export const kdump: FormatReader = {
  name: 'kdump',
  description: 'makedumpfile / QEMU kdump-compressed dump (diskdump, flattened or not; zlib, lzo, snappy, zstd pages)',
  detect: () => false,
  open: async () => {
    throw new MemdumpError('E_UNSUPPORTED', 'kdump reader not built yet');
  },
};
