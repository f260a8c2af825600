import { execFile } from 'node:child_process';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { MemdumpError } from '../core/errors.js';
import { escapeControl } from '../core/escape.js';
import { type Change, type CommandOutcome, applyPlan, describePlan, revertState } from '../config/apply.js';
import { DEFAULT_CRASH_DIR, coredumpRevertCommands, hostRunner, planCoredumps } from '../config/coredumps.js';
import { planHistory } from '../config/history.js';
import { statePath } from '../config/state.js';
import type { GlobalOptions } from './common.js';

interface TopicOptions {
  apply?: boolean;
  revert?: boolean;
  root: string;
}

function exec(argv: readonly string[]): Promise<{ code: number | null; message: string }> {
  return new Promise((res) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      res({ code, message: (stderr || stdout || (err ? err.message : '')).trim().slice(0, 2000) || 'ok' });
    });
  });
}

// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** Host file content reaches the terminal in diffs: escape what could drive it, keep tabs, newlines and backslashes as they are. */
const forTerminal = (s: string) => s.replace(UNSAFE, (c) => escapeControl(c));

const show = (c: CommandOutcome) => `${c.argv.join(' ')}: ${c.ran ? `exit ${c.code}${c.message && c.message !== 'ok' ? ' — ' + c.message : ''}` : c.message}`;

function rootOf(o: TopicOptions): string {
  if (o.apply && o.revert) throw new MemdumpError('E_USAGE', 'choose one of --apply and --revert');
  const root = resolve(o.root);
  if (!isAbsolute(root)) throw new MemdumpError('E_USAGE', `--root must be a directory; got ${o.root}`);
  return root;
}

async function run(g: GlobalOptions, topic: string, o: TopicOptions, plan: () => Promise<{ changes: Change[]; notes: string[]; extra?: Record<string, unknown> }>, revertCommands: (entries: readonly { path: string }[]) => string[][]): Promise<void> {
  const root = rootOf(o);
  const runner = hostRunner(root, exec);
  // JSON.stringify already escapes control characters; human text is escaped line by line
  const out = (lines: string[]) => process.stdout.write(lines.map((l) => (g.json ? l : forTerminal(l))).join('\n') + '\n');
  if (o.revert) {
    const r = await revertState(root, topic, runner, (s) => revertCommands(s.entries));
    if (g.json) return void out([JSON.stringify({ topic, action: 'revert', root, restored: r.state.entries.map((e) => e.path), removedDirs: r.state.createdDirs, warnings: r.warnings, commands: r.commands })]);
    return void out([
      `reverted "memdump config ${topic}" (applied ${r.state.appliedAt}) under ${root}:`,
      ...r.state.entries.map((e) => `  ${e.before.exists ? 'restored' : 'removed '} ${e.path}`),
      ...r.warnings.map((w) => `  warning: ${w}`),
      ...r.commands.map((c) => `  ${c.ran ? 'ran' : 'did not run'} ${show(c)}`),
    ]);
  }
  const p = await plan();
  if (!o.apply) {
    const diff = await describePlan(root, p.changes);
    if (g.json) return void out([JSON.stringify({ topic, action: 'dry-run', root, changes: p.changes, diff, notes: p.notes, ...p.extra })]);
    return void out([
      p.changes.length === 0 ? `memdump config ${topic}: nothing to change under ${root} (already applied)` : `memdump config ${topic}: dry run under ${root}; nothing is changed. Re-run with --apply to make these changes:\n`,
      ...(p.changes.length ? [diff] : []),
      ...p.notes.map((n) => `note: ${n}`),
    ]);
  }
  const r = await applyPlan(root, topic, p.changes, runner, process.argv.slice(2), p.notes);
  if (g.json) return void out([JSON.stringify({ topic, action: 'apply', root, alreadyApplied: r.alreadyApplied, changes: p.changes, state: statePath(topic), commands: r.commands, notes: p.notes, ...p.extra })]);
  out([
    r.alreadyApplied ? `memdump config ${topic}: already applied under ${root}; nothing changed` : `memdump config ${topic}: applied ${p.changes.filter((c) => c.kind !== 'command').length} change(s) under ${root}; the previous state is in ${statePath(topic)} ("--revert" puts it back)`,
    ...p.changes.map((c) => (c.kind === 'file' || c.kind === 'dir' ? `  ${c.kind} ${c.path}` : c.kind === 'sysctl' ? `  sysctl ${c.key} = ${c.value}` : '')).filter(Boolean),
    ...r.commands.map((c) => `  ${c.ran ? 'ran' : 'did not run'} ${show(c)}`),
    ...p.notes.map((n) => `note: ${n}`),
  ]);
}

export function registerConfig(program: Command, globals: () => GlobalOptions, _setExit: (n: number) => void): void {
  const config = program.command('config').description('prepare a host before an incident: keep core dumps and complete shell history (dry run unless --apply; --revert undoes exactly)');
  config
    .command('coredumps')
    .description('let processes dump core: systemd DefaultLimitCORE=infinity, kernel.core_pattern, fs.suid_dumpable=2, a crash directory (1777 for plain files; a new 0700 one for the memdump pipe handler; an existing directory other than /var/crash keeps its mode)')
    .option('--apply', 'make the changes (default: print them as a diff)')
    .option('--revert', 'restore exactly what --apply found')
    .option('--root <dir>', 'the tree to change (/etc, /proc/sys, /var under it)', '/')
    .option('--pattern <dir|memdump>', `a directory for core.%e.%p.%t files, or "memdump" to pipe cores to "memdump core-handler"`, DEFAULT_CRASH_DIR)
    .option('--dir <dir>', 'with --pattern memdump: where core-handler writes cores and reports', DEFAULT_CRASH_DIR)
    .option('--override', 'replace core_pattern even when systemd-coredump or apport owns it')
    .addHelpText('after', '\nExamples:\n  memdump config coredumps                      # show what would change\n  sudo memdump config coredumps --apply --pattern memdump\n  sudo memdump config coredumps --revert')
    .action(async (o: TopicOptions & { pattern: string; dir: string; override?: boolean }) => {
      const root = rootOf(o);
      await run(
        globals(),
        'coredumps',
        o,
        async () => {
          const p = await planCoredumps({ root, pattern: o.pattern, handlerDir: o.dir, handlerArgv: [process.execPath, fileURLToPath(new URL('./main.js', import.meta.url))], override: o.override === true });
          return { changes: p.changes, notes: p.notes, extra: { detection: p.detection, corePattern: p.corePattern, crashDir: p.crashDir } };
        },
        coredumpRevertCommands,
      );
    });
  config
    .command('history')
    .description('complete shell history for every user: history on, append, nothing ignored, unlimited, timestamps "%F-%R "')
    .option('--apply', 'make the changes (default: print them as a diff)')
    .option('--revert', 'restore exactly what --apply found')
    .option('--root <dir>', 'the tree to change', '/')
    .option('--bashrc', 'also source the drop-in from /etc/bash.bashrc (interactive non-login bash)')
    .action(async (o: TopicOptions & { bashrc?: boolean }) => {
      const root = rootOf(o);
      await run(globals(), 'history', o, () => planHistory({ root, bashrc: o.bashrc === true }), () => []);
    });
}
