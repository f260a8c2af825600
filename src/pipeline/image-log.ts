import { constants, promises as fsp } from 'node:fs';
import { escapeControl } from '../core/escape.js';
import type { Digest } from '../core/hasher.js';
import type { Report } from '../core/report-schema.js';
import type { DeviceFacts } from '../sources/device.js';

/** The dc3dd-style section `memdump image` / `memdump swap` add to the log runJob writes beside the image. */

/** Recorded re-reads of failing sectors (the report's source.info.retries). */
export interface RetryStats {
  reReads: number;
  recoveredSectors: number;
  recovered: string[];
}

export const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;

/** Add the dc3dd-style section to the log runJob wrote (ours, 0600, just created; never through a symlink). */
export async function appendLog(path: string, text: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
    await fh.write(text);
    await fh.sync();
  } catch (e) {
    process.stderr.write(`memdump: could not add the imaging log to ${path}: ${(e as Error).message}\n`);
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** "2026-11-22 01:16:22 +0000", as dc3dd writes times. */
const dcTime = (iso: string) => iso.replace('T', ' ').replace(/\.\d+Z$/, ' +0000');

function sectorsText(bytes: bigint, ss: bigint, dir: 'in' | 'out'): string {
  const full = bytes / ss;
  const part = bytes % ss;
  return part === 0n ? `${full} sectors ${dir}` : `${full}+1 sectors ${dir} (${full} sectors + ${part} bytes ${dir})`;
}

/** The dc3dd-style part of the log: start/end, sectors in/out, bad sectors, hashes, verification. Report strings are already escaped; device facts are not. */
export function renderImageLog(r: Report, device: DeviceFacts, outBytes: bigint, copyMs: number): string {
  const img = r.image;
  const ss = BigInt(device.sectorSize);
  const e = (s: string) => escapeControl(s);
  const L: string[] = ['', `---- imaging log (dc3dd style) ----`];
  L.push(`memdump ${r.tool.version} ${r.command} started at ${dcTime(r.time.start)}`);
  L.push(`command line: ${r.argv.join(' ')}`);
  L.push(`device size: ${device.bytes / ss}${device.bytes % ss ? '+1' : ''} sectors (probed), ${device.bytes} bytes`);
  L.push(`sector size: ${device.sectorSize} bytes (${device.type === 'block' ? 'probed' : 'file: assumed'})`);
  L.push(`source: ${e(device.path)} (${device.type === 'block' ? 'block device' : 'regular file'}, ${device.io}${device.removable ? ', removable' : ''}${device.model ? ', model ' + e(device.model) : ''}${device.serial ? ', serial ' + e(device.serial) : ''})`);
  const m = img?.device.mounted;
  L.push(`mounted: ${m ? `${m.mountPoint} ${m.options}${m.readWrite ? ' — READ-WRITE' : ''}` : 'no'}`);
  if (img?.device.swap) L.push(`swap: active ${img.device.swap.type}, ${img.device.swap.sizeKiB} KiB, ${img.device.swap.usedKiB} KiB used, priority ${img.device.swap.priority}`);
  const inBytes = BigInt(r.accounting.read) + BigInt(r.accounting.zeroFilled);
  // the copy alone: the report's duration also covers the verification read
  const secs = copyMs / 1000;
  L.push(`${inBytes} bytes copied (${device.bytes > 0n ? Number((inBytes * 1000n) / device.bytes) / 10 : 100}%), ${secs.toFixed(3)} s, ${secs > 0 ? (Number(inBytes) / secs / 1048576).toFixed(1) : '-'} MiB/s`);
  L.push('', `input results for ${device.type === 'block' ? 'device' : 'file'} \`${e(device.path)}':`);
  L.push(`   ${sectorsText(inBytes, ss, 'in')}`);
  L.push(`   ${img?.sectors.bad ?? 0} bad sectors replaced by zeros`);
  for (const x of r.readErrors) {
    const a = BigInt(x.start) / ss;
    const b = ceilDiv(BigInt(x.end), ss) - 1n;
    L.push(`      ${x.errno}, ${a === b ? `sector ${a}` : `sectors ${a} - ${b}`} (${x.pages} sector(s), bytes ${x.start}-${x.end})`);
  }
  const rt = r.source.info.retries as RetryStats | undefined;
  if (rt) L.push(`   ${rt.reReads} re-read(s) of failing sectors (up to ${img?.sectors.retriesPerSector ?? 0} per sector); ${rt.recoveredSectors} sector(s) recovered by a re-read`);
  for (const x of rt?.recovered ?? []) L.push(`      ${x}`);
  const content = r.format.name === 'e01' ? (r.e01?.mediaDigests ?? {}) : (r.hashes?.digests ?? {});
  for (const [k, v] of Object.entries(content)) L.push(`   ${v} (${k})${r.format.name === 'e01' ? ' media' : ''}`);
  const evid = r.outputs.filter((o) => o.role === 'evidence');
  L.push('', `output results for ${r.format.name} \`${evid[0]?.path ?? '?'}':`);
  L.push(`   ${sectorsText(outBytes, ss, 'out')}`);
  for (const f of img?.split?.files ?? []) L.push(`      ${f.path} ${f.bytes} bytes`);
  if (r.format.name === 'e01') for (const [k, v] of Object.entries(r.hashes?.digests ?? {})) L.push(`   ${v} (${k}) of the container files`);
  if (img?.verify) {
    L.push('', `verification (second full read of the source): ${img.verify.message}`);
    for (const [k, v] of Object.entries(img.verify.sourceDigests)) {
      const iv = img.verify.imageDigests[k as Digest];
      L.push(`   ${v} (${k}) source ${iv === undefined ? '' : iv === v ? '[ok]' : `[MISMATCH: image ${iv}]`}`);
    }
  }
  if (r.failure) L.push('', `memdump aborted at ${dcTime(r.time.end)}: ${r.failure.code}: ${r.failure.message}`, `   partial image kept: ${evid[0]?.path ?? '?'} (${r.failure.lastGoodOffset} bytes)`);
  else L.push('', `memdump completed at ${dcTime(r.time.end)}`);
  return L.join('\n') + '\n';
}
