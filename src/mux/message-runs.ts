import { Fifo } from './fifo.js';

/**
 * Whole messages cut back to back from one buffer, with one origin: the first starts at
 * `pos`, each one ends where the next starts; their ends are in the queue's ring.
 */
interface Run<O> {
  buf: Buffer;
  origin: O;
  /** Where the next message of the run starts. */
  pos: number;
  /** Messages of the run still queued. */
  count: number;
}

/** An empty queue keeps up to this many ends rather than regrow them each burst. */
const MAX_IDLE_ENDS = 16384;

/**
 * A first-in first-out queue of whole messages, each with an origin, kept as runs: the
 * messages a parser cut from one chunk are one record (the chunk, the origin, where the
 * first starts) plus one number per message (where it ends) in a ring of numbers. A
 * message becomes a `subarray` only when it is taken, so queueing a run allocates one
 * record, and queueing or taking a message allocates nothing else.
 *
 * Socket-free: the receive queue of a KCM socket holds its messages in one.
 */
export class MessageRuns<O> {
  /** The origin of the message taken last. */
  origin: O | undefined = undefined;
  private readonly runs = new Fifo<Run<O>>();
  /** The oldest run: the head message's. */
  private first: Run<O> | undefined = undefined;
  /** The newest run: a run that continues it joins it. */
  private last: Run<O> | undefined = undefined;
  /**
   * Message ends, oldest first, over a ring whose size is a power of two. Doubles, not
   * 32-bit integers: a message pushed whole may be as long as a Buffer can be (4 GiB).
   */
  private ends = new Float64Array(64);
  private mask = 63;
  private head = 0;
  private size = 0;

  /** Messages queued. */
  get length(): number {
    return this.size;
  }

  /**
   * Queues the messages `from` to `to - 1` (excluded) of a run cut from `buf`: message `i`
   * ends at `ends[i]`, the first (`from`) starts at `start`, each other where the one
   * before it ends. `ends` is read now and not kept.
   */
  pushRun(buf: Buffer, start: number, ends: Uint32Array, from: number, to: number, origin: O): void {
    const n = to - from;
    if (n <= 0) return;
    const last = this.last;
    if (last !== undefined && last.buf === buf && last.origin === origin && this.size > 0 && this.ends[(this.head + this.size - 1) & this.mask] === start) {
      last.count += n;
    } else {
      this.append({ buf, origin, pos: start, count: n });
    }
    if (this.size + n > this.mask + 1) this.grow(this.size + n);
    const ring = this.ends;
    const mask = this.mask;
    let at = this.head + this.size;
    for (let i = from; i < to; i++) ring[at++ & mask] = ends[i]!;
    this.size += n;
  }

  /** Queues one message. */
  push(message: Buffer, origin: O): void {
    this.append({ buf: message, origin, pos: 0, count: 1 });
    if (this.size > this.mask) this.grow(this.size + 1);
    this.ends[(this.head + this.size) & this.mask] = message.length;
    this.size++;
  }

  /** The head message's buffer; it spans {@link headStart} to {@link headEnd}. Undefined when empty. */
  headBuffer(): Buffer | undefined {
    return this.first === undefined ? undefined : this.first.buf;
  }

  /** Where the head message starts in {@link headBuffer}. */
  headStart(): number {
    return this.first!.pos;
  }

  /** Where the head message ends in {@link headBuffer}. */
  headEnd(): number {
    return this.ends[this.head]!;
  }

  /** The head message's length (0 when empty). */
  headLength(): number {
    return this.first === undefined ? 0 : this.ends[this.head]! - this.first.pos;
  }

  /** The origin of the head message. */
  headOrigin(): O | undefined {
    return this.first === undefined ? undefined : this.first.origin;
  }

  /** Takes the head message, from `offset` bytes into it to its end; its origin goes to {@link origin}. */
  shift(offset = 0): Buffer {
    const run = this.first!;
    const end = this.ends[this.head]!;
    const start = run.pos;
    this.head = (this.head + 1) & this.mask;
    this.size--;
    run.pos = end;
    this.origin = run.origin;
    if (--run.count === 0) this.dropFirst();
    return run.buf.subarray(start + offset, end);
  }

  /** Removes the head message; its origin goes to {@link origin}. Returns its length. */
  discard(): number {
    const run = this.first!;
    const end = this.ends[this.head]!;
    const len = end - run.pos;
    this.head = (this.head + 1) & this.mask;
    this.size--;
    run.pos = end;
    this.origin = run.origin;
    if (--run.count === 0) this.dropFirst();
    return len;
  }

  /**
   * Takes the `n` oldest messages (at most {@link length}) into `out` from index `at` on,
   * as {@link shift} would one by one, and returns their bytes. The origin of the last one
   * goes to {@link origin}.
   */
  takeInto(out: Buffer[], at: number, n: number): number {
    let i = at;
    const stop = at + Math.min(n, this.size);
    const ends = this.ends;
    const mask = this.mask;
    let bytes = 0;
    while (i < stop) {
      const run = this.first!;
      const buf = run.buf;
      const first = run.pos;
      const k = Math.min(run.count, stop - i);
      let h = this.head;
      let pos = first;
      for (let j = 0; j < k; j++) {
        const end = ends[h]!;
        h = (h + 1) & mask;
        out[i++] = buf.subarray(pos, end);
        pos = end;
      }
      bytes += pos - first;
      this.head = h;
      this.size -= k;
      run.pos = pos;
      this.origin = run.origin;
      run.count -= k;
      if (run.count === 0) this.dropFirst();
    }
    return bytes;
  }

  /**
   * Takes every message, oldest first: each to `messages` (a `subarray`), its origin to
   * `origins`. Returns their bytes.
   */
  drain(messages: Buffer[], origins: O[]): number {
    let bytes = 0;
    while (this.size > 0) {
      const m = this.shift();
      bytes += m.length;
      messages.push(m);
      origins.push(this.origin!);
    }
    return bytes;
  }

  private append(run: Run<O>): void {
    if (this.first === undefined) this.first = run;
    else this.runs.push(run);
    this.last = run;
  }

  private dropFirst(): void {
    const next = this.runs.shift();
    this.first = next;
    if (next === undefined) {
      this.last = undefined;
      this.head = 0;
      if (this.mask >= MAX_IDLE_ENDS) {
        this.ends = new Float64Array(64);
        this.mask = 63;
      }
    }
  }

  private grow(need: number): void {
    let cap = (this.mask + 1) * 2;
    while (cap < need) cap *= 2;
    const next = new Float64Array(cap);
    for (let i = 0; i < this.size; i++) next[i] = this.ends[(this.head + i) & this.mask]!;
    this.ends = next;
    this.mask = cap - 1;
    this.head = 0;
  }
}
