/**
 * EWF-E01 segment sets on the reading side: how segment n of a set is named (libewf's scheme), opening it while the
 * set is walked (e01-set-index.ts), and keeping segment files open on demand while an image is read (e01-image.ts).
 */
import { MemdumpError } from '../core/errors.js';
import { RandomAccessFile } from '../core/file.js';
import { segmentExtensionOf } from './e01-layout.js';

/**
 * Path of segment `n` of the set whose first file is `first`, named as libewf names them: .E01 … .E99, then .EAA …
 * .EZZ, .FAA … .ZZZ (the case and letter of the first file's extension are kept: .e01, .s01). undefined when the
 * first file is not named that way (it can then only be a one-segment set) or n is past the scheme's end.
 */
export function segmentPath(first: string, n: number): string | undefined {
  const m = /^(.*\.)([A-Za-z])01$/s.exec(first);
  const ext = m ? segmentExtensionOf(m[2]!, n) : undefined;
  return ext === undefined ? undefined : m![1]! + ext;
}

/** Open segment `n` (> 1) of the set whose first segment is `first`; E_NOT_FOUND says which segment is missing. */
export async function openSegmentFile(first: RandomAccessFile, n: number): Promise<RandomAccessFile> {
  const path = segmentPath(first.path, n);
  const why = path ? `${path} is missing` : `${first.path} is not named .E01, so segment ${n} cannot be found`;
  if (!path) throw new MemdumpError('E_NOT_FOUND', `EWF set ${first.path}: segment ${n} is not there (${why})`, { details: { segment: n } });
  try {
    return await RandomAccessFile.open(path);
  } catch (e) {
    if (e instanceof MemdumpError && e.code === 'E_NOT_FOUND') {
      throw new MemdumpError('E_NOT_FOUND', `EWF set ${first.path}: segment ${n} (${path}) is missing; the set continues past segment ${n - 1}`, { details: { segment: n, path }, cause: e });
    }
    throw e;
  }
}

interface Handle {
  readonly file: RandomAccessFile;
  users: number;
  closed: boolean;
}

/** Segment files beyond the first, opened when read and closed least recently used first (never while in use). */
export class SegmentFiles {
  private readonly open = new Map<number, Handle>();
  private readonly pending = new Map<number, Promise<Handle>>();
  constructor(
    private readonly first: RandomAccessFile,
    private readonly segments: readonly { path: string; bytes: bigint }[],
    private readonly max: number,
  ) {}

  async with<T>(i: number, fn: (f: RandomAccessFile) => Promise<T>): Promise<T> {
    if (i === 0) return fn(this.first);
    let h = this.open.get(i);
    while (!h || h.closed) {
      let p = this.pending.get(i);
      if (!p) {
        p = this.openSegment(i).finally(() => this.pending.delete(i));
        this.pending.set(i, p);
      }
      h = await p;
    }
    this.open.delete(i);
    this.open.set(i, h);
    h.users++;
    try {
      return await fn(h.file);
    } finally {
      h.users--;
      await this.trim();
    }
  }

  private async openSegment(i: number): Promise<Handle> {
    const seg = this.segments[i]!;
    const file = await RandomAccessFile.open(seg.path);
    if (file.size !== seg.bytes) {
      await file.close();
      throw new MemdumpError('E_CORRUPT', `${seg.path} changed since the EWF set was opened (${seg.bytes} bytes then, ${file.size} now)`, { details: { path: seg.path } });
    }
    const h: Handle = { file, users: 0, closed: false };
    this.open.set(i, h);
    return h;
  }

  private async trim(): Promise<void> {
    for (const [k, h] of this.open) {
      if (this.open.size <= this.max) break;
      if (h.users > 0) continue;
      this.open.delete(k);
      h.closed = true;
      await h.file.close();
    }
  }

  async close(): Promise<void> {
    for (const h of this.open.values()) {
      h.closed = true;
      await h.file.close();
    }
    this.open.clear();
    await this.first.close();
  }
}
