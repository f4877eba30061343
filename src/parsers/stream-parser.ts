import { KcmError, errnos } from '../errors.js';
import { positionalParser, type Parser, type PositionalParser } from './parser.js';
import { lengthFieldLayout, readLength, type LengthFieldLayout } from './length-field.js';

/** Where the stream parser hands whole messages and its one error. */
export interface StreamParserSink {
  /**
   * A whole message [P-5]. Return false to refuse it: the parser then holds it, reads
   * nothing further and waits for {@link StreamParser.resume} [S-4].
   */
  onMessage(message: Buffer): boolean;
  /**
   * Whole messages cut back to back from one chunk [P-5], handed at once rather than one
   * {@link onMessage} each: message `i` (0 to `count - 1`) ends at `ends[i]`, the first
   * starts at `start`, each other where the one before it ends. `ends` is the parser's and
   * is overwritten after the call. Returns how many messages, from the first, were taken;
   * fewer than `count` refuses the next one, as {@link onMessage} returning false does.
   * Optional: without it each message goes to {@link onMessage}.
   */
  onRun?(chunk: Buffer, start: number, ends: Uint32Array, count: number): number;
  /** The stream cannot be parsed any further [P-8]. Called at most once. */
  onError(error: KcmError): void;
}

/** Options of a {@link StreamParser}. */
export interface StreamParserOptions {
  parser: Parser;
  /** A longer message aborts with `EMSGSIZE` [P-6]. */
  maxMessageSize: number;
  /** Milliseconds from a message's first incomplete chunk to its last byte, else `ETIMEDOUT` [P-7]; 0 = none. */
  assemblyTimeout?: number;
}

/** The receive counters of one stream parser [ST-2], exact at any time. */
export interface StreamParserStats {
  rxMsgs: number;
  rxBytes: number;
  rxMemFail: number;
  rxNeedMoreHdr: number;
  rxMsgTooBig: number;
  rxMsgTimeouts: number;
  rxBadHdrLen: number;
  rxAborted: number;
  rxInterrupted: number;
  rxUnrecovIntr: number;
}

const ESTRPIPE = errnos.ESTRPIPE;

/** Whole messages of one chunk handed to the sink at once, at most. */
const RUN_MAX = 1024;

/**
 * Cuts a byte stream into whole messages with a {@link Parser}, as Linux's strparser does
 * for KCM [P-1 … P-8]. Socket-free: fed chunks in arrival order by {@link push}.
 *
 * - While a message's length is unknown the parser is called once per arriving chunk,
 *   with the message's bytes so far plus the whole new chunk [P-2].
 * - A message that lies inside one chunk is a `subarray` of it; a message that spans
 *   chunks is copied once into a buffer of its final size.
 * - After an error nothing more is parsed or delivered [P-8].
 */
export class StreamParser {
  // Counters [ST-2], public fields so that reading them costs nothing.
  rxMsgs = 0;
  rxBytes = 0;
  rxMemFail = 0;
  rxNeedMoreHdr = 0;
  rxMsgTooBig = 0;
  rxMsgTimeouts = 0;
  rxBadHdrLen = 0;
  rxAborted = 0;
  rxInterrupted = 0;
  rxUnrecovIntr = 0;

  private readonly parser: Parser;
  private readonly layout: LengthFieldLayout | undefined;
  /** A built-in parser's in-place form: no view per message. */
  private readonly positional: PositionalParser | undefined;
  private readonly maxMessageSize: number;
  private readonly assemblyTimeout: number;
  private readonly sink: StreamParserSink;

  /** Bytes of the current message while its length is unknown (their count: `accumLen`). */
  private accum: Buffer | undefined = undefined;
  /** Bytes of the current message held so far (header phase or body phase). */
  private accumLen = 0;
  /** The current message's total length once known; 0 while unknown. */
  private fullLen = 0;
  /** The buffer of final size a spanning message is copied into. */
  private body: Buffer | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;

