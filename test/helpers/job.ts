import { join } from 'node:path';
import { formatByName } from '../../src/formats/registry.js';
import type { FormatName } from '../../src/formats/types.js';
import { runJob } from '../../src/pipeline/job.js';
import type { PhysicalSource } from '../../src/sources/types.js';

/** Run the real pipeline (hasher workers, file sink, sidecar, report) from a source into dir/name. */
export async function writeWith(source: PhysicalSource, format: FormatName, dir: string, name: string) {
  const out = join(dir, name);
  const r = await runJob({
    command: 'convert',
    argv: ['test'],
    caseFields: {},
    root: '/',
    source,
    attempts: [],
    lockdown: undefined,
    ram: source.ranges,
    notes: source.notes,
    format: formatByName(format),
    output: out,
    digests: ['md5', 'sha256'],
    windowSize: 1n << 16n,
    rateLimit: 0,
    maxDiskUsage: 100,
    policy: {},
    context: undefined,
    reportPath: undefined,
    contentHash: true,
    warnings: [],
    options: {},
  });
  return { path: out, result: r };
}
