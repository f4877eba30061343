/**
 * A tiny stream framer for tests, with no multiplexor: the parser is called on the bytes
 * from each message's first byte, once per arriving chunk until it returns a length [P-2].
 */
import type { Parser } from '../../src/parsers/parser.js';

export interface Framed {
  messages: Buffer[];
  /** The negative value the parser rejected the stream with, if it did. */
  error?: number;
}

export function frame(parser: Parser, chunks: readonly Uint8Array[]): Framed {
  const messages: Buffer[] = [];
  let buf = Buffer.alloc(0);
  let want = 0;
  for (const chunk of chunks) {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (want === 0) {
        if (buf.length === 0) break;
        const n = parser(buf);
        if (n < 0) return { messages, error: n };
        if (n === 0) break;
        want = n;
      }
      if (buf.length < want) break;
      messages.push(buf.subarray(0, want));
      buf = buf.subarray(want);
      want = 0;
    }
  }
  return { messages };
}

/** Cuts `stream` at the given cut points (sorted, deduplicated, in range). */
export function chunk(stream: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    if (p > prev) out.push(stream.subarray(prev, p));
    prev = Math.max(prev, p);
  }
  if (prev < stream.length) out.push(stream.subarray(prev));
  return out;
}
