import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf } from '../core/errors.js';
import { unameAll } from '../core/host.js';
import type { ImageNote } from '../formats/types.js';
import { mkdirExclusive, writeFileExclusive } from '../sinks/exclusive.js';
import type { ContextEntry } from './report.js';

/** Longest context file kept; /proc/kallsyms is ~10 MiB on a distribution kernel. */
const MAX_CONTEXT_BYTES = 256 << 20;

interface Item {
  name: string;
  file: string;
  get: () => Promise<Buffer>;
}

/**
 * The small volatile context an analyst needs later (symbol addresses, loaded modules, the kernel's own
 * description of memory), kept beside the dump and hashed in the report.
 */
export async function collectContext(dir: string, root: string, iomemText: string | undefined, notes: readonly ImageNote[]): Promise<ContextEntry[]> {
  const euid = process.geteuid?.() ?? -1;
  const proc = (p: string) => async () => {
    const b = await readFile(join(root, p));
    return b.length > MAX_CONTEXT_BYTES ? b.subarray(0, MAX_CONTEXT_BYTES) : b;
  };
  const vmcoreinfo = notes.find((n) => n.name === 'VMCOREINFO');
  const items: Item[] = [
    { name: 'iomem', file: 'iomem.txt', get: async () => Buffer.from(iomemText ?? (await proc('proc/iomem')()).toString()) },
    {
      name: 'kallsyms',
      file: 'kallsyms.txt',
      get: async () => {
        if (euid !== 0) throw Object.assign(new Error('not root: the kernel shows zero addresses'), { code: 'EPERM' });
        return proc('proc/kallsyms')();
      },
    },
    {
      name: 'vmcoreinfo',
      file: 'vmcoreinfo.txt',
      get: async () => {
        if (!vmcoreinfo) throw Object.assign(new Error('the source carries no VMCOREINFO note'), { code: 'ENOENT' });
        return vmcoreinfo.desc;
      },
    },
    { name: 'modules', file: 'modules.txt', get: proc('proc/modules') },
    { name: 'uname', file: 'uname.txt', get: async () => Buffer.from(unameAll() + '\n') },
    { name: 'cmdline', file: 'cmdline.txt', get: proc('proc/cmdline') },
    { name: 'os-release', file: 'os-release.txt', get: proc('etc/os-release') },
  ];
  await mkdirExclusive(dir);
  const out: ContextEntry[] = [];
  for (const it of items) {
    try {
      const data = await it.get();
      const path = join(dir, it.file);
      await writeFileExclusive(path, data);
      out.push({ name: it.name, path, bytes: BigInt(data.length), sha256: createHash('sha256').update(data).digest('hex'), error: null });
    } catch (e) {
      out.push({ name: it.name, path: null, bytes: 0n, sha256: null, error: `${errnoOf(e)}: ${(e as Error).message}` });
    }
  }
  return out;
}
