/**
 * Drives a StreamParser with chunks and records everything it hands out. Shared by the
 * parser tests; holds no test of its own.
 */
import type { KcmError } from '../../src/errors.js';
import type { Parser } from '../../src/parsers/parser.js';
import { StreamParser, type StreamParserSink, type StreamParserStats } from '../../src/parsers/stream-parser.js';

export interface Recorder {
  sp: StreamParser;
  /** Copies of the delivered messages, in order. */
  messages: Buffer[];
  /** The delivered messages themselves (to check zero-copy). */
  raw: Buffer[];
  errors: KcmError[];
}

export interface RunResult {
  messages: string[];
  error: { code: string; errno: number } | undefined;
  stats: StreamParserStats;
}

/**
 * A new stream parser whose sink records messages and errors; `accept` decides refusals.
 * The sink takes runs of whole messages (`onRun`), each message of a run recorded and
 * offered to `accept` in turn, as a multiplexor steers them; with `perMessage` it has only
 * `onMessage`.
 */
export function recorder(
  parser: Parser,
  options: { maxMessageSize?: number; assemblyTimeout?: number; accept?: (message: Buffer) => boolean; perMessage?: boolean } = {},
): Recorder {
  const rec: Recorder = { sp: undefined as unknown as StreamParser, messages: [], raw: [], errors: [] };
  const accept = options.accept;
  const onMessage = (message: Buffer): boolean => {
    if (accept !== undefined && !accept(message)) return false;
    rec.raw.push(message);
    rec.messages.push(Buffer.from(message));
    return true;
  };
  const sink: StreamParserSink = {
    onMessage,
    onError(error) {
      rec.errors.push(error);
    },
  };
  if (options.perMessage !== true) {
    sink.onRun = (chunk, start, ends, count) => {
      let pos = start;
      for (let i = 0; i < count; i++) {
        if (!onMessage(chunk.subarray(pos, ends[i]))) return i;
        pos = ends[i]!;
      }
      return count;
    };
  }
  rec.sp = new StreamParser({ parser, maxMessageSize: options.maxMessageSize ?? 8 * 1024 * 1024, assemblyTimeout: options.assemblyTimeout ?? 0 }, sink);
  return rec;
}

/** Pushes `chunks` into a fresh parser and returns messages (hex), the error and the stats. */
export function run(parser: Parser, chunks: readonly Buffer[], maxMessageSize?: number): RunResult {
  const rec = recorder(parser, maxMessageSize === undefined ? {} : { maxMessageSize });
  for (const chunk of chunks) rec.sp.push(chunk);
  const err = rec.errors[0];
  return {
    messages: rec.messages.map((m) => m.toString('hex')),
    error: err === undefined ? undefined : { code: err.code, errno: err.errno },
    stats: rec.sp.stats(),
  };
}

/** `data` cut at the given ascending offsets. */
export function cut(data: Buffer, offsets: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const at of offsets) {
    if (at > prev && at < data.length) {
      chunks.push(data.subarray(prev, at));
      prev = at;
    }
  }
  chunks.push(data.subarray(prev));
  return chunks;
}

/** Every way of cutting `data` in two, plus one byte at a time. */
export function* splits(data: Buffer): Generator<{ name: string; chunks: Buffer[] }> {
  yield { name: 'whole', chunks: [data] };
  for (let at = 1; at < data.length; at++) yield { name: `split at ${at}`, chunks: cut(data, [at]) };
  const bytes: Buffer[] = [];
  for (let i = 0; i < data.length; i++) bytes.push(data.subarray(i, i + 1));
  yield { name: 'byte by byte', chunks: bytes };
}

/** A Thrift-style frame: 4-byte big-endian length of the payload, then the payload. */
export function frame(payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'hex') : payload;
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

/** The same stats as a fresh parser, with `changes` applied. */
export function stats(changes: Partial<StreamParserStats>): StreamParserStats {
  return {
    rxMsgs: 0,
    rxBytes: 0,
    rxMemFail: 0,
    rxNeedMoreHdr: 0,
    rxMsgTooBig: 0,
    rxMsgTimeouts: 0,
    rxBadHdrLen: 0,
    rxAborted: 0,
    rxInterrupted: 0,
    rxUnrecovIntr: 0,
    ...changes,
  };
}
