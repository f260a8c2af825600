import { stat } from 'node:fs/promises';
import { ContentHasher } from '../core/content-hash.js';
import { hex } from '../core/errors.js';
import { chunks, rangeToJson, totalLength, type RangeJson } from '../core/ranges.js';
import { openImage } from '../formats/registry.js';
import type { FormatName, MemoryImage } from '../formats/types.js';
import { findReport } from './verify.js';

const BANNER = /(Linux version \d+\.\d+[^\n\0]{0,200})/;
const SCAN_CHUNK = 8n << 20n;
/** Bytes searched for a banner before giving up; the kernel image sits in the first GiBs on x86. */
const BANNER_SCAN_LIMIT = 4n << 30n;

export interface InfoResult {
  file: string;
  fileSize: string;
  format: string;
  ranges: { count: number; totalBytes: string; first: string | null; end: string | null; holes: number; holeBytes: string; list: RangeJson[] };
  notes: string[];
  details: Record<string, unknown>;
  banner: { text: string; address: string } | null;
  contentSha256: string | null;
  report: { path: string; status: string; matches: boolean; problems: string[] } | null;
}

/** Iterate an image's bytes in address order, in bounded chunks. */
export async function* imageChunks(img: MemoryImage, size = SCAN_CHUNK): AsyncGenerator<{ addr: bigint; data: Buffer }> {
  for (const r of img.runs) for (const c of chunks(r, size)) yield { addr: c.start, data: await img.read(c.start, Number(c.end - c.start)) };
}

export async function findBanner(img: MemoryImage, limit = BANNER_SCAN_LIMIT): Promise<InfoResult['banner']> {
  let scanned = 0n;
  let carry: Buffer = Buffer.alloc(0);
  let carryAddr = 0n;
  for await (const { addr, data } of imageChunks(img)) {
    const contiguous = carry.length > 0 && carryAddr + BigInt(carry.length) === addr;
    const buf: Buffer = contiguous ? Buffer.concat([carry, data]) : data;
    const base = contiguous ? carryAddr : addr;
    const i = buf.indexOf('Linux version ');
    if (i >= 0) {
      const m = BANNER.exec(buf.subarray(i, i + 256).toString('latin1'));
      if (m) return { text: m[1]!.trim(), address: hex(base + BigInt(i)) };
    }
    carry = data.subarray(Math.max(0, data.length - 255));
    carryAddr = addr + BigInt(data.length - carry.length);
    scanned += BigInt(data.length);
    if (scanned >= limit) break;
  }
  return null;
}

export async function contentHash(img: MemoryImage): Promise<string> {
  const h = new ContentHasher(img.runs);
  for await (const { addr, data } of imageChunks(img)) h.update(addr, data);
  return h.digest();
}

export async function info(file: string, options: { inputFormat?: FormatName; contentHash?: boolean; banner?: boolean } = {}): Promise<InfoResult> {
  const img = await openImage(file, options.inputFormat);
  try {
    // a segment set (E01) is one container spread over several files: its size is theirs together
    const segments = (img.details as { segments?: { bytes: number | bigint | string }[] }).segments;
    const size = segments && segments.length > 0 ? segments.reduce((t, s) => t + BigInt(s.bytes), 0n) : BigInt((await stat(file)).size);
    const runs = img.runs;
    let holes = 0;
    let holeBytes = 0n;
    for (let i = 1; i < runs.length; i++) {
      const gap = runs[i]!.start - runs[i - 1]!.end;
      if (gap > 0n) {
        holes++;
        holeBytes += gap;
      }
    }
    const result: InfoResult = {
      file,
      fileSize: size.toString(),
      format: img.format,
      ranges: {
        count: runs.length,
        totalBytes: totalLength(runs).toString(),
        first: runs[0] ? hex(runs[0].start) : null,
        end: runs.length ? hex(runs[runs.length - 1]!.end) : null,
        holes,
        holeBytes: holeBytes.toString(),
        list: runs.map(rangeToJson),
      },
      notes: img.notes.map((n) => `${n.name}/${n.type} (${n.desc.length} bytes)`),
      details: img.details,
      banner: options.banner === false ? null : await findBanner(img),
      contentSha256: options.contentHash ? await contentHash(img) : null,
      report: null,
    };
    const found = await findReport(file).catch(() => undefined);
    if (found) {
      const problems: string[] = [];
      const r = found.report;
      if (r.status !== 'COMPLETE') problems.push(`report status is ${r.status}`);
      if (r.format.name !== img.format) problems.push(`report says format ${r.format.name}, file is ${img.format}`);
      if (r.hashes && r.hashes.length !== size.toString()) problems.push(`report says ${r.hashes.length} bytes, file has ${size}`);
      if (totalLength(runs).toString() !== r.memoryMap.acquiredBytes) problems.push(`report says ${r.memoryMap.acquiredBytes} bytes of memory, file holds ${totalLength(runs)}`);
      if (result.contentSha256 && r.contentSha256 && r.contentSha256 !== result.contentSha256) problems.push('content hash differs from the report');
      result.report = { path: found.path, status: r.status, matches: problems.length === 0, problems };
    }
    return result;
  } finally {
    await img.close();
  }
}
