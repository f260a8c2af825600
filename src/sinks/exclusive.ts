import { constants, promises as fsp } from 'node:fs';
import { MemdumpError, errnoOf, fromSystemError } from '../core/errors.js';

const EXCL_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY;

/** Refuse an existing path or a symlink at `path`, with the error code the CLI documents. */
export async function assertAbsent(path: string): Promise<void> {
  try {
    const st = await fsp.lstat(path);
    if (st.isSymbolicLink()) throw new MemdumpError('E_DEST_SYMLINK', `${path} is a symbolic link; refusing to write through it`, { details: { path } });
    throw new MemdumpError('E_DEST_EXISTS', `${path} already exists; memdump never overwrites evidence (choose another -o)`, { details: { path } });
  } catch (e) {
    if (e instanceof MemdumpError) throw e;
    if (errnoOf(e) !== 'ENOENT') throw fromSystemError(e, `checking ${path}`);
  }
}

/** Open a new file 0600 whatever the umask, failing if anything (file or symlink) is already there. */
export async function openExclusive(path: string): Promise<fsp.FileHandle> {
  try {
    const fh = await fsp.open(path, EXCL_FLAGS, 0o600);
    await fh.chmod(0o600);
    return fh;
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === 'EEXIST') {
      await assertAbsent(path);
      throw new MemdumpError('E_DEST_EXISTS', `${path} already exists`, { details: { path } });
    }
    if (errno === 'ELOOP') throw new MemdumpError('E_DEST_SYMLINK', `${path} is a symbolic link; refusing to write through it`, { details: { path } });
    throw fromSystemError(e, `creating ${path}`);
  }
}

/** Small side files (report, log, map, context): exclusive, 0600, fsynced. */
export async function writeFileExclusive(path: string, data: string | Buffer): Promise<void> {
  const fh = await openExclusive(path);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    // the file is ours and incomplete: remove it rather than leave a truncated record
    await fh.close();
    await fsp.unlink(path).catch(() => undefined);
    throw fromSystemError(e, `writing ${path}`);
  }
  await fh.close();
}

export async function mkdirExclusive(path: string): Promise<void> {
  await assertAbsent(path);
  try {
    await fsp.mkdir(path, { mode: 0o700 });
    await fsp.chmod(path, 0o700);
  } catch (e) {
    throw fromSystemError(e, `creating directory ${path}`);
  }
}
