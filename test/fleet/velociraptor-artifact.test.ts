import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { REPO, runCli, tempDir } from '../helpers/cli.js';
import { Prng } from '../helpers/prng.js';
import { initCollector, makeBundle, serve } from '../helpers/receiver.js';
import { evaluate, parse, statements, type Value } from './vql-subset.js';

/**
 * Velociraptor is not installable here, so this test does what can be done without it: it reads the artifact
 * with a real YAML parser, checks the fields Velociraptor's artifact schema documents, then evaluates the
 * artifact's own LET statements that build the execve() argv (a small VQL subset: string and list literals,
 * `+`, if(condition=, then=, else=), tempfile()) with the collection's parameters, and runs that exact argv,
 * without a shell, against a real `memdump receive` on 127.0.0.1. The statements that need Velociraptor itself
 * (FetchBinary, unzip, tempdir) are checked by text and emulated: the bundle is a real tar.gz unpacked with tar.
 */

const ARTIFACT = join(REPO, 'docs/fleet/memdump-acquire.velociraptor.yaml');
const PARAM_TYPES = new Set(['', 'string', 'int', 'integer', 'int64', 'float', 'bool', 'timestamp', 'choices', 'multichoice', 'server_metadata', 'regex', 'regex_array', 'yara', 'json', 'json_array', 'csv', 'hidden', 'redacted', 'upload', 'upload_file', 'artifactset']);

interface Param {
  name: string;
  type?: string;
  default?: string;
  description?: string;
  choices?: string[];
  validating_regex?: string;
}
interface Artifact {
  name: string;
  description: string;
  type?: string;
  precondition: string;
  required_permissions?: string[];
  tools: Array<{ name: string; serve_locally?: boolean; url?: string }>;
  parameters: Param[];
  sources: Array<{ query: string }>;
  resources?: Record<string, unknown>;
}

