/**
 * Micro-benchmark of the stream parser alone, no sockets.
 *
 * A stream of length-prefixed messages (4-byte big-endian length of the payload, then
 * the payload) is cut into fixed-size chunks, as TCP reads hand them over, and framed by:
 *
 * - `hand`: a hand-written 4-byte length loop, the baseline. It does the same work a
 *   framer must do: each message to a callback as a Buffer (a subarray when inside a
 *   chunk, one copy when it spans chunks), a partial message kept across chunks.
 * - `lengthField`: StreamParser with lengthField({ size: 4, adjust: 4 }).
 * - `function`: StreamParser with (d) => d.length < 4 ? 0 : d.readUInt32BE(0) + 4.
 *
 * Each round frames the whole stream once with each, interleaved; the table shows the
 * median round; short streams are framed several times per round (--min-round-ms) so
 * that timer resolution and GC pauses do not decide the result. MB/s counts stream
 * bytes (headers included), 1 MB = 10^6 bytes.
 *
 *   node dist/bench/parser.js [--sizes=16,256,4k,64k] [--chunk=64k] [--bytes=64m] [--rounds=15]
 *   (or KCM_BENCH_SIZES=..., KCM_BENCH_CHUNK=..., KCM_BENCH_BYTES=..., KCM_BENCH_ROUNDS=...)
 */
import { lengthField } from '../src/parsers/length-field.js';
import type { Parser } from '../src/parsers/parser.js';
import { StreamParser } from '../src/parsers/stream-parser.js';
import { FrameReader } from '../src/cli/bench/frame-reader.js';
import { formatCount, formatSize, formatTable, median, parseOptions, rounds } from './lib/format.js';

const options = parseOptions({
  /** Payload sizes; each message is 4 + size bytes. */
  sizes: [16, 256, 4096, 65536],
  chunk: 65536,
  /** Stream bytes per round, per size. */
  bytes: 64 * 1024 * 1024,
  rounds: 15,
  /** Each round repeats the stream until the baseline takes at least this long. */
  minRoundMs: 25,
  /** Print the table as JSON too. */
  json: false,
});

/** Counts what a framer delivered, so that no framer can skip the work. */
class Tally {
  messages = 0;
  bytes = 0;
  check = 0;
  onMessage(message: Buffer): boolean {
    this.messages++;
    this.bytes += message.length;
    // Touch the message's last byte, as a consumer would read it.
    this.check = (this.check + message[message.length - 1]!) | 0;
    return true;
  }
  onError(error: Error): void {
    throw error;
  }
}

function makeChunks(size: number): { chunks: Buffer[]; messages: number; bytes: number } {
  const frameLen = 4 + size;
  const messages = Math.max(1, Math.floor(options.bytes / frameLen));
  const stream = Buffer.allocUnsafe(messages * frameLen);
  for (let i = 0; i < messages; i++) {
    const at = i * frameLen;
    stream.writeUInt32BE(size, at);
    stream.fill(i & 0xff, at + 4, at + frameLen);
  }
  const chunks: Buffer[] = [];
  for (let at = 0; at < stream.length; at += options.chunk) chunks.push(stream.subarray(at, at + options.chunk));
  return { chunks, messages, bytes: stream.length };
}

const P4 = lengthField({ size: 4, adjust: 4 });
const fn4: Parser = (d) => (d.length < 4 ? 0 : d.readUInt32BE(0) + 4);

// The stream ends at a message boundary, so pushing it `reps` times is one longer stream.
function viaStreamParser(parser: Parser, chunks: Buffer[], reps = 1): Tally {
  const tally = new Tally();
  const sp = new StreamParser({ parser, maxMessageSize: 8 * 1024 * 1024 }, tally);
  for (let r = 0; r < reps; r++) for (let i = 0; i < chunks.length; i++) sp.push(chunks[i]!);
  return tally;
}

function viaHand(chunks: Buffer[], reps = 1): Tally {
  const tally = new Tally();
  const framer = new FrameReader((m) => tally.onMessage(m));
  for (let r = 0; r < reps; r++) for (let i = 0; i < chunks.length; i++) framer.push(chunks[i]!);
  return tally;
}

interface Row {
  size: number;
  messages: number;
  bytes: number;
  hand: number;
  lengthField: number;
  function: number;
}

const results: Row[] = [];
for (const size of options.sizes) {
  const stream = makeChunks(size);
  const chunks = stream.chunks;
  const once = median(rounds({ hand: () => viaHand(chunks) }, 3).hand);
  const reps = Math.max(1, Math.ceil(options.minRoundMs / 1000 / once));
  const messages = stream.messages * reps;
  const bytes = stream.bytes * reps;
  const expected = viaHand(chunks, reps);
  const cases = {
    hand: () => viaHand(chunks, reps),
    lengthField: () => viaStreamParser(P4, chunks, reps),
    function: () => viaStreamParser(fn4, chunks, reps),
  };
  // Every framer must deliver exactly the same messages before it is timed.
  for (const [name, run] of Object.entries(cases)) {
    const t = run();
    if (t.messages !== messages || t.bytes !== bytes || t.check !== expected.check) {
      throw new Error(`${name} framed ${t.messages} messages / ${t.bytes} bytes, expected ${messages} / ${bytes}`);
    }
  }
  rounds(cases, 2); // warm-up
  const times = rounds(cases, options.rounds);
  results.push({ size, messages, bytes, hand: median(times.hand), lengthField: median(times.lengthField), function: median(times.function) });
}

const rate = (n: number, s: number): string => formatCount(n / s);
const mbps = (bytes: number, s: number): string => (bytes / s / 1e6).toFixed(0);
const rows = results.map((r) => [
  formatSize(r.size),
  rate(r.messages, r.hand),
  mbps(r.bytes, r.hand),
  rate(r.messages, r.lengthField),
  mbps(r.bytes, r.lengthField),
  `${(r.hand / r.lengthField).toFixed(2)}x`,
  rate(r.messages, r.function),
  mbps(r.bytes, r.function),
  `${(r.hand / r.function).toFixed(2)}x`,
]);

process.stdout.write(
  `stream parser, ${formatSize(options.chunk)} chunks, ${formatSize(options.bytes)} per round, median of ${options.rounds} rounds, node ${process.version}\n` +
    'message = 4-byte big-endian length + payload; ratio = speed relative to the hand-written loop\n\n',
);
process.stdout.write(
  `${formatTable(['payload', 'hand msg/s', 'MB/s', 'lengthField msg/s', 'MB/s', 'ratio', 'function msg/s', 'MB/s', 'ratio'], rows)}\n`,
);
if (options.json) process.stdout.write(`${JSON.stringify(results)}\n`);
