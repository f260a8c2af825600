/** Seeded PRNG (splitmix64) so fixtures are the same on every machine and every run. */
export class Prng {
  private s: bigint;
  constructor(seed: number | bigint) {
    this.s = BigInt.asUintN(64, BigInt(seed));
  }
  next64(): bigint {
    this.s = BigInt.asUintN(64, this.s + 0x9e3779b97f4a7c15n);
    let z = this.s;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  }
  int(maxExclusive: number): number {
    return Number(this.next64() % BigInt(maxExclusive));
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 8 <= n; i += 8) b.writeBigUInt64LE(this.next64(), i);
    if (i < n) {
      const t = Buffer.alloc(8);
      t.writeBigUInt64LE(this.next64());
      t.copy(b, i, 0, n - i);
    }
    return b;
  }
}