function loadArtifact(): Artifact {
  const r = spawnSync('python3', ['-c', 'import json,sys,yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: readFileSync(ARTIFACT) });
  if (r.error || r.status !== 0) assert.fail(`parsing the artifact needs python3 with PyYAML (apt-get install python3-yaml): ${r.error?.message ?? r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString()) as Artifact;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Collection {
  argv: string[];
  tokenFile: string;
  bundleDir: string;
}

let collections = 0;

/** What Velociraptor would do with the artifact and these parameters, up to the execve() argv. */
function prepare(a: Artifact, dir: string, params: Record<string, string>, bundle: string): Collection {
  const scope = new Map<string, Value>();
  for (const p of a.parameters) {
    const raw = params[p.name] ?? p.default ?? '';
    scope.set(p.name, p.type === 'json_array' ? (JSON.parse(raw) as Value[]) : raw);
  }
  const bundleDir = join(dir, `vr-tmp-${++collections}`);
  mkdirSync(bundleDir, { mode: 0o700 });
  let tokenFile = '';
  const fns = {
    tempfile: (args: Record<string, Value>) => {
      // Velociraptor's tempfile() writes `data` to a new file that only the client's user can read.
      const data = args['data'];
      assert.equal(typeof data, 'string');
      tokenFile = join(bundleDir + '-files', 'tmp' + String(args['extension'] ?? ''));
      mkdirSync(bundleDir + '-files', { mode: 0o700 });
      writeFileSync(tokenFile, data as string, { mode: 0o600 });
      return tokenFile;
    },
  };
  const { lets, select } = statements(a.sources[0]!.query);
  const emulated: Record<string, { text: RegExp; value: () => Value }> = {
    Bundle: { text: /^SELECT OSPath FROM Artifact\.Generic\.Utils\.FetchBinary\(ToolName="MemdumpBundle", IsExecutable=FALSE\)$/, value: () => [{ OSPath: bundle }] },
    BundleDir: { text: /^tempdir\(/, value: () => bundleDir },
    Unpacked: {
      text: /unzip\(filename=OSPath, output_directory=BundleDir, type="tgz"\)/,
      value: () => {
        execFileSync('tar', ['-xzf', bundle, '-C', bundleDir]);
        return readdirSync(bundleDir);
      },
    },
  };
  for (const l of lets) {
    const e = emulated[l.name];
    if (e) {
      assert.match(l.expr, e.text, `LET ${l.name}`);
      scope.set(l.name, e.value());
    } else scope.set(l.name, evaluate(parse(l.expr), scope, fns));
  }
  assert.deepEqual(Object.keys(emulated).filter((k) => !scope.has(k)), [], 'every emulated statement is in the artifact');
  assert.match(select, /\bexecve\(argv=Argv, cwd=BundleDir,/, 'the final SELECT runs Argv');
  assert.equal(select.match(/execve\(/g)?.length, 1);
  const argv = scope.get('Argv');
  assert.ok(Array.isArray(argv) && argv.every((x) => typeof x === 'string'), 'Argv is a list of strings');
  return { argv: argv as string[], tokenFile, bundleDir };
}

function execve(argv: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0]!, argv.slice(1), { cwd, shell: false, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function fakeMemory(dir: string, seed: number, size: number): { image: string; iomem: string; bytes: Buffer } {
  const bytes = new Prng(seed).bytes(size);
  const image = join(dir, `mem-${seed}.img`);
  const iomem = join(dir, `iomem-${seed}.txt`);
  writeFileSync(image, bytes);
  writeFileSync(iomem, `00000000-${(size - 1).toString(16).padStart(8, '0')} : System RAM\n`);
  return { image, iomem, bytes };
}

/**
 * One collection's world: the artifact, a `memdump receive` on 127.0.0.1 with one token for `caseLabel` (stopped
 * after the test), the bundle, and this host's seeded memory.
 */
async function setUp(t: TestContext, caseLabel: string, seed: number, size: number) {
  const dir = tempDir(t, 'memdump-vr-');
  const state = join(dir, 'rx-state');
  const { pin, token } = await initCollector(state, caseLabel, '1h');
  const evidence = join(dir, 'evidence');
  const rx = await serve(['--state', state, '--dir', evidence, '--listen', '127.0.0.1:0']);
  t.after(() => rx.stop());
  return { dir, a: loadArtifact(), rx: { ...rx, pin, token, dir: evidence }, bundle: makeBundle(dir), mem: fakeMemory(dir, seed, size) };
}

test('the artifact follows Velociraptor\'s documented schema', () => {
  const a = loadArtifact();
  assert.match(a.name, /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/, 'names: letters, digits, _ and . only');
  assert.ok(a.description.length > 200);
  assert.equal(a.type ?? 'CLIENT', 'CLIENT');
  assert.deepEqual(a.required_permissions, ['EXECVE']);
  assert.match(a.precondition, /^SELECT .* FROM info\(\) WHERE OS = 'linux'/);
  assert.equal(typeof a.resources?.['timeout'], 'number');
  assert.deepEqual(a.tools.map((t) => t.name), ['MemdumpBundle']);
  const names = a.parameters.map((p) => p.name);
  for (const n of ['Collector', 'Pin', 'Token', 'Recipient', 'Manifest', 'RateLimit', 'NodeBinary', 'ExtraArgs']) assert.ok(names.includes(n), `parameter ${n}`);
  assert.equal(new Set(names).size, names.length);
  for (const p of a.parameters) {
    assert.match(p.name, /^[A-Za-z][A-Za-z0-9_]*$/);
    assert.ok(PARAM_TYPES.has(p.type ?? ''), `parameter ${p.name}: type ${p.type}`);
    if (p.default !== undefined) assert.equal(typeof p.default, 'string', `${p.name}: defaults are strings`);
    if (p.validating_regex && p.default !== undefined) assert.match(p.default, new RegExp(p.validating_regex), `${p.name} default passes its own regex`);
    if (p.type === 'choices') assert.ok(p.choices?.includes(p.default ?? ''), `${p.name} default is a choice`);
  }
  assert.equal(a.parameters.find((p) => p.name === 'Token')?.type, 'redacted');
  assert.equal(a.sources.length, 1);
  const q = a.sources[0]!.query;
  assert.doesNotMatch(q, /["'](\/bin\/)?(ba)?sh["']|["']-c["']/, 'no shell anywhere');
  assert.doesNotMatch(q, /"--token"/, 'the token goes by file only');
});

test('the argv the artifact builds delivers a COMPLETE upload to memdump receive; the token is only in a 0600 file', async (t) => {
  const { dir, a, rx, bundle, mem } = await setUp(t, 'IR-VR-1', 101, 5 << 20);
  const c = prepare(a, dir, {
    Collector: `tls://127.0.0.1:${rx.port}`,
    Pin: rx.pin,
    Token: rx.token,
    Case: 'IR-VR-1',
    Examiner: 'velociraptor test',
    NodeBinary: process.execPath,
    ExtraArgs: JSON.stringify(['--source', 'file', '--input', mem.image, '--iomem', mem.iomem, '--evidence', 'vr-host-1']),
  }, bundle);
  assert.ok(!c.argv.some((x) => x.includes(rx.token)), 'the token is on no command line');
  const at = c.argv.indexOf('--token-file');
  assert.ok(at > 0 && c.argv[at + 1] === c.tokenFile);
  assert.equal(statSync(c.tokenFile).mode & 0o777, 0o600);
  assert.equal(readFileSync(c.tokenFile, 'utf8'), rx.token);
  assert.equal(c.argv[0], process.execPath);
  assert.equal(c.argv[1], join(c.bundleDir, 'memdump/dist/src/cli/main.js'));

  const r = await execve(c.argv, c.bundleDir);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { status: string; output: string; hashes: { sha256: string } };
  assert.equal(out.status, 'COMPLETE');
  await rx.stop();

  const uploads = rx.events.filter((e) => e['event'] === 'upload');
  const ev = uploads.filter((e) => e['role'] === 'evidence');
  assert.equal(ev.length, 1);
  assert.equal(ev[0]!['status'], 'COMPLETE');
  assert.equal(ev[0]!['case'], 'IR-VR-1');
  const file = join(rx.dir, ev[0]!['path'] as string);
  const bytes = readFileSync(file);
  assert.equal(sha256(bytes), out.hashes.sha256);
  assert.deepEqual(bytes.subarray(32), mem.bytes, 'the LiME payload is this host\'s memory');
  const rep = JSON.parse(readFileSync(file + '.report.json', 'utf8')) as { status: string; case: { case: string; evidence: string; examiner: string }; hashes: { digests: { sha256: string } } };
  assert.equal(rep.status, 'COMPLETE');
  assert.equal(rep.hashes.digests.sha256, sha256(bytes));
  assert.deepEqual([rep.case.case, rep.case.evidence, rep.case.examiner], ['IR-VR-1', 'vr-host-1', 'velociraptor test']);
  const v = await runCli(['verify', file, '--json']);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(JSON.parse(v.stdout.toString()).verdict, 'MATCH');
});

