import { openImage } from '../../src/formats/registry.js';
import type { FormatName } from '../../src/formats/types.js';
import { contentHash } from '../../src/pipeline/info.js';

/** The container-independent content hash of any image file memdump reads (the proof two files hold the same memory). */
export async function contentHashOf(path: string, format?: FormatName): Promise<string> {
  const img = await openImage(path, format);
  try {
    return await contentHash(img);
  } finally {
    await img.close();
  }
}
