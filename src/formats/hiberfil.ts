import { MemdumpError } from '../core/errors.js';
import type { FormatReader } from './types.js';

/** Placeholder until the reader lands: detects nothing. */
export const hiberfil: FormatReader = {
  name: 'hiberfil',
  description: 'Windows hibernation file (hiberfil.sys, Windows 7 and 8/10/11; Xpress LZ77 and LZ77+Huffman)',
  detect: () => false,
  open: async () => {
    throw new MemdumpError('E_UNSUPPORTED', 'hiberfil reader not built yet');
  },
};
