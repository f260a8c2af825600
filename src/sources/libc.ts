import { createRequire } from 'node:module';
import { MemdumpError } from '../core/errors.js';

type Koffi = typeof import('koffi');

export interface Libc {
  readonly koffi: Koffi;
  readonly libc: ReturnType<Koffi['load']>;
  /** The address of a buffer's memory, for structs that point at it. */
  address(b: Buffer): bigint;
}

let loaded: Libc | undefined;

/**
 * libc through koffi (prebuilt binaries, no compiler at install), for the few calls Node has no API for. Loaded on
 * first use so commands that never need it never load the native module. `whoNeeds` starts the error on another
 * platform: "process dumps need", "passing a descriptor to QEMU needs".
 */
export function loadLibc(whoNeeds: string): Libc {
  if (loaded) return loaded;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new MemdumpError('E_UNSUPPORTED', `${whoNeeds} Linux on x86-64 (this is ${process.platform}/${process.arch})`);
  }
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (e) {
    throw new MemdumpError('E_UNSUPPORTED', `the koffi FFI module could not be loaded (${(e as Error).message}); reinstall with npm ci`, { cause: e });
  }
  const k = koffi;
  loaded = { koffi: k, libc: k.load('libc.so.6'), address: (b) => BigInt(k.address(b) as unknown as bigint) };
  return loaded;
}
