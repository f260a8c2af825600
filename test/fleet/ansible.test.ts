import assert from 'node:assert/strict';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO, runCli, tempDir } from '../helpers/cli.js';
import { Prng } from '../helpers/prng.js';
import { initCollector, makeBundle, serve, vmHwmKiB } from '../helpers/receiver.js';
import { S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, startS3Server } from '../helpers/s3-server.js';

/**
 * The real playbook from docs/fleet/, unmodified, drives 20 "hosts" at once (-f 20). Every host is
 * ansible_connection=local with its own work-directory parent, its own fake memory image and its own name, so
 * what arrives at the receiver can be traced back to the host it came from. The playbook copies and unpacks a
 * bundle laid out like memdump-bundle.tar.gz, places the token, runs memdump, and removes all of it.
 */

const PLAYBOOK = join(REPO, 'docs/fleet/memdump-acquire.playbook.yml');
const HOSTS = 20;
const CASE = 'IR-FLEET-20';
const MIB = 1 << 20;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function requireAnsible(): string {
  const r = spawnSync('ansible-playbook', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    assert.fail('ansible-playbook is not installed: apt-get install --no-install-recommends ansible-core (.ci/run installs it); this test does not skip');
  }
  return r.stdout.split('\n')[0]!;
}

function run(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out }));
  });
}

const hostName = (i: number) => `host${String(i).padStart(2, '0')}`;

/** Each host: its own memory (4 MiB + i * 192 KiB of seeded bytes), iomem and work-directory parent. */
function makeFleet(dir: string, n: number, seed: number, moreArgs: string[] = []): { memory: Map<string, Buffer>; inventory: string } {
  const memory = new Map<string, Buffer>();
  const lines = ['[memdump_targets]'];
  for (let i = 1; i <= n; i++) {
    const name = hostName(i);
    const h = join(dir, 'hosts', name);
    mkdirSync(join(h, 'tmp'), { recursive: true });
    const size = 4 * MIB + i * 192 * 1024;
    const bytes = new Prng(seed + i).bytes(size);
    memory.set(name, bytes);
    writeFileSync(join(h, 'mem.img'), bytes);
    writeFileSync(join(h, 'iomem.txt'), `00000000-${(size - 1).toString(16).padStart(8, '0')} : System RAM\n`);
    const extra = JSON.stringify(['--source', 'file', '--input', join(h, 'mem.img'), '--iomem', join(h, 'iomem.txt'), ...moreArgs]);
    lines.push(`${name} memdump_tmp_parent=${join(h, 'tmp')} memdump_extra_args='${extra}'`);
  }
  lines.push('', '[memdump_targets:vars]', 'ansible_connection=local', `ansible_python_interpreter=${execFileSync('sh', ['-c', 'command -v python3']).toString().trim()}`, '');
  const inventory = join(dir, 'inventory.ini');
  writeFileSync(inventory, lines.join('\n'));
  return { memory, inventory };
}

/** Runs the playbook as an operator would; vars go in a 0600 file (in real use an ansible-vault file). */
async function playbook(dir: string, inventory: string, forks: number, vars: Record<string, unknown>): Promise<{ out: string; seconds: number }> {
  writeFileSync(join(dir, 'vars.json'), JSON.stringify(vars), { mode: 0o600 });
  const env = {
    ...process.env,
    ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-local'),
    ANSIBLE_REMOTE_TMP: join(dir, 'ansible-remote'),
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_RETRY_FILES_ENABLED: '0',
  };
  const t0 = performance.now();
  const r = await run('ansible-playbook', ['-i', inventory, PLAYBOOK, '-f', String(forks), '-e', '@' + join(dir, 'vars.json')], { cwd: dir, env });
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(r.code, 0, r.out.slice(-6000));
  const recap = r.out.slice(r.out.indexOf('PLAY RECAP'));
  assert.equal(recap.match(/ failed=0 /g)?.length, forks, recap);
  assert.equal(recap.match(/ unreachable=0 /g)?.length, forks, recap);
  return { out: r.out, seconds };
}

/** Nothing left on the hosts: work directories (bundle, token, manifest) gone, inputs untouched, Ansible's own temp cleaned. */
function assertHostsClean(dir: string, n: number): void {
  for (let i = 1; i <= n; i++) {
    const h = join(dir, 'hosts', hostName(i));
    assert.deepEqual(readdirSync(join(h, 'tmp')), [], `${h}/tmp is empty`);
    assert.deepEqual(readdirSync(h).sort(), ['iomem.txt', 'mem.img', 'tmp']);
  }
  const remote = join(dir, 'ansible-remote');
  if (existsSync(remote)) assert.deepEqual(readdirSync(remote), [], 'no Ansible module files left behind');
}

