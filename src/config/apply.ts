import { promises as fs } from 'node:fs';
import { MemdumpError, fromSystemError } from '../core/errors.js';
import { octal, unifiedDiff } from './diff.js';
import {
  type Before,
  type ConfigState,
  STATE_SCHEMA,
  type StateEntry,
  lstatOrNull,
  missingDirs,
  readState,
  removeState,
  restore,
  sha256,
  snapshot,
  statePath,
  under,
  writeAtomic,
  writeState,
  writeSysctl,
} from './state.js';

/** One change a `memdump config` topic wants. Plans hold only real changes: an applied host yields an empty plan. */
export type Change =
  | { kind: 'file'; path: string; content: string; mode: number; why: string }
  | { kind: 'dir'; path: string; mode: number; why: string }
  | { kind: 'sysctl'; key: string; value: string; why: string }
  | { kind: 'command'; argv: string[]; why: string };

export const sysctlPath = (key: string) => '/proc/sys/' + key.replace(/\./g, '/');

/** Runs a command after apply/revert; tests record instead of executing. */
export type Runner = (argv: readonly string[]) => Promise<{ ran: boolean; code: number | null; message: string }>;

export interface CommandOutcome {
  argv: string[];
  ran: boolean;
  code: number | null;
  message: string;
}

const quote = (s: string) => (/^[A-Za-z0-9_./%:=+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
const text = (b: Before) => (b.exists && b.content !== null ? Buffer.from(b.content, 'base64').toString('utf8') : '');

/** The dry run: a unified diff per file, `sysctl KEY: old → new`, mode changes and the commands apply would run. */
export async function describePlan(root: string, changes: readonly Change[]): Promise<string> {
  const out: string[] = [];
  for (const c of changes) {
    if (c.kind === 'file') {
      const b = await snapshot(root, c.path);
      const oldLabel = b.exists ? `${c.path}\t(mode ${octal(b.mode)})` : '/dev/null';
      const newLabel = `${c.path}\t(mode ${octal(c.mode)})${b.exists ? '' : ' (new file)'}`;
      const d = unifiedDiff(oldLabel, newLabel, text(b), c.content);
      out.push(`# ${c.why}`);
      out.push(d === '' ? `mode ${c.path}: ${b.exists ? octal(b.mode) : 'absent'} → ${octal(c.mode)}\n` : d);
    } else if (c.kind === 'dir') {
      const b = await snapshot(root, c.path);
      out.push(`# ${c.why}`, b.exists ? `directory ${c.path}: mode ${octal(b.mode)} → ${octal(c.mode)}\n` : `directory ${c.path}: absent → created, mode ${octal(c.mode)}\n`);
    } else if (c.kind === 'sysctl') {
      const b = await snapshot(root, sysctlPath(c.key));
      const old = b.exists ? JSON.stringify(text(b).replace(/\n$/, '')) : '(absent)';
      out.push(`# ${c.why}`, `sysctl ${c.key} (${sysctlPath(c.key)}): ${old} → ${JSON.stringify(c.value)}\n`);
    } else out.push(`# ${c.why}`, `run: ${c.argv.map(quote).join(' ')}\n`);
  }
  return out.join('\n');
}

function entryFor(c: Change): { kind: StateEntry['kind']; path: string } | undefined {
  if (c.kind === 'file' || c.kind === 'dir') return { kind: c.kind, path: c.path };
  if (c.kind === 'sysctl') return { kind: 'sysctl', path: sysctlPath(c.key) };
  return undefined;
}

export interface ApplyResult {
  state: ConfigState | null;
  alreadyApplied: boolean;
  commands: CommandOutcome[];
}

/**
 * Record every "before" in the state file first (so a crash half-way can still be reverted), then change.
 * A second apply finds an empty plan and does nothing; a state left by an apply whose changes were since undone
 * by hand is refused, because the new "before" would no longer be the original.
 */
export async function applyPlan(root: string, topic: string, changes: readonly Change[], runner: Runner, argv: readonly string[], notes: readonly string[] = []): Promise<ApplyResult> {
  const existing = await readState(root, topic);
  if (changes.length === 0) return { state: existing, alreadyApplied: true, commands: [] };
  if (existing) {
    throw new MemdumpError('E_USAGE', `a previous "memdump config ${topic} --apply" is recorded in ${statePath(topic)} (on ${existing.appliedAt}) but the host no longer matches it; run "memdump config ${topic} --revert" first`, {
      details: { state: statePath(topic) },
    });
  }
  const createdDirs: string[] = [];
  const addMissing = async (p: string) => {
    for (const d of await missingDirs(root, p)) if (!createdDirs.includes(d)) createdDirs.push(d);
  };
  await addMissing(statePath(topic).replace(/\/[^/]+$/, ''));
  const entries: StateEntry[] = [];
  for (const c of changes) {
    const e = entryFor(c);
    if (!e) continue;
    if (c.kind === 'sysctl' && !(await lstatOrNull(under(root, e.path)))) {
      throw new MemdumpError('E_NOT_FOUND', `${e.path} does not exist under ${root}; this kernel has no ${c.key}`);
    }
    if (c.kind !== 'sysctl') await addMissing(e.path.replace(/\/[^/]+$/, '') || '/');
    const before = await snapshot(root, e.path);
    if (before.exists && ((c.kind === 'file' && before.type !== 'file') || (c.kind === 'dir' && before.type !== 'dir'))) {
      throw new MemdumpError('E_USAGE', `${under(root, e.path)} is a ${before.type}, not the ${c.kind} memdump config would write; nothing was changed`);
    }
    entries.push({ ...e, before, afterSha256: c.kind === 'file' ? sha256(c.content) : null });
  }
  const state: ConfigState = { schema: STATE_SCHEMA, topic, appliedAt: new Date().toISOString(), argv: [...argv], entries, createdDirs, notes: [...notes] };
  try {
    for (const d of createdDirs) await fs.mkdir(under(root, d), { mode: 0o755 });
  } catch (e) {
    throw fromSystemError(e, 'creating directories');
  }
  await writeState(root, state);
  try {
    for (const c of changes) {
      if (c.kind === 'file') await writeAtomic(under(root, c.path), c.content, c.mode);
      else if (c.kind === 'dir') {
        const full = under(root, c.path);
        try {
          if (!(await lstatOrNull(full))) await fs.mkdir(full);
          await fs.chmod(full, c.mode);
        } catch (e) {
          throw fromSystemError(e, `preparing ${c.path}`);
        }
      } else if (c.kind === 'sysctl') await writeSysctl(root, sysctlPath(c.key), c.value + '\n');
    }
  } catch (e) {
    const err = fromSystemError(e, 'applying');
    throw new MemdumpError(err.code, `${err.message}. The host is partly changed; "memdump config ${topic} --revert" restores what was recorded in ${statePath(topic)}`, { details: err.details, cause: e });
  }
  const commands: CommandOutcome[] = [];
  for (const c of changes) if (c.kind === 'command') commands.push({ argv: c.argv, ...(await runner(c.argv)) });
  return { state, alreadyApplied: false, commands };
}

export interface RevertResult {
  state: ConfigState;
  warnings: string[];
  commands: CommandOutcome[];
}

/** Put back every recorded "before", newest change first, then remove what apply created and the state itself. */
export async function revertState(root: string, topic: string, runner: Runner, commandsAfter: (s: ConfigState) => string[][]): Promise<RevertResult> {
  const state = await readState(root, topic);
  if (!state) {
    throw new MemdumpError('E_NOT_FOUND', `nothing to revert: no "memdump config ${topic} --apply" is recorded (${statePath(topic)} under ${root} does not exist; already reverted?)`, {
      details: { state: statePath(topic) },
    });
  }
  const warnings: string[] = [];
  for (const e of [...state.entries].reverse()) warnings.push(...(await restore(root, e)));
  await removeState(root, topic);
  for (const d of [...state.createdDirs].sort((a, b) => b.length - a.length)) {
    await fs.rmdir(under(root, d)).catch(() => warnings.push(`${d} is not empty; left in place`));
  }
  const commands: CommandOutcome[] = [];
  for (const argv of commandsAfter(state)) commands.push({ argv, ...(await runner(argv)) });
  return { state, warnings, commands };
}
