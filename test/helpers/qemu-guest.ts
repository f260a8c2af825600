/**
 * QEMU test rig: boots a real Debian cloud kernel under TCG, runs a shell
 * script inside the guest (with Node and the memdump build available), and
 * lets the host take the hypervisor's own physical-memory dump over QMP and
 * copy files out of the guest's disk.
 *
 * Layout of the guest
 * -------------------
 *   initramfs (cached, does not depend on the repo build):
 *     /init                 busybox sh script (see INIT_SCRIPT)
 *     /bin/busybox + applet symlinks, except sh and dd: /bin/sh is dash and
 *                           /bin/dd GNU dd, both from the base disk
 *     /bin/pattern          static helper built from test/helpers/pattern.c
 *     /modules/*.ko         virtio/ext4 modules the kernel has as =m, plus
 *     /modules/load-order   their load order (dependencies first)
 *     /lib -> usr/lib, /lib64 -> usr/lib64, /memdump -> usr/memdump,
 *     /bin/dd, /bin/node, /bin/memdump -> /usr/bin/...
 *   /dev/vdb, ext4, read-only at /usr ("base disk", cached until Node or
 *   its libraries change):
 *     bin/node, bin/dd, bin/dash, bin/sh -> dash, bin/memdump (wrapper),
 *     lib/x86_64-linux-gnu/*.so*,
 *     lib64/ld-linux-x86-64.so.2, memdump/ (mount point)
 *   /dev/vdc, ext4, read-only at /usr/memdump ("app disk", cached by a
 *   fingerprint of the build): package.json, dist/, node_modules/
 *   /dev/vda, ext4 without a journal, mounted read-write at /work ("work
 *     disk", made fresh for every boot): run.sh, the caller's extra files, and
 *     whatever run.sh writes; run.log holds run.sh's stdout+stderr.
 *
 * Why Node lives on a disk and not in the initramfs: the Node binary is
 * ~100 MB. In an initramfs the kernel must gunzip all of it into RAM under
 * TCG before /init starts (seconds of emulated CPU) and it then occupies
 * ~100 MB of a 512 MiB guest permanently, which also pollutes the memory a
 * test wants to dump. From an ext4 disk only the pages Node touches are read,
 * into the page cache, on demand; the initramfs stays ~1.5 MB and boots in
 * ~2 s. Separate read-only disks keep the work disk small and clean, so
 * listDisk()/copyOut() only see the test's own files, and keep the 100 MB
 * of Node out of the image that must be rebuilt after every `tsc`.
 *
 * The work disk has no journal: the guest `sync`s after run.sh and is never
 * unmounted, and debugfs (used by copyOut) does not replay a journal, so a
 * journal would leave recent metadata invisible to the host.
 *
 * Host tools used: qemu-system-x86_64, apt-get/apt-cache/dpkg-deb (kernel),
 * mkfs.ext4/debugfs (e2fsprogs), gcc with static libc (libc6-dev), ldd,
 * busybox (busybox-static), xz/zstd only if modules are compressed.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsConstants, existsSync, readFileSync, statSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

// ---------------------------------------------------------------------------
// small utilities

export const DONE_MARKER = 'MEMDUMP-GUEST-DONE';
const DONE_RE = /MEMDUMP-GUEST-DONE rc=(\d+)/;
const INIT_MARKER = 'MEMDUMP-GUEST-INIT';
const RUN_MARKER = 'MEMDUMP-GUEST-RUN';
/** Bump to invalidate cached initramfs/system-disk images after format changes. */
const RIG_FORMAT = 5;

