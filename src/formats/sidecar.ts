import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { MemdumpError, errnoOf } from '../core/errors.js';
import { type Range, isSortedDisjoint, range } from '../core/ranges.js';
import type { FormatName, ImageNote, WritePlan } from './types.js';

/**
 * Raw and padded files carry no addresses, so their map and notes travel in `FILE.map.json`. Without it a raw
 * file cannot be converted back losslessly; that is why raw needs an explicit opt-in.
 */
export const SIDECAR_SUFFIX = '.map.json';

const hexStr = z.string().regex(/^0x[0-9a-f]+$/i);
export const sidecarSchema = z.object({
  kind: z.literal('memdump-map'),
  version: z.literal(1),
  container: z.enum(['raw', 'padded', 'e01']),
  runs: z.array(z.object({ start: hexStr, end: hexStr, fileOffset: hexStr })).max(1 << 20),
  notes: z.array(z.object({ name: z.string(), type: z.number().int().nonnegative(), desc: z.string() })).max(1 << 16),
});
export type SidecarMap = z.infer<typeof sidecarSchema>;

export function sidecarFor(container: 'raw' | 'padded' | 'e01', plan: WritePlan, fileOffsets: readonly bigint[]): SidecarMap {
  return {
    kind: 'memdump-map',
    version: 1,
    container,
    runs: plan.runs.map((r, i) => ({ start: '0x' + r.start.toString(16), end: '0x' + r.end.toString(16), fileOffset: '0x' + fileOffsets[i]!.toString(16) })),
    notes: plan.notes.map((n) => ({ name: n.name, type: n.type, desc: n.desc.toString('base64') })),
  };
}

export interface LoadedSidecar {
  container: FormatName;
  runs: Range[];
  fileOffsets: bigint[];
  notes: ImageNote[];
}

/** Load FILE.map.json if present; undefined when absent, E_CORRUPT when present but wrong. */
export async function loadSidecar(dataPath: string): Promise<LoadedSidecar | undefined> {
  const path = dataPath + SIDECAR_SUFFIX;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return undefined;
    throw new MemdumpError('E_PERMISSION', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  let parsed: SidecarMap;
  try {
    parsed = sidecarSchema.parse(JSON.parse(text));
  } catch (e) {
    throw new MemdumpError('E_CORRUPT', `${path} is not a valid memdump map: ${(e as Error).message.slice(0, 300)}`, { cause: e });
  }
  const runs = parsed.runs.map((r) => {
    const s = BigInt(r.start);
    const e = BigInt(r.end);
    if (e < s) throw new MemdumpError('E_CORRUPT', `${path}: run ${r.start}-${r.end} ends before it starts`);
    return range(s, e);
  });
  if (!isSortedDisjoint(runs)) throw new MemdumpError('E_CORRUPT', `${path}: runs are not ascending and disjoint`);
  return {
    container: parsed.container,
    runs,
    fileOffsets: parsed.runs.map((r) => BigInt(r.fileOffset)),
    notes: parsed.notes.map((n) => ({ name: n.name, type: n.type, desc: Buffer.from(n.desc, 'base64') })),
  };
}