test('with Recipient the dump leaves encrypted and age -d gives back the memory; a wrong Pin sends nothing', async (t) => {
  const { dir, a, rx, bundle, mem } = await setUp(t, 'IR-VR-2', 202, 4 << 20);
  const key = join(dir, 'analyst.key');
  execFileSync('age-keygen', ['-o', key], { stdio: 'ignore' });
  chmodSync(key, 0o600);
  const recipient = /# public key: (age1[0-9a-z]+)/.exec(readFileSync(key, 'utf8'))![1]!;
  const base = {
    Collector: `tls://127.0.0.1:${rx.port}`,
    Token: rx.token,
    NodeBinary: process.execPath,
    ExtraArgs: JSON.stringify(['--source', 'file', '--input', mem.image, '--iomem', mem.iomem]),
  };

  // another receiver's pin: refused before a byte of evidence is sent
  const other = await runCli(['receive', '--init', join(dir, 'other-state')]);
  const bad = prepare(a, dir, { ...base, Pin: other.stdout.toString().trim() }, bundle);
  const r0 = await execve(bad.argv, bad.bundleDir);
  assert.equal(r0.code, 13, r0.stderr);
  assert.match(r0.stderr, /E_PIN_MISMATCH/);

  const c = prepare(a, dir, { ...base, Pin: rx.pin, Recipient: recipient, Case: 'IR-VR-2', RateLimit: '' }, bundle);
  assert.ok(c.argv.includes('--recipient') && !c.argv.includes('--rate-limit'));
  const r = await execve(c.argv, c.bundleDir);
  assert.equal(r.code, 0, r.stderr);
  await rx.stop();
  const ev = rx.events.filter((e) => e['event'] === 'upload' && e['role'] === 'evidence');
  assert.equal(ev.length, 1, 'the refused attempt left no upload');
  assert.equal(ev[0]!['status'], 'COMPLETE');
  const file = join(rx.dir, ev[0]!['path'] as string);
  assert.match(file, /\.lime\.age$/);
  const plain = execFileSync('age', ['-d', '-i', key, file], { maxBuffer: 64 << 20 });
  assert.deepEqual(plain.subarray(32), mem.bytes);
  assert.notDeepEqual(readFileSync(file).subarray(0, 64), plain.subarray(0, 64));
});