interface RunResult {
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 300_000,
        maxBuffer: 64 * 1024 * 1024,
        env: opts.env ?? process.env,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const e = new Error(
            `${cmd} ${args.join(' ')} failed: ${err.message}\n${String(stderr).slice(-4000)}`,
          );
          reject(e);
          return;
        }
        resolve({ stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** Absolute path of an executable found on PATH (or the given absolute path), or undefined. */
export function findExecutable(name: string): string | undefined {
  const candidates = name.includes('/')
    ? [name]
    : (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin')
        .split(':')
        .concat(['/usr/sbin', '/sbin'])
        .filter((d) => d.length > 0)
        .map((d) => path.join(d, name));
  for (const c of candidates) {
    try {
      const st = statSync(c);
      if (st.isFile() && (st.mode & 0o111) !== 0) return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

function requireExecutable(name: string, aptPackage: string): string {
  const p = findExecutable(name);
  if (!p) throw new Error(`${name} not found on PATH (install the Debian package ${aptPackage})`);
  return p;
}

/** Directory holding the memdump package.json, found by walking up from this file. */
export function findRepoRoot(start: string = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        const name = (JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name;
        if (name === 'memdump') return dir;
      } catch {
        // keep walking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`memdump repository root not found above ${start}`);
    dir = up;
  }
}

export function defaultCacheDir(): string {
  return path.join(findRepoRoot(), '.cache', 'qemu-guest');
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Write via a unique temp name and rename, so concurrent builders never see partial files. */
async function writeAtomic(dest: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${dest}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await fs.writeFile(tmp, data);
  await fs.rename(tmp, dest);
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function elapsedMs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------
// kernel

export interface GuestAssets {
  /** Path of the vmlinuz to pass to -kernel. */
  kernel: string;
  /** <unpacked>/lib/modules/<kernelVersion> */
  modulesDir: string;
  /** e.g. "6.1.0-56-cloud-amd64" */
  kernelVersion: string;
  /** <unpacked>/boot/config-<kernelVersion> */
  configPath: string;
  /** Debian package the kernel came from, e.g. "linux-image-6.1.0-56-cloud-amd64". */
  packageName: string;
  /** Debian version of that package, e.g. "6.1.192-2". */
  packageVersion: string;
}

const KERNEL_META = 'kernel.json';
const META_PACKAGE = 'linux-image-cloud-amd64';

async function resolveKernelPackage(): Promise<string> {
  const attempt = async (): Promise<string | undefined> => {
    try {
      const { stdout } = await run('apt-cache', ['depends', META_PACKAGE]);
      const m = /^\s*Depends:\s*(linux-image-[^\s<>]+)\s*$/m.exec(stdout);
      return m?.[1];
    } catch {
      return undefined;
    }
  };
  let pkg = await attempt();
  if (!pkg) {
    await run('apt-get', ['update', '-qq'], { timeoutMs: 600_000 });
    pkg = await attempt();
  }
  if (!pkg) throw new Error(`cannot resolve the kernel package ${META_PACKAGE} depends on (apt-cache depends)`);
  return pkg;
}

async function downloadDeb(pkg: string, dir: string): Promise<string> {
  const find = async (): Promise<string | undefined> =>
    (await fs.readdir(dir)).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  try {
    await run('apt-get', ['download', '-q', pkg], { cwd: dir, timeoutMs: 600_000 });
  } catch {
    await run('apt-get', ['update', '-qq'], { timeoutMs: 600_000 });
    await run('apt-get', ['download', '-q', pkg], { cwd: dir, timeoutMs: 600_000 });
  }
  const deb = await find();
  if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb in ${dir}`);
  return path.join(dir, deb);
}

async function assetsFromUnpacked(dir: string, packageName: string, packageVersion: string): Promise<GuestAssets> {
  const versions = await fs.readdir(path.join(dir, 'lib', 'modules'));
  const kernelVersion = versions[0];
  if (versions.length !== 1 || kernelVersion === undefined) {
    throw new Error(`expected exactly one kernel under ${dir}/lib/modules, found ${versions.join(', ')}`);
  }
  const kernel = path.join(dir, 'boot', `vmlinuz-${kernelVersion}`);
  const configPath = path.join(dir, 'boot', `config-${kernelVersion}`);
  if (!(await exists(kernel))) throw new Error(`missing ${kernel}`);
  return {
    kernel,
    modulesDir: path.join(dir, 'lib', 'modules', kernelVersion),
    kernelVersion,
    configPath,
    packageName,
    packageVersion,
  };
}

/**
 * The Debian cloud kernel, downloaded with apt-get and unpacked with dpkg-deb
 * into cacheDir on first use; later calls reuse the unpacked copy without
 * touching apt (delete cacheDir/kernel.json to pick up a newer kernel).
 */
export async function guestAssets(cacheDir: string = defaultCacheDir()): Promise<GuestAssets> {
  await fs.mkdir(cacheDir, { recursive: true });
  const metaPath = path.join(cacheDir, KERNEL_META);
  try {
    const meta = JSON.parse(await fs.readFile(metaPath, 'utf8')) as {
      dir: string;
      packageName: string;
      packageVersion: string;
    };
    const dir = path.join(cacheDir, meta.dir);
    if (await exists(path.join(dir, '.complete'))) {
      return await assetsFromUnpacked(dir, meta.packageName, meta.packageVersion);
    }
  } catch {
    // no usable cache: fall through and fetch
  }

  const packageName = await resolveKernelPackage();
  const dl = await fs.mkdtemp(path.join(cacheDir, 'dl-'));
  try {
    const deb = await downloadDeb(packageName, dl);
    const packageVersion = (await run('dpkg-deb', ['-f', deb, 'Version'])).stdout.trim();
    const dirName = `${packageName}_${packageVersion}`.replace(/[^A-Za-z0-9._+-]/g, '_');
    const finalDir = path.join(cacheDir, dirName);
    if (!(await exists(path.join(finalDir, '.complete')))) {
      const unpack = path.join(dl, 'unpack');
      await fs.mkdir(unpack);
      await run('dpkg-deb', ['-x', deb, unpack]);
      await fs.writeFile(path.join(unpack, '.complete'), `${packageName} ${packageVersion}\n`);
      await fs.rm(finalDir, { recursive: true, force: true });
      try {
        await fs.rename(unpack, finalDir);
      } catch (e) {
        // A concurrent run may have won the race; accept its copy.
        if (!(await exists(path.join(finalDir, '.complete')))) throw e;
      }
    }
    await writeAtomic(metaPath, JSON.stringify({ dir: dirName, packageName, packageVersion }, null, 2) + '\n');
    return await assetsFromUnpacked(finalDir, packageName, packageVersion);
  } finally {
    await fs.rm(dl, { recursive: true, force: true });
  }
}

/** CONFIG_X values from a kernel config file: 'y' | 'm' | string, absent when not set. */
export async function readKernelConfig(configPath: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const line of (await fs.readFile(configPath, 'utf8')).split('\n')) {
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.set(m[1], m[2]);
  }
  return out;
}

// ---------------------------------------------------------------------------
// modules

interface ModuleFile {
  name: string; // normalised (underscores)
  file: string; // absolute path, possibly .ko.xz / .ko.zst / .ko.gz
}

const normMod = (n: string): string => n.replace(/-/g, '_');

async function indexModules(modulesDir: string): Promise<Map<string, ModuleFile>> {
  const index = new Map<string, ModuleFile>();
  const walk = async (dir: string): Promise<void> => {
    for (const ent of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, ent.name);
      if (ent.isDirectory()) await walk(p);
      else {
        const m = /^(.+)\.ko(\.xz|\.zst|\.gz)?$/.exec(ent.name);
        if (m?.[1] !== undefined) index.set(normMod(m[1]), { name: normMod(m[1]), file: p });
      }
    }
  };
  await walk(path.join(modulesDir, 'kernel'));
  return index;
}

async function builtinModules(modulesDir: string): Promise<Set<string>> {
  const set = new Set<string>();
  try {
    for (const line of (await fs.readFile(path.join(modulesDir, 'modules.builtin'), 'utf8')).split('\n')) {
      const base = path.basename(line.trim()).replace(/\.ko$/, '');
      if (base) set.add(normMod(base));
    }
  } catch {
    // older packages may lack it; treat nothing as builtin
  }
  return set;
}

async function moduleBytes(file: string): Promise<Buffer> {
  if (file.endsWith('.ko')) return fs.readFile(file);
  const [tool, aptPkg] = file.endsWith('.xz')
    ? ['xz', 'xz-utils']
    : file.endsWith('.zst')
      ? ['zstd', 'zstd']
      : ['gzip', 'gzip'];
  const exe = requireExecutable(tool, aptPkg);
  // busybox insmod cannot load compressed modules: decompress on the host.
  return new Promise((resolve, reject) => {
    execFile(exe, ['-dc', file], { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 }, (err, stdout) => {
      if (err) reject(new Error(`${tool} -dc ${file}: ${err.message}`));
      else resolve(stdout);
    });
  });
}

/** The `depends=` list from a module's .modinfo section (what depmod would put in modules.dep). */
function moduleDepends(ko: Buffer): string[] {
  const key = Buffer.from('\0depends=');
  const at = ko.indexOf(key);
  if (at < 0) return [];
  const start = at + key.length;
  const end = ko.indexOf(0, start);
  const list = ko.subarray(start, end < 0 ? start : end).toString('latin1');
  return list
    .split(',')
    .map((s) => normMod(s.trim()))
    .filter((s) => s.length > 0);
}

/** Modules that must be present for a virtio-blk disk holding ext4 (roots; deps are added). */
const GUEST_MODULE_ROOTS = ['virtio_pci', 'virtio_blk', 'ext4', 'crc32c_generic'];

export interface GuestModule {
  name: string;
  data: Buffer;
}

/**
 * Modules to insmod, dependencies first. Builtin (=y) ones are skipped; roots
 * that are neither builtin nor shipped as modules are ignored (e.g.
 * crc32c_generic, which only exists when CONFIG_CRYPTO_CRC32C=m).
 */
export async function guestModules(assets: GuestAssets): Promise<GuestModule[]> {
  const index = await indexModules(assets.modulesDir);
  const builtin = await builtinModules(assets.modulesDir);
  const order: GuestModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = async (name: string, required: boolean): Promise<void> => {
    if (state.get(name) === 'done' || builtin.has(name)) return;
    if (state.get(name) === 'visiting') throw new Error(`module dependency cycle at ${name}`);
    const mod = index.get(name);
    if (!mod) {
      if (required) throw new Error(`module ${name} is neither builtin nor present in ${assets.modulesDir}`);
      return;
    }
    state.set(name, 'visiting');
    const data = await moduleBytes(mod.file);
    for (const dep of moduleDepends(data)) await visit(dep, true);
    state.set(name, 'done');
    order.push({ name, data });
  };
  for (const root of GUEST_MODULE_ROOTS) await visit(root, root !== 'crc32c_generic');
  return order;
}

// ---------------------------------------------------------------------------
// cpio (newc) writer

type CpioEntry =
  | { kind: 'dir'; name: string; mode?: number }
  | { kind: 'file'; name: string; data: Uint8Array; mode?: number }
  | { kind: 'symlink'; name: string; target: string }
  | { kind: 'chardev'; name: string; major: number; minor: number; mode?: number };

/** A newc ("070701") archive with root ownership, as the kernel's initramfs unpacker expects. */
export function buildCpio(entries: readonly CpioEntry[]): Buffer {
  const chunks: Buffer[] = [];
  let size = 0;
  let ino = 1;
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  const pad = (): void => {
    const rem = size % 4;
    if (rem !== 0) {
      const b = Buffer.alloc(4 - rem);
      chunks.push(b);
      size += b.length;
    }
  };
  const push = (b: Buffer): void => {
    chunks.push(b);
    size += b.length;
  };
  const emit = (name: string, mode: number, data: Uint8Array, rmaj = 0, rmin = 0): void => {
    const nameBuf = Buffer.from(name + '\0', 'utf8');
    const header =
      '070701' +
      hex(ino++) +
      hex(mode) +
      hex(0) + // uid
      hex(0) + // gid
      hex(1) + // nlink
      hex(0) + // mtime (fixed: reproducible archives)
      hex(data.length) +
      hex(0) + // devmajor
      hex(0) + // devminor
      hex(rmaj) +
      hex(rmin) +
      hex(nameBuf.length) +
      hex(0); // check
    push(Buffer.from(header, 'latin1'));
    push(nameBuf);
    pad();
    if (data.length > 0) {
      push(Buffer.from(data.buffer, data.byteOffset, data.length));
      pad();
    }
  };
  for (const e of entries) {
    const name = e.name.replace(/^\/+/, '');
    switch (e.kind) {
      case 'dir':
        emit(name, 0o040000 | (e.mode ?? 0o755), new Uint8Array(0));
        break;
      case 'file':
        emit(name, 0o100000 | (e.mode ?? 0o644), e.data);
        break;
      case 'symlink':
        emit(name, 0o120000 | 0o777, Buffer.from(e.target, 'utf8'));
        break;
      case 'chardev':
        emit(name, 0o020000 | (e.mode ?? 0o600), new Uint8Array(0), e.major, e.minor);
        break;
    }
  }
  emit('TRAILER!!!', 0, new Uint8Array(0));
  // Pad the archive to a 512-byte multiple like cpio(1) does.
  const rem = size % 512;
  if (rem !== 0) push(Buffer.alloc(512 - rem));
  return Buffer.concat(chunks, size);
}

// ---------------------------------------------------------------------------
// initramfs

/** busybox sh script run as PID 1 (`${...}` here is TypeScript interpolation; the shell code avoids that syntax). */
const INIT_SCRIPT = `#!/bin/busybox sh
# PID 1 of the memdump QEMU test guest (generated by test/helpers/qemu-guest.ts).
export PATH=/bin:/usr/bin HOME=/root TERM=dumb LANG=C LC_ALL=C
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
up() { cut -d' ' -f1 /proc/uptime; }
echo "${INIT_MARKER} uptime=$(up) kernel=$(uname -r)"
hang() { while :; do sleep 3600; done; }
fail() {
  echo "MEMDUMP-GUEST-ERROR $*"
  echo "${DONE_MARKER} rc=255"
  hang
}
while read -r m; do
  [ -n "$m" ] || continue
  insmod "/modules/$m.ko" || echo "MEMDUMP-GUEST-WARN insmod $m failed"
done < /modules/load-order
i=0
while [ ! -b /dev/vda ] || [ ! -b /dev/vdb ] || [ ! -b /dev/vdc ]; do
  i=$((i + 1))
  [ $i -ge 400 ] && fail "virtio disks /dev/vda, /dev/vdb and /dev/vdc did not appear"
  usleep 50000
done
mount -t ext4 -o ro /dev/vdb /usr || fail "cannot mount the base system disk /dev/vdb on /usr"
mount -t ext4 -o ro /dev/vdc /usr/memdump || fail "cannot mount the memdump disk /dev/vdc on /usr/memdump"
mount -t ext4 /dev/vda /work || fail "cannot mount the work disk /dev/vda on /work"
# Keep mlock'ed test pages where /proc/self/pagemap said they were.
echo 0 > /proc/sys/vm/compact_unevictable_allowed 2>/dev/null
cd /work || fail "cd /work"
: > /work/run.log
# Stream run.log to the console while run.sh runs. A pipe into tee would
# hang on background children of run.sh that inherit its write end.
tail -n +1 -f /work/run.log &
tailpid=$!
echo "${RUN_MARKER} uptime=$(up)"
# /bin/sh is dash from the base disk: busybox sh here would run its own
# applets (dd!) in preference to PATH, hiding GNU dd.
/bin/sh /work/run.sh < /dev/null >> /work/run.log 2>&1
rc=$?
# busybox tail -f polls once a second: let it catch up before stopping it.
sleep 1
kill $tailpid 2>/dev/null
wait $tailpid 2>/dev/null
sync
echo "MEMDUMP-GUEST-UPTIME $(up)"
echo "${DONE_MARKER} rc=$rc"
hang
`;

export interface InitramfsOptions {
  assets: GuestAssets;
  cacheDir?: string;
  /** Explicit output path; default: a content-addressed file in cacheDir. */
  out?: string;
}

/** Compile pattern.c statically (cached by source hash). */
export async function buildPatternBinary(cacheDir: string = defaultCacheDir()): Promise<string> {
  const src = path.join(findRepoRoot(), 'test', 'helpers', 'pattern.c');
  const code = await fs.readFile(src);
  const out = path.join(cacheDir, `pattern-${sha256(code).slice(0, 16)}`);
  if (await exists(out)) return out;
  await fs.mkdir(cacheDir, { recursive: true });
  const gcc = requireExecutable('gcc', 'gcc libc6-dev');
  const tmp = `${out}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await run(gcc, ['-O2', '-static', '-Wall', '-o', tmp, src]);
  await fs.rename(tmp, out);
  return out;
}

/**
 * A gzip'd newc initramfs: busybox, the disk/ext4 modules, the pattern helper
 * and /init. Node, GNU dd and memdump come from the system disk (see the file
 * comment for why). Content-addressed in cacheDir, so rebuilt only when an
 * input changes.
 */
export async function buildInitramfs(opts: InitramfsOptions): Promise<string> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  await fs.mkdir(cacheDir, { recursive: true });
  const busyboxPath = requireExecutable('busybox', 'busybox-static');
  const [busybox, modules, patternPath] = await Promise.all([
    fs.readFile(busyboxPath),
    guestModules(opts.assets),
    buildPatternBinary(cacheDir),
  ]);
  const pattern = await fs.readFile(patternPath);
  const h = createHash('sha256');
  h.update(`format ${RIG_FORMAT}\n${opts.assets.kernelVersion}\n${INIT_SCRIPT}`);
  h.update(busybox);
  h.update(pattern);
  for (const m of modules) h.update(m.name).update(m.data);
  const out = opts.out ?? path.join(cacheDir, `initramfs-${h.digest('hex').slice(0, 16)}.cpio.gz`);
  if (!opts.out && (await exists(out))) return out;

  const applets = (await run(busyboxPath, ['--list'])).stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0 && s !== 'busybox' && !s.includes('/'));
  // Names provided by the system disk instead of busybox.
  // Names provided by the base disk instead of busybox. /bin/sh must not be
  // busybox: the Debian busybox-static shell runs applets in preference to
  // PATH (FEATURE_PREFER_APPLETS), so `dd` in a script would be busybox dd.
  const fromSystemDisk = new Set(['dd', 'node', 'memdump', 'sh', 'dash']);
  const entries: CpioEntry[] = [];
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'root', 'work', 'usr', 'modules', 'etc', 'run', 'mnt']) {
    entries.push({ kind: 'dir', name: d, mode: d === 'tmp' ? 0o1777 : 0o755 });
  }
  entries.push({ kind: 'chardev', name: 'dev/console', major: 5, minor: 1 });
  entries.push({ kind: 'chardev', name: 'dev/null', major: 1, minor: 3, mode: 0o666 });
  entries.push({ kind: 'symlink', name: 'sbin', target: 'bin' });
  entries.push({ kind: 'symlink', name: 'lib', target: 'usr/lib' });
  entries.push({ kind: 'symlink', name: 'lib64', target: 'usr/lib64' });
  entries.push({ kind: 'symlink', name: 'memdump', target: 'usr/memdump' });
  entries.push({ kind: 'file', name: 'bin/busybox', data: busybox, mode: 0o755 });
  for (const a of applets) {
    if (!fromSystemDisk.has(a)) entries.push({ kind: 'symlink', name: `bin/${a}`, target: 'busybox' });
  }
  for (const a of fromSystemDisk) entries.push({ kind: 'symlink', name: `bin/${a}`, target: `/usr/bin/${a}` });
  entries.push({ kind: 'file', name: 'bin/pattern', data: pattern, mode: 0o755 });
  for (const m of modules) entries.push({ kind: 'file', name: `modules/${m.name}.ko`, data: m.data });
  entries.push({
    kind: 'file',
    name: 'modules/load-order',
    data: Buffer.from(modules.map((m) => m.name).join('\n') + '\n'),
  });
  entries.push({ kind: 'file', name: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') });
  entries.push({ kind: 'file', name: 'etc/group', data: Buffer.from('root:x:0:\n') });
  entries.push({ kind: 'file', name: 'init', data: Buffer.from(INIT_SCRIPT), mode: 0o755 });

  await writeAtomic(out, gzipSync(buildCpio(entries), { level: 6 }));
  if (!opts.out) await pruneOld(cacheDir, /^initramfs-[0-9a-f]{16}\.cpio\.gz$/, out);
  return out;
}

// ---------------------------------------------------------------------------
// system disk (node, libs, GNU dd, memdump build)

async function lddLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run('ldd', [binary]);
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const arrow = /=>\s*(\/\S+)/.exec(line);
    const bare = /^\s*(\/\S+)\s+\(/.exec(line);
    const p = arrow?.[1] ?? bare?.[1];
    if (p) libs.push(p);
  }
  return libs;
}

async function findFiles(dir: string, pred: (name: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let ents;
    try {
      ents = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && pred(e.name)) out.push(p);
    }
  };
  await walk(dir);
  return out;
}

/** Cheap fingerprint of a tree: relative path, type, size and mtime of every entry. */
async function treeFingerprint(root: string, h: ReturnType<typeof createHash>, hashContents: boolean): Promise<void> {
  const walk = async (d: string, rel: string): Promise<void> => {
    let ents;
    try {
      ents = await fs.readdir(d, { withFileTypes: true });
    } catch {
      h.update(`missing ${rel}\n`);
      return;
    }
    ents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of ents) {
      const p = path.join(d, e.name);
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) {
        h.update(`d ${r}\n`);
        await walk(p, r);
      } else if (e.isSymbolicLink()) {
        h.update(`l ${r} ${await fs.readlink(p)}\n`);
      } else if (e.isFile()) {
        if (hashContents) {
          h.update(`f ${r}\n`);
          h.update(await fs.readFile(p));
        } else {
          const st = await fs.stat(p);
          h.update(`f ${r} ${st.size} ${st.mtimeMs}\n`);
        }
      }
    }
  };
  await walk(root, '');
}

export interface SystemDiskOptions {
  repoDir: string;
  cacheDir?: string;
  nodeBinary?: string;
}

export interface SystemDisks {
  /** Node, its libraries, GNU dd and the memdump wrapper; mounted read-only at /usr. */
  base: string;
  /** memdump's package.json, dist/ and node_modules/; mounted read-only at /usr/memdump. */
  app: string;
}

/** Hard-link src to dest (cheap staging on the same file system), copying when that fails. */
async function linkOrCopy(src: string, dest: string): Promise<void> {
  try {
    await fs.link(src, dest);
  } catch {
    await fs.copyFile(src, dest);
  }
}

/** Mirror a tree into dest with hard links (symlinks kept verbatim). */
async function linkTree(src: string, dest: string): Promise<void> {
  await fs.mkdir(dest, { recursive: true });
  for (const e of await fs.readdir(src, { withFileTypes: true })) {
    const s = path.join(src, e.name);
    const d = path.join(dest, e.name);
    if (e.isDirectory()) await linkTree(s, d);
    else if (e.isSymbolicLink()) await fs.symlink(await fs.readlink(s), d);
    else if (e.isFile()) await linkOrCopy(s, d);
  }
}

/** mkfs.ext4 -d staging → out (atomically), sized for the staging tree. */
async function makeExt4FromDir(staging: string, out: string, label: string): Promise<void> {
  const mkfs = requireExecutable('mkfs.ext4', 'e2fsprogs');
  const bytes = await duBytes(staging);
  const sizeMiB = Math.ceil((bytes * 1.15) / (1024 * 1024)) + 16;
  const tmp = `${out}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await run(mkfs, ['-F', '-q', '-L', label, '-O', '^has_journal', '-E', 'root_owner=0:0', '-d', staging, tmp, `${sizeMiB}M`]);
    await fs.rename(tmp, out);
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

async function touch(p: string): Promise<void> {
  const now = new Date();
  await fs.utimes(p, now, now).catch(() => undefined);
}

/**
 * Two read-only ext4 images for the guest, each cached in cacheDir under a
 * fingerprint of its inputs:
 *   base: bin/node, bin/dd (GNU), bin/memdump (wrapper), the shared libraries
 *         `ldd` lists for them and for the native addons in node_modules,
 *         bin/dash + bin/sh (run.sh's shell), and
 *         an empty memdump/ mount point (inputs fingerprinted by size+mtime;
 *         rebuilt only when Node or the libraries change)
 *   app:  package.json, dist/ (fingerprinted by content) and node_modules/
 *         (size+mtime): rebuilt after every change to the build, which is why
 *         it is kept apart from the ~100 MB of Node.
 */
export async function buildSystemDisks(opts: SystemDiskOptions): Promise<SystemDisks> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  await fs.mkdir(cacheDir, { recursive: true });
  const node = opts.nodeBinary ?? process.execPath;
  const dd = requireExecutable('dd', 'coreutils');
  const dash = requireExecutable('dash', 'dash');
  const repo = opts.repoDir;
  const [base, app] = await Promise.all([
    (async (): Promise<string> => {
      const addons = await findFiles(path.join(repo, 'node_modules'), (n) => n.endsWith('.node'));
      const libSet = new Set<string>();
      for (const bin of [node, dd, dash, ...addons]) for (const l of await lddLibraries(bin)) libSet.add(l);
      const libs = [...libSet].sort();
      const wrapper = '#!/bin/sh\nexec /usr/bin/node /usr/memdump/dist/src/cli/main.js "$@"\n';
      const h = createHash('sha256');
      h.update(`format ${RIG_FORMAT}\n${wrapper}`);
      for (const f of [node, dd, dash, ...libs]) {
        const st = await fs.stat(f);
        h.update(`${f} ${st.size} ${st.mtimeMs}\n`);
      }
      const out = path.join(cacheDir, `sysbase-${h.digest('hex').slice(0, 16)}.img`);
      if (await exists(out)) {
        await touch(out);
        return out;
      }
      const staging = await fs.mkdtemp(path.join(cacheDir, 'sysbase-staging-'));
      try {
        await fs.mkdir(path.join(staging, 'bin'));
        await fs.mkdir(path.join(staging, 'memdump'));
        await fs.copyFile(node, path.join(staging, 'bin', 'node'));
        await fs.copyFile(dd, path.join(staging, 'bin', 'dd'));
        await fs.writeFile(path.join(staging, 'bin', 'memdump'), wrapper, { mode: 0o755 });
        await fs.chmod(path.join(staging, 'bin', 'node'), 0o755);
        await fs.chmod(path.join(staging, 'bin', 'dd'), 0o755);
        await fs.copyFile(dash, path.join(staging, 'bin', 'dash'));
        await fs.chmod(path.join(staging, 'bin', 'dash'), 0o755);
        await fs.symlink('dash', path.join(staging, 'bin', 'sh'));
        for (const lib of libs) {
          // /lib/x86_64-linux-gnu/x and /usr/lib/x86_64-linux-gnu/x both land in
          // lib/x86_64-linux-gnu (the guest's /lib is a symlink to /usr/lib).
          const rel = lib.replace(/^\/usr\//, '/').replace(/^\/+/, '');
          const dest = path.join(staging, rel);
          await fs.mkdir(path.dirname(dest), { recursive: true });
          await fs.copyFile(await fs.realpath(lib), dest);
          await fs.chmod(dest, 0o755);
        }
        await makeExt4FromDir(staging, out, 'memdump-base');
      } finally {
        await fs.rm(staging, { recursive: true, force: true });
      }
      await pruneOld(cacheDir, /^sysbase-[0-9a-f]{16}\.img$/, out);
      return out;
    })(),
    (async (): Promise<string> => {
      const h = createHash('sha256');
      h.update(`format ${RIG_FORMAT}\n`);
      h.update(await fs.readFile(path.join(repo, 'package.json')));
      await treeFingerprint(path.join(repo, 'dist'), h, true);
      await treeFingerprint(path.join(repo, 'node_modules'), h, false);
      const out = path.join(cacheDir, `sysapp-${h.digest('hex').slice(0, 16)}.img`);
      if (await exists(out)) {
        await touch(out);
        return out;
      }
      const staging = await fs.mkdtemp(path.join(cacheDir, 'sysapp-staging-'));
      try {
        await fs.copyFile(path.join(repo, 'package.json'), path.join(staging, 'package.json'));
        for (const sub of ['dist', 'node_modules']) {
          if (await exists(path.join(repo, sub))) await linkTree(path.join(repo, sub), path.join(staging, sub));
        }
        await makeExt4FromDir(staging, out, 'memdump-app');
      } finally {
        await fs.rm(staging, { recursive: true, force: true });
      }
      await pruneOld(cacheDir, /^sysapp-[0-9a-f]{16}\.img$/, out);
      return out;
    })(),
  ]);
  return { base, app };
}

async function duBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        total += 4096;
        await walk(p);
      } else if (e.isFile()) total += Math.ceil((await fs.stat(p)).size / 4096) * 4096 + 4096;
      else total += 4096;
    }
  };
  await walk(dir);
  return total;
}

/**
 * Remove cached images matching re, except keep, unused for 10 minutes (a
 * QEMU that still has one open is unaffected by the unlink; the margin covers
 * a concurrent boot between choosing an image and opening it).
 */
async function pruneOld(dir: string, re: RegExp, keep: string): Promise<void> {
  const cutoff = Date.now() - 600_000;
  for (const name of await fs.readdir(dir)) {
    const p = path.join(dir, name);
    if (!re.test(name) || p === keep) continue;
    try {
      if ((await fs.stat(p)).mtimeMs < cutoff) await fs.rm(p, { force: true });
    } catch {
      // raced with another run
    }
  }
}

// ---------------------------------------------------------------------------
// QMP

type Json = Record<string, unknown>;

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
  }
}

/** Minimal QMP client: greeting, qmp_capabilities, id-matched replies, events collected. */
export class QmpClient {
  readonly events: Json[] = [];
  private sock: Socket | undefined;
  private buf = '';
  private nextId = 1;
  private closed = false;
  private greeting: ((m: Json) => void) | undefined;
  private readonly pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void; cmd: string }>();

  static async connect(socketPath: string, timeoutMs = 10_000): Promise<QmpClient> {
    const c = new QmpClient();
    await c.open(socketPath, timeoutMs);
    return c;
  }

  private open(socketPath: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.close();
        reject(new Error(`QMP: no greeting on ${socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      const sock = createConnection(socketPath);
      this.sock = sock;
      sock.setEncoding('utf8');
      this.greeting = (m) => {
        if (!('QMP' in m)) return;
        this.greeting = undefined;
        this.command('qmp_capabilities', undefined, timeoutMs).then(
          () => {
            clearTimeout(timer);
            resolve();
          },
          (e: Error) => {
            clearTimeout(timer);
            reject(e);
          },
        );
      };
      sock.on('data', (chunk: string) => this.onData(chunk));
      sock.on('error', (e) => {
        clearTimeout(timer);
        this.failAll(e);
        reject(e);
      });
      sock.on('close', () => {
        this.closed = true;
        this.failAll(new Error('QMP connection closed'));
      });
    });
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Json;
      try {
        msg = JSON.parse(line) as Json;
      } catch {
        continue;
      }
      if (this.greeting) {
        this.greeting(msg);
        continue;
      }
      if ('event' in msg) {
        this.events.push(msg);
        continue;
      }
      const id = msg['id'];
      const waiter = typeof id === 'string' ? this.pending.get(id) : undefined;
      if (!waiter || typeof id !== 'string') continue;
      this.pending.delete(id);
      if ('error' in msg) {
        const err = (msg['error'] ?? {}) as { class?: string; desc?: string };
        waiter.reject(new QmpError(waiter.cmd, err.class ?? 'GenericError', err.desc ?? JSON.stringify(msg)));
      } else {
        waiter.resolve(msg['return']);
      }
    }
  }

  private failAll(e: Error): void {
    for (const [id, w] of this.pending) {
      this.pending.delete(id);
      w.reject(new Error(`QMP ${w.cmd}: ${e.message}`));
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  command(execute: string, args?: object, timeoutMs = 60_000): Promise<unknown> {
    const sock = this.sock;
    if (!sock || this.closed) return Promise.reject(new Error(`QMP ${execute}: not connected`));
    const id = `memdump-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${execute}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        cmd: execute,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      const msg: Json = { execute, id };
      if (args !== undefined) msg['arguments'] = args;
      sock.write(JSON.stringify(msg) + '\n');
    });
  }

  close(): void {
    this.closed = true;
    this.sock?.destroy();
  }
}

// ---------------------------------------------------------------------------
// guest

/** Content for a file on the work disk: text, bytes, or a host file to copy. */
export type GuestFile = string | Uint8Array | { copyFrom: string; mode?: number };

export interface BootOptions {
  /** Guest RAM (default 512). */
  memoryMiB?: number;
  /** Where disk.img, the QMP socket etc. go; a temp dir (removed on dispose) when omitted. */
  workDir?: string;
  /**
   * Body of /work/run.sh, run as root with cwd /work by /bin/sh (dash; PATH
   * /bin:/usr/bin holds the busybox applets, GNU dd, node and `memdump`).
   */
  runScript: string;
  /** Extra files on the work disk, keyed by path relative to /work. */
  files?: Record<string, GuestFile>;
  /** Work disk size (default 256 + 2 × memoryMiB; the image is sparse). */
  diskMiB?: number;
  /** Limit for boot + run.sh, until the done marker (default 300 000). */
  timeoutMs?: number;
  /** vCPUs (default 1). */
  smp?: number;
  /**
   * -cpu model (default "max,la57=off"). Plain "max" advertises LA57 and the
   * Debian kernel then runs with 5-level paging (different direct-map base).
   */
  cpu?: string;
  /** Extra kernel command-line words. */
  append?: string;
  repoDir?: string;
  cacheDir?: string;
  /** Receives console text as it arrives (e.g. for live debugging). */
  onConsole?: (text: string) => void;
  /** More QEMU arguments, e.g. a fourth disk at PCI slot 0x7 (it enumerates as /dev/vdd). */
  extraArgs?: readonly string[];
}

export interface GuestTimings {
  /** Host time from spawning QEMU to /init's first line. */
  bootMs: number | undefined;
  /** Host time from spawning QEMU to run.sh starting. */
  runStartMs: number | undefined;
  /** Host time from spawning QEMU to the done marker. */
  doneMs: number;
  /** Host time spent building/locating kernel, initramfs and disks before spawning. */
  prepareMs: number;
}

export interface Guest {
  /** run.sh's exit status (255 when /init failed before running it). */
  readonly exitStatus: number;
  /** Everything on the serial console so far. */
  readonly console: string;
  readonly timings: GuestTimings;
  readonly assets: GuestAssets;
  readonly workDir: string;
  readonly diskImage: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  qmp(execute: string, args?: object, timeoutMs?: number): Promise<any>;
  /** QMP dump-guest-memory (paging=false) into hostPath; resolves when the dump is complete. */
  dumpGuestMemory(hostPath: string, opts?: { format?: 'elf' | 'kdump-zlib' | 'kdump-lzo' | 'kdump-snappy'; timeoutMs?: number }): Promise<void>;
  /** QMP quit; waits for QEMU to exit, SIGKILL after timeoutMs. */
  quit(timeoutMs?: number): Promise<void>;
  /** SIGKILL QEMU (no-op when not running). */
  kill(): Promise<void>;
  /**
   * Copy a file from the work disk (path relative to /work, or starting with
   * /work/) to hostPath with debugfs. Valid once the done marker was seen
   * (the guest has synced), before or after quit().
   */
  copyOut(guestPath: string, hostPath: string): Promise<void>;
  /** copyOut into memory. */
  readFile(guestPath: string): Promise<Buffer>;
  /** Entries of a directory on the work disk (default: its root), without . and .. */
  listDisk(dir?: string): Promise<Array<{ name: string; size: number; isDirectory: boolean; mode: number }>>;
  /** kill() and remove workDir when bootGuest created it. */
  dispose(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Last resort: never leave an emulator behind when the test process exits.
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

function diskPath(guestPath: string): string {
  let p = guestPath.replace(/^\/work(\/|$)/, '/');
  if (!p.startsWith('/')) p = '/' + p;
  if (/["\n\r]/.test(p)) throw new Error(`unsupported characters in guest path ${JSON.stringify(guestPath)}`);
  return p;
}

function debugfsQuote(s: string): string {
  if (/["\n\r]/.test(s)) throw new Error(`unsupported characters in path ${JSON.stringify(s)}`);
  return /[\s\\]/.test(s) ? `"${s}"` : s;
}

async function writeGuestFile(root: string, rel: string, content: GuestFile): Promise<void> {
  const clean = path.posix.normalize(rel.replace(/^\/work\//, '').replace(/^\/+/, ''));
  if (clean.startsWith('..') || clean === '.' || clean === '') throw new Error(`bad guest file name ${rel}`);
  const dest = path.join(root, clean);
  await fs.mkdir(path.dirname(dest), { recursive: true });
  if (typeof content === 'string' || content instanceof Uint8Array) {
    await fs.writeFile(dest, content, { mode: 0o644 });
  } else {
    await fs.copyFile(content.copyFrom, dest);
    await fs.chmod(dest, content.mode ?? ((await fs.stat(content.copyFrom)).mode & 0o777));
  }
}

function tail(text: string, lines = 60): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** Boot the guest, run runScript, and resolve once it finished (guest left running). */
export async function bootGuest(opts: BootOptions): Promise<Guest> {
  const t0 = process.hrtime.bigint();
  const qemuBin = requireExecutable('qemu-system-x86_64', 'qemu-system-x86');
  const debugfs = requireExecutable('debugfs', 'e2fsprogs');
  const mkfs = requireExecutable('mkfs.ext4', 'e2fsprogs');
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const repoDir = opts.repoDir ?? findRepoRoot();
  const memoryMiB = opts.memoryMiB ?? 512;
  const diskMiB = opts.diskMiB ?? 256 + 2 * memoryMiB;
  const timeoutMs = opts.timeoutMs ?? 300_000;

  const ownsWorkDir = opts.workDir === undefined;
  const workDir = opts.workDir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'memdump-guest-')));
  await fs.mkdir(workDir, { recursive: true });
  let child: ChildProcess | undefined;
  let qmpClient: QmpClient | undefined;
  let sockDir: string | undefined;
  const cleanupOnError = async (): Promise<void> => {
    qmpClient?.close();
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await Promise.race([new Promise((r) => child?.once('exit', r)), delay(10_000)]);
    }
    if (sockDir) await fs.rm(sockDir, { recursive: true, force: true });
    if (ownsWorkDir && !process.env['MEMDUMP_GUEST_KEEP']) await fs.rm(workDir, { recursive: true, force: true });
  };

  try {
    const assets = await guestAssets(cacheDir);
    const [initrd, sysDisks] = await Promise.all([
      buildInitramfs({ assets, cacheDir }),
      buildSystemDisks({ repoDir, cacheDir }),
    ]);

    // Work disk.
    const staging = path.join(workDir, 'disk-staging');
    await fs.rm(staging, { recursive: true, force: true });
    await fs.mkdir(staging);
    await fs.writeFile(path.join(staging, 'run.sh'), opts.runScript, { mode: 0o755 });
    for (const [name, content] of Object.entries(opts.files ?? {})) await writeGuestFile(staging, name, content);
    const diskImage = path.join(workDir, 'disk.img');
    await run(mkfs, ['-F', '-q', '-L', 'memdump-work', '-O', '^has_journal', '-E', 'root_owner=0:0', '-d', staging, diskImage, `${diskMiB}M`]);
    await fs.rm(staging, { recursive: true, force: true });

    // Unix socket paths are limited to ~107 bytes: keep it short.
    sockDir = await fs.mkdtemp(path.join(os.tmpdir(), 'mdq-'));
    const qmpSock = path.join(sockDir, 'qmp.sock');
    const prepareMs = elapsedMs(t0);

    const append = ['console=ttyS0', 'quiet', 'panic=-1', opts.append ?? ''].join(' ').trim();
    const args = [
      '-accel', 'tcg',
      '-machine', 'pc',
      '-cpu', opts.cpu ?? 'max,la57=off',
      '-m', String(memoryMiB),
      '-smp', String(opts.smp ?? 1),
      '-display', 'none',
      '-vga', 'none',
      '-nic', 'none',
      '-no-reboot',
      '-monitor', 'none',
      '-serial', 'stdio',
      '-kernel', assets.kernel,
      '-initrd', initrd,
      '-append', append,
      // Fixed PCI slots, so the disks enumerate as vda (work), vdb (base), vdc (app).
      '-drive', `file=${diskImage},if=none,id=work,format=raw`,
      '-device', 'virtio-blk-pci,drive=work,addr=0x4',
      '-drive', `file=${sysDisks.base},if=none,id=base,format=raw,readonly=on`,
      '-device', 'virtio-blk-pci,drive=base,addr=0x5',
      '-drive', `file=${sysDisks.app},if=none,id=app,format=raw,readonly=on`,
      '-device', 'virtio-blk-pci,drive=app,addr=0x6',
      '-qmp', `unix:${qmpSock},server=on,wait=off`,
      ...(opts.extraArgs ?? []),
    ];
    const spawnAt = process.hrtime.bigint();
    // setpriv (util-linux) makes the kernel SIGKILL QEMU if this process dies
    // without running its exit hooks (e.g. the test runner's SIGTERM).
    const setpriv = findExecutable('setpriv');
    const [cmd, cmdArgs] = setpriv
      ? [setpriv, ['--pdeathsig', 'KILL', '--', qemuBin, ...args]]
      : [qemuBin, args];
    const proc = spawn(cmd, cmdArgs, { stdio: ['pipe', 'pipe', 'pipe'] });
    child = proc;
    track(proc);

    let consoleText = '';
    const CONSOLE_CAP = 32 * 1024 * 1024;
    let bootMs: number | undefined;
    let runStartMs: number | undefined;
    const onText = (s: string): void => {
      consoleText += s;
      if (consoleText.length > CONSOLE_CAP) consoleText = consoleText.slice(-CONSOLE_CAP / 2);
      if (bootMs === undefined && consoleText.includes(INIT_MARKER)) bootMs = elapsedMs(spawnAt);
      if (runStartMs === undefined && consoleText.includes(RUN_MARKER)) runStartMs = elapsedMs(spawnAt);
      opts.onConsole?.(s);
    };
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', onText);
    proc.stderr.on('data', (s: string) => onText(s));
    proc.on('error', (e) => onText(`\n[qemu spawn error: ${e.message}]\n`));

    const exitStatus = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanupListeners();
        reject(new Error(`guest did not finish within ${timeoutMs} ms; console tail:\n${tail(consoleText)}`));
      }, timeoutMs);
      const check = (): void => {
        const m = DONE_RE.exec(consoleText);
        if (m?.[1] !== undefined) {
          cleanupListeners();
          resolve(Number(m[1]));
        }
      };
      const onExit = (code: number | null, sig: string | null): void => {
        cleanupListeners();
        reject(new Error(`QEMU exited (code ${code}, signal ${sig}) before the done marker; console tail:\n${tail(consoleText)}`));
      };
      const onError = (e: Error): void => {
        cleanupListeners();
        reject(new Error(`cannot run ${cmd}: ${e.message}`));
      };
      const cleanupListeners = (): void => {
        clearTimeout(timer);
        proc.stdout.off('data', check);
        proc.off('exit', onExit);
        proc.off('error', onError);
      };
      proc.stdout.on('data', check);
      proc.once('exit', onExit);
      proc.once('error', onError);
      check();
    });
    const doneMs = elapsedMs(spawnAt);
    const client = await QmpClient.connect(qmpSock);
    qmpClient = client;

    const exited = (): boolean => proc.exitCode !== null || proc.signalCode !== null;
    const waitExit = (ms: number): Promise<boolean> =>
      exited()
        ? Promise.resolve(true)
        : new Promise((resolve) => {
            const timer = setTimeout(() => {
              proc.off('exit', onExit);
              resolve(false);
            }, ms);
            const onExit = (): void => {
              clearTimeout(timer);
              resolve(true);
            };
            proc.once('exit', onExit);
          });
    const kill = async (): Promise<void> => {
      client.close();
      if (!exited()) {
        proc.kill('SIGKILL');
        await waitExit(10_000);
      }
    };

    const guest: Guest = {
      exitStatus,
      get console() {
        return consoleText;
      },
      timings: { bootMs, runStartMs, doneMs, prepareMs },
      assets,
      workDir,
      diskImage,
      pid: proc.pid,
      get running() {
        return !exited();
      },
      qmp: (execute, args, ms) => client.command(execute, args, ms),
      async dumpGuestMemory(hostPath, o = {}) {
        const abs = path.resolve(hostPath);
        const ms = o.timeoutMs ?? 600_000;
        const args: Json = { paging: false, protocol: `file:${abs}` };
        if (o.format && o.format !== 'elf') args['format'] = o.format;
        // Synchronous without `detach`: the reply arrives when the dump is written.
        await client.command('dump-guest-memory', args, ms);
        const deadline = Date.now() + ms;
        for (;;) {
          const st = (await client.command('query-dump', undefined, 10_000)) as { status?: string };
          if (st.status === 'completed' || st.status === 'none') break;
          if (st.status === 'failed') throw new Error(`dump-guest-memory to ${abs} failed`);
          if (Date.now() > deadline) throw new Error(`dump-guest-memory to ${abs} did not complete in ${ms} ms`);
          await delay(100);
        }
      },
      async quit(ms = 15_000) {
        if (exited()) return;
        try {
          await client.command('quit', undefined, ms);
        } catch {
          // the socket may close before the reply arrives
        }
        if (!(await waitExit(ms))) await kill();
        client.close();
      },
      kill,
      async copyOut(guestPath, hostPath) {
        const src = diskPath(guestPath);
        const dest = path.resolve(hostPath);
        await fs.rm(dest, { force: true });
        const { stderr } = await run(debugfs, ['-R', `dump -p ${debugfsQuote(src)} ${debugfsQuote(dest)}`, diskImage]);
        if (!(await exists(dest))) {
          throw new Error(`copyOut ${guestPath}: not found on the work disk (${stderr.trim()})`);
        }
      },
      async readFile(guestPath) {
        const tmp = path.join(workDir, `copyout-${process.pid}-${Math.random().toString(36).slice(2)}`);
        try {
          await guest.copyOut(guestPath, tmp);
          return await fs.readFile(tmp);
        } finally {
          await fs.rm(tmp, { force: true });
        }
      },
      async listDisk(dir = '/') {
        const { stdout, stderr } = await run(debugfs, ['-R', `ls -p ${debugfsQuote(diskPath(dir))}`, diskImage]);
        const entries: Array<{ name: string; size: number; isDirectory: boolean; mode: number }> = [];
        for (const line of stdout.split('\n')) {
          // /inode/mode/uid/gid/name/size/
          const m = /^\/(\d+)\/([0-7]+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line.trim());
          if (!m || m[5] === undefined || m[2] === undefined) continue;
          if (m[5] === '.' || m[5] === '..') continue;
          const mode = parseInt(m[2], 8);
          entries.push({ name: m[5], size: Number(m[6] ?? 0), isDirectory: (mode & 0o170000) === 0o040000, mode });
        }
        if (entries.length === 0 && /not found|error/i.test(stderr)) {
          throw new Error(`listDisk ${dir}: ${stderr.trim()}`);
        }
        return entries;
      },
      async dispose() {
        await kill();
        if (sockDir) await fs.rm(sockDir, { recursive: true, force: true });
        if (ownsWorkDir && !process.env['MEMDUMP_GUEST_KEEP']) await fs.rm(workDir, { recursive: true, force: true });
      },
    };
    return guest;
  } catch (e) {
    await cleanupOnError();
    throw e;
  }
}

/** bootGuest + fn, always killing QEMU and removing its temp dir afterwards. */
export async function withGuest<T>(opts: BootOptions, fn: (guest: Guest) => Promise<T>): Promise<T> {
  const guest = await bootGuest(opts);
  try {
    return await fn(guest);
  } finally {
    await guest.dispose();
  }
}

// ---------------------------------------------------------------------------
// ELF64 program headers (QEMU dumps, /proc/kcore). Deliberately independent of src/formats/elf-parse.ts: the
// oracle side of a test must not share the code under test.

export interface ElfProgramHeader {
  type: number;
  flags: number;
  offset: bigint;
  vaddr: bigint;
  paddr: bigint;
  filesz: bigint;
  memsz: bigint;
  align: bigint;
}

export const PT_LOAD = 1;
export const PT_NOTE = 4;
const MAX_PHDRS = 1 << 20;

/** Number of program headers and where they are; handles PN_XNUM (count in section 0's sh_info). */
function elfHeaderInfo(hdr: Buffer, readAt: (off: number, len: number) => Buffer): { phoff: number; phentsize: number; phnum: number } {
  if (hdr.length < 64 || hdr.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (hdr[4] !== 2) throw new Error('not ELF64');
  if (hdr[5] !== 1) throw new Error('not little-endian ELF');
  const phoff = hdr.readBigUInt64LE(0x20);
  const shoff = hdr.readBigUInt64LE(0x28);
  const phentsize = hdr.readUInt16LE(0x36);
  let phnum = hdr.readUInt16LE(0x38);
  if (phentsize < 56) throw new Error(`bad e_phentsize ${phentsize}`);
  if (phnum === 0xffff) {
    if (shoff === 0n || shoff > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('PN_XNUM without section header');
    phnum = readAt(Number(shoff), 64).readUInt32LE(0x2c);
  }
  if (phnum > MAX_PHDRS) throw new Error(`implausible e_phnum ${phnum}`);
  if (phoff > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('e_phoff too large');
  return { phoff: Number(phoff), phentsize, phnum };
}

function parsePhdr(b: Buffer, off: number): ElfProgramHeader {
  return {
    type: b.readUInt32LE(off),
    flags: b.readUInt32LE(off + 4),
    offset: b.readBigUInt64LE(off + 8),
    vaddr: b.readBigUInt64LE(off + 16),
    paddr: b.readBigUInt64LE(off + 24),
    filesz: b.readBigUInt64LE(off + 32),
    memsz: b.readBigUInt64LE(off + 40),
    align: b.readBigUInt64LE(off + 48),
  };
}

/** Program headers from an in-memory ELF64 image prefix (throws if the buffer is too short). */
export function parseElf64ProgramHeaders(buf: Buffer): ElfProgramHeader[] {
  const readAt = (off: number, len: number): Buffer => {
    if (off + len > buf.length) throw new Error(`ELF header data at ${off}+${len} beyond the ${buf.length}-byte buffer`);
    return buf.subarray(off, off + len);
  };
  const { phoff, phentsize, phnum } = elfHeaderInfo(readAt(0, 64), readAt);
  const table = readAt(phoff, phentsize * phnum);
  const out: ElfProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) out.push(parsePhdr(table, i * phentsize));
  return out;
}

/** Program headers of an ELF64 file on disk. */
export async function readElf64ProgramHeaders(file: string): Promise<ElfProgramHeader[]> {
  const fh = await fs.open(file, fsConstants.O_RDONLY);
  try {
    const readAt = async (off: number, len: number): Promise<Buffer> => {
      const b = Buffer.alloc(len);
      const { bytesRead } = await fh.read(b, 0, len, off);
      if (bytesRead !== len) throw new Error(`${file}: short read at ${off}`);
      return b;
    };
    const hdr = await readAt(0, 64);
    let sh: Buffer | undefined;
    const shoff = hdr.length >= 64 ? Number(hdr.readBigUInt64LE(0x28) & 0xffffffffffffn) : 0;
    if (hdr.length >= 64 && hdr.readUInt16LE(0x38) === 0xffff && shoff > 0) sh = await readAt(shoff, 64);
    const { phoff, phentsize, phnum } = elfHeaderInfo(hdr, () => {
      if (!sh) throw new Error('PN_XNUM without section header');
      return sh;
    });
    const table = await readAt(phoff, phentsize * phnum);
    const out: ElfProgramHeader[] = [];
    for (let i = 0; i < phnum; i++) out.push(parsePhdr(table, i * phentsize));
    return out;
  } finally {
    await fh.close();
  }
}

export const hex = (v: bigint | number): string => '0x' + v.toString(16);
