/**
 * Micro-benchmark of an eBPF parser program against the built-in length-field parser.
 *
 * A stream of Thrift-framed messages (a 4-byte big-endian length that excludes itself,
 * then the payload) fills one buffer. Each parser is called once per message on
 * `stream.subarray(pos)`, exactly as a stream parser calls it at a message start, and the
 * position advances by the length it returns:
 *
 * - `lengthField`: lengthField({ size: 4, adjust: 4 }), the baseline.
 * - `bpf`: loadBpf(thrift.o, built from src/cli/bench/thrift.c), `return load_word(skb, 0) + 4;` compiled.
 * - `function`: (d) => d.length < 4 ? 0 : d.readUInt32BE(0) + 4, hand-written.
 * - `interpreter` (with --interpreter): the same object run by the BigInt interpreter.
 *
 * A second table frames the same stream, cut into chunks, through StreamParser: the
 * parser layer end to end, no sockets. Each round runs every case once, interleaved; the
 * table shows the median round. MB/s counts stream bytes, 1 MB = 10^6 bytes.
 *
 *   node dist/bench/bpf-parser.js [--sizes=16,256,4k] [--bytes=32m] [--rounds=11] [--chunk=64k]
 *     [--object=PATH] [--interpreter]
 *   (or KCM_BENCH_SIZES=..., KCM_BENCH_BYTES=..., KCM_BENCH_ROUNDS=..., ...)
 */
import { Interpreter } from '../src/bpf/interpreter.js';
import { loadBpf, loadProgram } from '../src/bpf/load-bpf.js';
import { lengthField } from '../src/parsers/length-field.js';
import type { Parser } from '../src/parsers/parser.js';
import { StreamParser } from '../src/parsers/stream-parser.js';
import { thriftObject } from '../src/cli/bench/thrift-object.js';
import { formatCount, formatSize, formatTable, median, parseOptions, rounds } from './lib/format.js';


const options = parseOptions({
  /** Message sizes, header included. */
  sizes: [16, 256, 4096],
  /** Stream bytes per round, per size. */
  bytes: 32 * 1024 * 1024,
  rounds: 11,
  chunk: 65536,
  object: '',
  /** Also time the interpreter (slow: BigInt registers). */
  interpreter: false,
  json: false,
});

function makeStream(size: number): { stream: Buffer; messages: number } {
  const messages = Math.max(1, Math.floor(options.bytes / size));
  const stream = Buffer.allocUnsafe(messages * size);
  for (let i = 0; i < messages; i++) {
    const at = i * size;
    stream.writeUInt32BE(size - 4, at);
    stream.fill(i & 0xff, at + 4, at + size);
  }
  return { stream, messages };
}

/** Calls `parser` at each message start; returns the messages framed. */
function perMessage(parser: Parser, stream: Buffer): number {
  let pos = 0;
  let count = 0;
  const end = stream.length;
  while (pos < end) {
    const n = parser(stream.subarray(pos));
    if (n <= 0) throw new Error(`parser returned ${n} at ${pos}`);
    pos += n;
    count++;
  }
  return count;
}

let delivered = 0;
const sink = {
  onMessage(message: Buffer): boolean {
    delivered += message.length;
    return true;
  },
  onError(error: Error): void {
    throw error;
  },
};

function viaStreamParser(parser: Parser, chunks: Buffer[]): number {
  delivered = 0;
  const sp = new StreamParser({ parser, maxMessageSize: 8 * 1024 * 1024 }, sink);
  for (let i = 0; i < chunks.length; i++) sp.push(chunks[i]!);
  return delivered;
}

const lf = lengthField({ size: 4, adjust: 4 });
/** The object to time: --object PATH, else the Thrift object `kcm bench` ships. */
const object: Uint8Array | string = options.object === '' ? thriftObject() : options.object;
const objectName = options.object === '' ? 'thrift.o (src/cli/bench/thrift.c)' : options.object;
const bpf = loadBpf(object);
const fn: Parser = (d) => (d.length < 4 ? 0 : d.readUInt32BE(0) + 4);
// StreamParser recognises lengthField parsers and frames them inline; a plain wrapper
// makes it call the function like any other parser.
const lfCalled: Parser = (d) => lf(d);
const loaded = loadProgram(object);
const oracle = new Interpreter(loaded.program, loaded.analysis);
const interp: Parser = (d) => oracle.runParser(d);

