/**
 * Who wrote an ELF memory core, from its notes: VirtualBox (`VBoxManage debugvm NAME dumpvmcore`) or QEMU
 * (`dump-guest-memory`). The memory itself is read by elf.ts; this only fills `details` for `info`.
 *
 * VirtualBox (include/VBox/vmm/dbgfcorefmt.h, src/VBox/VMM/VMMR3/DBGFCoreWrite.cpp; Volatility 2's vboxelf.py):
 *   note "VBCORE", type 0xb00 (NT_VBOXCORE): DBGFCOREDESCRIPTOR, 24 bytes, little-endian u32s:
 *     0 u32Magic 0xc01ac0de, 4 u32FmtVersion (0x00010000 upwards), 8 cbSelf (24), 12 u32VBoxVersion
 *     (major << 24 | minor << 16 | build), 16 u32VBoxRevision (SVN revision), 20 cCpus
 *   one note "VBCPU", type 0xb01 (NT_VBOXCPU) per virtual CPU: DBGFCORECPU (registers, then the XSAVE area).
 *   VirtualBox writes n_namesz without the NUL and pads names and descriptors to 8 bytes; the generic note parser
 *   copes because the padded name still ends on a 4-byte boundary.
 * QEMU (dump/dump.c, target/i386/arch_dump.c): per CPU an NT_PRSTATUS note "CORE" and a "QEMU" note holding
 *   QEMUCPUState (u32 version, u32 size, registers); optionally VMCOREINFO.
 */
import { ByteReader } from '../core/bytes.js';
import { MemdumpError, hex } from '../core/errors.js';
import type { ImageNote } from './types.js';

export const NT_VBOXCORE = 0xb00;
export const NT_VBOXCPU = 0xb01;
export const DBGFCORE_MAGIC = 0xc01ac0de;
export const DBGFCORE_DESCRIPTOR_SIZE = 24;

export interface VBoxCoreDescriptor {
  readonly formatVersion: number;
  readonly major: number;
  readonly minor: number;
  readonly build: number;
  /** "major.minor.build" */
  readonly version: string;
  readonly revision: number;
  readonly cpus: number;
}

/**
 * The descriptor is a note's payload, not the file: offsets in these errors count from the descriptor's first byte,
 * which the caller alone can place in the file.
 */
function corruptAt(what: string, descOffset: number): MemdumpError {
  return new MemdumpError('E_CORRUPT', `${what} at descriptor offset ${hex(descOffset)}`, { details: { descriptorOffset: hex(descOffset) } });
}

/** Decode a VBCORE descriptor; E_TRUNCATED when it is short, E_CORRUPT on a wrong magic or self-size. */
export function decodeVBoxCoreDescriptor(desc: Buffer): VBoxCoreDescriptor {
  if (desc.length < DBGFCORE_DESCRIPTOR_SIZE) {
    throw new MemdumpError('E_TRUNCATED', `VirtualBox core descriptor holds ${desc.length} bytes, needs ${DBGFCORE_DESCRIPTOR_SIZE} (it ends at descriptor offset ${hex(desc.length)})`, {
      details: { descriptorOffset: hex(desc.length), need: DBGFCORE_DESCRIPTOR_SIZE, have: desc.length },
    });
  }
  const r = new ByteReader(desc, 0n, 'VirtualBox core descriptor');
  const magic = r.u32(0);
  if (magic !== DBGFCORE_MAGIC) throw corruptAt(`VirtualBox core descriptor magic ${hex(magic)}, expected ${hex(DBGFCORE_MAGIC)}`, 0);
  const formatVersion = r.u32(4);
  const cbSelf = r.u32(8);
  const v = r.u32(12);
  const revision = r.u32(16);
  const cpus = r.u32(20);
  if (cbSelf < DBGFCORE_DESCRIPTOR_SIZE || cbSelf > desc.length) throw corruptAt(`VirtualBox core descriptor says it has ${cbSelf} bytes, note holds ${desc.length}`, 8);
  const major = v >>> 24;
  const minor = (v >>> 16) & 0xff;
  const build = v & 0xffff;
  return { formatVersion, major, minor, build, version: `${major}.${minor}.${build}`, revision, cpus };
}

/**
 * Details naming the producer, or nothing for an ELF no hypervisor wrote. A damaged VirtualBox descriptor does
 * not stop the memory from being read: it is reported as `producerProblem` instead.
 */
export function elfProducer(notes: readonly ImageNote[]): Record<string, unknown> {
  const core = notes.find((n) => n.name === 'VBCORE' && n.type === NT_VBOXCORE);
  if (core) {
    const cpuNotes = notes.filter((n) => n.name === 'VBCPU' && n.type === NT_VBOXCPU).length;
    try {
      const d = decodeVBoxCoreDescriptor(core.desc);
      return {
        producer: 'VirtualBox',
        version: d.version,
        revision: d.revision,
        cpus: d.cpus,
        coreFormatVersion: hex(d.formatVersion),
        ...(cpuNotes !== d.cpus ? { producerProblem: `descriptor says ${d.cpus} CPUs, file has ${cpuNotes} VBCPU notes` } : {}),
      };
    } catch (e) {
      return { producer: 'VirtualBox', cpuNotes, producerProblem: e instanceof Error ? e.message : String(e) };
    }
  }
  const qemu = notes.filter((n) => n.name === 'QEMU').length;
  if (qemu > 0) {
    const first = notes.find((n) => n.name === 'QEMU')!;
    return {
      producer: 'QEMU',
      cpus: qemu,
      ...(first.desc.length >= 8 ? { qemuCpuStateVersion: first.desc.readUInt32LE(0) } : {}),
      vmcoreinfo: notes.some((n) => n.name === 'VMCOREINFO'),
    };
  }
  return {};
}
