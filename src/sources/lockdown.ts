import { readFile } from 'node:fs/promises';

/** The selected mode in /sys/kernel/security/lockdown ("none [integrity] confidentiality"), or undefined. */
export async function lockdownMode(path: string): Promise<string | undefined> {
  try {
    const m = /\[(\w+)\]/.exec(await readFile(path, 'utf8'));
    return m?.[1];
  } catch {
    return undefined;
  }
}
