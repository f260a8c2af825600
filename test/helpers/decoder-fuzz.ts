/**
 * Fuzzing for the block decompressors (Xpress LZ77, Xpress LZ77+Huffman): damaged streams and cut streams may
 * only give E_CORRUPT or the exact output, never another error and never different bytes.
 */
import assert from 'node:assert/strict';
import { MemdumpError } from '../../src/core/errors.js';
import { Prng } from './prng.js';

export type Decode = (input: Uint8Array, outputSize: number) => Buffer;

/**
 * `runs` cases from `corpus`: bit flips, truncation, one byte set to one of `patchBytes` (values the format gives
 * meaning to), inserted random bytes, or the stream as is; a quarter with a wrong output size. Both outcomes must
 * occur more than 100 times, or the mutations are not reaching the decoder's checks.
 */
export function fuzzDecoder(decode: Decode, corpus: readonly { packed: Uint8Array; size: number }[], o: { seed: number; runs: number; patchBytes: readonly number[] }): void {
  const prng = new Prng(o.seed);
  const outcomes = new Map<string, number>();
  for (let i = 0; i < o.runs; i++) {
    const { packed, size } = corpus[prng.int(corpus.length)]!;
    const m = Buffer.from(packed);
    let input: Buffer = m;
    const kind = prng.int(5);
    if (kind === 0) for (let k = 1 + prng.int(4); k > 0; k--) m[prng.int(m.length)]! ^= 1 << prng.int(8);
    else if (kind === 1) input = m.subarray(0, prng.int(m.length));
    else if (kind === 2) m[prng.int(m.length)] = o.patchBytes[prng.int(o.patchBytes.length)]!;
    else if (kind === 3) input = Buffer.concat([m.subarray(0, prng.int(m.length)), prng.bytes(1 + prng.int(8)), m.subarray(prng.int(m.length))]);
    const outSize = prng.int(4) === 0 ? prng.int(size * 2 + 2) : size;
    try {
      assert.equal(decode(input, outSize).length, outSize);
      outcomes.set('ok', (outcomes.get('ok') ?? 0) + 1);
    } catch (e) {
      if (!(e instanceof MemdumpError) || e.code !== 'E_CORRUPT') throw new Error(`case ${i} (kind ${kind}): ${String(e)}`, { cause: e });
      outcomes.set('E_CORRUPT', (outcomes.get('E_CORRUPT') ?? 0) + 1);
    }
  }
  assert.ok((outcomes.get('ok') ?? 0) > 100 && (outcomes.get('E_CORRUPT') ?? 0) > 100, JSON.stringify([...outcomes]));
}

/** Every prefix of `packed` either fails with E_CORRUPT or decodes to exactly `data`. */
export function prefixesFailOrMatch(decode: Decode, packed: Uint8Array, data: Buffer): void {
  for (let n = 0; n < packed.length; n++) {
    try {
      assert.deepEqual(decode(packed.subarray(0, n), data.length), data, `prefix ${n}`);
    } catch (e) {
      assert.ok(e instanceof MemdumpError && e.code === 'E_CORRUPT', `prefix ${n}: ${String(e)}`);
    }
  }
}
