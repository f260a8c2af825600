import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';

/**
 * Every entry under a directory with its type, mode, owner and content hash, in a stable order: two equal
 * snapshots mean a byte-exact tree. Used to prove that --revert leaves a throw-away root as it found it.
 */
export async function treeSnapshot(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    const names = (await fs.readdir(dir)).sort();
    for (const n of names) {
      const full = join(dir, n);
      const st = await fs.lstat(full);
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      if (st.isDirectory()) {
        out.push(`d ${rel}/${n} ${mode} ${st.uid}:${st.gid}`);
        await walk(full, `${rel}/${n}`);
      } else if (st.isSymbolicLink()) out.push(`l ${rel}/${n} -> ${await fs.readlink(full)}`);
      else out.push(`f ${rel}/${n} ${mode} ${st.uid}:${st.gid} ${st.size} ${createHash('sha256').update(await fs.readFile(full)).digest('hex')}`);
    }
  };
  await walk(root, '');
  return out;
}
