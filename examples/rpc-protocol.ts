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

export function encode(id: number, method: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  out.writeUInt32BE(5 + payload.length, 0);
  out.writeUInt32BE(id, 4);
  out.writeUInt8(method, 8);
  out.set(payload, 9);
  return out;
}

export function decode(frame: Buffer): { id: number; method: number; payload: Buffer } {
  return { id: frame.readUInt32BE(4), method: frame.readUInt8(8), payload: frame.subarray(9) };
}