  /** The ends of the whole messages of a run, reused from run to run. */
  private readonly ends = new Uint32Array(RUN_MAX);

  /**
   * The length the run path of a positional parser got for the message where it stopped
   * (NaN when none): the general path takes it instead of running the parser twice on one
   * message, since an eBPF program may keep state (globals, a random number, the time).
   */
  private knownLen = Number.NaN;
  private held: Buffer | undefined = undefined;
  /** Set when a message is refused, cleared by a successful {@link resume} [S-4]. */
  private holding = false;
  /** Chunks (or their tails) not yet parsed because the parser was paused, oldest first. */
  private pending: Buffer[] = [];
  private stopped = false;

  constructor(options: StreamParserOptions, sink: StreamParserSink) {
    this.parser = options.parser;
    this.layout = lengthFieldLayout(options.parser);
    this.positional = positionalParser(options.parser);
    this.maxMessageSize = options.maxMessageSize;
    this.assemblyTimeout = options.assemblyTimeout ?? 0;
    this.sink = sink;
  }

  /** True from a refused message until a {@link resume} that finds nothing held [S-4]. */
  get paused(): boolean {
    return this.holding;
  }

  /** True after an error or {@link stop}. */
  get done(): boolean {
    return this.stopped;
  }

  /** Bytes consumed from the stream but not yet part of a delivered message. */
  get partialBytes(): number {
    return this.accumLen;
  }

  /** Bytes still needed to finish the current message, when its length is known. */
  get bytesNeeded(): number {
    return this.fullLen === 0 ? 0 : this.fullLen - this.accumLen;
  }

  /** Bytes received but not parsed yet, waiting behind a held message. */
  get pendingBytes(): number {
    let n = 0;
    for (const chunk of this.pending) n += chunk.length;
    return n;
  }

  /** Feeds the next chunk of the stream: one parse step [P-1]. */
  push(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    if (this.holding) {
      // [S-4] paused: nothing is read until resume(), even after takeHeld().
      this.pending.push(chunk);
      return;
    }
    this.parse(chunk);
  }

  /** The held message, leaving the parser paused until {@link resume}. */
  takeHeld(): Buffer | undefined {
    const message = this.held;
    this.held = undefined;
    return message;
  }

  /**
   * Offers the held message again (if still held) and, once it is taken, parses the bytes
   * that waited behind it. Returns false while still paused.
   */
  resume(): boolean {
    if (this.stopped) return false;
    const held = this.held;
    if (held !== undefined) {
      this.held = undefined;
      if (!this.sink.onMessage(held)) {
        if (!this.stopped) this.held = held;
        return false;
      }
      if (this.stopped) return false;
    }
    this.holding = false;
    // A message refused while parsing a pending chunk puts that chunk's tail back in
    // front (holdRest), so the order of the stream is kept.
    while (this.pending.length > 0 && !this.holding && !this.stopped) {
      this.parse(this.pending.shift()!);
    }
    return !this.holding && !this.stopped;
  }

  /**
   * Stops for good [U-2]: the partial message is dropped and the timer cancelled. Returns
   * the bytes received but never parsed (they follow the held message, which is dropped),
   * so that the owner can give them back to the transport [U-5].
   */
  stop(): Buffer | undefined {
    const unparsed = this.pending.length === 0 ? undefined : this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
    this.halt();
    return unparsed;
  }

  /** A copy of the receive counters. */
  stats(): StreamParserStats {
    return {
      rxMsgs: this.rxMsgs,
      rxBytes: this.rxBytes,
      rxMemFail: this.rxMemFail,
      rxNeedMoreHdr: this.rxNeedMoreHdr,
      rxMsgTooBig: this.rxMsgTooBig,
      rxMsgTimeouts: this.rxMsgTimeouts,
      rxBadHdrLen: this.rxBadHdrLen,
      rxAborted: this.rxAborted,
      rxInterrupted: this.rxInterrupted,
      rxUnrecovIntr: this.rxUnrecovIntr,
    };
  }

