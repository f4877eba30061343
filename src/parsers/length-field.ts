import { errnos, checkInteger, invalidArgType, invalidArgValue, outOfRange } from '../errors.js';
import type { Parser } from './parser.js';

/** The description of a length-prefixed framing, as taken by {@link lengthField}. */
export interface LengthFieldSpec {
  /** Where the length field starts, in bytes from the message's first byte. Default 0. */
  offset?: number;
  /** Size of the length field in bytes. Default 4. */
  size?: 1 | 2 | 3 | 4 | 8;
  /** Byte order of the length field. Default `'big'`. */
  endian?: 'big' | 'little';
  /** Added to the field's value to get the message's total length. Default 0. */
  adjust?: number;
  /** A larger total length rejects the stream: the parser returns `-EMSGSIZE`. */
  max?: number;
}

/** The validated form of a {@link LengthFieldSpec}, which the stream parser reads inline. */
export interface LengthFieldLayout {
  readonly offset: number;
  readonly size: 1 | 2 | 3 | 4 | 8;
  readonly little: boolean;
  readonly adjust: number;
  readonly max: number;
  /** offset + size: the bytes needed before the length can be known. */
  readonly headerSize: number;
}

/** The property under which a parser made by {@link lengthField} carries its layout. */
export const kLengthField: unique symbol = Symbol('kcm.lengthField');

/** A parser made by {@link lengthField}, with the encoder that is its inverse. */
export type LengthFieldParser = Parser & {
  readonly [kLengthField]: LengthFieldLayout;
  /**
   * The parts of one message this parser reads back whole: a header of `offset + size`
   * bytes (its first `offset` bytes from `prefix`, zero where `prefix` is absent or
   * shorter) holding the length field, then the payload's parts, not copied. The
   * field holds `offset + size + payload length - adjust`, so the parser returns
   * exactly the frame's total length.
   *
   * ```
   *  frame(payload 'hi', prefix [7])   with { offset: 1, size: 2, adjust: 3 }
   * +----+-------+                      header: 3 bytes, total 5, field 5 - 3 = 2
   * | 07 | 00 02 |  'h' 'i'             returned as [header, payload]
   * +----+-------+
   * ```
   *
   * @throws TypeError `ERR_INVALID_ARG_TYPE` when `payload` is not a `Uint8Array` or an
   *   array of them, or `prefix` is not a `Uint8Array`.
   * @throws RangeError `ERR_OUT_OF_RANGE` when the field cannot hold the length
   *   (beyond `size` bytes, or below zero for a large negative `adjust`) or the total
   *   exceeds `max`.
   */
  frame(payload: Uint8Array | readonly Uint8Array[], prefix?: Uint8Array): Buffer[];
};

const NEED_MORE = 0;
const BAD_HEADER = -errnos.EBADMSG;
const TOO_BIG = -errnos.EMSGSIZE;

/**
 * Reads the total message length at `pos` of `buf`, which holds at least `headerSize`
 * bytes from `pos` on. Returns the length, or a negative errno: `-EMSGSIZE` above `max`,
 * `-EBADMSG` when the length would not even cover the length field.
 */
export function readLength(layout: LengthFieldLayout, buf: Buffer, pos: number): number {
  const at = pos + layout.offset;
  let value: number;
  switch (layout.size) {
    case 1:
      value = buf[at]!;
      break;
    case 2:
      value = layout.little ? buf[at]! | (buf[at + 1]! << 8) : (buf[at]! << 8) | buf[at + 1]!;
      break;
    case 3:
      value = layout.little
        ? buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16)
        : (buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!;
      break;
    case 4:
      value = layout.little ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
      break;
    default: {
      const hi = layout.little ? buf.readUInt32LE(at + 4) : buf.readUInt32BE(at);
      const lo = layout.little ? buf.readUInt32LE(at) : buf.readUInt32BE(at + 4);
      // Anything at or above 2^53 is far beyond any permitted size.
      if (hi >= 0x200000) return TOO_BIG;
      value = hi * 0x100000000 + lo;
    }
  }
  const total = value + layout.adjust;
  if (total > layout.max) return TOO_BIG;
  if (total < layout.headerSize) return BAD_HEADER;
  return total;
}

/**
 * A parser for length-prefixed protocols: the message's total length is an unsigned
 * integer field at `offset` plus `adjust`.
 *
 * Thrift framed transport, a 4-byte big-endian length that excludes itself,
 * `lengthField({ size: 4, adjust: 4 })`:
 *
 * ```
 *  before (on the wire)                   after (one message, header included)
 * +-------------+----------------+        +-------------+----------------+
 * | 00 00 00 0C | 12 bytes body  |  --->  | 00 00 00 0C | 12 bytes body  |
 * +-------------+----------------+        +-------------+----------------+
 *   length = 12   total = 12 + 4 = 16
 * ```
 *
 * The parser returns 0 until `offset + size` bytes have arrived, `-EMSGSIZE` (−90) when the
 * total exceeds `max`, and `-EBADMSG` (−74) when the total is smaller than `offset + size`
 * (the message could not contain its own length field).
 *
 * @throws TypeError / RangeError for a spec that breaks the rules above.
 */
