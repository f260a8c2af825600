import type { Command } from 'commander';
import { ERROR_EXIT } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { handleCore } from '../pipeline/core-handler.js';
import { DEFAULT_CRASH_DIR } from '../config/coredumps.js';
import type { GlobalOptions } from './common.js';

export function registerCoreHandler(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  program
    .command('core-handler')
    .description('kernel core_pattern pipe handler: store the core from stdin (0600, hashed) with a report and log beside it')
    .argument('<pid>', "the crashing process's PID (core_pattern %P)")
    .argument('<exe>', 'its executable name (%e)')
    .argument('<time>', 'time of the dump, seconds since the epoch (%t)')
    .option('--dir <dir>', 'where to write NAME_PID_TIME.core and its report', DEFAULT_CRASH_DIR)
    .addHelpText('after', '\nInstalled by "memdump config coredumps --apply --pattern memdump" as\n  |/path/to/node /path/to/memdump core-handler %P %e %t\nBy hand: memdump core-handler 1234 myprog 1700000000 --dir /tmp < core.1234')
    .action(async (pid: string, exe: string, time: string, o: { dir: string }) => {
      const g = globals();
      const r = await handleCore({ pid, exe, time, dir: o.dir, input: process.stdin, argv: process.argv.slice(2) });
      if (g.json) process.stdout.write(JSON.stringify({ status: r.status, path: r.path, report: r.report, log: r.log, bytes: r.bytes.toString(), digests: r.digests, failure: r.failure }) + '\n');
      else if (!g.quiet) {
        process.stderr.write(escapeControl(`${r.status}: ${r.path} (${r.bytes} bytes, sha256 ${r.digests.sha256 ?? '-'}); report ${r.report}${r.failure ? `; ${r.failure.code}: ${r.failure.message}` : ''}`) + '\n');
      }
      if (r.failure) setExit(ERROR_EXIT[r.failure.code] ?? 1);
    });
}
