/**
 * Names for the numbers in a crash dump header, so `info` is readable without a debugger at hand.
 * DUMP_TYPE values 1-7: Microsoft mindumpdef.h (enum _DUMP_TYPES); 6 is also what Windows 11 22H2+ live kernel dumps
 * (Task Manager "Create live kernel memory dump") carry; 8-10 are the newer `.dump /k`, `/ka`, `/f` layouts named by
 * kdmp-parser-rs (src/structs.rs DumpType). Bug check names: Microsoft's "Bug check code reference" (bugcodes.h).
 */
import { hex } from '../core/errors.js';

export const DUMP_TYPES: Readonly<Record<number, string>> = {
  0: 'unknown',
  1: 'full (complete memory dump)',
  2: 'summary (kernel memory dump)',
  3: 'header only',
  4: 'triage (small memory dump)',
  5: 'bitmap full',
  6: 'bitmap kernel',
  7: 'automatic',
  8: 'kernel memory (.dump /k)',
  9: 'kernel and user memory (.dump /ka)',
  10: 'complete memory (.dump /f)',
};

export function dumpTypeName(t: number): string {
  return `${DUMP_TYPES[t] ?? 'unrecognised'} (${t})`;
}

export const MACHINES: Readonly<Record<number, string>> = {
  0x14c: 'i386',
  0x8664: 'AMD64',
  0xaa64: 'ARM64',
  0x1c4: 'ARMNT',
  0x200: 'IA64',
};

export function machineName(m: number): string {
  return `${MACHINES[m] ?? 'unknown'} (${hex(m)})`;
}

/** The bug checks an analyst meets most often, and the ones forced on purpose (0xE2, 0xDEADDEAD, 0x161). */
export const BUGCHECKS: Readonly<Record<number, string>> = {
  0x0a: 'IRQL_NOT_LESS_OR_EQUAL',
  0x19: 'BAD_POOL_HEADER',
  0x1a: 'MEMORY_MANAGEMENT',
  0x1e: 'KMODE_EXCEPTION_NOT_HANDLED',
  0x3b: 'SYSTEM_SERVICE_EXCEPTION',
  0x50: 'PAGE_FAULT_IN_NONPAGED_AREA',
  0x77: 'KERNEL_STACK_INPAGE_ERROR',
  0x7a: 'KERNEL_DATA_INPAGE_ERROR',
  0x7e: 'SYSTEM_THREAD_EXCEPTION_NOT_HANDLED',
  0x7f: 'UNEXPECTED_KERNEL_MODE_TRAP',
  0x8e: 'KERNEL_MODE_EXCEPTION_NOT_HANDLED',
  0x9f: 'DRIVER_POWER_STATE_FAILURE',
  0xc2: 'BAD_POOL_CALLER',
  0xc4: 'DRIVER_VERIFIER_DETECTED_VIOLATION',
  0xd1: 'DRIVER_IRQL_NOT_LESS_OR_EQUAL',
  0xe2: 'MANUALLY_INITIATED_CRASH',
  0xef: 'CRITICAL_PROCESS_DIED',
  0xf4: 'CRITICAL_OBJECT_TERMINATION',
  0xfc: 'ATTEMPTED_EXECUTE_OF_NOEXECUTE_MEMORY',
  0x101: 'CLOCK_WATCHDOG_TIMEOUT',
  0x109: 'CRITICAL_STRUCTURE_CORRUPTION',
  0x116: 'VIDEO_TDR_FAILURE',
  0x124: 'WHEA_UNCORRECTABLE_ERROR',
  0x133: 'DPC_WATCHDOG_VIOLATION',
  0x139: 'KERNEL_SECURITY_CHECK_FAILURE',
  0x161: 'LIVE_SYSTEM_DUMP',
  0xdeaddead: 'MANUALLY_INITIATED_CRASH1',
};

/** "0xe2 MANUALLY_INITIATED_CRASH", or just the hex code for the ones without a name here. */
export function bugCheckText(code: number): string {
  const name = BUGCHECKS[code];
  return name ? `${hex(code)} ${name}` : hex(code);
}

/** MajorVersion 0xF is a free (retail) build, 0xC a checked (debug) build. */
export function buildKind(major: number): string {
  return major === 0xf ? 'free' : major === 0xc ? 'checked' : `unknown (${hex(major)})`;
}

/** ProductType (NT_PRODUCT_TYPE, winnt.h VER_NT_*). */
export const PRODUCT_TYPES: Readonly<Record<number, string>> = {
  1: 'workstation',
  2: 'domain controller',
  3: 'server',
};

export function productTypeName(t: number): string {
  return `${PRODUCT_TYPES[t] ?? 'unknown'} (${t})`;
}