export function lengthField(spec: LengthFieldSpec = {}): LengthFieldParser {
  if (spec === null || typeof spec !== 'object') throw invalidArgType('spec', 'of type object', spec);
  const offset = spec.offset === undefined ? 0 : checkInteger('spec.offset', spec.offset, 0, 0x7fffffff);
  const size = spec.size === undefined ? 4 : spec.size;
  if (typeof size !== 'number') throw invalidArgType('spec.size', 'of type number', size);
  if (size !== 1 && size !== 2 && size !== 3 && size !== 4 && size !== 8) throw outOfRange('spec.size', 'one of 1, 2, 3, 4, 8', size);
  const endian = spec.endian === undefined ? 'big' : spec.endian;
  if (endian !== 'big' && endian !== 'little') throw invalidArgValue('spec.endian', "must be 'big' or 'little'", endian);
  const adjust = spec.adjust === undefined ? 0 : checkInteger('spec.adjust', spec.adjust, -Number.MAX_SAFE_INTEGER);
  const max = spec.max === undefined ? Number.MAX_SAFE_INTEGER : checkInteger('spec.max', spec.max, 1);
  const layout: LengthFieldLayout = Object.freeze({ offset, size, little: endian === 'little', adjust, max, headerSize: offset + size });
  const headerSize = layout.headerSize;
  const parser = function lengthFieldParser(data: Buffer): number {
    if (data.length < headerSize) return NEED_MORE;
    return readLength(layout, data, 0);
  } as LengthFieldParser;
  Object.defineProperty(parser, kLengthField, { value: layout });
  Object.defineProperty(parser, 'frame', {
    value: function frame(payload: Uint8Array | readonly Uint8Array[], prefix?: Uint8Array): Buffer[] {
      return frameMessage(layout, payload, prefix);
    },
  });
  return parser;
}

/** The largest value a field of each size holds (8 bytes: bounded by exact doubles). */
const FIELD_MAX: Readonly<Record<1 | 2 | 3 | 4 | 8, number>> = { 1: 0xff, 2: 0xffff, 3: 0xffffff, 4: 0xffffffff, 8: Number.MAX_SAFE_INTEGER };

function toBuffer(part: Uint8Array): Buffer {
  return Buffer.isBuffer(part) ? part : Buffer.from(part.buffer, part.byteOffset, part.byteLength);
}

/** `lengthField(spec).frame()`: the header, then the payload's parts as views. */
export function frameMessage(layout: LengthFieldLayout, payload: Uint8Array | readonly Uint8Array[], prefix?: Uint8Array): Buffer[] {
  const out: Buffer[] = [Buffer.alloc(layout.headerSize)];
  let length = 0;
  if (payload instanceof Uint8Array) {
    out.push(toBuffer(payload));
    length = payload.byteLength;
  } else if (Array.isArray(payload)) {
    for (let i = 0; i < payload.length; i++) {
      const part: unknown = payload[i];
      if (!(part instanceof Uint8Array)) throw invalidArgType(`payload[${i}]`, 'an instance of Uint8Array', part);
      out.push(toBuffer(part));
      length += part.byteLength;
    }
  } else {
    throw invalidArgType('payload', 'an instance of Uint8Array or an array of them', payload);
  }
  const header = out[0]!;
  if (prefix !== undefined) {
    if (!(prefix instanceof Uint8Array)) throw invalidArgType('prefix', 'an instance of Uint8Array', prefix);
    header.set(prefix.byteLength > layout.offset ? prefix.subarray(0, layout.offset) : prefix, 0);
  }
  const total = layout.headerSize + length;
  if (total > layout.max) throw outOfRange('payload', `at most ${layout.max - layout.headerSize} bytes (max ${layout.max} with the header)`, length);
  const value = total - layout.adjust;
  const fieldMax = FIELD_MAX[layout.size];
  if (value < 0 || value > fieldMax) {
    throw outOfRange('payload', `a length whose field value (total ${total} - adjust ${layout.adjust}) fits ${layout.size} bytes: 0 to ${fieldMax}`, length);
  }
  writeField(header, layout.offset, layout.size, layout.little, value);
  return out;
}

function writeField(buf: Buffer, at: number, size: 1 | 2 | 3 | 4 | 8, little: boolean, value: number): void {
  if (size === 8) {
    const hi = Math.floor(value / 0x100000000);
    const lo = value >>> 0;
    if (little) {
      buf.writeUInt32LE(lo, at);
      buf.writeUInt32LE(hi, at + 4);
    } else {
      buf.writeUInt32BE(hi, at);
      buf.writeUInt32BE(lo, at + 4);
    }
  } else if (little) {
    buf.writeUIntLE(value, at, size);
  } else {
    buf.writeUIntBE(value, at, size);
  }
}

/** The layout of a parser made by {@link lengthField}, or undefined for any other function. */
export function lengthFieldLayout(parser: Parser): LengthFieldLayout | undefined {
  return (parser as Partial<LengthFieldParser>)[kLengthField];
}
