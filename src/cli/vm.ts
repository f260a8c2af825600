import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { formatByName } from '../formats/registry.js';
import { outputPath } from '../pipeline/job.js';
import { MIN_FAST_READ } from '../pipeline/read-policy.js';
import { checkSpace } from '../pipeline/space.js';
import { estimateSize } from '../pipeline/job.js';
import { LOG_SUFFIX, REPORT_SUFFIX, SIGNATURE_SUFFIX } from '../pipeline/report.js';
import { type VmJobOptions, type VmPlan, type VmResult, acquireVmQmp } from '../pipeline/vm-acquire.js';
import { acquireVmLibvirt, outputDirOf } from '../pipeline/vm-libvirt.js';
import { SIDECAR_SUFFIX } from '../formats/sidecar.js';
import { assertAbsent } from '../sinks/exclusive.js';
import { PARTIAL } from '../sinks/file.js';
import { assertLayersFit, layerSuffix, layersOf } from '../delivery/plan.js';
import { type GlobalOptions, abortOnSignals, defaultName, parseSize, progressReporter, say } from './common.js';
import { type DeliveryOpts, addDeliveryOptions, describeDestination, parseDeliveryOptions } from './delivery-options.js';
import {
  type CaseOpts,
  type E01Opts,
  type HashOpts,
  addCaseOptions,
  addDiskGuardOption,
  addE01Options,
  addHashOptions,
  caseFieldsOf,
  checkE01OptionsUsed,
  e01MediaOf,
  parseDiskGuard,
  parseE01Options,
  parseHashOptions,
  printJobResult,
} from './shared-options.js';

interface VmOpts extends HashOpts, CaseOpts, E01Opts, DeliveryOpts {
  qmp?: string;
  libvirt?: string;
  connect?: string;
  stallTimeout: string;
  spool?: string;
  output?: string;
  format: string;
  rateLimit?: string;
  chunkSize: string;
  maxDiskUsage: string;
  report?: string;
}

/** The guest is not in the run state it was found in, or memdump could not confirm it. */
const GUEST_STATE_EXIT = 5;

/**
 * Everything runJob would refuse about the outputs, checked before dump-guest-memory: once QEMU has paused the
 * guest, a refusal costs the guest a pause for nothing. The space estimate uses QEMU's memory map (padded and E01
 * store up to the highest address, not just the RAM size).
 */
async function precheckOutputs(plan: VmPlan, job: VmJobOptions, out: string, remote: boolean, spoolDir: string | undefined): Promise<void> {
  assertLayersFit(job.delivery, job.format.name);
  const signKey = job.delivery?.signKey;
  if (signKey && out === '-' && !job.reportPath) throw new MemdumpError('E_USAGE', '--sign-key with -o - needs --report PATH: the signature is a file beside the report');
  if (job.reportPath) await assertAbsent(job.reportPath);
  const local = !remote && out !== '-';
  if (spoolDir !== undefined) await precheckSpool(plan, job, spoolDir, local ? dirname(out) : undefined, out);
  if (!local) return;
  const sides = ['', PARTIAL, REPORT_SUFFIX, LOG_SUFFIX, ...(signKey ? [REPORT_SUFFIX + SIGNATURE_SUFFIX] : []), ...(job.format.needsSidecarMap ? [SIDECAR_SUFFIX] : [])];
  for (const suffix of sides) await assertAbsent(out + suffix);
  await checkSpace(dirname(out), estimateSize(job.format, plan.ranges, job.media) + (1n << 20n), job.maxDiskUsage);
}

/**
 * The spool (QEMU's ELF: the RAM plus headers and notes) and the output exist together until the output is
 * complete; on one filesystem both must fit at once.
 */