test('ansible-playbook -f 20 with the fleet playbook: 20 COMPLETE uploads, each traced to its host, nothing left on the hosts, receiver memory bounded', async (t) => {
  const version = requireAnsible();
  const dir = tempDir(t, 'memdump-fleet-');

  // analyst side
  const state = join(dir, 'rx-state');
  const { pin, token } = await initCollector(state, CASE, '2h');
  const evidence = join(dir, 'evidence');
  const rx = await serve(['--state', state, '--dir', evidence, '--listen', '127.0.0.1:0', '--max-connections', '64']);
  t.after(() => {
    if (rx.child.exitCode === null) rx.child.kill('SIGKILL');
  });

  const bundle = makeBundle(dir);
  const { memory, inventory } = makeFleet(dir, HOSTS, 0xf1ee7);
  const { out, seconds } = await playbook(dir, inventory, HOSTS, {
    memdump_to: `tls://127.0.0.1:${rx.port}`,
    memdump_pin: pin,
    memdump_token: token,
    memdump_bundle: bundle,
    memdump_node: process.execPath,
    memdump_become: false,
    memdump_case: CASE,
    memdump_examiner: 'fleet test',
    memdump_rate_limit: '',
  });
  assert.ok(!out.includes(token), 'the token never reaches the playbook output');

  const hwm = vmHwmKiB(rx.child.pid!);
  await rx.stop();
  console.log(`${version}: ${HOSTS} hosts in ${seconds.toFixed(1)} s; receiver peak RSS (VmHWM) ${(hwm / 1024).toFixed(1)} MiB`);
  assert.ok(hwm <= 256 * 1024, `receiver VmHWM ${hwm} kB exceeds 256 MiB`);

  const uploads = rx.events.filter((e) => e['event'] === 'upload');
  const ev = uploads.filter((e) => e['role'] === 'evidence');
  assert.equal(ev.length, HOSTS, rx.stderr());
  assert.ok(ev.every((e) => e['status'] === 'COMPLETE' && e['case'] === CASE));
  assert.equal(uploads.filter((e) => e['role'] === 'report' && e['status'] === 'COMPLETE').length, HOSTS);
  const files = ev.map((e) => join(evidence, e['path'] as string));
  assert.equal(new Set(files).size, HOSTS, '20 distinct files');
  assert.deepEqual(readdirSync(join(evidence, CASE)).filter((n) => n.endsWith('.lime')).length, HOSTS);

  const seen = new Set<string>();
  for (const [i, file] of files.entries()) {
    const bytes = readFileSync(file);
    const rep = JSON.parse(readFileSync(file + '.report.json', 'utf8')) as {
      status: string;
      argv: string[];
      case: { case: string; evidence: string; examiner: string };
      hashes: { digests: { sha256: string } };
    };
    assert.equal(rep.status, 'COMPLETE');
    assert.equal(sha256(bytes), rep.hashes.digests.sha256, `${file}: SHA-256 equals its report`);
    assert.equal(ev[i]!['receiverSha256'], rep.hashes.digests.sha256);
    const host = rep.case.evidence;
    assert.ok(memory.has(host) && !seen.has(host), `evidence label ${host} names one host once`);
    seen.add(host);
    assert.deepEqual(bytes.subarray(32), memory.get(host), `${file} holds ${host}'s memory`);
    assert.deepEqual([rep.case.case, rep.case.examiner], [CASE, 'fleet test']);
    assert.ok(rep.argv.includes('--token-file') && !rep.argv.some((a) => a.includes(token)), 'token passed by file, never on the command line');
    const v = await runCli(['verify', file, '--json']);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(JSON.parse(v.stdout.toString()).verdict, 'MATCH', file);
  }
  assert.equal(seen.size, HOSTS);

  assertHostsClean(dir, HOSTS);
});

test('the same playbook with s3-presigned: each host uploads with its own pre-signed manifest; objects verify MATCH', async (t) => {
  requireAnsible();
  const dir = tempDir(t, 'memdump-fleet-s3-');
  const s3 = await startS3Server();
  t.after(() => s3.close());
  const n = 3;
  const manifests = join(dir, 'manifests');
  mkdirSync(manifests);
  const analystEnv = { ...process.env, AWS_ACCESS_KEY_ID: S3_ACCESS_KEY, AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY };
  for (let i = 1; i <= n; i++) {
    const p = await runCli(['presign', '--endpoint', s3.endpoint, '--path-style', '--bucket', s3.bucket, '--key', `${CASE}/${hostName(i)}.lime`, '--max-size', '16M', '--part-size', '5M', '--expires', '1h', '-o', join(manifests, `${hostName(i)}.json`)], { env: analystEnv });
    assert.equal(p.code, 0, p.stderr);
  }
  const { memory, inventory } = makeFleet(dir, n, 0x53, ['--allow-http']);
  await playbook(dir, inventory, n, {
    memdump_to: 's3-presigned',
    memdump_manifest: join(manifests, '{{ inventory_hostname }}.json'),
    memdump_bundle: makeBundle(dir),
    memdump_node: process.execPath,
    memdump_become: false,
    memdump_case: CASE,
  });
  const client = new S3Client({ region: S3_REGION, endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY } });
  t.after(() => client.destroy());
  const get = async (key: string) => Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }))).Body!.transformToByteArray());
  const local = join(dir, 'downloaded');
  mkdirSync(local);
  for (const [host, mem] of memory) {
    const bytes = await get(`${CASE}/${host}.lime`);
    const report = await get(`${CASE}/${host}.lime.report.json`);
    assert.deepEqual(bytes.subarray(32), mem, `${host}'s object holds ${host}'s memory`);
    const rep = JSON.parse(report.toString()) as { status: string; case: { evidence: string }; hashes: { digests: { sha256: string } } };
    assert.equal(rep.status, 'COMPLETE');
    assert.equal(rep.case.evidence, host);
    assert.equal(rep.hashes.digests.sha256, sha256(bytes));
    writeFileSync(join(local, `${host}.lime`), bytes);
    writeFileSync(join(local, `${host}.lime.report.json`), report);
    const v = await runCli(['verify', join(local, `${host}.lime`), '--json']);
    assert.equal(JSON.parse(v.stdout.toString()).verdict, 'MATCH', v.stderr);
  }
  assert.deepEqual(await s3.openUploads(), [], 'every multipart upload was completed');
  assertHostsClean(dir, n);
});
