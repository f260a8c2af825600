import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MemdumpError, fromSystemError, isMemdumpError } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { type Range, intersect } from '../core/ranges.js';
import { OffsetSource } from './devmem.js';
import { parseIomem, ramRanges, type IomemEntry } from './iomem.js';
import { KcoreSource } from './kcore.js';
import { lockdownMode } from './lockdown.js';
import type { PhysicalSource, SourceAttempt, SourceKind } from './types.js';

export const SOURCE_CHOICES = ['auto', 'kcore', 'crash', 'mem', 'file'] as const;
export type SourceChoice = (typeof SOURCE_CHOICES)[number];

export interface SelectOptions {
  choice: SourceChoice;
  /** Root of the /proc, /sys and /dev trees to use (tests and mounted images); '/' on a live host. */
  root: string;
  /** For --source file: the image to read as physical memory. */
  input?: string;
  /** An iomem capture to use instead of ROOT/proc/iomem. */
  iomemPath?: string;
}

export interface Selected {
  source: PhysicalSource;
  attempts: SourceAttempt[];
  iomemText: string | undefined;
  iomem: IomemEntry[];
  ram: Range[];
  lockdown: string | undefined;
}

/**
 * kcore first: it survives lockdown=integrity and needs no driver; /dev/crash next (RHEL-family hosts);
 * /dev/mem last (STRICT_DEVMEM makes it useless on most distributions).
 */
export const AUTO_ORDER: readonly Exclude<SourceKind, 'file' | 'image' | 'process' | 'device' | 'vm'>[] = ['kcore', 'crash', 'mem'];

async function readIomem(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw fromSystemError(e, `reading ${path}`);
  }
}

export async function selectSource(opts: SelectOptions): Promise<Selected> {
  const iomemPath = opts.iomemPath ?? join(opts.root, 'proc/iomem');
  if (opts.choice === 'file') {
    if (!opts.input) throw new MemdumpError('E_USAGE', '--source file needs --input PATH');
    const f = await RandomAccessFile.open(opts.input);
    const size = f.size;
    await f.close();
    let iomemText: string | undefined;
    let iomem: IomemEntry[] = [];
    let ram: Range[] = [{ start: 0n, end: size }];
    if (opts.iomemPath) {
      iomemText = await readIomem(opts.iomemPath);
      iomem = parseIomem(iomemText);
      ram = intersect(ramRanges(iomem), [{ start: 0n, end: size }]);
    }
    const source = await OffsetSource.open('file', opts.input, ram);
    return { source, attempts: [{ source: 'file', path: opts.input, ok: true }], iomemText, iomem, ram, lockdown: undefined };
  }

  const iomemText = await readIomem(iomemPath);
  const iomem = parseIomem(iomemText);
  const ram = ramRanges(iomem);
  const lockdown = await lockdownMode(join(opts.root, 'sys/kernel/security/lockdown'));
  const order = opts.choice === 'auto' ? AUTO_ORDER : [opts.choice];
  const attempts: SourceAttempt[] = [];
  const euid = process.geteuid?.() ?? -1;
  for (const kind of order) {
    const path = join(opts.root, kind === 'kcore' ? 'proc/kcore' : kind === 'crash' ? 'dev/crash' : 'dev/mem');
    try {
      if (kind === 'kcore' && lockdown === 'confidentiality') {
        throw new MemdumpError('E_KCORE_LOCKED', 'kernel lockdown=confidentiality blocks /proc/kcore');
      }
      if (kind === 'mem' && (lockdown === 'integrity' || lockdown === 'confidentiality')) {
        throw new MemdumpError('E_KCORE_LOCKED', `kernel lockdown=${lockdown} blocks /dev/mem`);
      }
      const source = kind === 'kcore' ? await KcoreSource.open(path, ram) : await OffsetSource.open(kind, path, ram);
      attempts.push({ source: kind, path, ok: true });
      return { source, attempts, iomemText, iomem, ram, lockdown };
    } catch (e) {
      const err = isMemdumpError(e) ? e : fromSystemError(e, `opening ${path}`);
      let reason = err.message;
      if (err.code === 'E_PERMISSION' && euid !== 0) reason += ` (not root: euid ${euid})`;
      if (err.code === 'E_NOT_FOUND') reason = `${path} does not exist${kind === 'crash' ? ' (the crash driver is not loaded)' : ''}`;
      attempts.push({ source: kind, path, ok: false, code: err.code, reason });
    }
  }
  throw new MemdumpError('E_NO_SOURCE', 'no physical memory source could be used:\n' + attempts.map((a) => `  ${a.source}: ${a.reason}`).join('\n'), {
    details: { attempts },
  });
}
