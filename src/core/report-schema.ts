import { z } from 'zod';

/**
 * The chain-of-custody report. Written last, validated against this schema before it is written, and read
 * back by `verify` and `info`. Numbers that can exceed 2^53 (sizes, offsets, addresses) are decimal or hex
 * strings. Documented field by field in docs/report-schema.md.
 */
const hex = z.string().regex(/^0x[0-9a-f]+$/);
const dec = z.string().regex(/^[0-9]+$/);
const rangeJson = z.object({ start: hex, end: hex, length: dec });
const digestMap = z.object({ md5: z.string().optional(), sha1: z.string().optional(), sha256: z.string().optional() });

export const REPORT_SCHEMA_ID = 'memdump-report/1';

export const reportSchema = z.object({
  schema: z.literal(REPORT_SCHEMA_ID),
  status: z.enum(['COMPLETE', 'INCOMPLETE']),
  failure: z
    .object({ code: z.string(), message: z.string(), lastGoodOffset: dec, lastAddress: hex.nullable() })
    .nullable(),
  command: z.enum(['acquire', 'convert']),
  tool: z.object({ name: z.literal('memdump'), version: z.string(), entry: z.string(), entrySha256: z.string(), node: z.string() }),
  argv: z.array(z.string()),
  case: z.object({ case: z.string().nullable(), examiner: z.string().nullable(), evidence: z.string().nullable(), notes: z.string().nullable() }),
  host: z.object({
    hostname: z.string(),
    uname: z.string(),
    bootId: z.string().nullable(),
    machineId: z.string().nullable(),
    euid: z.number().int(),
  }),
  time: z.object({ start: z.string(), end: z.string(), durationMs: z.number().nonnegative() }),
  source: z.object({
    kind: z.string(),
    path: z.string(),
    attempts: z.array(z.object({ source: z.string(), path: z.string(), ok: z.boolean(), code: z.string().optional(), reason: z.string().optional() })),
    lockdown: z.string().nullable(),
    info: z.record(z.string(), z.unknown()),
  }),
  memoryMap: z.object({ ram: z.array(rangeJson), acquired: z.array(rangeJson), acquiredBytes: dec }),
  accounting: z.object({
    requested: dec,
    read: dec,
    zeroFilled: dec,
    skipped: dec,
    ranges: z.array(z.object({ start: hex, end: hex, requested: dec, read: dec, zeroFilled: dec, skipped: dec })),
  }),
  readErrors: z.array(z.object({ start: hex, end: hex, errno: z.string(), pages: z.number().int().positive() })),
  format: z.object({ name: z.string(), description: z.string() }),
  hashes: z
    .object({
      over: z.literal('container-bytes'),
      length: dec,
      digests: digestMap,
      window: z.object({ size: dec, digest: z.string().nullable(), hashes: z.array(z.string()) }),
    })
    .nullable(),
  contentSha256: z.string().nullable(),
  outputs: z.array(z.object({ role: z.string(), path: z.string(), bytes: dec, complete: z.boolean(), sha256: z.string().nullable() })),
  context: z.array(z.object({ name: z.string(), path: z.string().nullable(), bytes: dec, sha256: z.string().nullable(), error: z.string().nullable() })),
  options: z.record(z.string(), z.unknown()),
  warnings: z.array(z.string()),
  resources: z.object({ peakRssBytes: dec, cpuUserMs: z.number(), cpuSystemMs: z.number() }),
});

export type Report = z.infer<typeof reportSchema>;
