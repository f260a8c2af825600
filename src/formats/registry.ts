import { MemdumpError } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { avml } from './avml.js';
import { e01 } from './e01.js';
import { elf } from './elf.js';
import { padded, raw } from './flat.js';
import { lime } from './lime.js';
import { detectLayer } from '../sinks/decompress.js';
import { loadSidecar } from './sidecar.js';
import type { FormatName, FormatSpec, MemoryImage } from './types.js';

/** Detection order: formats with magic first; raw and padded have none and are chosen by sidecar or by name. */
export const FORMATS: readonly FormatSpec[] = [lime, avml, elf, e01, padded, raw];

export const FORMAT_NAMES = FORMATS.map((f) => f.name);

export function formatByName(name: string): FormatSpec {
  const f = FORMATS.find((x) => x.name === name);
  if (!f) throw new MemdumpError('E_USAGE', `unknown format "${name}" (choose from ${FORMAT_NAMES.join(', ')})`);
  return f;
}

export const HEAD_BYTES = 64 * 1024;

export async function detectFormat(file: RandomAccessFile): Promise<FormatSpec | undefined> {
  const head = await file.readAt(0n, HEAD_BYTES);
  return FORMATS.find((f) => f.detect(head, file.size));
}

/** Open any memory image: by explicit format, by its sidecar map, or by magic. */
export async function openImage(path: string, format?: FormatName): Promise<MemoryImage> {
  const file = await RandomAccessFile.open(path);
  try {
    let spec = format ? formatByName(format) : undefined;
    if (!spec) {
      // E01 has magic and also a sidecar map (for its runs): the magic decides, the map only says where runs are.
      const magic = await detectFormat(file);
      const side = magic?.needsSidecarMap ? undefined : await loadSidecar(path);
      spec = magic?.needsSidecarMap ? magic : side ? formatByName(side.container) : magic;
    }
    if (!spec) {
      // a file that carries a transport layer (--recipient, --compress) rather than a container: say which
      const layer = detectLayer(await file.readAt(0n, 64));
      if (layer) throw new MemdumpError('E_UNKNOWN_FORMAT', `${path} is ${layer === 'age' ? 'age-encrypted' : `${layer}-compressed`}: undo it first with memdump decrypt ${path}${layer === 'age' ? ' -i IDENTITY' : ''} (it checks the container against the report on the way out)`, { details: { layer } });
      throw new MemdumpError('E_UNKNOWN_FORMAT', `${path}: not a LiME, AVML, ELF or E01 file and no ${path}.map.json beside it; name the layout with --input-format padded|raw`);
    }
    return await spec.open(file, {});
  } catch (e) {
    await file.close();
    throw e;
  }
}
