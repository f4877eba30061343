/**
 * A first-in first-out queue over a ring buffer whose capacity is a power of two: taking
 * from either end is O(1), nothing is copied while it neither grows nor shrinks, and no
 * per-item node is allocated.
 */
/** An empty queue keeps up to this many slots (minus one) rather than regrow them each burst. */
const MAX_IDLE_MASK = 16383;

export class Fifo<T> {
  private items: (T | undefined)[] = new Array(16);
  private mask = 15;
  private head = 0;
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(item: T): void {
    if (this.size > this.mask) this.grow();
    this.items[(this.head + this.size) & this.mask] = item;
    this.size++;
  }

  /** Puts an item back at the front. */
  unshift(item: T): void {
    if (this.size > this.mask) this.grow();
    this.head = (this.head - 1) & this.mask;
    this.items[this.head] = item;
    this.size++;
  }

  peek(): T | undefined {
    return this.size === 0 ? undefined : this.items[this.head];
  }

  /** The item `i` places from the front. */
  at(i: number): T | undefined {
    return i < 0 || i >= this.size ? undefined : this.items[(this.head + i) & this.mask];
  }

  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    if (--this.size === 0 && this.mask > MAX_IDLE_MASK) this.reset();
    return item;
  }

  /** Removes the `n` front items. */
  skip(n: number): void {
    if (n >= this.size) {
      for (let i = 0; i < this.size; i++) this.items[(this.head + i) & this.mask] = undefined;
      this.head = 0;
      this.size = 0;
      if (this.mask > MAX_IDLE_MASK) this.reset();
      return;
    }
    for (let i = 0; i < n; i++) {
      this.items[this.head] = undefined;
      this.head = (this.head + 1) & this.mask;
    }
    this.size -= n;
  }

  /** Inserts `item` so that it becomes the item `i` places from the front (O(n)). */
  insert(i: number, item: T): void {
    const all = this.drain();
    all.splice(Math.max(0, Math.min(i, all.length)), 0, item);
    for (const x of all) this.push(x);
  }

  /**
   * Removes the first occurrence of `item`, keeping the order of the rest (O(n), no
   * allocation); false when it is not queued.
   */
  remove(item: T): boolean {
    const size = this.size;
    const mask = this.mask;
    let i = 0;
    while (i < size && this.items[(this.head + i) & mask] !== item) i++;
    if (i === size) return false;
    for (; i < size - 1; i++) this.items[(this.head + i) & mask] = this.items[(this.head + i + 1) & mask];
    this.items[(this.head + size - 1) & mask] = undefined;
    if (--this.size === 0 && this.mask > MAX_IDLE_MASK) this.reset();
    return true;
  }

  /** Removes and returns every item, front first. */
  drain(): T[] {
    const out: T[] = new Array(this.size);
    for (let i = 0; i < this.size; i++) {
      const at = (this.head + i) & this.mask;
      out[i] = this.items[at] as T;
      this.items[at] = undefined;
    }
    this.head = 0;
    this.size = 0;
    if (this.mask > MAX_IDLE_MASK) this.reset();
    return out;
  }

  clear(): void {
    this.drain();
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.size; i++) yield this.items[(this.head + i) & this.mask] as T;
  }

  /** Gives back the memory of a queue that once was long. */
  private reset(): void {
    this.items = new Array(16);
    this.mask = 15;
    this.head = 0;
  }

  private grow(): void {
    const cap = this.mask + 1;
    const next: (T | undefined)[] = new Array(cap * 2);
    for (let i = 0; i < this.size; i++) next[i] = this.items[(this.head + i) & this.mask];
    this.items = next;
    this.mask = cap * 2 - 1;
    this.head = 0;
  }
}
