/**
 * The 1 GiB "mixed" input: ¼ random, ¼ zeros, ½ English-like text, interleaved per MiB in a seeded order
 * so every compressor sees all three kinds throughout. Random bytes come from AES-128-CTR over zeros with a fixed
 * key: deterministic and fast (a BigInt PRNG would take longer than the benchmark).
 */
import { createCipheriv } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { Prng } from '../test/helpers/prng.js';

const MIB = 1 << 20;
const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were ' +
  'memory process kernel page address physical virtual evidence examiner report hash sector chunk segment table ' +
  'password user root admin session token cookie request response header server client network socket buffer'
).split(' ');

function textMiB(p: Prng): Buffer {
  const parts: string[] = [];
  let n = 0;
  while (n < MIB) {
    const w = WORDS[p.int(WORDS.length)]!;
    const sep = p.int(12) === 0 ? '.\n' : ' ';
    parts.push(w, sep);
    n += w.length + sep.length;
  }
  return Buffer.from(parts.join('').slice(0, MIB), 'latin1');
}

export function writeMixedFile(path: string, bytes: number, seed = 5): void {
  const p = new Prng(seed);
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(MIB);
  // a few distinct text MiBs reused: generating 512 of them would dominate the set-up time
  const texts = Array.from({ length: 16 }, () => textMiB(p));
  const fd = openSync(path, 'wx', 0o600);
  try {
    for (let off = 0, i = 0; off < bytes; off += MIB, i++) {
      const kind = p.int(4);
      const block = kind === 0 ? cipher.update(zeros) : kind === 1 ? zeros : texts[p.int(texts.length)]!;
      if (kind >= 2) block.writeUInt32LE(i, 0); // no two text MiBs identical
      writeSync(fd, block, 0, Math.min(MIB, bytes - off));
    }
  } finally {
    closeSync(fd);
  }
}
