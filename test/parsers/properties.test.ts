import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { lengthField, type LengthFieldSpec } from '../../src/parsers/length-field.js';
import { kPositionalParser, type Parser, type PositionalParser } from '../../src/parsers/parser.js';
import { cut, recorder, run } from './harness.js';

// Bounded so that the whole parsers suite stays well under 30 s.
const RUNS = { numRuns: 1000 };

type Size = 1 | 2 | 3 | 4 | 8;

/** Writes `value` as an unsigned `size`-byte integer at `at`. */
function writeField(buf: Buffer, at: number, size: Size, little: boolean, value: number): void {
  for (let i = 0; i < size; i++) {
    const byte = Math.floor(value / 2 ** (8 * i)) % 256;
    buf[little ? at + i : at + size - 1 - i] = byte;
  }
}

interface Framing {
  spec: Required<Omit<LengthFieldSpec, 'max'>>;
  /** Lengths of the whole messages (header included), from which the stream is built. */
  totals: number[];
  fill: number;
}

const framingArb: fc.Arbitrary<Framing> = fc
  .record({
    size: fc.constantFrom<Size>(1, 2, 3, 4, 8),
    endian: fc.constantFrom<'big' | 'little'>('big', 'little'),
    offset: fc.integer({ min: 0, max: 6 }),
    adjust: fc.integer({ min: -12, max: 16 }),
    extras: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 12 }),
    fill: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ size, endian, offset, adjust, extras, fill }) => {
    // A total must hold the header and leave a field value >= 0: total >= max(header, adjust).
    const least = Math.max(offset + size, adjust, 1);
    return { spec: { size, endian, offset, adjust }, totals: extras.map((e) => least + e), fill };
  });

/** The messages of a framing, each with its length field written and the rest filled. */
function messagesOf(f: Framing): Buffer[] {
  return f.totals.map((total, i) => {
    const m = Buffer.alloc(total);
    for (let j = 0; j < total; j++) m[j] = (f.fill + i * 31 + j * 7) & 0xff;
    writeField(m, f.spec.offset, f.spec.size, f.spec.endian === 'little', total - f.spec.adjust);
    return m;
  });
}

/** Cut points in [1, 1000): cut() ignores those past the stream's end. */
const cutsArb = fc.uniqueArray(fc.integer({ min: 1, max: 999 }), { maxLength: 30 }).map((a) => a.sort((x, y) => x - y));

function hexes(messages: Buffer[]): string[] {
  return messages.map((m) => m.toString('hex'));
}

/** MQTT-style: a type byte, then a 1-4 byte base-128 varint of the remaining length. */
const varintParser: Parser = (d) => {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    if (d.length < 2 + i) return 0;
    const b = d[1 + i]!;
    value += (b & 0x7f) * 128 ** i;
    if ((b & 0x80) === 0) return 2 + i + value;
  }
  return -74;
};

function varintMessage(type: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    len.push(b);
  } while (n > 0);
  return Buffer.concat([Buffer.from([type, ...len]), body]);
}

/** Newline-delimited: the length is found by scanning, which P-2 allows (first newline). */
/**
 * The same framing as a parser with a positional form, as a compiled eBPF program has:
 * the stream parser takes its run path for positional parsers. `calls` counts its runs.
 */
function positionalOf(base: Parser, calls = { n: 0 }): Parser {
  const p: Parser = (d) => base(d);
  const at: PositionalParser = (chunk, start, end) => {
    calls.n++;
    return base(chunk.subarray(start, end));
  };
  Object.defineProperty(p, kPositionalParser, { value: at });
  return p;
}

const lineParser: Parser = (d) => {
  const at = d.indexOf(0x0a);
  return at < 0 ? 0 : at + 1;
};

