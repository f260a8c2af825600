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

const processSchema = z.object({
  pid: z.number().int(),
  comm: z.string(),
  exe: z.object({ path: z.string().nullable(), sha256: z.string().nullable(), bytes: z.number().int(), error: z.string().nullable() }),
  cmdline: z.array(z.string()),
  cwd: z.string().nullable(),
  root: z.string().nullable(),
  credentials: z.object({ uid: z.array(z.number().int()), gid: z.array(z.number().int()), groups: z.array(z.number().int()) }),
  status: z.record(z.string(), z.string()),
  limits: z.array(z.object({ name: z.string(), soft: z.string(), hard: z.string(), units: z.string() })),
  coredumpFilter: z.object({ value: hex, source: z.enum(['proc', 'option', 'all']) }),
  freeze: z.object({
    requested: z.boolean(),
    registers: z.enum(['ptrace', 'partial', 'none']),
    registersError: z.string().nullable(),
    heldForCopy: z.boolean(),
    stoppedMs: z.number().nullable(),
    threadsSeen: z.number().int(),
    consistency: z.string(),
  }),
  threads: z.array(z.object({ tid: z.number().int(), name: z.string(), state: z.string(), registers: z.boolean(), error: z.string().nullable(), pendingSignal: z.number().int() })),
  readMethod: z.string(),
  mappings: z.array(
    z.object({
      start: hex,
      end: hex,
      perms: z.string(),
      offset: hex,
      dev: z.string(),
      inode: dec,
      path: z.string(),
      vmFlags: z.array(z.string()).nullable(),
      rss: dec.nullable(),
      anonymous: dec.nullable(),
      dumped: dec,
      reason: z.string(),
    }),
  ),
  fds: z.array(z.object({ fd: z.number().int(), target: z.string(), kind: z.string() })).nullable(),
  fdsError: z.string().nullable(),
  environ: z.array(z.string()).nullable(),
});

const regionSchema = z.object({
  start: hex,
  end: hex,
  perms: z.string(),
  path: z.string(),
  reasons: z.array(z.string()),
  file: z.string().nullable(),
  bytes: dec,
  digests: digestMap,
  zeroFilled: dec,
});

/** E01 output: what the segment files hold (the media hashes are what `ewfexport` reproduces, padded to a sector). */
const e01Schema = z.object({
  segments: z.array(z.object({ path: z.string(), bytes: dec })),
  mediaType: z.enum(['memory', 'fixed', 'removable']),
  /** True length of the media; E01 stores whole sectors, so the last sector may be zero-padded. */
  mediaBytes: dec,
  storedBytes: dec,
  bytesPerSector: z.number().int(),
  sectorsPerChunk: z.number().int(),
  chunks: dec,
  compression: z.string(),
  compressedChunks: dec,
  /** MD5 and SHA-1 as stored in the E01's hash and digest sections; SHA-256 has no slot there. All over storedBytes. */
  mediaDigests: digestMap,
  errorRuns: z.array(z.object({ firstSector: dec, sectors: dec })),
});

/** `memdump image` and `memdump swap`: the device or file imaged. */
const imageSchema = z.object({
  device: z.object({
    path: z.string(),
    type: z.enum(['block', 'file']),
    bytes: dec,
    sectorSize: z.number().int(),
    /** Mount point and options when the device is mounted; read-write mounts are warned about. */
    mounted: z.object({ mountPoint: z.string(), options: z.string(), readWrite: z.boolean() }).nullable(),
    /** For swap: the /proc/swaps line. */
    swap: z.object({ type: z.string(), sizeKiB: dec, usedKiB: dec, priority: z.number().int() }).nullable(),
  }),
  sectors: z.object({ in: dec, out: dec, bad: dec, retriesPerSector: z.number().int(), maxErrors: dec.nullable() }),
  split: z.object({ bytes: dec, files: z.array(z.object({ path: z.string(), bytes: dec })) }).nullable(),
  verify: z
    .object({
      sourceDigests: digestMap,
      imageDigests: digestMap,
      sourceChanged: z.boolean(),
      message: z.string(),
    })
    .nullable(),
});

/**
 * Where the evidence went and what wraps it. `hashes` cover the container bytes (what an analyst opens after
 * `memdump decrypt`); `stored` is what the file or the far side holds after compression and encryption.
 */
const deliverySchema = z.object({
  target: z.string(),
  layers: z.array(z.enum(['gzip', 'zstd', 'age'])),
  recipients: z.array(z.string()),
  stored: z.object({ bytes: dec, sha256: z.string().nullable() }),
  remote: z.object({ evidence: z.string(), sides: z.record(z.string(), z.string()) }).nullable(),
});

export const REPORT_SCHEMA_ID = 'memdump-report/1';

export const reportSchema = z.object({
  schema: z.literal(REPORT_SCHEMA_ID),
  status: z.enum(['COMPLETE', 'INCOMPLETE']),
  failure: z
    .object({ code: z.string(), message: z.string(), lastGoodOffset: dec, lastAddress: hex.nullable() })
    .nullable(),
  command: z.enum(['acquire', 'convert', 'process', 'regions', 'image', 'swap', 'core-handler', 'vm']),
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
  /** `memdump process` and `memdump regions`: the live process's context. */
  process: processSchema.optional(),
  /** `memdump regions`: what was cut out, one entry per region. */
  regions: z.array(regionSchema).optional(),
  /** `--format e01`: segment files and the media digests stored inside them. */
  e01: e01Schema.optional(),
  /** `memdump image` / `memdump swap`: the device, sector accounting and the post-imaging verification. */
  image: imageSchema.optional(),
  /** Network delivery (`--to`) or transport layers (`--compress`, `--recipient`). */
  delivery: deliverySchema.optional(),
});

export type ProcessReport = z.infer<typeof processSchema>;
export type RegionReport = z.infer<typeof regionSchema>;

export type E01Report = z.infer<typeof e01Schema>;
export type ImageReport = z.infer<typeof imageSchema>;
export type DeliveryReport = z.infer<typeof deliverySchema>;
export type Report = z.infer<typeof reportSchema>;