async function precheckSpool(plan: VmPlan, job: VmJobOptions, dir: string, outDir: string | undefined, out: string): Promise<void> {
  let dev: bigint;
  try {
    const st = statSync(dir, { bigint: true });
    if (!st.isDirectory()) throw new MemdumpError('E_USAGE', `--spool ${dir}: not a directory`);
    dev = st.dev;
  } catch (e) {
    if (e instanceof MemdumpError) throw e;
    throw new MemdumpError('E_USAGE', `--spool ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const spoolBytes = estimateSize(formatByName('elf'), plan.ranges) + (1n << 20n);
  const sameFs = outDir !== undefined && statSync(outDir, { bigint: true, throwIfNoEntry: false })?.dev === dev;
  const outBytes = sameFs ? estimateSize(job.format, plan.ranges, job.media) + (1n << 20n) : 0n;
  try {
    await checkSpace(dir, spoolBytes + outBytes, job.maxDiskUsage);
  } catch (e) {
    if (e instanceof MemdumpError) e.message = `--spool: ${e.message}${sameFs ? ` (the spool and ${out} share this filesystem: both are counted)` : ''}`;
    throw e;
  }
}

export function registerVm(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  const cmd = program
    .command('vm')
    .description("acquire a virtual machine's physical memory from the hypervisor (QEMU/KVM over QMP, or libvirt), with hashes and a report")
    .option('--qmp <socket>', 'QEMU monitor socket: unix:/path/to/qmp.sock (QEMU started with -qmp unix:PATH,server,nowait)')
    .option('--libvirt <domain>', 'libvirt domain name or UUID (runs virsh dump --memory-only --format elf)')
    .option('--connect <uri>', 'with --libvirt: libvirt connection URI (virsh --connect), e.g. qemu:///system')
    .option('--stall-timeout <seconds>', 'with --qmp: give up when QEMU sends no byte for this long (QEMU then ends the dump and resumes the guest)', '60')
    .option('--spool <dir>', 'with --qmp: write QEMU\'s stream raw to a file in DIR first (short pause), then build the evidence from it (see below)')
    .option('-o, --output <path>', 'output file, or - for standard output (default VMNAME_YYYYMMDDTHHMMSSZ.<ext>)')
    .option('-f, --format <name>', 'lime | padded | elf | avml | e01', 'lime')
    .option('--rate-limit <rate>', 'cap the copy rate, e.g. 200M (the guest stays paused longer)')
    .option('--chunk-size <size>', 'copy chunk size (at least 1M)', '4M')
    .option('--report <path>', 'with -o -: write the report here instead of standard error');
  addHashOptions(cmd);
  addDiskGuardOption(cmd);
  addCaseOptions(cmd);
  addE01Options(cmd);
  addDeliveryOptions(cmd, true);
  cmd.addHelpText(
    'after',
    `
QEMU pauses a running guest for the dump itself and resumes it when the dump ends - completed, failed, or cut
off because memdump stopped reading (Ctrl-C, SIGTERM, SIGHUP, even SIGKILL): memdump never sends stop or cont,
and a guest found paused stays paused. QEMU writes the dump into a pipe whose write end memdump hands over the
monitor socket (getfd): no file or FIFO appears anywhere, and it works when QEMU runs as another user. Every
output check (existing files, --report, free space for the chosen format) runs before the dump starts.
The report's source.info.vm has the guest name, UUID, QEMU version, memory map, the run state before and after,
and pausedMs (from QEMU's STOP and RESUME event timestamps). If the guest is not in the state it was found in,
or its state cannot be confirmed, memdump says so on stderr even with -q and exits 5.

With --spool DIR the guest is paused only while QEMU writes the stream and memdump stores it (measured on 2
cores, 1 GiB: 1.6 s against 3.2 s without --spool and 0.7 s for QEMU's own unhashed dump to a file): memdump
writes the stream unchanged to DIR/memdump-spool-<random>.elf (0600, created new, still received through the
pipe), computing only its SHA-256; QEMU finishes and resumes the guest; then memdump builds the container,
digests and report from that file, reading it back against the SHA-256 (a difference is E_CORRUPT and the
container stays INCOMPLETE). The cost: DIR needs room for one more copy of the guest's RAM (on the output's
filesystem, for both at once; checked before the dump), and the memory is written and read once more, so the
whole run takes longer. The spool is deleted when the evidence is complete; if anything fails it is KEPT and
named on stderr, so nothing acquired is lost. The report's source.info.vm.spooled has its path, bytes, SHA-256
and the pause. Without --spool, the guest stays paused for the whole hashing and writing of the evidence.

With --libvirt the libvirt daemon writes a temporary ELF beside the output (it needs access to that directory and
room for one more copy of the guest's RAM); memdump converts it and deletes it.

Examples:
  memdump vm --qmp unix:/run/qemu/web1.qmp -o web1.lime --case IR-42
  memdump vm --qmp /run/qemu/web1.qmp --format e01 -o /mnt/usb/web1 --examiner "A. Analyst"
  memdump vm --qmp unix:/var/lib/libvirt/qemu/domain-3-web1/monitor.sock -o /mnt/usb/web1.lime
  memdump vm --qmp unix:/run/qemu/web1.qmp --spool /var/tmp -o /mnt/usb/web1.lime
  memdump vm --libvirt web1 --connect qemu:///system -o web1.elf --format elf
  memdump vm --qmp unix:/run/qemu/web1.qmp --to tls://collector:9443 --pin sha256/… --token-file case.token --recipient age1…`,
  );
  cmd.action(async (o: VmOpts) => {
    const g = globals();
    if (!o.qmp === !o.libvirt) throw new MemdumpError('E_USAGE', 'give exactly one of --qmp SOCKET or --libvirt DOMAIN');
    const stallSeconds = Number(o.stallTimeout);
    if (!Number.isFinite(stallSeconds) || stallSeconds < 0 || stallSeconds > 86_400) throw new MemdumpError('E_USAGE', '--stall-timeout: seconds between 0 (never) and 86400');
    if (o.spool !== undefined && !o.qmp) throw new MemdumpError('E_USAGE', '--spool applies to --qmp only (libvirt already writes a temporary file)');
    if (o.connect && !o.libvirt) throw new MemdumpError('E_USAGE', '--connect applies to --libvirt only');
    const format = formatByName(o.format);
    if (format.name === 'raw') throw new MemdumpError('E_USAGE', 'raw loses every physical address; use padded, lime, elf, avml or e01');
    const e01 = format.name === 'e01';
    checkE01OptionsUsed(cmd, e01);
    const e01Opts = e01 ? parseE01Options(o) : undefined;
    const chunkSize = parseSize(o.chunkSize, '--chunk-size');
    if (chunkSize < BigInt(MIN_FAST_READ) || chunkSize > 256n << 20n) throw new MemdumpError('E_USAGE', '--chunk-size must be between 1M and 256M');
    const { digests, windowSize } = parseHashOptions(o, { cmd, on: e01 });
    const label = (o.libvirt ?? 'vm').replace(/[^A-Za-z0-9._-]/g, '_');
    const stamped = defaultName(format.extension);
    if (o.to && o.output) throw new MemdumpError('E_USAGE', 'give either -o (a file or -) or --to (a network destination), not both');
    if (o.to && o.libvirt) throw new MemdumpError('E_USAGE', '--to works with --qmp only: libvirt writes a local temporary copy first; use -o, then memdump convert FILE DEST');
    const dialAbort = new AbortController();
    const delivery = parseDeliveryOptions(o, o.to, dialAbort.signal);
    const output = o.to ?? o.output ?? label + stamped.slice(stamped.lastIndexOf('_'));
    const out = o.to ? o.to : outputPath(output, format, layerSuffix(layersOf(delivery)));
    const maxDiskUsage = parseDiskGuard(o);
    const sig = abortOnSignals();
    // a dropped ssh session sends SIGHUP: stop the same way as SIGTERM (common.ts does not listen for it)
    const hup = new AbortController();
    const onHup = () => {
      if (hup.signal.aborted) process.exit(129);
      // the terminal may be gone: a failed warning must not crash the wind-down (QEMU resumes the guest either way)
      process.stderr.on('error', () => undefined);
      process.stderr.write('\nmemdump: SIGHUP received; stopping, keeping the .partial file and writing an INCOMPLETE report\n');
      hup.abort();
    };
    process.on('SIGHUP', onHup);
    const signal = AbortSignal.any([sig.signal, hup.signal]);
    signal.addEventListener('abort', () => dialAbort.abort(), { once: true });
    const progress = progressReporter(g, 'vm');
    const job: VmJobOptions = {
      command: 'vm',
      argv: process.argv.slice(1),
      caseFields: caseFieldsOf(o),
      root: '/',
      format,
      output,
      digests,
      windowSize,
      rateLimit: o.rateLimit ? Number(parseSize(o.rateLimit, '--rate-limit')) : 0,
      maxDiskUsage,
      policy: { chunkSize: Number(chunkSize), signal },
      reportPath: o.report,
      contentHash: true,
      warnings: [],
      options: {
        format: format.name,
        source: o.qmp ? 'qmp' : 'libvirt',
        spool: o.spool ?? null,
        digests,
        hashWindow: windowSize.toString(),
        rateLimit: o.rateLimit ?? null,
        chunkSize: chunkSize.toString(),
        ...(e01Opts ? { compression: e01Opts.compression, segmentSize: e01Opts.segmentBytes.toString() } : {}),
      },
      ...(e01Opts ? { media: e01MediaOf(o, e01Opts, `physical memory of virtual machine ${o.libvirt ?? o.qmp}`) } : {}),
      ...(progress ? { onProgress: progress } : {}),
      ...(delivery ? { delivery } : {}),
    };
    let r: VmResult;
    try {
      if (o.qmp) {
        say(g, `dumping the guest behind ${o.qmp} to ${o.to ? describeDestination(o.to) : out} as ${format.name}`);
        r = await acquireVmQmp({
          qmp: o.qmp,
          signal,
          job,
          log: (l) => say(g, l),
          warn: (l) => process.stderr.write(`memdump: ${escapeControl(l)}\n`),
          stallTimeoutMs: stallSeconds * 1000,
          ...(o.spool !== undefined ? { spoolDir: o.spool } : {}),
          precheck: (plan) => precheckOutputs(plan, job, out, Boolean(o.to), o.spool),
        });
      } else {
        if (out !== '-') await assertAbsent(out);
        say(g, `dumping libvirt domain ${o.libvirt} to ${out} as ${format.name}`);
        r = await acquireVmLibvirt({ domain: o.libvirt!, outputDir: outputDirOf(out), ...(o.connect ? { connect: o.connect } : {}), job, log: (l) => say(g, l) });
      }
    } finally {
      sig.dispose();
      process.off('SIGHUP', onHup);
    }
    printJobResult(g, r.job);
    // the guest not as it was found outranks the job's own status (the warning itself went to stderr already)
    setExit(r.guestWarning ? GUEST_STATE_EXIT : r.job.exitCode);
  });
}