interface Row {
  size: number;
  messages: number;
  bytes: number;
  times: Record<string, number>;
  stream: Record<string, number>;
}

const results: Row[] = [];
for (const size of options.sizes) {
  const { stream, messages } = makeStream(size);
  const cases: Record<string, () => number> = {
    lengthField: () => perMessage(lf, stream),
    bpf: () => perMessage(bpf, stream),
    function: () => perMessage(fn, stream),
  };
  if (options.interpreter) {
    const small = stream.subarray(0, Math.min(stream.length, 1000 * size));
    cases.interpreter = () => perMessage(interp, small) * (messages / Math.floor(small.length / size));
  }
  for (const [name, run] of Object.entries(cases)) {
    const n = run();
    if (Math.round(n) !== messages) throw new Error(`${name} framed ${n} messages, expected ${messages}`);
  }
  rounds(cases, 2);
  const t = rounds(cases, options.rounds);
  const times: Record<string, number> = {};
  for (const [name, list] of Object.entries(t)) times[name] = median(list);
  if (options.interpreter) times.interpreter = times.interpreter! * (stream.length / Math.min(stream.length, 1000 * size));

  const chunks: Buffer[] = [];
  for (let at = 0; at < stream.length; at += options.chunk) chunks.push(stream.subarray(at, at + options.chunk));
  const sCases: Record<string, () => number> = {
    'lengthField (inline)': () => viaStreamParser(lf, chunks),
    'lengthField (called)': () => viaStreamParser(lfCalled, chunks),
    bpf: () => viaStreamParser(bpf, chunks),
  };
  for (const [name, run] of Object.entries(sCases)) {
    if (run() !== stream.length) throw new Error(`${name} delivered the wrong bytes`);
  }
  rounds(sCases, 2);
  const st = rounds(sCases, options.rounds);
  const streamTimes: Record<string, number> = {};
  for (const [name, list] of Object.entries(st)) streamTimes[name] = median(list);
  results.push({ size, messages, bytes: stream.length, times, stream: streamTimes });
}

const rate = (n: number, s: number): string => formatCount(n / s);
const mbps = (bytes: number, s: number): string => (bytes / s / 1e6).toFixed(0);

process.stdout.write(
  `eBPF parser micro-benchmark: ${objectName}\n` +
    `one parser call per message on stream.subarray(pos), ${formatSize(options.bytes)} per round, median of ${options.rounds} rounds, node ${process.version}\n` +
    'ratio = msg/s relative to lengthField({ size: 4, adjust: 4 })\n\n',
);
const names = Object.keys(results[0]?.times ?? {});
const headers = ['message'];
for (const name of names) headers.push(`${name} msg/s`, 'MB/s', ...(name === 'lengthField' ? [] : ['ratio']));
const rows = results.map((r) => {
  const row = [formatSize(r.size)];
  for (const name of names) {
    const s = r.times[name]!;
    row.push(rate(r.messages, s), mbps(r.bytes, s));
    if (name !== 'lengthField') row.push(`${(r.times.lengthField! / s).toFixed(2)}x`);
  }
  return row;
});
process.stdout.write(`${formatTable(headers, rows)}\n\n`);

process.stdout.write(`through StreamParser, ${formatSize(options.chunk)} chunks (ratio relative to lengthField (inline))\n\n`);
const sNames = Object.keys(results[0]?.stream ?? {});
const sHeaders = ['message'];
for (const name of sNames) sHeaders.push(`${name} msg/s`, ...(name === sNames[0] ? [] : ['ratio']));
const sRows = results.map((r) => {
  const row = [formatSize(r.size)];
  for (const name of sNames) {
    const s = r.stream[name]!;
    row.push(rate(r.messages, s));
    if (name !== sNames[0]) row.push(`${(r.stream[sNames[0]!]! / s).toFixed(2)}x`);
  }
  return row;
});
process.stdout.write(`${formatTable(sHeaders, sRows)}\n`);
if (options.json) process.stdout.write(`${JSON.stringify(results)}\n`);
