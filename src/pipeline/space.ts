import { statfs } from 'node:fs/promises';
import { MemdumpError, fromSystemError } from '../core/errors.js';

export interface SpaceCheck {
  path: string;
  availableBytes: bigint;
  totalBytes: bigint;
  neededBytes: bigint;
  usageAfterPercent: number;
}

/**
 * Refuse before any memory is read when the output would not fit, or would push the filesystem past
 * `maxUsagePercent` (a full disk on a production host is an outage of its own).
 */
export async function checkSpace(dir: string, needed: bigint, maxUsagePercent: number): Promise<SpaceCheck> {
  let st;
  try {
    st = await statfs(dir, { bigint: true });
  } catch (e) {
    throw fromSystemError(e, `checking free space in ${dir}`);
  }
  const total = st.blocks * st.bsize;
  const avail = st.bavail * st.bsize;
  const usedAfter = total - avail + needed;
  const pct = total > 0n ? Number((usedAfter * 10000n) / total) / 100 : 100;
  const check = { path: dir, availableBytes: avail, totalBytes: total, neededBytes: needed, usageAfterPercent: pct };
  if (needed > avail) {
    throw new MemdumpError('E_NO_SPACE', `${dir} has ${fmt(avail)} free but the output needs about ${fmt(needed)}; write elsewhere (ideally external or remote storage) or use -o -`, {
      details: { ...stringify(check) },
    });
  }
  if (pct > maxUsagePercent) {
    throw new MemdumpError('E_NO_SPACE', `writing ${fmt(needed)} to ${dir} would fill it to ${pct.toFixed(1)}% (limit ${maxUsagePercent}%, --max-disk-usage)`, {
      details: { ...stringify(check) },
    });
  }
  return check;
}

export function fmt(n: bigint): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

function stringify(c: SpaceCheck): Record<string, unknown> {
  return { ...c, availableBytes: c.availableBytes.toString(), totalBytes: c.totalBytes.toString(), neededBytes: c.neededBytes.toString() };
}
