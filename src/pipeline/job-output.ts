import { resolve } from 'node:path';
import { MemdumpError } from '../core/errors.js';
import { type Range, totalLength } from '../core/ranges.js';
import { layersOf } from '../delivery/plan.js';
import { CHUNK_SIZE } from '../formats/e01-layout.js';
import type { FormatSpec, MediaDescription } from '../formats/types.js';
import { FileSink } from '../sinks/file.js';
import { SegmentedFileSink } from '../sinks/segmented.js';
import { StdoutSink } from '../sinks/stdout.js';
import type { OutputSink } from '../sinks/types.js';
import type { JobOptions } from './job.js';

/**
 * Estimated container size, for the disk-space guard (AVML counted uncompressed: its ratio is unknown in advance).
 * E01 stores the padded media (offset = address): the data is counted uncompressed, holes of zeros as the few dozen
 * bytes a deflated zero chunk takes (all of it with --compression none), plus chunk tables and per-segment headers.
 */
export function estimateSize(format: FormatSpec, runs: readonly Range[], media?: MediaDescription): bigint {
  const data = totalLength(runs);
  switch (format.name) {
    case 'padded':
      return runs.length ? runs[runs.length - 1]!.end : 0n;
    case 'lime':
      return data + 32n * BigInt(runs.length);
    case 'avml':
      return data + (data / (16n << 20n) + BigInt(runs.length)) * 64n + data / 1000n;
    case 'elf':
      return data + 4096n + 56n * BigInt(runs.length);
    case 'e01': {
      const chunk = BigInt(CHUNK_SIZE);
      const end = runs.length ? runs[runs.length - 1]!.end : 0n;
      const chunks = (end + chunk - 1n) / chunk;
      const holes = end - data;
      const stored = media?.compression === 'none' ? chunks * chunk : data + (holes / chunk + BigInt(runs.length)) * 128n;
      // table + table2 entries and an uncompressed chunk's adler32: at most 12 bytes a chunk; headers ~ a few KiB a segment
      const segments = media?.segmentBytes ? stored / media.segmentBytes + 2n : 1n;
      return stored + chunks * 16n + segments * (64n << 10n);
    }
    default:
      return data;
  }
}

/** The E01 media description when the caller gives none: memory, the case fields, the source as description. */
export function defaultMedia(o: Pick<JobOptions, 'caseFields' | 'source'>, acquired: Date): MediaDescription {
  // E01 header values are tab-separated lines: control characters would shift the fields after them
  const line = (v: string | undefined) => (v === undefined ? null : v.replace(/[\x00-\x1f\x7f]/g, ' '));
  return {
    type: 'memory',
    caseNumber: line(o.caseFields.case),
    examiner: line(o.caseFields.examiner),
    evidenceNumber: line(o.caseFields.evidence),
    notes: line(o.caseFields.notes),
    description: line(`${o.source.kind} ${o.source.path}`)!,
    acquired,
    compression: 'fast',
    segmentBytes: 0n,
  };
}

/**
 * Container size known before the first byte, for a pre-signed PUT's Content-Length: flat formats and LiME only
 * (the others' size depends on compression or on headers laid out as the writer goes).
 */
export function exactSize(format: FormatSpec, runs: readonly Range[]): bigint | undefined {
  switch (format.name) {
    case 'lime':
    case 'padded':
    case 'raw':
      return estimateSize(format, runs);
    default:
      return undefined;
  }
}

/**
 * Where the output goes: an E01 path always ends in .E01 (the segment names continue from it); transport layers
 * add their suffix (host.lime → host.lime.gz.age) unless the name already ends with it.
 */
export function outputPath(output: string, format: FormatSpec, suffix = ''): string {
  if (output === '-') return '-';
  let out = resolve(output);
  if (format.name === 'e01' && !/\.e01$/i.test(out) && !(suffix && out.endsWith(suffix))) out += '.E01';
  return suffix && !out.endsWith(suffix) ? out + suffix : out;
}

export async function openSink(o: JobOptions, out: string, media: MediaDescription, warnings: string[]): Promise<OutputSink> {
  const e01 = o.format.name === 'e01';
  if (o.splitBytes !== undefined) {
    if (o.delivery && layersOf(o.delivery).length) throw new MemdumpError('E_USAGE', '--split writes pieces; compression and encryption make one stream (split the result afterwards if you must)');
    if (out === '-') throw new MemdumpError('E_USAGE', 'splitting the output into pieces needs a file (-o PATH), not standard output');
    if (e01) throw new MemdumpError('E_USAGE', 'E01 output is divided into segment files by --segment-size, not --split');
    if (o.splitBytes < 1n) throw new MemdumpError('E_USAGE', 'the split size must be at least 1 byte');
  }
  if (out === '-' || (o.delivery && layersOf(o.delivery).length)) {
    // stdout, a network stream and an encrypted or compressed file are one stream each: the E01 writer finds no newSegment() and writes a single segment
    if (e01 && media.segmentBytes && estimateSize(o.format, o.source.ranges, media) > media.segmentBytes) {
      warnings.push(`E01 to ${out === '-' ? 'standard output' : 'a compressed or encrypted stream'} is written as one segment file, which may exceed --segment-size`);
    }
    if (out !== '-') return FileSink.create(out);
    return new StdoutSink();
  }
  if (e01) return SegmentedFileSink.e01(out);
  if (o.splitBytes !== undefined) return SegmentedFileSink.split(out, o.splitBytes);
  return FileSink.create(out);
}
