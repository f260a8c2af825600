// Runs inside the benchmark guest: prints "fileOffset size" of the largest direct-map PT_LOAD of /proc/kcore,
// so dd can read exactly the RAM memdump reads.
import { RandomAccessFile } from '../src/core/file.js';
import { PT_LOAD, readElfHeaders } from '../src/formats/elf-parse.js';

const f = await RandomAccessFile.open(process.argv[2] ?? '/proc/kcore');
const h = await readElfHeaders(f);
await f.close();
const ram = h.phdrs.filter((p) => p.type === PT_LOAD && p.paddr !== 0xffffffffffffffffn && p.vaddr - p.paddr !== 0n && p.vaddr < 0xffffffff80000000n);
ram.sort((a, b) => (a.filesz > b.filesz ? -1 : 1));
const big = ram[0];
if (!big) throw new Error('no direct-map segment in kcore');
console.log(`${big.offset} ${big.filesz}`);
