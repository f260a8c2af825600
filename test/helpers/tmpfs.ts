import { execFileSync } from 'node:child_process';

/** Run fn with a small tmpfs mounted at mnt (unmounted before the temp dir is removed); skip where mount is refused. */
export async function withTmpfs(t: { skip: (why: string) => void }, mnt: string, size: string, fn: (mnt: string) => Promise<void>): Promise<void> {
  execFileSync('mkdir', [mnt]);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt]);
  } catch {
    t.skip('mount not permitted here');
    return;
  }
  try {
    await fn(mnt);
  } finally {
    execFileSync('umount', ['-l', mnt]);
  }
}
