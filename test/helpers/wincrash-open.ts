import { closeSync, ftruncateSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { RandomAccessFile } from '../../src/core/file.js';
import type { MemoryImage } from '../../src/formats/types.js';
import { wincrash } from '../../src/formats/wincrash.js';

/** Open through the crash dump reader itself (not detection), closing the file if open() throws. */
export async function openCrashFile(path: string): Promise<MemoryImage> {
  const file = await RandomAccessFile.open(path);
  try {
    return await wincrash.open(file, { path });
  } catch (e) {
    await file.close();
    throw e;
  }
}

export async function openCrashBytes(dir: string, name: string, bytes: Buffer): Promise<MemoryImage> {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return openCrashFile(path);
}

/** A sparse file of `size` bytes holding each [offset, bytes] part: dumps that claim GiBs cost nothing on disk. */
export function sparseFile(path: string, parts: [number, Buffer][], size: number): void {
  const fd = openSync(path, 'w');
  try {
    for (const [at, b] of parts) writeSync(fd, b, 0, b.length, at);
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}
