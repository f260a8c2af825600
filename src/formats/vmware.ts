import { MemdumpError } from '../core/errors.js';
import type { FormatReader } from './types.js';

/** Placeholder until the reader lands: detects nothing. */
export const vmware: FormatReader = {
  name: 'vmware',
  description: 'VMware suspended state / snapshot (.vmss/.vmsn, memory embedded or in the .vmem beside it)',
  detect: () => false,
  open: async () => {
    throw new MemdumpError('E_UNSUPPORTED', 'vmware reader not built yet');
  },
};
