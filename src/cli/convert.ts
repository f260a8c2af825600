import type { Command } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { formatByName, openImage } from '../formats/registry.js';
import type { FormatName } from '../formats/types.js';
import { runJob } from '../pipeline/job.js';
import { ImageSource } from '../sources/image.js';
import { type GlobalOptions, abortOnSignals, progressReporter } from './common.js';
import { type DeliveryOpts, addDeliveryOptions, isRemoteSpec, parseDeliveryOptions } from './delivery-options.js';
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

interface ConvertOpts extends HashOpts, CaseOpts, E01Opts, Omit<DeliveryOpts, 'to'> {
  to: string;
  inputFormat?: string;
  allowRaw?: boolean;
  maxDiskUsage: string;
  report?: string;
}

export function registerConvert(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  const cmd = program
    .command('convert')
    .description('convert a memory image between formats without loss (map and notes carried), with hashes and a report')
    .argument('<input>', 'any image memdump reads: LiME, AVML, ELF (QEMU, VirtualBox, kcore-style), E01, padded, raw, kdump-compressed, Windows crash dump, hiberfil.sys, VMware .vmss/.vmsn/.vmem')
    .argument('<output>', 'new file, - for standard output, or a network destination: tls://HOST:PORT, https://PRESIGNED-URL, s3-presigned:MANIFEST.json (e01: .E01 is appended if missing; more segments follow as .E02, …)')
    .requiredOption('-t, --to <format>', 'lime | padded | raw | elf | avml | e01')
    .option('--input-format <name>', 'read the input as this format (padded or raw files have no magic): lime, avml, elf, e01, kdump, wincrash, hiberfil, vmware, padded, raw')
    .option('--allow-raw', 'permit --to raw (addresses only in OUT.map.json)')
    .option('--report <path>', 'with output -: write the report here instead of standard error');
  addHashOptions(cmd);
  addDiskGuardOption(cmd);
  addCaseOptions(cmd);
  addE01Options(cmd);
  addDeliveryOptions(cmd, false);
  cmd.addHelpText(
    'after',
    `
Examples:
  memdump convert host.avml host.lime --to lime        # for Volatility 3 without its AVML layer
  memdump convert host.lime host.elf --to elf          # for tools that read QEMU/VirtualBox ELF dumps
  memdump convert hiberfil.sys laptop.lime --to lime   # Windows 7–11 hibernation file, decompressed on the way
  memdump convert MEMORY.DMP win.lime --to lime        # Windows crash dump (full or bitmap)
  memdump convert vm.vmss vm.lime --to lime            # VMware suspend state (+ vm.vmem beside it)
  memdump convert guest.elf guest.padded --to padded   # offset = physical address (+ guest.padded.map.json)
  memdump convert host.lime host.E01 --to e01 --case IR-42 --segment-size 2G   # for EnCase, X-Ways, ewf-tools
                                                       # (media = padded layout; ewfverify host.E01)
  memdump convert host.avml tls://collector:9443 --to lime --pin sha256/… --token-file case.token
  memdump convert host.lime host.lime --to lime --recipient age1… --compress gzip   # writes host.lime.gz.age`,
  );
  cmd.action(async (input: string, output: string, o: ConvertOpts) => {
    const g = globals();
    if (isRemoteSpec(o.to)) throw new MemdumpError('E_USAGE', `convert's --to names the output format; give the destination as the output argument: memdump convert IN ${o.to} --to lime`);
    const format = formatByName(o.to);
    const remote = isRemoteSpec(output);
    const abortDial = new AbortController();
    const delivery = parseDeliveryOptions({ ...o, recipient: o.recipient }, remote ? output : undefined, abortDial.signal);
    if (format.name === 'raw' && !o.allowRaw) throw new MemdumpError('E_RAW_NEEDS_OPT_IN', 'raw output loses every physical address; add --allow-raw (a FILE.map.json keeps the map)');
    const e01 = format.name === 'e01';
    checkE01OptionsUsed(cmd, e01);
    const e01Opts = e01 ? parseE01Options(o) : undefined;
    const img = await openImage(input, o.inputFormat as FormatName | undefined);
    const source = new ImageSource(img, input);
    const sig = abortOnSignals();
    sig.signal.addEventListener('abort', () => abortDial.abort(), { once: true });
    try {
      const { digests, windowSize } = parseHashOptions(o, { cmd, on: e01 });
      const progress = progressReporter(g, 'convert');
      const result = await runJob({
        command: 'convert',
        argv: process.argv.slice(1),
        caseFields: caseFieldsOf(o),
        root: '/',
        source,
        attempts: [{ source: 'image', path: input, ok: true }],
        lockdown: undefined,
        ram: img.runs,
        notes: img.notes,
        format,
        output,
        digests,
        windowSize,
        rateLimit: 0,
        maxDiskUsage: parseDiskGuard(o),
        policy: { signal: sig.signal },
        context: undefined,
        reportPath: o.report,
        contentHash: true,
        // the reader's own doubt about the input (an incomplete kdump, a short crash dump) belongs in the report
        warnings: typeof img.details['warning'] === 'string' ? [`input ${input}: ${img.details['warning']}`] : [],
        options: {
          from: img.format,
          to: format.name,
          digests,
          hashWindow: windowSize.toString(),
          ...(e01Opts ? { compression: e01Opts.compression, segmentSize: e01Opts.segmentBytes.toString() } : {}),
        },
        ...(e01Opts ? { media: e01MediaOf(o, e01Opts, `memory image ${input} (${img.format})`) } : {}),
        ...(progress ? { onProgress: progress } : {}),
        ...(delivery ? { delivery } : {}),
      });
      printJobResult(g, result);
      setExit(result.exitCode);
    } finally {
      sig.dispose();
      await source.close();
    }
  });
}