describe('stream parser properties', () => {
  test('[P-1] [P-5] a positional parser runs once per message, the one cut by the chunk end included', () => {
    fc.assert(
      fc.property(framingArb, (f) => {
        const messages = messagesOf(f);
        const stream = Buffer.concat(messages);
        const calls = { n: 0 };
        // The last byte comes alone: the run stops at the last message, whose length (or
        // "need more") the general path takes over without running the parser again.
        const at = Math.max(0, stream.length - 1);
        const r = run(positionalOf(lengthField(f.spec), calls), [stream.subarray(0, at), stream.subarray(at)]);
        assert.equal(r.error, undefined);
        assert.deepEqual(r.messages, hexes(messages));
        // The positional form runs on each message once; bytes gathered across chunks go to the plain function.
        assert.equal(calls.n, messages.length);
      }),
      RUNS,
    );
  });

  test('[P-2] [P-5] any chunking of lengthField messages yields the same messages and counters', () => {
    fc.assert(
      fc.property(framingArb, cutsArb, (f, cuts) => {
        const messages = messagesOf(f);
        const stream = Buffer.concat(messages);
        const bytes = stream.length;
        for (const parser of [lengthField(f.spec), ((p) => (d: Buffer) => p(d))(lengthField(f.spec)), positionalOf(lengthField(f.spec))]) {
          const r = run(parser, cut(stream, cuts));
          assert.equal(r.error, undefined);
          assert.deepEqual(r.messages, hexes(messages));
          assert.equal(r.stats.rxMsgs, messages.length);
          assert.equal(r.stats.rxBytes, bytes);
        }
      }),
      RUNS,
    );
  });

  test('[P-3] [P-4] [P-6] the lengthField fast path behaves exactly like calling the function, on any bytes', () => {
    const specArb = fc.record({
      size: fc.constantFrom<Size>(1, 2, 3, 4, 8),
      endian: fc.constantFrom<'big' | 'little'>('big', 'little'),
      offset: fc.integer({ min: 0, max: 6 }),
      adjust: fc.integer({ min: -12, max: 16 }),
      max: fc.option(fc.integer({ min: 1, max: 300 }), { nil: undefined }),
    });
    // Small field values most of the time so that streams frame for a while before failing.
    const byteArb = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 12 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) });
    fc.assert(
      fc.property(
        specArb,
        fc.array(byteArb, { maxLength: 200 }),
        cutsArb,
        fc.integer({ min: 1, max: 400 }),
        (spec, bytes, cuts, maxMessageSize) => {
          const p = lengthField(spec);
          const hidden: Parser = (d) => p(d);
          const chunks = cut(Buffer.from(bytes), cuts);
          const fast = run(p, chunks, maxMessageSize);
          const slow = run(hidden, chunks, maxMessageSize);
          assert.deepEqual(fast, slow);
        },
      ),
      RUNS,
    );
  });

  test('[P-2] [P-5] any chunking of varint-framed messages (function parser) yields the same messages', () => {
    const msgArb = fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 300 })), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(msgArb, cutsArb, (specs, cuts) => {
        const messages = specs.map(([type, n]) => varintMessage(type, Buffer.alloc(n, type)));
        const stream = Buffer.concat(messages);
        const r = run(varintParser, cut(stream, cuts));
        assert.equal(r.error, undefined);
        assert.deepEqual(r.messages, hexes(messages));
        assert.equal(r.stats.rxMsgs, messages.length);
        assert.equal(r.stats.rxBytes, stream.length);
      }),
      RUNS,
    );
  });

  test('[P-2] [P-4] any chunking of newline-delimited messages (scanning function parser) yields the same messages', () => {
    const lineArb = fc.array(fc.string({ unit: fc.constantFrom('a', 'b', ' ', 'z'), maxLength: 30 }), { minLength: 1, maxLength: 10 });
    fc.assert(
      fc.property(lineArb, cutsArb, (lines, cuts) => {
        const messages = lines.map((l) => Buffer.from(`${l}\n`));
        const stream = Buffer.concat(messages);
        const r = run(lineParser, cut(stream, cuts));
        assert.equal(r.error, undefined);
        assert.deepEqual(r.messages, hexes(messages));
        assert.equal(r.stats.rxMsgs, messages.length);
        assert.equal(r.stats.rxBytes, stream.length);
      }),
      RUNS,
    );
  });

  for (const positional of [false, true]) for (const perMessage of [false, true]) test(`[S-4] refusing any messages and resuming keeps every message, once, in order (${positional ? 'positional parser' : 'lengthField'}, ${perMessage ? 'one by one' : 'runs'})`, () => {
    fc.assert(
      fc.property(framingArb, cutsArb, fc.array(fc.boolean(), { maxLength: 40 }), fc.boolean(), (f, cuts, refusals, take) => {
        const messages = messagesOf(f);
        const stream = Buffer.concat(messages);
        // One log, in delivery order, of messages accepted by the sink or taken while held.
        const log: string[] = [];
        let i = 0;
        const accept = (m: Buffer): boolean => {
          if (refusals[i++] ?? false) return false;
          log.push(m.toString('hex'));
          return true;
        };
        const rec = recorder(positional ? positionalOf(lengthField(f.spec)) : lengthField(f.spec), { accept, perMessage });
        const drain = (): void => {
          while (rec.sp.paused) {
            if (take) {
              const held = rec.sp.takeHeld();
              if (held !== undefined) log.push(held.toString('hex'));
            }
            rec.sp.resume();
          }
        };
        for (const chunk of cut(stream, cuts)) {
          rec.sp.push(chunk);
          // Resume only after even-sized chunks, so that chunks also pile up while paused.
          if (chunk.length % 2 === 0) drain();
        }
        drain();
        assert.deepEqual(log, hexes(messages));
        assert.equal(rec.sp.rxMsgs, messages.length);
        assert.equal(rec.sp.rxBytes, stream.length);
        assert.equal(rec.errors.length, 0);
      }),
      RUNS,
    );
  });
});
