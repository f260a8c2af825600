import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { formatDoctor, runDoctor } from '../pipeline/doctor.js';
import type { GlobalOptions } from './common.js';

const HELP = `
Each line is OK, WARN or FAIL, with why and what to do. Checks: privileges and capabilities, kernel and
architecture, lockdown, each physical source (/proc/kcore, /dev/crash, /dev/mem: opened exactly as acquire would),
Yama ptrace_scope, container signs, RAM against free space at --output-dir, whether --output-dir is on the disk
being investigated, swap, core_pattern / suid_dumpable / systemd DefaultLimitCORE / ulimit -c, load, uptime and
memory-churning processes (backups, scans, updates). Nothing on the host is changed.

Exit status: 0 whatever was found (it is a report); with --strict, 1 when any check FAILs.

Examples:
  sudo memdump doctor --output-dir /mnt/usb
  memdump doctor --json | jq '.[] | select(.status != "OK")'
  memdump doctor --root /host --strict           # in a container with the host's /proc, /sys, /dev, /etc under /host`;

export function registerDoctor(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  program
    .command('doctor')
    .description('check what will work on this host before acquiring, and what to do otherwise')
    .option('--root <dir>', 'root of the /proc, /sys, /dev and /etc trees to examine', '/')
    .option('--output-dir <dir>', 'where the dump would be written (free space, same disk as the system?)', '.')
    .option('--strict', 'exit 1 when any check FAILs')
    .addOption(new Option('--assume-euid <uid>', 'effective uid to judge privileges by (tests)').hideHelp())
    .addHelpText('after', HELP)
    .action(async (o: { root: string; outputDir: string; strict?: boolean; assumeEuid?: string }) => {
      let euid: number | undefined;
      if (o.assumeEuid !== undefined) {
        euid = Number(o.assumeEuid);
        if (!Number.isInteger(euid) || euid < 0) throw new MemdumpError('E_USAGE', `--assume-euid: "${o.assumeEuid}" is not a uid`);
      }
      const results = await runDoctor({ root: resolve(o.root), outputDir: resolve(o.outputDir), ...(euid !== undefined ? { euid } : {}) });
      process.stdout.write(globals().json ? JSON.stringify(results) + '\n' : formatDoctor(results));
      if (o.strict && results.some((r) => r.status === 'FAIL')) setExit(1);
    });
}