  private halt(): void {
    this.stopped = true;
    this.knownLen = Number.NaN;
    this.accum = undefined;
    this.body = undefined;
    this.accumLen = 0;
    this.fullLen = 0;
    this.held = undefined;
    this.holding = false;
    this.pending = [];
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private abort(error: KcmError): void {
    if (this.stopped) return;
    this.halt();
    this.sink.onError(error);
  }

  /** One parse step over `chunk`: a single loop over its messages. */
  private parse(chunk: Buffer): void {
    const end = chunk.length;
    const layout = this.layout;
    let pos = 0;
    while (pos < end) {
      if (this.fullLen !== 0) {
        // Body phase of a message that spans chunks: copy what belongs to it.
        const body = this.body!;
        const take = Math.min(this.fullLen - this.accumLen, end - pos);
        chunk.copy(body, this.accumLen, pos, pos + take);
        this.accumLen += take;
        this.rxBytes += take;
        pos += take;
        if (this.accumLen < this.fullLen) {
          this.armTimer();
          return;
        }
        this.body = undefined;
        this.accumLen = 0;
        this.fullLen = 0;
        if (!this.complete(body)) return this.holdRest(chunk, pos);
        continue;
      }

      if (this.accumLen === 0) {
        if (layout !== undefined) {
          pos = this.frameWhole(chunk, pos, layout);
          if (pos < 0 || pos === end) return;
        } else if (this.positional !== undefined && this.sink.onRun !== undefined) {
          pos = this.framePositional(chunk, pos, this.positional);
          if (pos < 0 || pos === end) return;
        }
        // A new message starts at `pos`; the parser sees from there to the chunk's end.
        const avail = end - pos;
        let len: number;
        if (layout !== undefined) {
          len = avail < layout.headerSize ? 0 : readLength(layout, chunk, pos);
        } else if (!Number.isNaN(this.knownLen)) {
          len = this.knownLen;
          this.knownLen = Number.NaN;
        } else {
          len = this.positional !== undefined ? this.positional(chunk, pos, end) : this.callParser(chunk.subarray(pos));
          if (this.stopped) return;
        }
        if (len === 0) {
          this.rxNeedMoreHdr++;
          this.startAccum(chunk, pos);
          return;
        }
        if (len < 0) return this.rejected(len, 0);
        if (len > this.maxMessageSize) return this.tooBig(len);
        if (len <= avail) {
          // [P-5] the whole message is in this chunk: zero-copy.
          this.rxBytes += len;
          const message = chunk.subarray(pos, pos + len);
          pos += len;
          if (!this.complete(message)) return this.holdRest(chunk, pos);
          continue;
        }
        // The message spans chunks: one copy into a buffer of its final size.
        const body = Buffer.allocUnsafe(len);
        chunk.copy(body, 0, pos, end);
        this.body = body;
        this.fullLen = len;
        this.accumLen = avail;
        this.rxBytes += avail;
        this.armTimer();
        return;
      }

      // Header phase: the length is still unknown and `accumLen` bytes came before this chunk.
      const before = this.accumLen;
      const avail = end - pos;
      if (layout !== undefined) {
        // lengthField reads only its header: copy up to `headerSize` bytes, not the whole
        // chunk. Same returns and counters as calling the function on the full view.
        const need = layout.headerSize - before;
        if (avail < need) {
          this.appendAccum(chunk, pos, end);
          return this.needMore(before + avail, avail);
        }
        const header = this.appendAccum(chunk, pos, pos + need);
        const len = readLength(layout, header, 0);
        if (!this.checkLength(len, before)) return;
        // len >= headerSize > before: the message continues in this chunk.
        const body = Buffer.allocUnsafe(len);
        header.copy(body, 0, 0, before);
        this.accum = undefined;
        const taken = Math.min(len - before, avail);
        chunk.copy(body, before, pos, pos + taken);
        this.rxBytes += taken;
        pos += taken;
        if (before + taken === len) {
          this.accumLen = 0;
          if (!this.complete(body)) return this.holdRest(chunk, pos);
          continue;
        }
        this.body = body;
        this.fullLen = len;
        this.accumLen = before + taken;
        this.armTimer();
        return;
      }
      const view = this.appendAccum(chunk, pos, end);
      const len = this.callParser(view);
      if (this.stopped) return;
      if (len === 0) return this.needMore(view.length, avail);
      if (!this.checkLength(len, before)) return;
      const taken = Math.min(len - before, avail);
      this.rxBytes += taken;
      pos += taken;
      const accum = this.accum!;
      this.accum = undefined;
      if (len <= view.length) {
        this.accumLen = 0;
        if (!this.complete(exact(accum, len, len))) return this.holdRest(chunk, pos);
        continue;
      }
      // Known length, more to come: continue in a buffer of the final size.
      this.body = exact(accum, view.length, len);
      this.fullLen = len;
      this.accumLen = view.length;
      this.armTimer();
      return;
    }
  }

  /**
   * The hot path for lengthField parsers [P-5]: hands out, in runs (one by one to a sink
   * without `onRun`), the whole messages that start at `pos` and end inside `chunk`. Stops at the first message that is not
   * whole or not valid, leaving it to the general path (which reads its length again and
   * reports any error), and returns its position; returns -1 once paused or stopped.
   * No timer can be armed here: no message is under way.
   */
  private frameWhole(chunk: Buffer, pos: number, layout: LengthFieldLayout): number {
    const end = chunk.length;
    const { headerSize, offset, size, little, adjust } = layout;
    // A length above either maximum is an error: leave it to the general path.
    const limit = Math.min(layout.max, this.maxMessageSize);
    const ends = this.ends;
    const sink = this.sink;
    // A sink without onRun gets each message as it is read.
    const each = sink.onRun === undefined;
    for (;;) {
      const start = pos;
      let n = 0;
      while (n < RUN_MAX && end - pos >= headerSize) {
        // readLength() inlined for sizes 1 to 4: one branch on constants, plain byte loads.
        const at = pos + offset;
        let len: number;
        if (size === 4) {
          len = little
            ? chunk[at + 3]! * 0x1000000 + ((chunk[at + 2]! << 16) | (chunk[at + 1]! << 8) | chunk[at]!)
            : chunk[at]! * 0x1000000 + ((chunk[at + 1]! << 16) | (chunk[at + 2]! << 8) | chunk[at + 3]!);
        } else if (size === 2) {
          len = little ? chunk[at]! | (chunk[at + 1]! << 8) : (chunk[at]! << 8) | chunk[at + 1]!;
        } else if (size === 1) {
          len = chunk[at]!;
        } else if (size === 3) {
          len = little
            ? chunk[at]! | (chunk[at + 1]! << 8) | (chunk[at + 2]! << 16)
            : (chunk[at]! << 16) | (chunk[at + 1]! << 8) | chunk[at + 2]!;
        } else {
          // Size 8: readLength() bounds the 64-bit value; a negative (error) stays below headerSize.
          len = readLength(layout, chunk, pos) - adjust;
        }
        len += adjust;
        if (len > limit || len > end - pos || len < headerSize) break;
        if (each) {
          this.rxBytes += len;
          this.rxMsgs++;
          const message = chunk.subarray(pos, pos + len);
          pos += len;
          if (!sink.onMessage(message)) {
            if (!this.stopped) {
              this.held = message;
              this.holding = true;
              this.holdRest(chunk, pos);
            }
            return -1;
          }
          if (this.stopped) return -1;
          continue;
        }
        pos += len;
        ends[n++] = pos;
      }
      if (n === 0) return pos;
      if (this.handRun(chunk, start, n) < 0) return -1;
      if (n < RUN_MAX) return pos;
    }
  }

  /**
   * {@link frameWhole} for a positional parser (a compiled eBPF program): runs it once per
   * message and hands out in runs the whole messages that start at `pos` and end inside
   * `chunk`. Stops at the first length that is not a whole message in the chunk (need
   * more, an error, too long), keeping it in {@link knownLen} for the general path, and
   * returns its position; -1 once paused or stopped.
   */
  private framePositional(chunk: Buffer, pos: number, at: PositionalParser): number {
    const end = chunk.length;
    const max = this.maxMessageSize;
    const ends = this.ends;
    for (;;) {
      const start = pos;
      let n = 0;
      while (n < RUN_MAX && pos < end) {
        const len = at(chunk, pos, end);
        if (len <= 0 || len > max || len > end - pos) {
          this.knownLen = len;
          break;
        }
        pos += len;
        ends[n++] = pos;
      }
      if (n === 0) return pos;
      if (this.handRun(chunk, start, n) < 0) {
        // The message whose length is known waits unparsed behind a held one: read again later.
        this.knownLen = Number.NaN;
        return -1;
      }
      if (n < RUN_MAX || !Number.isNaN(this.knownLen)) return pos;
    }
  }

  /**
   * Hands the `n` whole messages of {@link ends} (the first at `start`) to the sink and
   * counts them; a refused one is held and the rest of the chunk waits [S-4]. Returns -1
   * once paused or stopped.
   */
  private handRun(chunk: Buffer, start: number, n: number): number {
    const ends = this.ends;
    const sink = this.sink;
    const stop = ends[n - 1]!;
    this.rxMsgs += n;
    this.rxBytes += stop - start;
    const taken = sink.onRun!(chunk, start, ends, n);
    if (taken >= n && !this.stopped) return 0;
    if (this.stopped) {
      // Counted only up to the message during which the sink stopped the parser.
      const kept = Math.min(taken, n);
      this.rxMsgs -= n - kept;
      this.rxBytes -= stop - (kept === 0 ? start : ends[kept - 1]!);
      return -1;
    }
    // [S-4] message `taken` is held (and counted); those after it wait unparsed.
    const heldEnd = ends[taken]!;
    this.rxMsgs -= n - taken - 1;
    this.rxBytes -= stop - heldEnd;
    this.held = chunk.subarray(taken === 0 ? start : ends[taken - 1]!, heldEnd);
    this.holding = true;
    this.holdRest(chunk, heldEnd);
    return -1;
  }

  /** [P-3] the parser needs more: all of the chunk is consumed into the message. */
  private needMore(accumLen: number, avail: number): void {
    this.accumLen = accumLen;
    this.rxBytes += avail;
    this.rxNeedMoreHdr++;
    // Bytes without a known length beyond the maximum can only be part of a longer message.
    if (accumLen > this.maxMessageSize) return this.tooBig(accumLen);
    this.armTimer();
  }

  /**
   * Checks a nonzero length returned after `before` bytes of the message were seen
   * [P-3, P-4, P-6]; aborts and returns false when it is refused.
   */
  private checkLength(len: number, before: number): boolean {
    if (len < 0) {
      this.rejected(len, before);
      return false;
    }
    if (len <= before) {
      // [P-4] a length the parser could have known before this chunk.
      this.rxBadHdrLen++;
      this.abort(new KcmError('EPROTO', `parser returned length ${len} after ${before} bytes of the message had been seen`));
      return false;
    }
    if (len > this.maxMessageSize) {
      this.tooBig(len);
      return false;
    }
    return true;
  }

  /** The first chunk of a message left its length unknown: keep its bytes [P-3]. */
  private startAccum(chunk: Buffer, pos: number): void {
    const n = chunk.length - pos;
    const accum = Buffer.allocUnsafe(Math.max(64, n * 2));
    chunk.copy(accum, 0, pos);
    this.accum = accum;
    this.accumLen = n;
    this.rxBytes += n;
    if (n > this.maxMessageSize) return this.tooBig(n);
    this.armTimer();
  }

  /** The message's bytes so far followed by the whole new chunk, as one view [P-2]. */
  private appendAccum(chunk: Buffer, pos: number, end: number): Buffer {
    const need = this.accumLen + (end - pos);
    let accum = this.accum!;
    if (accum.length < need) {
      const grown = Buffer.allocUnsafe(Math.max(need, accum.length * 2));
      accum.copy(grown, 0, 0, this.accumLen);
      accum = grown;
      this.accum = grown;
    }
    chunk.copy(accum, this.accumLen, pos, end);
    return accum.subarray(0, need);
  }

  private callParser(data: Buffer): number {
    let len: unknown;
    try {
      len = this.parser(data);
    } catch (err) {
      this.rxInterrupted++;
      this.abort(new KcmError('EBADMSG', `parser threw: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      return -1;
    }
    if (typeof len !== 'number' || !Number.isSafeInteger(len)) {
      this.rxBadHdrLen++;
      this.abort(new KcmError('EPROTO', `parser returned ${typeof len === 'number' ? String(len) : typeof len}, not an integer length`));
      return -1;
    }
    return len;
  }

  /** A negative return [P-3]: the stream is rejected with that errno. */
  private rejected(value: number, before: number): void {
    if (value === -ESTRPIPE && before > 0) {
      this.rxUnrecovIntr++;
      return this.abort(new KcmError('ENODATA', 'parser interrupted a message already under way (-ESTRPIPE)'));
    }
    this.rxInterrupted++;
    this.abort(KcmError.fromParserReturn(value));
  }

  private tooBig(len: number): void {
    this.rxMsgTooBig++;
    this.abort(new KcmError('EMSGSIZE', `message of ${len} bytes exceeds maxMessageSize ${this.maxMessageSize}`));
  }

  private armTimer(): void {
    // [P-7] armed once per message, at its first incomplete chunk; never restarted.
    if (this.assemblyTimeout > 0 && this.timer === undefined) {
      this.timer = setTimeout(streamParserOnTimeout, this.assemblyTimeout, this);
      this.timer.unref();
    }
  }

  /** Called by the timer; not part of the public surface. */
  timedOut(): void {
    this.timer = undefined;
    if (this.stopped) return;
    this.rxMsgTimeouts++;
    this.abort(new KcmError('ETIMEDOUT', `message not complete within assemblyTimeout ${this.assemblyTimeout} ms`));
  }

  /** A message is whole: count it and hand it over. False when refused or stopped. */
  private complete(message: Buffer): boolean {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.rxMsgs++;
    if (this.sink.onMessage(message)) return !this.stopped;
    if (!this.stopped) {
      this.held = message;
      this.holding = true;
    }
    return false;
  }

  /** After a refused message, the rest of the chunk waits unparsed [S-4]. */
  private holdRest(chunk: Buffer, pos: number): void {
    // unshift: during resume() the chunk being parsed came off the front of the queue.
    if (!this.stopped && pos < chunk.length) this.pending.unshift(pos === 0 ? chunk : chunk.subarray(pos));
  }
}

/**
 * A buffer of `len` bytes starting with the `used` valid bytes of `accum`: `accum` itself
 * when it holds `len` bytes and is not more than twice that (so that a message never keeps
 * much more memory alive than its size), else a copy into a new buffer of size `len`.
 */
function exact(accum: Buffer, used: number, len: number): Buffer {
  if (accum.length >= len && accum.length <= 2 * len) return accum.length === len ? accum : accum.subarray(0, len);
  const body = Buffer.allocUnsafe(len);
  accum.copy(body, 0, 0, used);
  return body;
}

function streamParserOnTimeout(parser: StreamParser): void {
  parser.timedOut();
}
