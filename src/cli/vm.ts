import { dirname } from 'node:path';
import type { Command } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { formatByName } from '../formats/registry.js';
import { outputPath } from '../pipeline/job.js';
import { MIN_FAST_READ } from '../pipeline/read-policy.js';
import { checkSpace } from '../pipeline/space.js';
import { type VmJobOptions, type VmResult, acquireVmLibvirt, acquireVmQmp, outputDirOf } from '../pipeline/vm-acquire.js';
import { assertAbsent } from '../sinks/exclusive.js';
import { layerSuffix, layersOf } from '../delivery/plan.js';
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
  fifoDir?: string;
  output?: string;
  format: string;
  rateLimit?: string;
  chunkSize: string;
  maxDiskUsage: string;
  report?: string;
}

export function registerVm(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  const cmd = program
    .command('vm')
    .description("acquire a virtual machine's physical memory from the hypervisor (QEMU/KVM over QMP, or libvirt), with hashes and a report")
    .option('--qmp <socket>', 'QEMU monitor socket: unix:/path/to/qmp.sock (QEMU started with -qmp unix:PATH,server,nowait)')
    .option('--libvirt <domain>', 'libvirt domain name or UUID (runs virsh dump --memory-only --format elf)')
    .option('--connect <uri>', 'with --libvirt: libvirt connection URI (virsh --connect), e.g. qemu:///system')
    .option('--fifo-dir <dir>', "with --qmp: where QEMU opens the FIFO memdump reads; needed when QEMU runs as another user (DIR must be in a group QEMU's user belongs to, e.g. install -d -m 2770 -g kvm DIR)")
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
The guest is paused for the dump (QEMU streams it through a FIFO straight into the container: no temporary copy)
and resumed as soon as QEMU confirms the dump, on failure and on SIGINT/SIGTERM too; a guest that was already
paused stays paused. The report's source.info.vm has the guest name, UUID, QEMU version, memory map and how long
the guest was paused.

With --libvirt the libvirt daemon writes a temporary ELF beside the output (it needs access to that directory and
room for one more copy of the guest's RAM); memdump converts it and deletes it.

Examples:
  memdump vm --qmp unix:/run/qemu/web1.qmp -o web1.lime --case IR-42
  memdump vm --qmp /run/qemu/web1.qmp --format e01 -o /mnt/usb/web1 --examiner "A. Analyst"
  memdump vm --qmp unix:/var/lib/libvirt/qemu/domain-3-web1/monitor.sock --fifo-dir /srv/memdump-fifo
  memdump vm --libvirt web1 --connect qemu:///system -o web1.elf --format elf
  memdump vm --qmp unix:/run/qemu/web1.qmp --to tls://collector:9443 --pin sha256/… --token-file case.token --recipient age1…`,
  );
  cmd.action(async (o: VmOpts) => {
    const g = globals();
    if (!o.qmp === !o.libvirt) throw new MemdumpError('E_USAGE', 'give exactly one of --qmp SOCKET or --libvirt DOMAIN');
    if (o.fifoDir && !o.qmp) throw new MemdumpError('E_USAGE', '--fifo-dir applies to --qmp only');
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
    sig.signal.addEventListener('abort', () => dialAbort.abort(), { once: true });
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
      policy: { chunkSize: Number(chunkSize), signal: sig.signal },
      reportPath: o.report,
      contentHash: true,
      warnings: [],
      options: {
        format: format.name,
        source: o.qmp ? 'qmp' : 'libvirt',
        digests,
        hashWindow: windowSize.toString(),
        rateLimit: o.rateLimit ?? null,
        chunkSize: chunkSize.toString(),
        ...(o.fifoDir ? { fifoDir: o.fifoDir } : {}),
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
          ...(o.fifoDir ? { fifoDir: o.fifoDir } : {}),
          signal: sig.signal,
          job,
          log: (l) => say(g, l),
          precheck: async (bytes) => {
            if (out === '-' || o.to) return;
            await assertAbsent(out);
            await checkSpace(dirname(out), bytes + (1n << 20n), maxDiskUsage);
          },
        });
      } else {
        if (out !== '-') await assertAbsent(out);
        say(g, `dumping libvirt domain ${o.libvirt} to ${out} as ${format.name}`);
        r = await acquireVmLibvirt({ domain: o.libvirt!, outputDir: outputDirOf(out), ...(o.connect ? { connect: o.connect } : {}), job, log: (l) => say(g, l) });
      }
    } finally {
      sig.dispose();
    }
    printJobResult(g, r.job);
    if (r.resumeError) {
      process.stderr.write(`memdump: WARNING: the guest was running before and is still paused: ${r.resumeError}\n`);
      setExit(r.job.exitCode || 5);
    } else setExit(r.job.exitCode);
  });
}
