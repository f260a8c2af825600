import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { ALL_CAPS, SWAPS_HEADER, devIdOfPath, doctorRoot, limitsText, mountLine, otherDevId, statusText } from '../../test/helpers/doctor-root.js';
import { type DoctorOptions, type DoctorResult, formatDoctor, makeContext, readCapped, runDoctor } from './doctor.js';
import { cpuCountOf } from './doctor-activity.js';
import { managerSetting } from './doctor-cores.js';
import { memTotalBytes } from './doctor-storage.js';

function tmp(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'memdump-doctor-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Build a fixture (healthy + change), run every check, and index the results by id. */
async function doctor(t: { after: (fn: () => void) => void }, change: Parameters<typeof doctorRoot>[2] = {}, opts: Partial<DoctorOptions> = {}) {
  const dir = tmp(t);
  const out = join(dir, 'out');
  mkdirSync(out);
  const root = doctorRoot(join(dir, 'root'), out, change);
  const results = await runDoctor({ root, outputDir: out, euid: 0, ...opts });
  const by = new Map(results.map((r) => [r.id, r]));
  const get = (id: string): DoctorResult => {
    const r = by.get(id);
    assert.ok(r, `no check "${id}" in ${[...by.keys()].join(',')}`);
    return r;
  };
  return { results, get, out, root };
}

const EXPECTED_IDS = ['privileges', 'cap-sys-admin', 'cap-sys-rawio', 'cap-sys-ptrace', 'kernel', 'lockdown', 'source-kcore', 'source-crash', 'source-mem', 'yama', 'container', 'space', 'output-disk', 'swap', 'core-pattern', 'suid-dumpable', 'systemd-core', 'ulimit-core', 'load', 'uptime', 'activity'];

test('healthy fixture: every check OK except the sources kcore makes unnecessary', async (t) => {
  const { results, get } = await doctor(t);
  assert.deepEqual(results.map((r) => r.id), EXPECTED_IDS);
  for (const r of results) {
    if (r.id === 'source-crash' || r.id === 'source-mem') continue;
    assert.equal(r.status, 'OK', `${r.id}: ${r.summary} / ${r.reason}`);
  }
  assert.match(get('source-kcore').summary, /proc\/kcore opens \(4\.6 MiB of System RAM in \/proc\/iomem\)$/);
  assert.equal(get('source-crash').status, 'WARN');
  assert.match(get('source-crash').summary, /kcore works/);
  assert.match(get('source-crash').reason, /crash driver is not loaded/);
  assert.match(get('kernel').summary, /^Linux 6\.1\.0-21-amd64 x86_64$/);
  assert.match(get('swap').summary, /no swap devices/);
  assert.match(get('output-disk').summary, /not a system disk/);
  assert.match(get('load').summary, /on 4 CPU\(s\)/);
  for (const r of results) for (const k of ['id', 'status', 'summary', 'reason', 'fix'] as const) assert.equal(typeof r[k], 'string');
});

test('not root: privileges FAIL with the euid, missing capabilities FAIL', async (t) => {
  const { get } = await doctor(t, { files: { 'proc/self/status': statusText(0n) } }, { euid: 1000 });
  assert.equal(get('privileges').status, 'FAIL');
  assert.match(get('privileges').summary, /not root \(euid 1000, CapEff 0000000000000000\)/);
  assert.match(get('privileges').fix, /sudo/);
  assert.equal(get('cap-sys-rawio').status, 'FAIL');
  assert.match(get('cap-sys-rawio').reason, /\/proc\/kcore and \/dev\/mem/);
  assert.equal(get('cap-sys-admin').status, 'FAIL');
  assert.match(get('cap-sys-admin').reason, /iomem/);
});

test('not root but with CAP_SYS_RAWIO and CAP_SYS_ADMIN: WARN, not FAIL', async (t) => {
  const { get } = await doctor(t, {}, { euid: 1000 });
  assert.equal(get('privileges').status, 'WARN');
  assert.match(get('privileges').summary, /euid 1000.*CAP_SYS_RAWIO/);
});

test('no CAP_SYS_PTRACE: WARN about process dumps', async (t) => {
  const { get } = await doctor(t, { files: { 'proc/self/status': statusText(ALL_CAPS & ~(1n << 19n)) } });
  const r = get('cap-sys-ptrace');
  assert.equal(r.status, 'WARN');
  assert.equal(r.summary, 'CAP_SYS_PTRACE missing');
  assert.match(r.reason, /memdump process/);
  assert.equal(get('cap-sys-rawio').status, 'OK');
  assert.equal(get('cap-sys-admin').status, 'OK');
});

test('lockdown=confidentiality: lockdown FAIL, kcore and mem FAIL with select.ts reasons', async (t) => {
  const { get } = await doctor(t, { lockdown: 'confidentiality' });
  assert.equal(get('lockdown').status, 'FAIL');
  assert.match(get('lockdown').reason, /blocks \/proc\/kcore and \/dev\/mem/);
  assert.equal(get('source-kcore').status, 'FAIL');
  assert.match(get('source-kcore').reason, /^E_KCORE_LOCKED: kernel lockdown=confidentiality blocks \/proc\/kcore$/);
  assert.match(get('source-mem').reason, /E_KCORE_LOCKED: kernel lockdown=confidentiality blocks \/dev\/mem/);
  assert.match(get('source-kcore').fix, /lockdown/);
});

test('lockdown=integrity: WARN, kcore still OK', async (t) => {
  const { get } = await doctor(t, { lockdown: 'integrity' });
  assert.equal(get('lockdown').status, 'WARN');
  assert.equal(get('source-kcore').status, 'OK');
  assert.match(get('source-mem').reason, /lockdown=integrity blocks \/dev\/mem/);
});

test('no /proc/kcore (and no other source): every source FAILs with its own reason', async (t) => {
  const { get } = await doctor(t, { files: { 'proc/kcore': null } });
  assert.equal(get('source-kcore').status, 'FAIL');
  assert.match(get('source-kcore').reason, /E_NOT_FOUND: .*proc\/kcore does not exist/);
  assert.match(get('source-kcore').fix, /CONFIG_PROC_KCORE/);
  assert.equal(get('source-crash').status, 'FAIL');
  assert.match(get('source-crash').fix, /modprobe crash/);
  assert.equal(get('source-mem').status, 'FAIL');
});

test('hidden /proc/iomem: each source FAILs with the iomem reason', async (t) => {
  const { get } = await doctor(t, { files: { 'proc/iomem': '00000000-00000000 : System RAM\n' } });
  assert.equal(get('source-kcore').status, 'FAIL');
  assert.match(get('source-kcore').reason, /^E_IOMEM_HIDDEN: /);
});

test('yama ptrace_scope 3: FAIL; 2 without CAP_SYS_PTRACE: WARN', async (t) => {
  const three = await doctor(t, { files: { 'proc/sys/kernel/yama/ptrace_scope': '3\n' } });
  assert.equal(three.get('yama').status, 'FAIL');
  assert.match(three.get('yama').reason, /not even root.*until reboot/);
  const two = await doctor(t, { files: { 'proc/sys/kernel/yama/ptrace_scope': '2\n', 'proc/self/status': statusText(ALL_CAPS & ~(1n << 19n)) } });
  assert.equal(two.get('yama').status, 'WARN');
  const twoOk = await doctor(t, { files: { 'proc/sys/kernel/yama/ptrace_scope': '2\n' } });
  assert.equal(twoOk.get('yama').status, 'OK');
});

test('docker container: WARN naming every sign and explaining the host kernel', async (t) => {
  const { get } = await doctor(t, {
    files: {
      '.dockerenv': '',
      'proc/1/cgroup': '0::/system.slice/docker-0123abcd.scope\n',
      'proc/self/mountinfo': mountLine(500, '0:52', '/', 'overlay', 'overlay'),
    },
  });
  const r = get('container');
  assert.equal(r.status, 'WARN');
  assert.match(r.summary, /^inside a container \(docker\): \/\.dockerenv exists; \/proc\/1\/cgroup names docker; \/ is an overlay filesystem$/);
  assert.match(r.reason, /mask \/proc\/kcore/);
  assert.match(r.fix, /on the host/);
});

test('podman via container= in PID 1 environment', async (t) => {
  const { get } = await doctor(t, { files: { 'run/.containerenv': 'engine="podman-4.9"\n', 'proc/1/environ': 'container=podman\0HOME=/\0' } });
  assert.equal(get('container').status, 'WARN');
  assert.match(get('container').summary, /podman.*container=podman/);
});

test('tiny disk: RAM larger than the free space FAILs with the space.ts reason', async (t) => {
  // 64 PiB of RAM: larger than any test machine's free space, so the comparison is deterministic
  const { get } = await doctor(t, { files: { 'proc/meminfo': 'MemTotal:       70368744177664 kB\n' } });
  const r = get('space');
  assert.equal(r.status, 'FAIL');
  assert.match(r.summary, /RAM is 65536\.0 TiB/);
  assert.match(r.reason, /free but the output needs about/);
  assert.match(r.fix, /external or remote storage/);
});

test('core_pattern piped to systemd-coredump or apport: WARN and explained', async (t) => {
  const sd = await doctor(t, { files: { 'proc/sys/kernel/core_pattern': '|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\n' } });
  assert.equal(sd.get('core-pattern').status, 'WARN');
  assert.match(sd.get('core-pattern').summary, /^piped to systemd-coredump/);
  assert.match(sd.get('core-pattern').reason, /\/var\/lib\/systemd\/coredump/);
  assert.match(sd.get('core-pattern').fix, /coredumpctl/);
  const ap = await doctor(t, { files: { 'proc/sys/kernel/core_pattern': '|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E\n' } });
  assert.match(ap.get('core-pattern').summary, /^piped to apport/);
  assert.match(ap.get('core-pattern').reason, /\/var\/crash/);
});

test('suid_dumpable 0: WARN', async (t) => {
  const { get } = await doctor(t, { files: { 'proc/sys/fs/suid_dumpable': '0\n' } });
  assert.equal(get('suid-dumpable').status, 'WARN');
  assert.match(get('suid-dumpable').reason, /not dumpable/);
  assert.match(get('suid-dumpable').fix, /fs\.suid_dumpable=2/);
});

test('systemd DefaultLimitCORE=0 in a drop-in overrides system.conf', async (t) => {
  const { get } = await doctor(t, {
    files: { 'etc/systemd/system.conf': '[Manager]\nDefaultLimitCORE=infinity\n', 'etc/systemd/system.conf.d/50-nocore.conf': '[Manager]\nDefaultLimitCORE=0:infinity\n' },
  });
  const r = get('systemd-core');
  assert.equal(r.status, 'WARN');
  assert.match(r.summary, /DefaultLimitCORE=0:infinity \(\/etc\/systemd\/system\.conf\.d\/50-nocore\.conf\)/);
  // a drop-in in /etc masks the one of the same name in /usr/lib
  const masked = await doctor(t, {
    files: { 'usr/lib/systemd/system.conf.d/50-core.conf': '[Manager]\nDefaultLimitCORE=0\n', 'etc/systemd/system.conf.d/50-core.conf': '[Manager]\nDefaultLimitCORE=infinity\n' },
  });
  assert.equal(masked.get('systemd-core').status, 'OK');
  assert.match(masked.get('systemd-core').summary, /etc\/systemd\/system\.conf\.d\/50-core\.conf/);
  const inf = await doctor(t, { files: { 'etc/systemd/system.conf': '[Manager]\nDefaultLimitCORE=infinity\n' } });
  assert.equal(inf.get('systemd-core').status, 'OK');
});

test('ulimit -c 0: WARN; a hard limit of 0 changes the fix', async (t) => {
  const soft = await doctor(t, { files: { 'proc/self/limits': limitsText('0') } });
  assert.equal(soft.get('ulimit-core').status, 'WARN');
  assert.match(soft.get('ulimit-core').summary, /ulimit -c is 0 \(hard unlimited\)/);
  assert.equal(soft.get('ulimit-core').fix, 'ulimit -c unlimited');
  const hard = await doctor(t, { files: { 'proc/self/limits': limitsText('0', '0') } });
  assert.match(hard.get('ulimit-core').fix, /hard limit is 0/);
});

test('swap: none OK; in use WARN with the acquire fix; zram only OK; no /proc/swaps OK', async (t) => {
  assert.equal((await doctor(t)).get('swap').status, 'OK');
  const used = await doctor(t, { files: { 'proc/swaps': SWAPS_HEADER + '/dev/sda3\tpartition\t8388604\t524288\t-2\n' } });
  assert.equal(used.get('swap').status, 'WARN');
  assert.match(used.get('swap').summary, /^512\.0 MiB paged out to swap: \/dev\/sda3 \(partition/);
  assert.match(used.get('swap').fix, /--include-swap/);
  const zram = await doctor(t, { files: { 'proc/swaps': SWAPS_HEADER + '/dev/zram0\tpartition\t4194300\t1024\t100\n' } });
  assert.equal(zram.get('swap').status, 'OK');
  const none = await doctor(t, { files: { 'proc/swaps': null } });
  assert.match(none.get('swap').summary, /no \/proc\/swaps/);
});

test('output on the root filesystem: WARN advising external or remote storage', async (t) => {
  const dir = tmp(t);
  const dev = devIdOfPath(dir);
  const { get } = await doctor(t, { files: { 'proc/self/mountinfo': mountLine(22, dev, '/', 'ext4', '/dev/vda1') } });
  const r = get('output-disk');
  assert.equal(r.status, 'WARN');
  assert.match(r.summary, /: the root filesystem$/);
  assert.match(r.reason, /disk being investigated/);
  assert.match(r.fix, /external or remote storage/);
});

test('output on another partition of the root disk (sysfs): WARN naming the disk', async (t) => {
  const dir = tmp(t);
  const dev = devIdOfPath(dir);
  const rootDev = otherDevId(dev);
  const { get } = await doctor(t, {
    files: {
      'proc/self/mountinfo': mountLine(22, rootDev, '/', 'ext4', '/dev/sda1') + mountLine(30, dev, '/srv', 'xfs', '/dev/sda2'),
      'sys/block/sda/dev': '8:0\n',
      'sys/block/sda/sda1/partition': '1\n',
      'sys/block/sda/sda2/partition': '2\n',
    },
    links: { [`sys/dev/block/${rootDev}`]: '../../block/sda/sda1', [`sys/dev/block/${dev}`]: '../../block/sda/sda2' },
  });
  const r = get('output-disk');
  assert.equal(r.status, 'WARN');
  assert.match(r.summary, /same disk as \/ \(sda\)$/);
});

test('output on tmpfs WARNs (the dump would eat the RAM it captures); on NFS is OK', async (t) => {
  const dir = tmp(t);
  const dev = devIdOfPath(dir);
  const base = mountLine(22, otherDevId(dev), '/', 'ext4', '/dev/vda1');
  const tm = await doctor(t, { files: { 'proc/self/mountinfo': base + mountLine(30, dev, '/mnt/x', 'tmpfs', 'tmpfs') } });
  assert.equal(tm.get('output-disk').status, 'WARN');
  assert.match(tm.get('output-disk').reason, /tmpfs/);
  const nfs = await doctor(t, { files: { 'proc/self/mountinfo': base + mountLine(30, dev, '/mnt/x', 'nfs4', 'srv:/evidence') } });
  assert.equal(nfs.get('output-disk').status, 'OK');
  assert.match(nfs.get('output-disk').summary, /remote storage/);
});

test('high load and a recent boot both WARN; a backup process WARNs', async (t) => {
  const { get } = await doctor(t, { files: { 'proc/loadavg': '9.50 6.00 3.00 12/400 999\n', 'proc/uptime': '95.20 300.00\n', 'proc/4321/comm': 'clamscan\n', 'proc/4322/comm': 'rsync\n' } });
  assert.equal(get('load').status, 'WARN');
  assert.match(get('load').summary, /^load 9\.50 6\.00 3\.00 on 4 CPU\(s\)$/);
  assert.match(get('load').reason, /exceeds the CPU count/);
  assert.equal(get('uptime').status, 'WARN');
  assert.match(get('uptime').summary, /^booted 95 s ago$/);
  assert.equal(get('activity').status, 'WARN');
  assert.equal(get('activity').summary, 'running: clamscan, rsync');
});

test('load equal to the CPU count is OK; the injected CPU count wins over cpuinfo', async (t) => {
  const { get } = await doctor(t, { files: { 'proc/loadavg': '4.00 4.00 4.00 4/400 999\n' } });
  assert.equal(get('load').status, 'OK');
  const more = await doctor(t, { files: { 'proc/loadavg': '4.00 4.00 4.00 4/400 999\n' } }, { cpuCount: 2 });
  assert.equal(more.get('load').status, 'WARN');
});

test('an empty root gives a full report of WARN/FAIL lines, never a throw', async (t) => {
  const dir = tmp(t);
  const results = await runDoctor({ root: join(dir, 'nothing'), outputDir: dir, euid: 1000 });
  const expected = ['privileges', 'capabilities', ...EXPECTED_IDS.filter((id) => id !== 'privileges' && !id.startsWith('cap-'))];
  assert.deepEqual(results.map((r) => r.id), expected);
  assert.equal(results.find((r) => r.id === 'privileges')?.status, 'FAIL');
  assert.equal(results.find((r) => r.id === 'source-kcore')?.status, 'FAIL');
  assert.match(results.find((r) => r.id === 'source-kcore')?.reason ?? '', /iomem/);
});

test('live host: runs without throwing and every line is well formed', async (t) => {
  const dir = tmp(t);
  const results = await runDoctor({ root: '/', outputDir: dir });
  assert.ok(results.length >= EXPECTED_IDS.length - 2);
  assert.equal(new Set(results.map((r) => r.id)).size, results.length);
  for (const r of results) {
    assert.ok(['OK', 'WARN', 'FAIL'].includes(r.status));
    assert.ok(!r.id.endsWith('-error'), `${r.id}: ${r.reason}`);
    if (r.status !== 'OK') assert.ok(r.reason && r.fix, `${r.id} has a reason and a fix`);
  }
  const text = formatDoctor(results);
  assert.equal(text.split('\n').filter((l) => /^(OK|WARN|FAIL) /.test(l)).length, results.length);
});

test('formatDoctor aligns ids, escapes control characters and tallies', () => {
  const text = formatDoctor([
    { id: 'a', status: 'OK', summary: 'fine', reason: '', fix: '' },
    { id: 'longer-id', status: 'FAIL', summary: 'bad\x1b[31m', reason: 'because', fix: 'do this' },
  ]);
  assert.equal(text, 'OK    a          fine\nFAIL  longer-id  bad\\x1b[31m\n                 why: because\n                 fix: do this\n\n1 OK, 0 WARN, 1 FAIL\n');
});

test('small parsers: MemTotal, processor count, [Manager] settings (last wins, other sections ignored)', () => {
  assert.equal(memTotalBytes('MemFree: 1 kB\nMemTotal:   2048 kB\n'), 2097152n);
  assert.equal(memTotalBytes('nothing'), undefined);
  assert.equal(cpuCountOf('processor\t: 0\nfoo\nprocessor\t: 1\n'), 2);
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('Manager', 'Other'), fc.stringMatching(/^[0-9a-z:]{0,8}$/)), { maxLength: 8 }), (sets) => {
      const text = sets.map(([sec, v]) => `[${sec}]\n# DefaultLimitCORE=commented\nDefaultLimitCORE=${v}\n`).join('');
      const expect = sets.filter(([sec]) => sec === 'Manager').at(-1)?.[1];
      assert.equal(managerSetting(text, 'DefaultLimitCORE'), expect);
    }),
  );
});

test('reads are capped and refuse FIFOs and devices: a planted /proc/uptime FIFO or /dev/zero link cannot hang doctor', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'doctor-read-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(readCapped(fifo, 1 << 20), /not a regular file/);
  await assert.rejects(readCapped('/dev/zero', 1 << 20), /not a regular file/);
  const big = join(dir, 'big');
  writeFileSync(big, Buffer.alloc(10_000, 0x41));
  assert.equal((await readCapped(big, 5000)).length, 5000);
  // through the context every check uses: a FIFO reads as absent
  mkdirSync(join(dir, 'proc'));
  execFileSync('mkfifo', [join(dir, 'proc/uptime')]);
  assert.equal(await makeContext({ root: dir, outputDir: dir }).read('proc/uptime'), undefined);
});
