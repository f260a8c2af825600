#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { ERROR_EXIT, MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { toolIdentity } from '../core/host.js';
import { registerAcquire } from './acquire.js';
import type { GlobalOptions } from './common.js';
import { registerConfig } from './config.js';
import { registerConvert } from './convert.js';
import { registerCoreHandler } from './core-handler.js';
import { registerDecrypt } from './decrypt.js';
import { registerDoctor } from './doctor.js';
import { registerImage } from './image.js';
import { registerInfo } from './info.js';
import { registerPresign } from './presign.js';
import { registerProcess } from './process.js';
import { registerReceive } from './receive.js';
import { registerRegions } from './regions.js';
import { registerScan } from './scan.js';
import { registerSwap } from './swap.js';
import { registerVerify } from './verify.js';
import { registerVm } from './vm.js';
import { registerWatch } from './watch.js';

const EXIT_HELP = `
Exit status:
  0 success · 1 unexpected error · 2 usage (E_USAGE, E_RAW_NEEDS_OPT_IN) · 3 not found · 4 permission or lockdown
  5 no usable source, source read failed, or image --max-errors exceeded (E_TOO_MANY_ERRORS)
  6 destination exists or is a symlink · 7 no space / write failed · 8 unknown format
  9 truncated / corrupt / too large · 10 unsupported
  11 verification mismatch (verify; image --verify: the source changed; a report signature that fails) · 12 invalid report
  13 delivery refused: receiver pin mismatch or authentication failed · 14 delivery failed (protocol, remote error, limit)
  15 decryption failed (wrong identity, altered or truncated ciphertext)
  16 scan --find-secret: a secret is still in memory
  70 internal error · 130 interrupted (SIGINT/SIGTERM: the .partial file and an INCOMPLETE report are kept)`;

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  // `memdump x --help | head`, `memdump info --json | head`: a reader that went away is not a crash. While the
  // evidence itself goes to stdout (-o -), StdoutSink listens too and turns it into an INCOMPLETE report instead.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE' && process.stdout.listenerCount('error') === 1) process.exit(exitCode || 0);
  });
  const program = new Command();
  program
    .name('memdump')
    .description('memory acquisition and evidence handling: physical RAM from userland, hashed, reported, in the formats analysts open')
    .version(toolIdentity().version)
    .option('--json', 'machine-readable output on stdout (progress and errors as JSON lines on stderr)')
    .option('-q, --quiet', 'no progress or summary on stderr')
    .showHelpAfterError()
    .exitOverride()
    .addHelpText('after', EXIT_HELP);
  const globals = () => program.opts<GlobalOptions>();
  const setExit = (n: number) => (exitCode = n);
  registerAcquire(program, globals, setExit);
  registerInfo(program, globals, setExit);
  registerConvert(program, globals, setExit);
  registerVerify(program, globals, setExit);
  registerProcess(program, globals, setExit);
  registerRegions(program, globals, setExit);
  registerImage(program, globals, setExit);
  registerSwap(program, globals, setExit);
  registerWatch(program, globals, setExit);
  registerDoctor(program, globals, setExit);
  registerConfig(program, globals, setExit);
  registerCoreHandler(program, globals, setExit);
  registerReceive(program, globals, setExit);
  registerPresign(program, globals, setExit);
  registerDecrypt(program, globals, setExit);
  registerVm(program, globals, setExit);
  registerScan(program, globals, setExit);
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return ERROR_EXIT.E_USAGE!;
    }
    const err = e instanceof MemdumpError ? e : new MemdumpError('E_INTERNAL', (e as Error)?.stack ?? String(e));
    if (program.opts<GlobalOptions>().json) {
      process.stderr.write(JSON.stringify({ error: { code: err.code, message: err.message, details: err.details } }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
    } else {
      process.stderr.write(`memdump: ${err.code}: ${escapeControl(err.message).replace(/\\x0a/g, '\n')}\n`);
    }
    return err.exitCode;
  }
}

const code = await main(process.argv);
process.exitCode = code;
