/**
 * Keyed LRU with a cost budget (bytes, table entries, or 1 per item); the newest entry is always kept. Serves the
 * chunk caches and the bounded table indexes of the compressed readers (AVML, E01).
 */
export class Lru<V> {
  private readonly map = new Map<number, { v: V; cost: number }>();
  private total = 0;
  constructor(private readonly budget: number) {}
  get(k: number): V | undefined {
    const e = this.map.get(k);
    if (e) {
      this.map.delete(k);
      this.map.set(k, e);
    }
    return e?.v;
  }
  /** Keep if it fits without evicting (filling the cache at open). */
  offer(k: number, v: V, cost: number): void {
    if (this.total + cost <= this.budget && !this.map.has(k)) this.put(k, v, cost);
  }
  put(k: number, v: V, cost: number): void {
    const had = this.map.get(k);
    if (had) {
      this.map.delete(k);
      this.total -= had.cost;
    }
    while (this.map.size > 0 && this.total + cost > this.budget) {
      const [old, e] = this.map.entries().next().value!;
      this.map.delete(old);
      this.total -= e.cost;
    }
    this.map.set(k, { v, cost });
    this.total += cost;
  }
  clear(): void {
    this.map.clear();
    this.total = 0;
  }
}
