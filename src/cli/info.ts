import type { Command } from 'commander';
import { escapeControl } from '../core/escape.js';
import type { FormatName } from '../formats/types.js';
import { info } from '../pipeline/info.js';
import { fmt } from '../pipeline/space.js';
import type { GlobalOptions } from './common.js';

export function registerInfo(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  program
    .command('info')
    .description('describe a memory image: format, ranges, holes, banner, and whether it matches its report')
    .argument('<file>')
    .option('--input-format <name>', 'read the file as this format (padded or raw have no magic): lime, avml, elf, e01, kdump, wincrash, hiberfil, vmware, padded, raw')
    .option('--content-hash', 'also compute the container-independent content hash (reads every byte)')
    .option('--no-banner', 'skip the search for a Linux version banner')
    .option('--ranges', 'list every range (always included with --json)')
    .addHelpText('after', '\nExamples:\n  memdump info host.lime\n  memdump info --json --content-hash host.avml\n  memdump info MEMORY.DMP          # Windows crash dump: version, bugcheck, DirectoryTableBase, KdDebuggerDataBlock\n  memdump info hiberfil.sys\n  memdump info guest.vmem           # reads guest.vmss/.vmsn beside it for the memory map')
    .action(async (file: string, o: { inputFormat?: string; contentHash?: boolean; banner: boolean; ranges?: boolean }) => {
      const g = globals();
      const r = await info(file, { ...(o.inputFormat ? { inputFormat: o.inputFormat as FormatName } : {}), contentHash: !!o.contentHash, banner: o.banner });
      const warning = r.details['warning'];
      if (typeof warning === 'string') process.stderr.write(`memdump: WARNING: ${escapeControl(warning)}\n`);
      if (g.json) {
        process.stdout.write(JSON.stringify(r) + '\n');
      } else {
        const out = [
          `file        ${escapeControl(r.file)} (${r.fileSize} bytes)`,
          `format      ${r.format}`,
          `ranges      ${r.ranges.count}, ${fmt(BigInt(r.ranges.totalBytes))} (${r.ranges.totalBytes} bytes) from ${r.ranges.first ?? '-'} to ${r.ranges.end ?? '-'}`,
          `holes       ${r.ranges.holes} (${fmt(BigInt(r.ranges.holeBytes))})`,
        ];
        if (o.ranges) for (const x of r.ranges.list) out.push(`  ${x.start}-${x.end} ${x.length}`);
        if (r.notes.length) out.push(`notes       ${r.notes.join(', ')}`);
        for (const [k, v] of Object.entries(r.details)) out.push(`${k.padEnd(11)} ${escapeControl(JSON.stringify(v))}`);
        out.push(`banner      ${r.banner ? `${escapeControl(r.banner.text)} @ ${r.banner.address}` : 'none found'}`);
        if (r.contentSha256) out.push(`content     sha256 ${r.contentSha256}`);
        out.push(
          r.report
            ? `report      ${escapeControl(r.report.path)}: ${r.report.matches ? 'matches (size, format, map; run verify for hashes)' : 'DOES NOT MATCH: ' + r.report.problems.join('; ')}`
            : 'report      none beside the file',
        );
        process.stdout.write(out.join('\n') + '\n');
      }
      if (r.report && !r.report.matches) setExit(11);
    });
}
