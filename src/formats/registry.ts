import { MemdumpError } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { avml } from './avml.js';
import { e01 } from './e01.js';
import { elf } from './elf.js';
import { padded, raw } from './flat.js';
import { hiberfil } from './hiberfil.js';
import { kdump } from './kdump.js';
import { lime } from './lime.js';
import { vmware } from './vmware.js';
import { wincrash } from './wincrash.js';
import { detectLayer } from '../sinks/decompress.js';
import { loadSidecar } from './sidecar.js';
import type { FormatName, FormatReader, FormatSpec, MemoryImage } from './types.js';

/** Containers memdump writes; raw and padded have no magic and are chosen by sidecar or by name. */
export const FORMATS: readonly FormatSpec[] = [lime, avml, elf, e01, padded, raw];

export const FORMAT_NAMES = FORMATS.map((f) => f.name);

/** Detection order: every reader with magic, then the foreign read-only ones, then the magic-less flat layouts. */
export const READERS: readonly FormatReader[] = [lime, avml, elf, e01, kdump, wincrash, hiberfil, vmware, padded, raw];

export const READER_NAMES = READERS.map((f) => f.name);

/** A format to write (`--to`, `--format`). */
export function formatByName(name: string): FormatSpec {
  const f = FORMATS.find((x) => x.name === name);
  if (!f) {
    const foreign = READERS.some((x) => x.name === name);
    throw new MemdumpError('E_USAGE', foreign ? `${name} is read-only: convert it into one of ${FORMAT_NAMES.join(', ')}` : `unknown format "${name}" (choose from ${FORMAT_NAMES.join(', ')})`);
  }
  return f;
}

/** A format to read (`--input-format`). */
export function readerByName(name: string): FormatReader {
  const f = READERS.find((x) => x.name === name);
  if (!f) throw new MemdumpError('E_USAGE', `unknown input format "${name}" (choose from ${READER_NAMES.join(', ')})`);
  return f;
}

export const HEAD_BYTES = 64 * 1024;

export async function detectFormat(file: RandomAccessFile): Promise<FormatReader | undefined> {
  const head = await file.readAt(0n, HEAD_BYTES);
  return READERS.find((f) => f.detect(head, file.size));
}

/** A file without magic whose description lies in a companion (HOST.vmem beside HOST.vmss): the reader and that file. */
async function companionOf(path: string): Promise<{ reader: FormatReader; companion: string } | undefined> {
  for (const reader of READERS) {
    const companion = await reader.companionOf?.(path);
    if (companion !== undefined) return { reader, companion };
  }
  return undefined;
}

function layerError(path: string, layer: string): MemdumpError {
  return new MemdumpError('E_UNKNOWN_FORMAT', `${path} is ${layer === 'age' ? 'age-encrypted' : `${layer}-compressed`}: undo it first with memdump decrypt ${path}${layer === 'age' ? ' -i IDENTITY' : ''} (it checks the container against the report on the way out)`, { details: { layer } });
}

/**
 * Open any memory image: by explicit format, by a companion that describes it, by its sidecar map, or by magic.
 * A file described by a companion (HOST.vmem) holds guest memory, so its first bytes say nothing about its
 * format: the companion is consulted before any magic, and also when the format is named.
 */
export async function openImage(path: string, format?: FormatName): Promise<MemoryImage> {
  let file = await RandomAccessFile.open(path);
  let openedPath = path;
  try {
    const named = format ? readerByName(format) : undefined;
    const pair = named ? ((c) => (c === undefined ? undefined : { reader: named, companion: c }))(await named.companionOf?.(path)) : await companionOf(path);
    let spec: FormatReader | undefined = named;
    if (pair) {
      // a compressed or encrypted .vmem would otherwise be read as guest memory
      const layer = detectLayer(await file.readAt(0n, 64));
      if (layer) throw layerError(path, layer);
      if (pair.companion !== path) {
        await file.close();
        file = await RandomAccessFile.open(pair.companion);
        openedPath = pair.companion;
      }
      spec = pair.reader;
    }
    if (!spec) {
      // E01 has magic and also a sidecar map (for its runs): the magic decides, the map only says where runs are.
      const magic = await detectFormat(file);
      const magicWithSidecar = magic !== undefined && (magic as Partial<FormatSpec>).needsSidecarMap === true;
      const side = magicWithSidecar ? undefined : await loadSidecar(path);
      spec = magicWithSidecar ? magic : side ? formatByName(side.container) : magic;
    }
    if (!spec) {
      // a file that carries a transport layer (--recipient, --compress) rather than a container: say which
      const layer = detectLayer(await file.readAt(0n, 64));
      if (layer) throw layerError(path, layer);
      throw new MemdumpError('E_UNKNOWN_FORMAT', `${path}: not a memory image memdump recognises (${READER_NAMES.filter((n) => n !== 'raw' && n !== 'padded').join(', ')}) and no ${path}.map.json beside it; name the layout with --input-format padded|raw`);
    }
    return await spec.open(file, { path: openedPath });
  } catch (e) {
    await file.close();
    throw e;
  }
}
