/**
 * The RPC protocol of the examples: length-prefixed frames.
 *
 * ```
 * +--------+--------+--------+----------------+
 * | length | id     | method | payload        |
 * | u32 BE | u32 BE | u8     | length-5 bytes |
 * +--------+--------+--------+----------------+
 * ```
 *
 * `length` counts the bytes after itself, so the parser is
 * `lengthField({ size: 4, adjust: 4 })`. A response carries the id of its request and
 * the method, or 0xff with an error text.
 */
import { lengthField } from '../src/index.js';

export const parser = lengthField({ size: 4, adjust: 4, max: 1024 * 1024 });

export const ECHO = 1;
export const REVERSE = 2;
export const SUM = 3;
export const FAILED = 0xff;

/** One request or reply as the parts of one message: `parser.frame()` writes the length. */
export function encode(id: number, method: number, payload: Uint8Array = Buffer.alloc(0)): Buffer[] {
  const head = Buffer.allocUnsafe(5);
  head.writeUInt32BE(id, 0);
  head.writeUInt8(method, 4);
  return parser.frame([head, payload]);
}

export function decode(frame: Buffer): { id: number; method: number; payload: Buffer } {
  return { id: frame.readUInt32BE(4), method: frame.readUInt8(8), payload: frame.subarray(9) };
}
