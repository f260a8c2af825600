import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, machine, release, type, version } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

function readTrim(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

export function unameAll(): string {
  try {
    return execFileSync('uname', ['-a'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return `${type()} ${hostname()} ${release()} ${version()} ${machine()}`;
  }
}

export interface HostIdentity {
  hostname: string;
  uname: string;
  bootId: string | null;
  machineId: string | null;
  euid: number;
}

export function hostIdentity(root = '/'): HostIdentity {
  return {
    hostname: hostname(),
    uname: unameAll(),
    bootId: readTrim(join(root, 'proc/sys/kernel/random/boot_id')),
    machineId: readTrim(join(root, 'etc/machine-id')) ?? readTrim(join(root, 'var/lib/dbus/machine-id')),
    euid: process.geteuid?.() ?? -1,
  };
}

const here = fileURLToPath(import.meta.url);
/** dist/src/core/host.js → repository root */
export const PACKAGE_ROOT = join(here, '..', '..', '..', '..');

export interface ToolIdentity {
  name: 'memdump';
  version: string;
  entry: string;
  entrySha256: string;
  node: string;
}

/** The tool's own identity for the report: version and the SHA-256 of the entry file that ran. */
export function toolIdentity(): ToolIdentity {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  const entry = process.argv[1] ?? join(PACKAGE_ROOT, 'dist/src/cli/main.js');
  let entrySha256 = 'unavailable';
  try {
    entrySha256 = createHash('sha256').update(readFileSync(entry)).digest('hex');
  } catch {
    // entry not readable (e.g. run through a loader); say so rather than invent a hash
  }
  return { name: 'memdump', version: pkg.version, entry, entrySha256, node: process.version };
}

/** Peak resident set size in bytes (getrusage maxrss is KiB on Linux). */
export function peakRss(): bigint {
  return BigInt(process.resourceUsage().maxRSS) * 1024n;
}
